"""Writing firmware through the ST ROM bootloader of a virtual STM32L073RZ over TCP, checked
by reading it back with the `brickless` command line."""

import subprocess

import pytest

import brickless
from conftest import payload

BASE = 0x0800_0000


def rom_verify(brickless_bin, target, path, address):
    return subprocess.run(
        [brickless_bin, "rom", "verify", "--tcp", target.split(":", 1)[1], str(path),
         "--address", hex(address)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    )


def test_rom_write_over_tcp_reads_back(rom_sim, brickless_bin, tmp_path):
    fw = tmp_path / "fw.bin"
    fw.write_bytes(payload(20_000, 3))
    phases = {}

    def progress(done, total, phase):
        phases.setdefault(phase, []).append((done, total))

    done = brickless.rom_write(rom_sim, fw, address=BASE + 0x1000, progress=progress)
    assert done["device"] == "STM32L07x/L08x", done  # the ROM device table's name
    assert done["bytes"] == 20_000 and done["segments"] == 1 and done["verified"] is True
    assert set(phases) >= {"erase", "write", "verify"}, phases.keys()
    for phase, seen in phases.items():
        dones = [d for d, _ in seen]
        assert dones == sorted(dones), phase
        assert seen[-1][0] == seen[-1][1], phase  # each phase ends at its total
    assert phases["write"][-1][1] == 20_000

    out = rom_verify(brickless_bin, rom_sim, fw, BASE + 0x1000)
    assert out.returncode == 0, out.stdout
    # And the check can fail: other bytes do not verify.
    other = tmp_path / "other.bin"
    other.write_bytes(payload(20_000, 4))
    assert rom_verify(brickless_bin, rom_sim, other, BASE + 0x1000).returncode != 0


def test_rom_errors(rom_sim, tmp_path):
    fw = tmp_path / "fw.bin"
    fw.write_bytes(payload(1000, 5))
    with pytest.raises(brickless.InvalidArgumentError):  # past the end of flash
        brickless.rom_write(rom_sim, fw, address=0x0900_0000)
    with pytest.raises(brickless.InvalidArgumentError):  # ROM is not over UDP
        brickless.rom_write("udp:127.0.0.1:9", fw)
    with pytest.raises(brickless.InvalidArgumentError):
        brickless.rom_write("garbage", fw)
    with pytest.raises(brickless.FileError):
        brickless.rom_write(rom_sim, tmp_path / "missing.bin")
    with pytest.raises(brickless.LinkError):
        brickless.rom_write("serial:/dev/does-not-exist", fw)
    with pytest.raises(TypeError):
        brickless.rom_write(rom_sim, fw, address="0x08000000")
    with pytest.raises(TypeError):
        brickless.rom_write(rom_sim, fw, progress=3)
    # A callback that raises stops the write; its exception comes out.
    with pytest.raises(KeyError):
        brickless.rom_write(rom_sim, fw, progress=lambda d, t, p: {}["x"])
    # The device is still usable.
    assert brickless.rom_write(rom_sim, fw)["bytes"] == 1000
