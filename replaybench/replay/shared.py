"""Answers shared between runs that have not stored them yet: a nightly run beside a backfill
(two processes), or a backfill's days side by side, never pay twice for the same question."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
import time
from pathlib import Path

from replaybench.providers import Completion
from replaybench.replay.journal import journal_rows


class KnownAnswers:
    """What other runs on this warehouse have paid for but not stored yet, and what they are
    asking right now, so that a nightly run beside a backfill (two processes), or a backfill's
    days side by side, never pay twice for the same question.

    - Answers: every process appends each answer to its run's journal (`<warehouse>.journal/`)
      the moment it arrives; this reads the new lines of the journals of the same candidate
      whenever a question is not known yet (a `stat` tells when there is nothing new).
    - Questions in flight: a process asking a question holds a POSIX record lock on one byte of
      `<warehouse>.journal/asking.lock` at an offset given by the cache key, until the answer is
      journaled. Another process wanting it waits for the lock, then finds the answer in the
      journal. The journals are read after the lock is taken, never only before: a process that
      asked and let go of the lock a moment earlier has journaled its answer by then. The kernel
      frees a killed process's locks."""

    POLL_S = 0.02
    RACY_NS = 100_000_000  # a listing this close to the folder's last change may have missed one

    def __init__(self, folder: Path, own: Path, stem: str):
        self.folder, self.own, self.stem = folder, own, stem  # stem: `file_stem` of the name
        self.offsets: dict[Path, int] = {}
        self.answers: dict[str, Completion] = {}
        self.files: list[Path] = []
        self.listed = -1
        self.lock_fd = _asking_lock(folder)

    def get(self, cache_key: str) -> Completion | None:
        if cache_key not in self.answers:
            self.refresh()
        return self.answers.get(cache_key)

    async def ask(self, cache_key: str) -> Completion | None:
        """Take this question's lock, waiting while another process asks it; then the answer
        another process has journaled for it, if any (the caller holds the lock and must `done`
        it)."""
        offset = int(cache_key[:15], 16)
        while True:
            try:
                fcntl.lockf(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
                break
            except OSError:
                await asyncio.sleep(self.POLL_S)
        try:
            return self.get(cache_key)
        except BaseException:
            self.done(cache_key)
            raise

    def done(self, cache_key: str) -> None:
        fcntl.lockf(self.lock_fd, fcntl.LOCK_UN, 1, int(cache_key[:15], 16))

    def _same_candidate(self, name: str) -> bool:
        """`<run_id>--<stem>[--<chunk>].jsonl` names this candidate."""
        rest = name.removesuffix(".jsonl").partition("--")[2]
        head, _, chunk = rest.rpartition("--")
        return rest == self.stem or (head == self.stem and chunk.isdigit())

    def refresh(self) -> None:
        """Read the lines added to the candidate's other journals since the last look."""
        listed = os.stat(self.folder).st_mtime_ns
        # a journal came or went; or it may have, unseen: file times are taken from a coarse
        # clock, so a journal made within the same tick as the last listing leaves the time as it was
        if listed != self.listed or time.time_ns() - listed < self.RACY_NS:
            self.listed = listed
            self.files = [self.folder / n for n in os.listdir(self.folder)
                          if n.endswith(".jsonl") and n != self.own.name
                          and self._same_candidate(n)]
        for path in self.files:
            start = self.offsets.get(path, 0)
            try:
                if os.stat(path).st_size <= start:
                    continue
                with path.open("rb") as fh:
                    fh.seek(start)
                    data = fh.read()
            except FileNotFoundError:  # loaded and removed meanwhile: in the cache now
                continue
            whole = data.rfind(b"\n") + 1  # a line being written is read next time
            self.offsets[path] = start + whole
            for row in journal_rows(data[:whole]):
                if row.get("status") == "ok" and row.get("cache_key"):
                    self.answers[row["cache_key"]] = Completion.from_row(row)


_asking_locks: dict[Path, int] = {}
_asking_guard = threading.Lock()


def _asking_lock(folder: Path) -> int:
    """This process's descriptor of the folder's `asking.lock`. It stays open for the life of the
    process: closing any descriptor of the file would drop all of the process's record locks."""
    with _asking_guard:
        if folder not in _asking_locks:
            folder.mkdir(parents=True, exist_ok=True)
            _asking_locks[folder] = os.open(folder / "asking.lock", os.O_RDWR | os.O_CREAT, 0o600)
        return _asking_locks[folder]
