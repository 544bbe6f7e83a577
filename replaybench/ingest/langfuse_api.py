"""Langfuse's public API as a source: the GENERATIONs of each day of the night's window, read
page by page into `logs` (config: `sources: [{langfuse: {host: …}}]`).

The endpoint is the one Langfuse documents as current, Observations API v2:
`GET /api/public/v2/observations?type=GENERATION&fromStartTime=…&toStartTime=…&limit=…&fields=…`
(basic auth, public key : secret key). It pages by an opaque `meta.cursor`, newest first, until
the answer has none; a page may be short or even empty while a cursor is given. It returns only
the field groups asked for (`fields`), input and output as raw text, and the model as
`providedModelName`. A server without v2 (self-hosted Langfuse before v4 answers 404) is read
through the legacy `GET /api/public/observations` (`page`, `limit`, `meta.totalPages`), which
Langfuse Cloud removed on 2026-11-16. Docs read: langfuse.com/docs/api-and-data-platform/features/
observations-api, langfuse.com/faq/all/api-limits, and Langfuse's API definitions
(fern/apis/server/definition/observations.yml, legacy/observations-v1.yml).

How a night reads it (`sources.fetch`):
- items: one per UTC day of the window, cut to the window: "2026-11-27T00:00:00+00:00/2026-11-28…".
  A day that ended more than FINAL_AFTER before the fetch has the version "final": once read
  completely, the ledger skips it (Langfuse lists an observation minutes after it starts, not
  days). A younger day has no version and is asked again on every fetch, from its cursor.
- cursor: the newest startTime read in that day, never later than SETTLE before the read began
  (what started just before may not be listed yet). The next read asks from there on; what it
  gets again (the observations at the cursor's instant) is counted as already present.
- rows are stored page by page, so memory holds one page; a read that fails halfway keeps what
  it stored, and the ledger keeps the old cursor, so the next fetch asks that day again.
- a bad observation is a `rejects` row: source `langfuse:<host>`, position the n-th bad
  observation of that source (one read again keeps its first row), raw the observation as sent.

Requests are paced at `max_requests_per_s`. A 429 is waited out for its Retry-After (at most
MAX_RETRY_AFTER_S), a 5xx, a timeout or a broken connection is retried RETRIES times with
exponential backoff; 401/403 is an error naming the key variables (never their values). After
an error that would only repeat (refused keys, an unreachable host), the source's other days fail
at once with the same reason, without asking again.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import httpx
import polars as pl

from replaybench import progress
from replaybench.config import LangfuseApi, Source
from replaybench.errors import ConfigError, IngestError, ReplaybenchError
from replaybench.ingest.formats import LOG_SCHEMA, IngestOptions, Reject
from replaybench.ingest.load import RAW_CHARS, REASON_CHARS, IngestResult, parse_record
from replaybench.ingest.sources import Item, LogSource, Read, register_source
from replaybench.providers.base import retry_after
from replaybench.warehouse import Warehouse, memory

log = logging.getLogger(__name__)

V2_PATH = "/api/public/v2/observations"
V1_PATH = "/api/public/observations"  # legacy: self-hosted Langfuse before v4
# every field group the langfuse format reads (core is always sent)
V2_FIELDS = "core,basic,time,io,metadata,model,usage,prompt,metrics"
FINAL = "final"
FINAL_AFTER = timedelta(days=1)  # a day that ended this long ago is complete in Langfuse
SETTLE = timedelta(minutes=30)  # Langfuse lists observations minutes late (its docs say ~15)
RETRIES = 3  # a 5xx, timeout or broken connection: retried this often
RATE_LIMIT_WAITS = 10  # 429s in a row on one request before the read fails
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After is waited this long, then asked again
BACKOFF_S = 0.5  # the first wait after a failure; doubled each time (with jitter)
MAX_BACKOFF_S = 8.0


class _NotFound(Exception):
    """The endpoint is not on this server (HTTP 404)."""


class Unreachable(IngestError):
    """Langfuse did not answer, after the retries: its other days are not asked either."""


class _Pace:
    """At most `per_s` requests a second, retries included."""

    def __init__(self, per_s: float, sleep: Callable[[float], None], clock: Callable[[], float]):
        self.interval = 1.0 / per_s
        self.sleep, self.clock = sleep, clock
        self.next_at = 0.0

    def wait(self) -> None:
        now = self.clock()
        if now < self.next_at:
            self.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + self.interval


class LangfuseClient:
    """Langfuse's public API for one source: paced GETs with retries, and the observation
    listings as pages (v2 by cursor, else the legacy v1 by page number)."""

    def __init__(self, api: LangfuseApi, http: httpx.Client, pace: _Pace,
                 sleep: Callable[[float], None] = time.sleep, legacy: bool = False) -> None:
        self.api, self.http, self.pace, self.sleep = api, http, pace, sleep
        self.legacy = legacy  # True once the server answered 404 to v2

    def get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """One GET, paced; 429 waited out, 5xx and transport failures retried with backoff."""
        failures = waits = 0
        while True:
            self.pace.wait()
            try:
                response = self.http.get(self.api.host + path, params=params)
            except httpx.TransportError as exc:  # timeouts, refused and broken connections
                failures += 1
                problem = f"did not answer ({type(exc).__name__})"
                if failures > RETRIES:
                    raise Unreachable(f"Langfuse at {self.api.host} {problem} {failures} times; is "
                                      "the host right and reachable?") from None
                self.sleep(_backoff(failures))
                continue
            status = response.status_code
            if status == 429:
                waits += 1
                if waits > RATE_LIMIT_WAITS:
                    raise IngestError(f"Langfuse at {self.api.host} still rate-limits (HTTP 429) after "
                                      f"{RATE_LIMIT_WAITS} waits: lower max_requests_per_s")
                asked = retry_after(response.headers)
                wait = _backoff(waits) if asked is None else min(asked, MAX_RETRY_AFTER_S)
                log.info("Langfuse at %s: rate-limited, waiting %.1f s", self.api.host, wait)
                self.sleep(wait)
                continue
            if status >= 500:
                failures += 1
                if failures > RETRIES:
                    raise IngestError(f"Langfuse at {self.api.host} failed {failures} times (HTTP "
                                      f"{status}: {_message(response)})")
                self.sleep(_backoff(failures))
                continue
            if status in (401, 403):
                what = "refused the keys" if status == 401 else "denied the keys access"
                raise ConfigError(f"Langfuse at {self.api.host} {what} (HTTP {status}): set "
                                  f"{self.api.public_key_env} and {self.api.secret_key_env} to the "
                                  "public and secret API key of the project (Settings → API keys)")
            if status == 404:
                raise _NotFound(path)
            if status >= 400:
                raise IngestError(f"Langfuse at {self.api.host} refused the request (HTTP {status}: "
                                  f"{_message(response)})")
            try:
                body = response.json()
            except ValueError:
                body = None
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise IngestError(f"Langfuse at {self.api.host} answered {path} without a data list: "
                                  f"{response.text[:200]!r}")
            return body

    def pages(self, since: datetime, until: datetime, options: IngestOptions) -> Iterator[list[dict]]:
        """The GENERATIONs that started in [since, until), a page at a time, newest first."""
        query = {"type": "GENERATION", "fromStartTime": _iso(since), "toStartTime": _iso(until),
                 "limit": self.api.page_size}
        if not self.legacy:
            try:
                yield from self._v2_pages(query, options)
                return
            except _NotFound:
                log.info("Langfuse at %s has no observations API v2 (HTTP 404): reading the legacy "
                         "v1 listing", self.api.host)
                self.legacy = True
        try:
            yield from self._v1_pages(query)
        except _NotFound:
            raise IngestError(f"no Langfuse public API at {self.api.host} (HTTP 404 on {V2_PATH} and "
                              f"{V1_PATH}): check the host") from None

    def _v2_pages(self, query: dict[str, Any], options: IngestOptions) -> Iterator[list[dict]]:
        # the prompt version's metadata key in full: v2 cuts metadata values at 200 characters
        query = query | {"fields": V2_FIELDS, "expandMetadata": options.prompt_version_key}
        cursor = None
        while True:
            body = self.get(V2_PATH, query | ({"cursor": cursor} if cursor else {}))
            yield body["data"]
            meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
            following = meta.get("cursor")
            if not following:
                return
            if following == cursor:
                raise IngestError(f"Langfuse at {self.api.host} gave the same page cursor twice")
            cursor = following

    def _v1_pages(self, query: dict[str, Any]) -> Iterator[list[dict]]:
        page = 1
        while True:
            body = self.get(V1_PATH, query | {"page": page})
            yield body["data"]
            meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
            pages = meta.get("totalPages")
            if not body["data"] or not isinstance(pages, int) or page >= pages:
                return
            page += 1


def _backoff(attempt: int) -> float:
    return min(BACKOFF_S * 2 ** (attempt - 1), MAX_BACKOFF_S) * random.uniform(0.75, 1.0)


def _message(response: httpx.Response) -> str:
    """The server's own words for a failed request."""
    try:
        body = response.json()
        text = body.get("message") or body.get("error") or response.text
    except (ValueError, AttributeError):
        text = response.text
    return str(text).strip()[:200] or response.reason_phrase


def _iso(when: datetime) -> str:
    """A UTC instant as Langfuse takes it, to the millisecond (cut, never rounded up)."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_v1(record: Any) -> Any:
    """A v2 observation in the names the `langfuse` format reads (those of v1 and the UI
    export); a v1 observation is left as it is."""
    if not isinstance(record, dict) or not ("providedModelName" in record or "totalCost" in record):
        return record
    out = dict(record)
    out.setdefault("model", record.get("providedModelName"))
    if record.get("totalCost") is not None:
        out.setdefault("calculatedTotalCost", record["totalCost"])
    # v2's totalPrice is the matched model's price per unit, not what the call cost
    out.pop("totalPrice", None)
    return out


# --- the source ------------------------------------------------------------------------------------

@register_source("langfuse")
class LangfuseSource(LogSource):
    """The GENERATIONs of Langfuse's public API, one UTC day of the window per item."""

    def __init__(self, config: Source, *, now: Callable[[], datetime] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(config)
        self.api: LangfuseApi = config.langfuse
        self.now = now or (lambda: datetime.now(UTC))
        self.sleep = sleep
        self.pace = _Pace(self.api.max_requests_per_s, sleep, clock)
        self.legacy = False
        self.broken: ReplaybenchError | None = None  # an error every further request would repeat

    def items(self, start: datetime, end: datetime, tz: tzinfo) -> list[Item]:
        self.api.keys()  # missing keys: the whole source fails once, not each day
        final_before = self.now() - FINAL_AFTER
        found = []
        day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        while day < end:
            lo, hi = max(day, start), min(day + timedelta(days=1), end)
            if lo < hi:
                found.append(Item(f"{lo.astimezone(UTC).isoformat()}/{hi.astimezone(UTC).isoformat()}",
                                  FINAL if hi <= final_before else None))
            day += timedelta(days=1)
        return found

    def read(self, wh: Warehouse, item: Item, cursor: str | None, options: IngestOptions) -> Read:
        if self.broken is not None:
            raise self.broken
        lo, hi = (datetime.fromisoformat(bound) for bound in item.key.split("/"))
        since = max(lo, datetime.fromisoformat(cursor)) if cursor else lo
        began = self.now()
        store = _Store(wh, self.name, options)
        try:
            with httpx.Client(auth=self.api.keys(), timeout=self.api.timeout_s) as http, \
                    progress.phase(f"langfuse {lo:%Y-%m-%d}", key=f"langfuse-{lo:%Y-%m-%d}",
                                   unit="records") as phase:
                client = LangfuseClient(self.api, http, self.pace, self.sleep, self.legacy)
                try:
                    for page in client.pages(since, hi, options):
                        store.page(page)
                        phase.advance(len(page))
                finally:
                    self.legacy = client.legacy
        except (ConfigError, Unreachable) as exc:  # refused keys, a host that is not there
            self.broken = exc
            raise
        newest = store.newest
        if newest is None:
            return Read(store.result, cursor)
        # what started in the last SETTLE before the read may not be listed yet: ask again
        upto = max(since, min(newest, hi, began - SETTLE))
        return Read(store.result, upto.isoformat())


class _Store:
    """A read's observations into `logs` and `rejects`, a page at a time."""

    def __init__(self, wh: Warehouse, source: str, options: IngestOptions) -> None:
        self.wh, self.source, self.options = wh, source, options
        self.result = IngestResult()
        self.newest: datetime | None = None

    def page(self, records: list[Any]) -> None:
        rows: list[dict] = []
        rejects: list[dict] = []
        for record in records:
            self.result.read += 1
            self._note_start(record)
            parsed = parse_record(as_v1(record), "langfuse", self.options)
            for index, got in enumerate(parsed, 1):
                if isinstance(got, Reject):
                    reason = _clean(str(got), REASON_CHARS) or "rejected"
                    self.result.rejected += 1
                    self.result.reasons[reason.split(":")[0]] += 1
                    rejects.append({"source": self.source, "item": index if len(parsed) > 1 else 0,
                                    "reason": reason, "raw": _raw(record)})
                else:
                    rows.append(got)
        with memory.writing(self.wh.con, self.wh.path, memory.WRITTEN_BY_INGEST), \
                self.wh.transaction():
            if rows:
                frame = pl.DataFrame(rows, schema=LOG_SCHEMA, orient="row").with_columns(
                    pl.lit(self.source).alias("source"))
                added = self.wh.insert("logs", frame.unique(subset="request_id", keep="first",
                                                            maintain_order=True), "ON CONFLICT DO NOTHING")
                self.result.ingested += added
                self.result.duplicates += len(frame) - added
            if rejects:
                self._reject(rejects)

    def _reject(self, rejects: list[dict]) -> None:
        """Store the rejects not stored before (an observation read again keeps its first row),
        numbered on from the source's last."""
        known = {raw for (raw,) in self.wh.execute(
            "SELECT raw FROM rejects WHERE source = $s AND list_contains($raws, raw)",
            {"s": self.source, "raws": [r["raw"] for r in rejects]}).fetchall()}
        fresh = list({(r["raw"], r["item"]): r for r in rejects if r["raw"] not in known}.values())
        if not fresh:
            return
        last = self.wh.execute("SELECT coalesce(max(position), 0) FROM rejects WHERE source = $s",
                               {"s": self.source}).fetchone()[0]
        for position, r in enumerate(fresh, last + 1):
            r["position"] = position
        self.wh.insert("rejects", pl.DataFrame(fresh), "ON CONFLICT DO NOTHING")

    def _note_start(self, record: Any) -> None:
        """Keep the newest startTime read (of a bad observation too: it was read)."""
        value = record.get("startTime") if isinstance(record, dict) else None
        try:
            started = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except (AttributeError, ValueError):  # none, or not a timestamp: its reject says so
            return
        started = started.replace(tzinfo=UTC) if started.tzinfo is None else started.astimezone(UTC)
        if self.newest is None or started > self.newest:
            self.newest = started


def _clean(text: str, limit: int) -> str:
    """Text cut to `limit` characters, any half surrogate pair escaped, so that it can be stored."""
    return text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


def _raw(record: Any) -> str:
    """An observation as JSON text, as the API sent it, for its reject row."""
    try:
        return _clean(json.dumps(record, default=str, ensure_ascii=False), RAW_CHARS)
    except (RecursionError, ValueError):
        return ""


__all__ = ["FINAL", "FINAL_AFTER", "LangfuseClient", "LangfuseSource", "MAX_RETRY_AFTER_S", "SETTLE",
           "Unreachable", "as_v1"]
