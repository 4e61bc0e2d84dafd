"""brickless: firmware updates for STM32.

A thin layer over the Rust library brickless-host (the same jobs the ``brickless`` command
line and the C library run):

* :func:`sign`, :func:`verify`, :func:`inspect` -- MCUboot images;
* :func:`rom_write` -- write a firmware file through an ST ROM bootloader (serial or TCP);
* :class:`Smp` -- one device over SMP (UDP or serial): list, upload, test, confirm, reset,
  the whole upgrade, and :meth:`Smp.cancel` from another thread.

Every failure raises a subclass of :class:`BricklessError` carrying ``.kind`` (a stable
name), ``.code`` (the C library's number) and ``.help`` (what to do, or None). Long jobs
release the GIL, so other Python threads run meanwhile.
"""

from ._native import (
    BadImageError,
    BadKeyError,
    BricklessError,
    CancelledError,
    DeviceTimeoutError,
    FileError,
    InternalError,
    InvalidArgumentError,
    LinkError,
    MismatchError,
    ProtocolError,
    RefusedError,
    Smp,
    UnsupportedError,
    VerificationError,
    __version__,
    inspect,
    rom_write,
    sign,
    verify,
)

__all__ = [
    "BadImageError",
    "BadKeyError",
    "BricklessError",
    "CancelledError",
    "DeviceTimeoutError",
    "FileError",
    "InternalError",
    "InvalidArgumentError",
    "LinkError",
    "MismatchError",
    "ProtocolError",
    "RefusedError",
    "Smp",
    "UnsupportedError",
    "VerificationError",
    "__version__",
    "inspect",
    "rom_write",
    "sign",
    "verify",
]
