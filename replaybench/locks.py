"""The locks beside a warehouse file, all one mechanism: an exclusive `flock` on a lock file that
holds the holder's pid, so that whoever finds it taken can say who has it. The kernel frees the
lock of a killed process.

    <warehouse>.lock               WarehouseLock: one process's turn at the DuckDB file (DuckDB lets
                                   one process at a time open it; the others wait for their turn)
    <warehouse>.runs/<day>.lock    the day's lease: the run of a day is under way in one process
                                   at a time (`lease_day`, `release_day`, `day_leased_elsewhere`)

Inside one process each lock is taken once and counted (a thread lock guards the count): DuckDB
lets one process's connections work side by side, and a day's run holds its lease across steps.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from datetime import date
from pathlib import Path

from replaybench.beside import beside
from replaybench.config import warehouse_wait_s
from replaybench.errors import RunInProgress, WarehouseError

WAIT_SECONDS = warehouse_wait_s()
log = logging.getLogger("replaybench.warehouse")


class Busy(Exception):
    """Another process holds the lock; `holder` says which ("pid 1234")."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


def try_take(path: Path) -> int:
    """Take the lock at `path` (created if need be) without waiting; the open descriptor, which
    holds it until `give_back`. Busy when another process has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise Busy(holder) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
    return fd


def give_back(fd: int) -> None:
    """Release a lock `try_take` returned."""
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


# --- the warehouse's turns ------------------------------------------------------------------

class WarehouseLock:
    """One process's turn at a warehouse file: an exclusive `flock` on `<warehouse>.lock`, taken
    by the first open in the process and given back by the last close. Waits for another
    process's turn to end (saying once who holds it), up to `wait_s`."""

    _guard = threading.Lock()
    _held: dict[Path, tuple[int, int]] = {}  # lock file -> (fd, opens in this process)

    def __init__(self, warehouse: Path, wait_s: float = WAIT_SECONDS):
        self.path = beside(warehouse, ".lock")
        self.wait_s = wait_s

    def __enter__(self) -> WarehouseLock:
        with self._guard:
            if self.path in self._held:
                fd, count = self._held[self.path]
                self._held[self.path] = (fd, count + 1)
                return self
            self._held[self.path] = (self._acquire(), 1)
        return self

    def _acquire(self) -> int:
        deadline = time.monotonic() + self.wait_s
        said = False
        while True:
            try:
                return try_take(self.path)
            except Busy as busy:
                if time.monotonic() > deadline:
                    raise WarehouseError(
                        f"the warehouse {self.path.with_suffix('')} stayed busy for {self.wait_s:.0f} s "
                        f"({busy.holder}); try again when it is done") from None
                if not said:
                    log.warning("waiting for the warehouse %s: %s has it", self.path.with_suffix(""),
                                busy.holder)
                    said = True
                time.sleep(0.05)  # a turn lasts seconds; polling keeps the wait bounded

    def __exit__(self, *exc: object) -> None:
        with self._guard:
            fd, count = self._held[self.path]
            if count > 1:
                self._held[self.path] = (fd, count - 1)
                return
            del self._held[self.path]
            give_back(fd)


# --- a day's run lease ----------------------------------------------------------------------
# Taken when a day's run begins and given back when it ends (the kernel frees a killed process's
# lease, and the next attempt resumes the run). A second process that asks for the same day
# meanwhile is refused instead of resuming a run that is still going.

_leases: dict[Path, int] = {}
_lease_guard = threading.Lock()


def _lease_path(warehouse: Path, run_date: date) -> Path:
    return beside(warehouse, ".runs") / f"{run_date:%Y-%m-%d}.lock"


def lease_day(warehouse: Path, run_date: date) -> None:
    """Lease the day's run to this process; RunInProgress when another process holds it."""
    path = _lease_path(warehouse, run_date)
    with _lease_guard:
        if path in _leases:
            return
        try:
            _leases[path] = try_take(path)
        except Busy as busy:
            raise RunInProgress(f"the run of {run_date} is under way in {busy.holder}; it is not "
                                "started twice (wait for it, or stop it first)") from None


def release_day(warehouse: Path, run_date: date) -> None:
    """Give back the day's lease, if this process holds it."""
    with _lease_guard:
        fd = _leases.pop(_lease_path(warehouse, run_date), None)
        if fd is not None:
            give_back(fd)


def day_leased_elsewhere(warehouse: Path, run_date: date) -> bool:
    """True when another process holds the day's lease (its run is under way there)."""
    path = _lease_path(warehouse, run_date)
    with _lease_guard:
        if path in _leases or not path.exists():
            return False
        try:
            give_back(try_take(path))
        except Busy:
            return True
        return False
