"""A bound on expensive work shared by every process and thread of one node: N slot files.

argon2id is meant to be costly (about 20 ms of a core per password with the
default parameters); a few people signing in without pause would otherwise
take every core from SCIM traffic served by the same gunicorn workers. Each
slot is a file in a directory the node's workers share; holding the slot is
holding an exclusive ``flock`` on its file. ``flock`` belongs to the open file,
not the process, so it excludes other threads of the same worker as well as
other workers (POSIX ``fcntl`` locks would not), and the kernel drops it when
the holder dies: a killed worker never keeps a slot.

A slot is taken without queueing: the free ones are tried at once, again every
few milliseconds up to ``wait_seconds``, then ``NoSlotError``. Nothing waits for
a slot longer than that, so an overloaded node answers "try again" quickly
instead of holding its threads. The directory must be on a local file system
(``flock`` over NFS is per process); ``count`` 0 turns the bound off.

No Flask here: the sign-in pages build one from the configuration
(``SCIM_ARGON2_CONCURRENCY``, ``SCIM_ARGON2_SLOT_DIR``, ``SCIM_ARGON2_WAIT_MS``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# How often a waiting taker looks again (a verify lasts about 20 ms).
POLL_SECONDS = 0.005


class NoSlotError(RuntimeError):
    """Every slot is held (and stayed held for the short wait allowed)."""


@dataclass(frozen=True)
class SlotBound:
    """At most ``count`` holders at once across the node (``count`` 0: no bound)."""

    directory: Path
    count: int
    wait_seconds: float = 0.0

    @classmethod
    def argon2(cls, config: Mapping[str, Any]) -> SlotBound:
        """The node's argon2 slots: ``ARGON2_CONCURRENCY``, ``_SLOT_DIR``, ``_WAIT_MS``."""
        return cls(
            directory=Path(config["ARGON2_SLOT_DIR"]),
            count=int(config["ARGON2_CONCURRENCY"]),
            wait_seconds=int(config["ARGON2_WAIT_MS"]) / 1000,
        )

    @contextmanager
    def hold(self) -> Iterator[int | None]:
        """Hold one slot for the ``with`` block (its number; None when unbounded).

        Released however the block ends, exception included.
        """
        if self.count <= 0:
            yield None
            return
        try:
            slot, fd = self._take()
        except NoSlotError:
            raise
        except OSError as err:
            # A directory we cannot use (read-only, not a directory): the work goes on
            # unbounded rather than every sign-in failing; the log says why.
            log.error("argon2 slots unusable in %s, running unbounded: %s", self.directory, err)
            yield None
            return
        try:
            yield slot
        finally:
            os.close(fd)  # closing the file releases its lock

    def _take(self) -> tuple[int, int]:
        deadline = time.monotonic() + max(0.0, self.wait_seconds)
        first = random.randrange(self.count)  # spread takers over the slots
        while True:
            for i in range(self.count):
                slot = (first + i) % self.count
                fd = self._try(slot)
                if fd is not None:
                    return slot, fd
            left = deadline - time.monotonic()
            if left <= 0:
                raise NoSlotError(f"all {self.count} slots in {self.directory} are held")
            time.sleep(min(POLL_SECONDS, left))

    def _try(self, slot: int) -> int | None:
        path = self.directory / f"slot-{slot}"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd


def default_concurrency() -> int:
    """Half the cores this process may run on (at least one).

    Each argon2 computation keeps one core busy, so sign-ins can then take at
    most half of the node, whatever its size, and SCIM traffic keeps the rest
    ("the cores less one" would leave it one core of sixteen). One slot still
    verifies some 40 passwords a second with the default cost.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 2
    return max(1, cores // 2)
