"""The node-wide bound on argon2 work: N lock files, held by any thread or process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scim_server.config import ConfigError, load_config
from scim_server.slots import NoSlotError, SlotBound, default_concurrency
from tests.support.local import slots_held


def test_refuses_when_every_slot_is_held(tmp_path: Path) -> None:
    """Two slots both held elsewhere: NoSlotError at once, and the block never runs."""
    bound = SlotBound(tmp_path / "slots", 2)
    ran = []
    with slots_held(tmp_path / "slots", 2), pytest.raises(NoSlotError), bound.hold():
        ran.append(True)
    assert ran == []
    with bound.hold() as slot:  # released by their holder: free again
        assert slot in (0, 1)


def test_takes_the_slot_left_free(tmp_path: Path) -> None:
    """Slot 0 held elsewhere: every taker gets slot 1 while it is free."""
    bound = SlotBound(tmp_path, 2)
    with slots_held(tmp_path, 1):
        for _ in range(5):
            with bound.hold() as slot:
                assert slot == 1


def test_threads_of_one_process_exclude_each_other(tmp_path: Path) -> None:
    """flock is per open file, not per process: a second thread finds no slot."""
    bound = SlotBound(tmp_path, 1)
    outcome: list[str] = []
    with bound.hold():

        def other() -> None:
            try:
                with bound.hold():
                    outcome.append("took it")
            except NoSlotError:
                outcome.append("refused")

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert outcome == ["refused"]


def test_another_process_holding_the_slot_refuses_it_here(tmp_path: Path) -> None:
    """A slot held by another process (a second gunicorn worker) counts; its exit frees it."""
    script = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(tmp_path / 'slot-0')!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(NoSlotError), SlotBound(tmp_path, 1).hold():
            pass
    finally:
        holder.communicate("\n", timeout=10)
    with SlotBound(tmp_path, 1).hold() as slot:
        assert slot == 0


def test_an_exception_in_the_block_frees_the_slot(tmp_path: Path) -> None:
    """The holder fails: its slot is free for the next one."""
    bound = SlotBound(tmp_path, 1)
    with pytest.raises(ValueError, match="argon2 failed"), bound.hold():
        raise ValueError("argon2 failed")
    with bound.hold() as slot:
        assert slot == 0


def test_waits_briefly_for_a_slot_being_freed(tmp_path: Path) -> None:
    """Within ``wait_seconds`` a slot freed by its holder is taken; past it, refused."""
    bound = SlotBound(tmp_path, 1, wait_seconds=2.0)
    taken = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with bound.hold():
            taken.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    assert taken.wait(5)
    threading.Timer(0.05, release.set).start()
    started = time.monotonic()
    with bound.hold() as slot:
        assert slot == 0
    assert time.monotonic() - started < 1.5
    t.join()
    short = SlotBound(tmp_path, 1, wait_seconds=0.05)
    with short.hold(), pytest.raises(NoSlotError):
        started = time.monotonic()
        with short.hold():
            pass
    assert 0.04 <= time.monotonic() - started < 1.0


def test_count_zero_is_no_bound(tmp_path: Path) -> None:
    """0 turns the bound off: no file, nothing refused."""
    bound = SlotBound(tmp_path / "never", 0)
    with bound.hold() as a, bound.hold() as b:
        assert a is None and b is None
    assert not (tmp_path / "never").exists()


def test_makes_its_directory(tmp_path: Path) -> None:
    """A slot directory that does not exist yet is made (private) on first use."""
    directory = tmp_path / "run" / "argon2"
    with SlotBound(directory, 1).hold():
        assert (directory / "slot-0").exists()
    assert directory.stat().st_mode & 0o777 == 0o700


def test_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults: half the cores, 100 ms, under instance/; a negative count is a clear error."""
    for name in ("SCIM_ARGON2_CONCURRENCY", "SCIM_ARGON2_WAIT_MS", "SCIM_ARGON2_SLOT_DIR"):
        monkeypatch.delenv(name, raising=False)
    config = load_config(str(tmp_path))
    assert config["ARGON2_CONCURRENCY"] == default_concurrency() >= 1
    assert config["ARGON2_WAIT_MS"] == 100
    assert config["ARGON2_SLOT_DIR"] == str(tmp_path / "argon2-slots")
    bound = SlotBound.argon2(config)
    assert (bound.directory, bound.count, bound.wait_seconds) == (
        tmp_path / "argon2-slots",
        default_concurrency(),
        0.1,
    )
    monkeypatch.setenv("SCIM_ARGON2_CONCURRENCY", "3")
    monkeypatch.setenv("SCIM_ARGON2_SLOT_DIR", "/run/scim/argon2")
    config = load_config(str(tmp_path))
    assert (config["ARGON2_CONCURRENCY"], config["ARGON2_SLOT_DIR"]) == (3, "/run/scim/argon2")
    monkeypatch.setenv("SCIM_ARGON2_CONCURRENCY", "-1")
    with pytest.raises(ConfigError, match="SCIM_ARGON2_CONCURRENCY must be 0 or more"):
        load_config(str(tmp_path))


def test_an_unusable_directory_runs_unbounded_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The slot directory is a file: no bound (sign-ins still work), an error logged."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with caplog.at_level("ERROR", logger="scim_server.slots"), SlotBound(blocker, 1).hold() as s:
        assert s is None
    assert "argon2 slots unusable" in caplog.text and str(blocker) in caplog.text
