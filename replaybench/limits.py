"""Per-candidate limits held across every task and process on this machine.

- Concurrency: `max_concurrency` slot files per endpoint; a request holds one with `flock` while it
  is in flight. The kernel releases a dead process's locks, so a killed run never leaks a slot, and
  two runs at once share the endpoint's slots instead of doubling them.
- Rate: `requests_per_minute` / `tokens_per_minute` as token buckets in one small state file per
  endpoint, updated under `flock`; a token estimate is taken before a request and settled with
  the real usage after it.
- Back-off: a 429's Retry-After pauses every request to that endpoint in this process, not only
  the one that was told.

The state lives under `<REPLAYBENCH_HOME>/limits/`, keyed by base URL and model (the provider's
own limits are per endpoint and model, whatever a config calls the candidate).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import random
import re
import time
from pathlib import Path

from replaybench.config import Candidate, state_home

_POLL_S = 0.005      # first wait when every slot is taken; doubles up to _POLL_MAX_S
_POLL_MAX_S = 0.1


class Limiter:
    """The limits of one endpoint (base URL + model) for this process."""

    def __init__(self, candidate: Candidate, folder: Path | None = None):
        key = hashlib.sha256(f"{candidate.base_url}|{candidate.model}".encode()).hexdigest()[:12]
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", candidate.model)[:40]
        self.folder = (folder or state_home() / "limits") / f"{safe}-{key}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.slots = candidate.max_concurrency
        self.rpm = candidate.requests_per_minute
        self.tpm = candidate.tokens_per_minute
        self._fds: dict[int, int] = {}     # slot index -> open descriptor of its lock file
        self._idle = list(range(self.slots))  # slots no request of this process holds
        random.shuffle(self._idle)            # processes start on different slots
        self._resume_at = 0.0                 # monotonic time before which no request starts
        self._local = asyncio.Semaphore(self.slots)

    # --- concurrency --------------------------------------------------------------------

    def _fd(self, index: int) -> int:
        if index not in self._fds:
            path = self.folder / f"slot-{index:04d}.lock"
            self._fds[index] = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fds[index]

    def _try_slot(self) -> int | None:
        """Lock a slot no other process holds, without waiting; None if there is none."""
        for position, index in enumerate(self._idle):
            try:
                fcntl.flock(self._fd(index), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            del self._idle[position]
            return index
        return None

    def _release(self, index: int) -> None:
        fcntl.flock(self._fds[index], fcntl.LOCK_UN)
        self._idle.append(index)

    def slot(self, tokens: int = 0, deadline: float | None = None) -> _Slot:
        """`async with` it: hold one of the endpoint's slots (and rate budget) for the duration
        of a request. Waiting for them past `deadline` (a time.monotonic() time) raises
        TimeoutError."""
        return _Slot(self, tokens, deadline)

    async def _acquire(self, tokens: int, deadline: float | None) -> int:
        """The index of the slot taken: at once when nothing is to be waited for (no timer for
        the deadline then: this is every request's path), else within the deadline."""
        if (not self._local.locked() and not (self.rpm or self.tpm)
                and self._resume_at <= time.monotonic()):
            await self._local.acquire()  # free: returns at once
            if (index := self._try_slot()) is not None:
                return index
            self._local.release()  # other processes hold the other slots: wait below
        if deadline is None:
            return await self._wait_for_slot(tokens)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout_at(loop.time() + deadline - time.monotonic()):
            return await self._wait_for_slot(tokens)

    async def _wait_for_slot(self, tokens: int) -> int:
        """Wait for a slot (in this process first: no file work while queued), then the rate
        budget; the slot's index. Gives the in-process slot back if cancelled while waiting."""
        await self._local.acquire()
        try:
            if self._resume_at > time.monotonic():
                await self._wait_cooldown()
            if self.rpm or self.tpm:
                await self._take_budget(tokens)
            wait = _POLL_S
            while (index := self._try_slot()) is None:  # other processes hold the other slots
                await asyncio.sleep(wait)
                wait = min(wait * 2, _POLL_MAX_S)
        except BaseException:
            self._local.release()
            raise
        return index

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    # --- back-off -----------------------------------------------------------------------

    def cool_down(self, seconds: float) -> None:
        """Start no request to this endpoint for `seconds` (a 429 said so)."""
        self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    async def _wait_cooldown(self) -> None:
        while (delay := self._resume_at - time.monotonic()) > 0:
            await asyncio.sleep(delay)

    # --- rate ---------------------------------------------------------------------------

    def _update_bucket(self, requests: float, tokens: float) -> float:
        """Take (requests, tokens) from the shared buckets; return 0, or seconds to wait first."""
        path = self.folder / "bucket.json"
        with open(path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            raw = fh.read()
            now = time.time()
            state = json.loads(raw) if raw else {}
            req_cap, tok_cap = float(self.rpm or 0), float(self.tpm or 0)
            elapsed = max(0.0, now - state.get("at", now))
            req = min(req_cap, state.get("req", req_cap) + elapsed * req_cap / 60)
            tok = min(tok_cap, state.get("tok", tok_cap) + elapsed * tok_cap / 60)
            wait = 0.0
            if self.rpm and req < requests:
                wait = max(wait, (requests - req) * 60 / req_cap)
            if self.tpm and tok < min(tokens, tok_cap) and tokens > 0:
                wait = max(wait, (min(tokens, tok_cap) - tok) * 60 / tok_cap)
            if wait == 0.0:
                req -= requests
                tok -= tokens
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps({"req": req, "tok": tok, "at": now}))
            return wait

    async def _take_budget(self, tokens: int) -> None:
        while (wait := self._update_bucket(1, tokens if self.tpm else 0)) > 0:
            await asyncio.sleep(wait)

    def settle(self, estimated: int, actual: int | None) -> None:
        """Correct the token bucket once a request's real usage is known."""
        if self.tpm and actual is not None and actual != estimated:
            self._update_bucket(0, actual - estimated)


class _Slot:
    """One request's hold on a slot (a class, not a generator: it is taken for every request)."""

    __slots__ = ("deadline", "index", "limiter", "tokens")

    def __init__(self, limiter: Limiter, tokens: int, deadline: float | None):
        self.limiter, self.tokens, self.deadline, self.index = limiter, tokens, deadline, -1

    async def __aenter__(self) -> None:
        self.index = await self.limiter._acquire(self.tokens, self.deadline)

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            self.limiter._release(self.index)
        finally:
            self.limiter._local.release()


_REGISTRY: dict[tuple[str, str], Limiter] = {}
_REGISTRY_LOOP: list[asyncio.AbstractEventLoop | None] = [None]


def limiter_for(candidate: Candidate) -> Limiter:
    """The limiter shared by every task of this event loop that talks to the candidate's endpoint."""
    loop = asyncio.get_running_loop()
    if _REGISTRY_LOOP[0] is not loop:   # a new event loop (a new run): start afresh
        for limiter in _REGISTRY.values():
            limiter.close()
        _REGISTRY.clear()
        _REGISTRY_LOOP[0] = loop
    key = (candidate.base_url, candidate.model)
    if key not in _REGISTRY:
        _REGISTRY[key] = Limiter(candidate)
    return _REGISTRY[key]
