"""SMP against virtual STM32H753ZI devices (`brickless sim`): upgrades of one and of eight
devices at once, progress, cancellation from another thread, the GIL released during
transfers, and the errors bad input gives."""

import threading
import time

import pytest

import brickless


def running(dev):
    return next(s for s in dev.list() if s["slot"] == 0 and s["active"])


def test_one_device_upgraded(smp_sims, signed):
    (target,) = smp_sims(1)
    v1, v2 = signed(1), signed(2)
    seen = []
    with brickless.Smp(target) as dev:
        assert dev.target == target
        done = dev.upgrade(v1, progress=lambda d, t: seen.append((d, t)))
        assert done["version"] == "1.0.0" and done["confirmed"] is True
        assert done["already_running"] is False
        assert done["bytes"] == v1.stat().st_size
        assert done["hash"] == brickless.inspect(v1)["hash"]
        now = running(dev)
        assert now["version"] == "1.0.0" and now["confirmed"] is True
        assert now["hash"] == done["hash"]

        # Progress: monotone, in bytes of the file, ending at the total.
        total = v1.stat().st_size
        assert len(seen) > 2
        assert all(t == total for _, t in seen)
        dones = [d for d, _ in seen]
        assert dones == sorted(dones)
        assert dones[-1] == total

        # The same image again: nothing uploaded.
        again = dev.upgrade(v1)
        assert again["already_running"] is True and again["bytes"] == 0

        # A second version through test, reset, confirm.
        done = dev.upgrade(v2)
        assert done["version"] == "2.0.0" and done["confirmed"] is True
        assert running(dev)["version"] == "2.0.0"
    with pytest.raises(brickless.InvalidArgumentError):
        dev.list()  # closed


def test_upgrade_over_a_serial_port(pty_sim, signed):
    image = signed(1, 32 * 1024)
    seen = []
    with brickless.Smp(pty_sim) as dev:
        done = dev.upgrade(image, progress=lambda d, t: seen.append(d))
        assert done["version"] == "1.0.0" and done["confirmed"]
        assert seen[-1] == image.stat().st_size
        assert running(dev)["version"] == "1.0.0"


def test_eight_devices_upgraded_in_parallel(smp_sims, signed):
    # With a real device's latency (20 ms an answer) an upgrade mostly waits on the link.
    targets = smp_sims(9, turnaround_ms=20)
    image = signed(1)

    # One device alone, for the time one takes.
    t0 = time.monotonic()
    with brickless.Smp(targets[0]) as dev:
        assert dev.upgrade(image)["version"] == "1.0.0"
    one = time.monotonic() - t0

    results, errors = {}, []

    def upgrade(target):
        try:
            with brickless.Smp(target) as dev:
                results[target] = dev.upgrade(image)
                results[target]["running"] = running(dev)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append((target, e))

    threads = [threading.Thread(target=upgrade, args=(t,)) for t in targets[1:]]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    eight = time.monotonic() - t0
    assert not errors, errors
    assert len(results) == 8
    for r in results.values():
        assert r["version"] == "1.0.0" and r["confirmed"] and not r["already_running"]
        assert r["running"]["version"] == "1.0.0" and r["running"]["confirmed"]
    print(f"one device {one:.2f} s, eight in parallel {eight:.2f} s")
    # Serialised (the GIL held throughout) they would take 8 x one; in parallel about 2 x.
    assert eight < 4 * one, (one, eight)


def test_python_threads_run_during_an_upload(smp_sims, signed):
    (target,) = smp_sims(1, turnaround_ms=5)
    image = signed(1, 256 * 1024)
    stop = threading.Event()
    stamps = []

    def count():
        n = 0
        while not stop.is_set():
            n += 1
            if n % 1000 == 0:
                stamps.append(time.monotonic())

    counter = threading.Thread(target=count)
    with brickless.Smp(target) as dev:
        counter.start()
        try:
            t0 = time.monotonic()
            dev.upload(image)  # no callback: the GIL is not needed during the whole upload
            t1 = time.monotonic()
        finally:
            stop.set()
            counter.join()
    # The Python thread ran all through the upload, not just around its start and end.
    middle = [t for t in stamps if t0 + 0.25 * (t1 - t0) < t < t0 + 0.75 * (t1 - t0)]
    print(f"upload {t1 - t0:.2f} s, {len(middle)} thousand steps of a Python thread in its middle half")
    assert t1 - t0 > 0.1
    assert len(middle) > 100, len(middle)


def test_cancel_from_another_thread(smp_sims, signed):
    (target,) = smp_sims(1, turnaround_ms=5)
    image = signed(1, 512 * 1024)
    started = threading.Event()
    seen = []
    outcome = []

    def progress(done, total):
        seen.append(done)
        if done > 0:
            started.set()

    with brickless.Smp(target) as dev:

        def upload():
            try:
                outcome.append(dev.upload(image, progress=progress))
            except BaseException as e:  # noqa: BLE001
                outcome.append(e)

        worker = threading.Thread(target=upload)
        worker.start()
        assert started.wait(30), "the upload did not start"
        dev.cancel()
        worker.join(30)
        assert not worker.is_alive()
        (result,) = outcome
        assert isinstance(result, brickless.CancelledError), result
        assert result.kind == "cancelled"
        assert seen[-1] < image.stat().st_size  # stopped before the end
        # The session works again after a cancellation.
        assert isinstance(dev.list(), list)


def test_an_exception_in_progress_stops_the_transfer(smp_sims, signed):
    (target,) = smp_sims(1)
    image = signed(1, 256 * 1024)
    calls = []

    def progress(done, total):
        calls.append(done)
        if done > 0:
            raise ValueError("stop here")

    with brickless.Smp(target) as dev:
        with pytest.raises(ValueError, match="stop here"):
            dev.upload(image, progress=progress)
        assert len([c for c in calls if c > 0]) == 1  # not called again once it raised
        slots = dev.list()
        assert isinstance(slots, list)
        with pytest.raises(ZeroDivisionError):
            dev.upgrade(image, progress=lambda d, t: 1 / 0)


def test_bad_input_is_a_named_error(smp_sims, signed, tmp_path):
    with pytest.raises(brickless.LinkError) as e:
        brickless.Smp("serial:/dev/does-not-exist")
    assert e.value.kind == "connection" and "/dev/does-not-exist" in str(e.value)
    assert e.value.help
    for garbage in ["garbage", "", "udp:", "usb:1", "serial:/x@fast"]:
        with pytest.raises(brickless.InvalidArgumentError):
            brickless.Smp(garbage)
    with pytest.raises(brickless.InvalidArgumentError):
        brickless.Smp("tcp:127.0.0.1:9")  # SMP is UDP or serial
    with pytest.raises(brickless.InvalidArgumentError):
        brickless.Smp("udp:127.0.0.1:9", timeout=0)
    with pytest.raises(TypeError):
        brickless.Smp(42)
    with pytest.raises(TypeError):
        brickless.Smp("udp:127.0.0.1:9", timeout="long")

    (target,) = smp_sims(1)
    image = signed(1, 4096)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(image.read_bytes()[:2000])
    with brickless.Smp(target, timeout=2.0) as dev:
        with pytest.raises(brickless.BadImageError):
            dev.upload(cut)
        with pytest.raises(brickless.BadImageError):
            dev.upgrade(cut)
        with pytest.raises(brickless.FileError):
            dev.upload(tmp_path / "missing.bin")
        with pytest.raises(brickless.InvalidArgumentError):
            dev.test("not a hash")
        with pytest.raises(brickless.InvalidArgumentError):
            dev.confirm(b"short")
        with pytest.raises(TypeError):
            dev.test(1234)
        with pytest.raises(TypeError):
            dev.upload(image, progress="not callable")
        with pytest.raises(brickless.InvalidArgumentError):
            dev.upgrade(image, wait=-1.0)
        # A device that knows no such image refuses it.
        with pytest.raises(brickless.BricklessError):
            dev.test("00" * 32)
        assert isinstance(dev.list(), list)  # still talking


def test_a_silent_device_times_out():
    import socket

    quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    quiet.bind(("127.0.0.1", 0))  # bound, never answers
    try:
        port = quiet.getsockname()[1]
        with brickless.Smp(f"udp:127.0.0.1:{port}", timeout=0.3) as dev:
            t0 = time.monotonic()
            with pytest.raises(brickless.DeviceTimeoutError) as e:
                dev.list()
            assert time.monotonic() - t0 < 10
            assert e.value.help
    finally:
        quiet.close()
