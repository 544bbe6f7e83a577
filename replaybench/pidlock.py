"""A lock file held by one process at a time: an exclusive `flock`, with the holder's pid written
in the file so that whoever finds it taken can say who has it. The kernel frees the lock of a
killed process. Used for the warehouse's turns and for a day's run lease."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


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
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
