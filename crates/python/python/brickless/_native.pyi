"""Types of the native module; see the package docstring."""

import os
from types import TracebackType
from typing import Callable, List, Optional, Sequence, Type, TypedDict, Union, final

StrPath = Union[str, "os.PathLike[str]"]
Progress = Callable[[int, int], object]
RomProgress = Callable[[int, int, str], object]

__version__: str

class BricklessError(Exception):
    """A brickless job failed."""

    kind: Optional[str]
    """The kind's stable name: ``"bad_image"``, ``"timeout"``, ... (None on the base class)."""
    code: Optional[int]
    """The kind's number, the C library's error code."""
    help: Optional[str]
    """What to do about it, when there is something to say."""

class InvalidArgumentError(BricklessError):
    """An argument is malformed or out of range (a version, a hash, an address, a target)."""

class FileError(BricklessError):
    """A file could not be read or written."""

class BadImageError(BricklessError):
    """The file is not a valid MCUboot image (truncated, bad magic, hash mismatch)."""

class BadKeyError(BricklessError):
    """A key file could not be read or is not a supported key."""

class VerificationError(BricklessError):
    """The image does not verify with the keys given."""

class LinkError(BricklessError):
    """The port, socket or device could not be opened, or the link failed."""

class DeviceTimeoutError(BricklessError):
    """The device did not answer in time."""

class RefusedError(BricklessError):
    """The device refused the request."""

class ProtocolError(BricklessError):
    """The device answered something its protocol does not allow."""

class MismatchError(BricklessError):
    """The device holds or runs something other than what was sent."""

class CancelledError(BricklessError):
    """The job was cancelled (:meth:`Smp.cancel`)."""

class UnsupportedError(BricklessError):
    """This build or this device cannot do that."""

class InternalError(BricklessError):
    """A bug in brickless."""

class ImageSummary(TypedDict):
    version: str
    hash: str
    hash_matches: bool
    header_size: int
    payload_size: int
    image_size: int
    flags: int
    security_counter: Optional[int]
    signed: bool
    tlvs: List[str]

class Verified(TypedDict):
    version: str
    hash: str
    key_index: Optional[int]

class RomWritten(TypedDict):
    device: str
    bytes: int
    segments: int
    skipped: int
    verified: bool

class Slot(TypedDict):
    image: int
    slot: int
    version: str
    hash: str
    bootable: bool
    pending: bool
    confirmed: bool
    active: bool
    permanent: bool

class Uploaded(TypedDict):
    bytes: int
    requests: int
    resumes: int
    matched: Optional[bool]

class Upgraded(TypedDict):
    version: str
    hash: str
    bytes: int
    requests: int
    resumes: int
    confirmed: bool
    already_running: bool

def sign(
    input: StrPath,
    output: StrPath,
    key: Optional[StrPath] = None,
    *,
    version: str,
    header_size: int = 0x200,
    pad_header: bool = True,
    slot_size: int = 0x20000,
    align: int = 8,
    confirm: bool = False,
) -> ImageSummary:
    """Signs the firmware file ``input`` (BIN, Intel HEX or ELF) into the BIN image
    ``output`` with the private PEM ``key`` (hash only without one). ``output`` is written
    atomically: a failed call leaves none."""

def verify(image: StrPath, keys: Sequence[StrPath] = ...) -> Verified:
    """Verifies ``image`` against the PEM ``keys`` (public or private); with none, only its
    hash. Raises VerificationError when it does not verify."""

def inspect(image: StrPath) -> ImageSummary:
    """Summarises the image file ``image``."""

def rom_write(
    target: str,
    file: StrPath,
    *,
    baud: int = 115200,
    parity_even: bool = True,
    verify: bool = True,
    address: Optional[int] = None,
    go: bool = False,
    progress: Optional[RomProgress] = None,
) -> RomWritten:
    """Writes ``file`` (BIN at ``address``, Intel HEX, ELF, DfuSe) through the ST ROM
    bootloader at ``target`` (``"serial:PATH[@BAUD]"`` or ``"tcp:HOST:PORT"``): erases the
    pages it touches, writes, reads back unless ``verify`` is False, and with ``go`` starts
    it. ``progress(done, total, phase)`` counts pages in phase ``"erase"`` and bytes in
    ``"write"`` and ``"verify"``. Runs with the GIL released."""

@final
class Smp:
    """One device over SMP (``"udp:HOST[:PORT]"`` or ``"serial:PATH[@BAUD]"``), each
    answer awaited at most ``timeout`` seconds. Usable from several threads (calls are
    serialised); every call releases the GIL while it talks to the device. A context
    manager: leaving the ``with`` block closes it."""

    def __new__(cls, target: str, timeout: float = 5.0) -> "Smp": ...
    @property
    def target(self) -> str:
        """The target as parsed (``"udp:127.0.0.1:1337"``)."""
    def list(self) -> List[Slot]:
        """The image slots."""
    def upload(self, file: StrPath, progress: Optional[Progress] = None) -> Uploaded:
        """Uploads the signed image ``file`` into the staging slot (checked first);
        ``progress(done, total)`` in bytes."""
    def test(self, hash: Union[str, bytes]) -> List[Slot]:
        """Marks the image with ``hash`` (64 hex digits or 32 bytes) for one test boot."""
    def confirm(self, hash: Union[str, bytes, None] = None) -> List[Slot]:
        """Confirms the running image, or requests the image ``hash`` for good."""
    def reset(self) -> None:
        """Resets the device."""
    def upgrade(
        self,
        file: StrPath,
        confirm: bool = True,
        wait: float = 60.0,
        progress: Optional[Progress] = None,
    ) -> Upgraded:
        """Uploads ``file``, marks it for a test boot, resets, waits up to ``wait`` seconds
        for the device to run it and (with ``confirm``) confirms it. An image that already
        runs is not uploaded again."""
    def cancel(self) -> None:
        """Makes the call in progress (from any thread), or the next call if none is in
        progress, raise CancelledError at its next request."""
    def close(self) -> None:
        """Cancels any call in progress, waits for it and closes the link; later calls raise
        InvalidArgumentError."""
    def __enter__(self) -> "Smp": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
