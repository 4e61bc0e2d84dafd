"""Fixtures: the `brickless` binary (env BRICKLESS_BIN), virtual devices and signed images."""

import os
import random
import subprocess
from pathlib import Path

import pytest

import brickless

REPO = Path(__file__).resolve().parents[3]
DEV_KEY = REPO / "keys" / "insecure-dev-ed25519.pem"
# What the virtual STM32H753ZI's bootloader expects (as crates/cli/tests/smp_interop.rs).
LAYOUT = dict(header_size=0x400, pad_header=True, slot_size=0xC0000, align=32)


def _bin() -> str:
    path = os.environ.get("BRICKLESS_BIN")
    if not path or not Path(path).is_file():
        pytest.fail("set BRICKLESS_BIN to the brickless binary (scripts/python.sh does)")
    return path


@pytest.fixture(scope="session")
def brickless_bin() -> str:
    return _bin()


class Sim:
    """A running `brickless sim`; `address` is where it serves, as the first line says."""

    def __init__(self, args, prefix, pty=False):
        self.proc = subprocess.Popen(
            [_bin(), "sim", *args, *([] if pty else ["--no-pty"])],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        first = self.proc.stdout.readline()
        if not first.startswith(prefix):
            self.stop()
            raise AssertionError(f"brickless sim said: {first!r}")
        self.address = first[len(prefix):].split()[0]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def smp_sims(tmp_path):
    """Starts n virtual STM32H753ZI (empty flash: recovery SMP), returns their targets; each
    answers after `turnaround_ms`, as a real device's latency."""
    started = []

    def start(n=1, turnaround_ms=0):
        sims = [
            Sim(["--flash", str(tmp_path / f"dev{len(started) + i}.flash"), "--udp", "127.0.0.1:0",
                 "--turnaround-ms", str(turnaround_ms)],
                "serving SMP on udp ")
            for i in range(n)
        ]
        started.extend(sims)
        return [f"udp:{s.address}" for s in sims]

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def pty_sim(tmp_path):
    """A virtual STM32H753ZI serving SMP on a pty; yields `serial:PATH`."""
    link = tmp_path / "ttySMP"
    sim = Sim(["--flash", str(tmp_path / "pty.flash"), "--udp", "127.0.0.1:0", "--link", str(link)],
              "serving SMP on udp ", pty=True)
    yield f"serial:{link}"
    sim.stop()


@pytest.fixture
def rom_sim(tmp_path):
    """A virtual STM32L073RZ in its ROM bootloader over TCP; yields `tcp:HOST:PORT`."""
    sim = Sim(["--rom", "--part", "stm32l073rz", "--flash", str(tmp_path / "l0.flash"),
               "--tcp", "127.0.0.1:0"], "serving AN3155 on tcp ")
    yield f"tcp:{sim.address}"
    sim.stop()


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def signed(tmp_path):
    """signed(major, size) -> path of an image of version MAJOR.0.0 signed with the dev key."""

    def make(major=1, size=64 * 1024):
        raw = tmp_path / f"app{major}-{size}.bin"
        raw.write_bytes(payload(size, major))
        out = tmp_path / f"app{major}-{size}.signed.bin"
        brickless.sign(raw, out, DEV_KEY, version=f"{major}.0.0", **LAYOUT)
        return out

    return make
