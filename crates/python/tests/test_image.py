"""Images: sign, verify, inspect, and the errors bad input gives (never a crash)."""

import subprocess
from pathlib import Path

import pytest

import brickless
from conftest import DEV_KEY, LAYOUT, payload


def test_the_installed_wheel_is_tested():
    # scripts/python.sh runs pytest outside the source tree, from a venv holding the wheel.
    source = Path(__file__).resolve().parents[1] / "python"
    assert source not in Path(brickless.__file__).resolve().parents, brickless.__file__
    assert "site-packages" in brickless.__file__
    assert brickless.__version__


def test_sign_verify_inspect_round_trip(tmp_path):
    raw = tmp_path / "fw.bin"
    raw.write_bytes(payload(5000, 7))
    out = tmp_path / "fw.signed.bin"
    made = brickless.sign(str(raw), out, DEV_KEY, version="1.2.3+4", **LAYOUT)
    # Versions read back as mcumgr and the device list show them.
    assert made["version"] == "1.2.3.4"
    assert made["signed"] is True and made["hash_matches"] is True
    assert made["header_size"] == 0x400 and made["payload_size"] == 5000
    assert "ED25519" in made["tlvs"]
    assert len(made["hash"]) == 64
    assert out.stat().st_size == made["image_size"]

    assert brickless.inspect(out) == made
    v = brickless.verify(out, [DEV_KEY])
    assert v == {"version": "1.2.3.4", "hash": made["hash"], "key_index": 0}
    assert brickless.verify(out)["key_index"] is None  # hash only


def test_unsigned_and_confirmed(tmp_path):
    raw = tmp_path / "fw.bin"
    raw.write_bytes(payload(1000, 1))
    out = tmp_path / "fw.signed.bin"
    s = brickless.sign(raw, out, version="0.1.0", confirm=True, slot_size=0x8000)
    assert s["signed"] is False
    assert out.stat().st_size == 0x8000  # padded to the slot
    with pytest.raises(brickless.VerificationError):
        brickless.verify(out, [DEV_KEY])


def test_wrong_key_is_a_verification_error(tmp_path, brickless_bin, signed):
    image = signed(1, 4096)
    other = tmp_path / "other.pem"
    subprocess.run([brickless_bin, "keygen", "-t", "ed25519", "-k", str(other)], check=True,
                   stdout=subprocess.DEVNULL)
    with pytest.raises(brickless.VerificationError) as e:
        brickless.verify(image, [other])
    assert e.value.kind == "verification"
    assert e.value.code == 5
    assert e.value.help
    assert str(image) in str(e.value)
    assert isinstance(e.value, brickless.BricklessError)


def test_truncated_image_is_a_bad_image(tmp_path, signed):
    image = signed(1, 4096)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(image.read_bytes()[:1000])
    with pytest.raises(brickless.BadImageError) as e:
        brickless.inspect(cut)
    assert e.value.kind == "bad_image"
    with pytest.raises(brickless.BadImageError):
        brickless.verify(cut, [DEV_KEY])


def test_bad_arguments_are_named_errors(tmp_path, signed):
    raw = tmp_path / "fw.bin"
    raw.write_bytes(b"\0" * 64)
    out = tmp_path / "out.bin"
    with pytest.raises(brickless.InvalidArgumentError) as e:
        brickless.sign(raw, out, DEV_KEY, version="one")
    assert "MAJOR.MINOR" in e.value.help
    with pytest.raises(brickless.FileError):
        brickless.inspect(tmp_path / "missing.bin")
    with pytest.raises(brickless.BadKeyError):
        brickless.sign(raw, out, tmp_path / "missing.pem", version="1.0.0")
    with pytest.raises(brickless.BadImageError):  # does not fit the slot
        brickless.sign(raw, out, version="1.0.0", slot_size=0x100)
    assert not out.exists()  # a failed sign writes nothing


def test_wrong_types_are_type_errors(tmp_path):
    with pytest.raises(TypeError):
        brickless.inspect(42)
    with pytest.raises(TypeError):
        brickless.sign("a", "b", version=1)
    with pytest.raises(TypeError):
        brickless.sign("a", "b")  # version is required
    with pytest.raises(TypeError):
        brickless.sign("a", "b", None, "1.0.0")  # keyword only
    with pytest.raises(TypeError):
        brickless.verify("a", "key.pem")  # a str is not a list of keys
    with pytest.raises(OverflowError):
        brickless.sign("a", "b", version="1.0.0", slot_size=-1)


def test_exception_classes():
    kinds = {
        brickless.InvalidArgumentError: ("invalid_argument", 1),
        brickless.FileError: ("file", 2),
        brickless.BadImageError: ("bad_image", 3),
        brickless.BadKeyError: ("bad_key", 4),
        brickless.VerificationError: ("verification", 5),
        brickless.LinkError: ("connection", 6),
        brickless.DeviceTimeoutError: ("timeout", 7),
        brickless.RefusedError: ("refused", 8),
        brickless.ProtocolError: ("protocol", 9),
        brickless.MismatchError: ("mismatch", 10),
        brickless.CancelledError: ("cancelled", 11),
        brickless.UnsupportedError: ("unsupported", 12),
        brickless.InternalError: ("internal", 13),
    }
    for cls, (kind, code) in kinds.items():
        assert issubclass(cls, brickless.BricklessError)
        assert (cls.kind, cls.code) == (kind, code)
        assert cls.__module__ == "brickless"
    assert not issubclass(brickless.LinkError, ConnectionError)
    assert brickless.BricklessError.kind is None
