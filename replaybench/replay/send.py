"""Send: ask every pending request of a plan, with no warehouse — only the journal and the
shards (`replaybench.replay.journal`). One `aiohttp.ClientSession` per candidate (the providers
speak aiohttp directly: its pool holds up at high concurrency where httpcore's does not, and no
layer above it costs CPU on every request and streamed token) with at most `max_concurrency`
requests in flight. Runs in this process or on a Dask worker.

- a failure in one request (or one candidate) cancels the others, and they end before their
  client and journal are closed;
- a request whose answer another run has paid for but not stored, or is asking right now, takes
  that answer (`replaybench.replay.shared`);
- a candidate that fails `retry.breaker` requests in a row is taken as down: the rest of its
  requests are recorded as failed without being sent, and the night goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
from collections.abc import Awaitable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from replaybench import progress
from replaybench.config import Candidate
from replaybench.limits import limiter_for
from replaybench.pricing import price_table
from replaybench.providers import Completion, provider_class
from replaybench.replay.files import file_stem, journal_path, shard_folder
from replaybench.replay.journal import ReplayWriter, RowMaker
from replaybench.replay.plan import ReplayPlan, messages_of
from replaybench.replay.shared import KnownAnswers

T = TypeVar("T")


@dataclass
class Sent:
    """What sending one plan did; its answers are in `shards` and the journal."""

    ok: int
    failed: int
    reused: int
    shards: list[str]
    pid: int = 0  # the process that sent them (a Dask worker's, or this one's)


async def send_plan(plan: ReplayPlan) -> Sent:
    """Ask every pending request of a plan; no warehouse here, only the journal and shards. Runs
    in this process or on a Dask worker."""
    settings, run, candidate = plan.settings, plan.run, plan.candidate
    rows = RowMaker(run, candidate, price_table(settings), settings.tz)
    # the same key every night (no run id), so the Prefect UI keeps each candidate's history
    key = f"replay-{file_stem(candidate.name)}" + (f"-{plan.chunk}" if plan.chunk else "")
    with progress.phase(f"replay {candidate.name}", plan.size, key=progress.slug(key)) as phase:
        writer = ReplayWriter(rows, journal_path(settings, run, candidate, plan.chunk),
                              shard_folder(settings), phase)
        try:
            known = (KnownAnswers(writer.journal.parent, writer.journal, file_stem(candidate.name))
                     if plan.use_cache else None)
            if plan.size:
                await send_all(candidate, settings.api_key(candidate), plan.groups(), writer,
                               known)
        finally:
            await writer.close()
    return Sent(writer.ok, writer.failed, writer.reused, writer.shards, os.getpid())


def http_client(candidate: Candidate) -> aiohttp.ClientSession:
    """An aiohttp session whose pool is sized to the candidate's concurrency.

    No timeout of aiohttp's own but for connecting: each attempt runs under its own (see
    `HTTPProvider`), and a timer per read would cost CPU on every streamed token. No cookies, no
    redirects. A proxy from the environment (HTTPS_PROXY, NO_PROXY, ...) is looked up once here,
    not on every request as aiohttp's `trust_env` would (with a .netrc lookup in a thread each)."""
    connector = aiohttp.TCPConnector(limit=candidate.max_concurrency)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(10.0, candidate.timeout_s))
    try:
        proxy, proxy_auth = get_env_proxy_for_url(URL(candidate.base_url))
    except LookupError:
        proxy, proxy_auth = None, None
    return aiohttp.ClientSession(connector=connector, timeout=timeout, proxy=proxy,
                                 proxy_auth=proxy_auth, cookie_jar=aiohttp.DummyCookieJar())


# the questions being asked right now in this process, by cache key: a second run asking the same
# one (a backfill's days side by side) waits for the answer instead of paying for it again
_in_flight: dict[str, asyncio.Future] = {}

_frozen = [0]  # sends under way in this process that hold the collector's heap frozen
_frozen_guard = threading.Lock()


@contextlib.contextmanager
def heap_frozen() -> Iterator[None]:
    """While sending, the objects already alive (Prefect, pydantic, DuckDB, polars: some 200,000)
    are left out of the cyclic garbage collector's passes: each full pass over them costs
    ~0.1-0.3 s of CPU and a send makes several, whatever its size. Garbage among them waits for
    the first pass after the last send of the process ends; nothing else changes."""
    with _frozen_guard:
        _frozen[0] += 1
        gc.freeze()  # also a later send's: what an earlier one allocated is alive for its time
    try:
        yield
    finally:
        with _frozen_guard:
            _frozen[0] -= 1
            if not _frozen[0]:
                gc.unfreeze()


async def send_all(candidate: Candidate, api_key: str | None,
                   requests: Iterable[list[dict[str, Any]]], writer: ReplayWriter,
                   known: KnownAnswers | None = None) -> None:
    """Ask every group of identical requests once, concurrently, within the candidate's limits;
    stop sending once the endpoint has failed `retry.breaker` requests in a row. An answer another
    run has already paid for but not yet stored (`known`), or is asking for right now in this
    process, is taken instead of being paid for twice."""
    with heap_frozen():
        await _send_all(candidate, api_key, requests, writer, known)


async def _send_all(candidate: Candidate, api_key: str | None,
                    requests: Iterable[list[dict[str, Any]]], writer: ReplayWriter,
                    known: KnownAnswers | None) -> None:
    async with http_client(candidate) as client:
        provider = provider_class(candidate.provider)(candidate, api_key, client,
                                                      limiter_for(candidate))
        gate = asyncio.Semaphore(candidate.max_concurrency)
        streak: list[Completion] = []  # consecutive failures, newest last

        async def ask(same: list[dict[str, Any]]) -> None:
            request = same[0]
            key = request["cache_key"]
            other = _in_flight.get(key)
            if other is not None and other.get_loop() is asyncio.get_running_loop():
                # another run in this process (a backfill's other day) is asking the same
                # question right now: wait for its answer rather than pay for it again
                await asyncio.wait([other])
                if not other.cancelled() and other.result().status == "ok":
                    for twin in same:
                        writer.add(twin, other.result().reused(), from_cache=True)
                    return
            mine = asyncio.get_running_loop().create_future()
            _in_flight.setdefault(key, mine)
            try:
                # at most max_concurrency questions asked, and locked, at once: the kernel walks
                # a file's record locks on every lock and unlock, so none is held while queued
                async with gate:
                    # waits while another process asks the same question; then finds any answer
                    # another run has paid for and not stored yet
                    found = await known.ask(key) if known is not None else None
                    try:
                        answer = found or await ask_once(request)
                        # journaled before the lock is given back: whoever waits finds it there
                        if found is None:
                            writer.add(request, answer)
                            for twin in same[1:]:  # the same question again: paid once
                                writer.add(twin, answer.reused(),
                                           from_cache=answer.status == "ok")
                        else:  # another process paid for it: every copy here is a reuse
                            for twin in same:
                                writer.add(twin, found.reused(), from_cache=True)
                    finally:
                        if known is not None:
                            known.done(key)
            except BaseException:
                mine.cancel()
                raise
            else:
                mine.set_result(answer)
            finally:
                if _in_flight.get(key) is mine:
                    del _in_flight[key]

        async def ask_once(request: dict[str, Any]) -> Completion:
            if len(streak) >= candidate.retry.breaker:
                last = streak[-1]
                return Completion(
                    status="error", error_kind=last.error_kind, attempts=0,
                    error=f"not sent: {candidate.name} failed {len(streak)} requests in a "
                          f"row (last: {last.error})"[:500])
            answer = await provider.complete(messages_of(request), request["send_params"])
            if answer.status == "ok":
                streak.clear()
            else:
                streak.append(answer)
            return answer

        # a few workers take the groups in turn, rather than a task per group at once (a night's
        # worth of waiting tasks held memory); twice the gate, so that those waiting for another
        # run's answer leave it busy
        waiting = iter(requests)

        async def worker() -> None:
            for same in waiting:
                await ask(same)

        # none still running when the client closes
        await together(worker() for _ in range(2 * candidate.max_concurrency))


async def together(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Await all at once. On the first failure (or a cancellation) cancel the others and wait
    for them to end before raising it, so that nothing still runs against a client or a journal
    the caller is about to close. (A TaskGroup would do the same but raise an ExceptionGroup,
    hiding the message the run records.)"""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
