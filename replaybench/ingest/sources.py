"""Sources: where a night finds its own logs, and the `sources` ledger of what was already read.

A source (config `sources:`) is a file pattern, local or in object storage, with an optional
`{date:...}` template, or an API (Langfuse). For a run's window, `fetch(wh, settings, start, end)`
lists what each source holds for the days of the window, reads what the ledger has not seen in
this version, and records each read:

- a file is known by its URL and its version (size + modification time, or ETag): an unchanged
  file is not read again, a file that grew or changed is read again whole (ingest is idempotent on
  request_id, so the rows already stored are counted as present, not added twice);
- an API window is known by its bounds and the source's cursor: a read starts where the last one
  stopped.

A source that cannot be reached, or a file that cannot be read, is a recorded failure (`status =
'failed'` with the reason) and the other sources are read on: the freshness check then says what
is missing. `check_freshness` is the night's test that the window is complete.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from replaybench import runs
from replaybench.config import Settings, Source, aws_region
from replaybench.errors import IngestError, register_secret, scrub
from replaybench.ingest.formats import IngestOptions
from replaybench.ingest.load import IngestResult, ingest_file
from replaybench.runs import Run
from replaybench.warehouse import Warehouse, open_warehouse

log = logging.getLogger(__name__)

READ, FAILED, UNCHANGED = "read", "failed", "unchanged"
GLOB_CHARS = "*?["
COPY_CHUNK = 8 * 2**20
MAX_DAYS = 366  # a {date} template is filled in for at most this many days


@dataclass(frozen=True)
class Item:
    """One thing a source can read: a file, or an API's time window."""

    key: str  # a file's URL or path; an API window "start/end"
    version: str | None = None  # changes when there is more to read; None: always read (APIs)


@dataclass
class Read:
    """What one read of one item gave."""

    result: IngestResult = field(default_factory=IngestResult)
    cursor: str | None = None  # where the next read starts (APIs)


@dataclass
class Outcome:
    """One item of one source on one fetch: read, unchanged (skipped), or failed."""

    source: str
    item: str
    status: str
    result: IngestResult = field(default_factory=IngestResult)
    error: str | None = None


@dataclass
class Fetched:
    """Everything one fetch did, source by source."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def total(self) -> IngestResult:
        total = IngestResult()
        for o in self.outcomes:
            total.add(o.result)
        return total

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == FAILED]

    def summary(self) -> str:
        read = sum(o.status == READ for o in self.outcomes)
        unchanged = sum(o.status == UNCHANGED for o in self.outcomes)
        parts = [f"{read} read", f"{unchanged} unchanged"]
        if self.failures:
            parts.append(f"{len(self.failures)} failed")
        return f"{', '.join(parts)}; {self.total.summary()}"


class LogSource(ABC):
    """A source as the night reads it. `items` lists what the window holds; `read` loads one."""

    def __init__(self, config: Source) -> None:
        self.config = config
        self.name = config.name

    @abstractmethod
    def items(self, start: datetime, end: datetime, tz: tzinfo) -> Iterable[Item]:
        """What this source holds for the window [start, end) (UTC); `tz` is the configured
        timezone (a day of the window is a day there)."""

    @abstractmethod
    def read(self, wh: Warehouse, item: Item, cursor: str | None, options: IngestOptions) -> Read:
        """Load one item into `logs` (rejects into `rejects`), from `cursor` on when it has one."""


# --- files, local or in object storage --------------------------------------------------------

S3_PROTOCOLS = ("s3", "s3a")


class FileSource(LogSource):
    """A file, a glob or a folder pattern, local or a URL fsspec can list and read (s3://…).

    Object storage (AWS S3 or any S3-compatible store: MinIO, Ceph, R2…) is reached as the AWS CLI
    reaches it: endpoint, region and credentials come from the environment (AWS_ENDPOINT_URL or
    AWS_ENDPOINT_URL_S3, AWS_REGION or AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, or AWS_PROFILE), never from replaybench.yaml. An object's version is its
    ETag, and a read is pinned to the ETag listed: an object replaced in between fails the read
    (the next fetch reads the new one) rather than recording one version for another's rows."""

    def __init__(self, config: Source) -> None:
        super().__init__(config)
        self.template = config.path or ""
        self.remote = "://" in self.template and not self.template.startswith("file://")
        self.root = self.template.split("{", 1)[0] or "/"
        self._fs = None

    def _filesystem(self):
        """The filesystem the template lives on, opened once per source and fetch."""
        if self._fs is None:
            self._fs = _open_filesystem(self.root, self.name, self.remote)
        return self._fs

    def patterns(self, start: datetime, end: datetime, tz: tzinfo) -> list[str]:
        """The template filled in for each day of the window (one pattern when it has no {date})."""
        if "{" not in self.template:
            return [self.template]
        days = window_days(tz, start, end)
        try:
            found = [self.template.format(date=day) for day in days]
        except (KeyError, IndexError, ValueError) as exc:
            raise IngestError(f"source {self.name}: the path template is not valid ({exc}); "
                              "write {date:%Y-%m-%d} or another strftime pattern") from None
        return list(dict.fromkeys(found))

    def items(self, start: datetime, end: datetime, tz: tzinfo) -> list[Item]:
        patterns = self.patterns(start, end, tz)
        fs = None
        try:
            fs = self._filesystem()
            found = _list(fs, patterns)
            if not found and self.remote:
                _check_bucket(fs, self.root)  # a missing bucket lists as empty: say so
        except IngestError:
            raise
        except Exception as exc:
            if not self.remote:
                raise
            raise IngestError(_store_failure(exc, fs, self.root)) from None
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        return [Item(key=self._url(name, protocol), version=_version(info))
                for name, info in sorted(found.items())]

    def _url(self, name: str, protocol: str) -> str:
        return f"{protocol}://{name}" if self.remote and "://" not in name else name

    def read(self, wh: Warehouse, item: Item, cursor: str | None, options: IngestOptions) -> Read:
        if not self.remote:
            return Read(ingest_file(wh, Path(item.key), self.config.format, options))
        # a remote file is copied beside the warehouse, streamed, then read like a local one: the
        # readers (and DuckDB's fast path) see a file, and memory stays flat whatever its size
        fs = self._filesystem()
        name = Path(item.key.split("://", 1)[-1]).name
        with tempfile.TemporaryDirectory(prefix="replaybench-fetch-", dir=wh.path.parent) as tmp:
            local = Path(tmp) / name
            with fs.open(item.key, "rb") as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst, COPY_CHUNK)
            return Read(ingest_file(wh, local, self.config.format, options, source=item.key))


def _open_filesystem(root: str, name: str, remote: bool):
    """The fsspec filesystem of a source's root. A remote one is a fresh instance: fsspec's
    cached one would answer from the listings an earlier fetch saw."""
    import fsspec

    protocol = fsspec.core.split_protocol(root)[0]
    options: dict[str, Any] = {"skip_instance_cache": True} if remote else {}
    if protocol in S3_PROTOCOLS:
        options.update(_s3_options())
    try:
        fs, _ = fsspec.core.url_to_fs(root, **options)
    except ImportError as exc:
        hint = "s3:// needs s3fs: pip install 'replaybench[s3]'" if protocol in S3_PROTOCOLS else exc
        raise IngestError(f"source {name}: {hint}") from None
    except ValueError as exc:  # an unknown protocol
        raise IngestError(f"source {name}: {exc}") from None
    if protocol in S3_PROTOCOLS:
        _register_credentials(fs)
    return fs


def _s3_options() -> dict[str, Any]:
    """What s3fs must be told. botocore reads the rest itself (AWS_ENDPOINT_URL and
    AWS_ENDPOINT_URL_S3, the keys, AWS_PROFILE, AWS_DEFAULT_REGION, AWS_MAX_ATTEMPTS), but not
    AWS_REGION, which the AWS CLI v2 and the other SDKs honour ahead of AWS_DEFAULT_REGION."""
    region = aws_region()
    return {"client_kwargs": {"region_name": region}} if region else {}


def _register_credentials(fs) -> None:
    """Hand the secret key (and session token) s3fs signs with to `scrub`, however botocore found
    them (the environment, AWS_PROFILE, a role), so that no message or stored error carries them."""
    from fsspec.asyn import sync

    fs.connect()
    credentials = sync(fs.loop, fs.session.get_credentials)
    if credentials is not None:
        frozen = sync(fs.loop, credentials.get_frozen_credentials)
        register_secret(frozen.secret_key)
        register_secret(frozen.token)


def _list(fs, patterns: list[str]) -> dict[str, dict]:
    """Every file the patterns match, by name, with what the store says about it."""
    found: dict[str, dict] = {}
    for pattern in patterns:
        if any(c in pattern for c in GLOB_CHARS):
            for name, info in fs.glob(pattern, detail=True).items():
                if info.get("type") != "directory":
                    found[name] = info
        elif fs.isdir(pattern):
            for info in fs.find(pattern, detail=True).values():
                found[info["name"]] = info
        elif fs.exists(pattern):
            found[pattern] = fs.info(pattern)
    return found


def _bucket(root: str) -> str:
    import fsspec

    bucket = fsspec.core.split_protocol(root)[1].split("/", 1)[0]
    return "" if any(c in bucket for c in GLOB_CHARS) else bucket


def _endpoint(fs) -> str:
    """Where an object store lives, as the client resolved it (for messages)."""
    client = getattr(fs, "_s3", None)  # s3fs's client, once connected
    url = getattr(getattr(client, "meta", None), "endpoint_url", None)
    return f" at {url}" if url else ""


def _check_bucket(fs, root: str) -> None:
    """An empty listing is "nothing for those days" only if the bucket exists: S3 lists a missing
    bucket as empty."""
    bucket = _bucket(root)
    if not bucket:
        return
    try:
        fs.info(bucket)
    except FileNotFoundError:
        raise IngestError(f"bucket {bucket!r} does not exist{_endpoint(fs)} (check the source's "
                          "path, and AWS_ENDPOINT_URL for an S3-compatible store)") from None
    except PermissionError:
        pass  # the listing itself was allowed: a key limited to a prefix may not look at the bucket


def _store_failure(exc: Exception, fs, root: str) -> str:
    """Why an object store could not be listed, on one line, with the likely fix."""
    kinds = {cls.__name__ for cls in type(exc).__mro__}
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    s3 = root.split("://", 1)[0] in S3_PROTOCOLS
    if kinds & {"PermissionError", "NoCredentialsError", "PartialCredentialsError",
                "ProfileNotFound"}:
        hint = " (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)" if s3 else ""
        where = f"bucket {_bucket(root)!r}" if _bucket(root) else root
        return f"no access to {where}{_endpoint(fs)}: {text.rstrip('.')}{hint}"
    if kinds & {"ConnectionError", "TimeoutError", "ConnectTimeoutError", "ReadTimeoutError"}:
        hint = " (check AWS_ENDPOINT_URL)" if s3 else ""
        return f"the object store is not reachable: {text.rstrip('.')}{hint}"
    return f"{type(exc).__name__}: {text}"


def _version(info: dict[str, Any]) -> str:
    """A file's version as the ledger compares it: its size and ETag, or its modification time."""
    size = info.get("size")
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return f"size={size} etag={str(etag).strip(chr(34))}"
    mtime = info.get("mtime") or info.get("LastModified") or info.get("last_modified")
    if isinstance(mtime, datetime):
        mtime = mtime.timestamp()
    return f"size={size} mtime={mtime}"


# --- the registry of source kinds --------------------------------------------------------------

SOURCE_KINDS: dict[str, Callable[[Source], LogSource]] = {"path": FileSource}


def register_source(kind: str) -> Callable:
    """Register a source kind by its config key (`langfuse`): one module per kind."""
    def wrap(cls: Callable[[Source], LogSource]) -> Callable[[Source], LogSource]:
        SOURCE_KINDS[kind] = cls
        return cls
    return wrap


def open_source(config: Source) -> LogSource:
    """The reader of one configured source."""
    if config.langfuse is not None:
        from replaybench.ingest import langfuse_api  # noqa: F401  (registers the kind)

        return SOURCE_KINDS["langfuse"](config)
    return SOURCE_KINDS["path"](config)


# --- the ledger and the fetch ------------------------------------------------------------------

def window_days(local: tzinfo, start: datetime, end: datetime) -> list[date]:
    """The calendar days a window touches, in the configured timezone and in UTC: logs are
    partitioned by either, so both are listed (a partition read twice adds nothing twice)."""
    if end - start > timedelta(days=MAX_DAYS):
        raise IngestError(f"a window of {(end - start).days:,} days is too long to list day by day "
                          f"(at most {MAX_DAYS})")
    last = end - timedelta(microseconds=1)
    days: set[date] = set()
    for tz in (local, UTC):
        day, stop = start.astimezone(tz).date(), last.astimezone(tz).date()
        while day <= stop:
            days.add(day)
            day += timedelta(days=1)
    return sorted(days)


def _ledger(wh: Warehouse, source: str, item: str) -> tuple[str | None, str | None, str | None]:
    row = wh.execute("SELECT version, cursor, status FROM sources WHERE source = $s AND item = $i",
                     {"s": source, "i": item}).fetchone()
    return row if row else (None, None, None)


def _record(wh: Warehouse, outcome: Outcome, item: Item, cursor: str | None) -> None:
    r = outcome.result
    wh.execute(
        """INSERT OR REPLACE INTO sources (source, item, version, cursor, status, error, read_at,
                                           rows_read, ingested, duplicates, rejected)
           VALUES ($source, $item, $version, $cursor, $status, $error, $now, $read, $ingested,
                   $duplicates, $rejected)""",
        {"source": outcome.source, "item": outcome.item,
         "version": item.version if outcome.status == READ else None, "cursor": cursor,
         "status": outcome.status, "error": outcome.error, "now": datetime.now(UTC),
         "read": r.read, "ingested": r.ingested, "duplicates": r.duplicates, "rejected": r.rejected})


def ledger(wh: Warehouse) -> list[dict[str, Any]]:
    """The ledger's rows, the newest read first."""
    return wh.frame("SELECT * FROM sources ORDER BY read_at DESC, source, item").to_dicts()


def fetch(wh: Warehouse, settings: Settings, start: datetime, end: datetime) -> Fetched:
    """Read into `logs` what every configured source holds for [start, end) and the ledger has not
    seen; record each read. A failing source or item is recorded and the rest are read on."""
    options = IngestOptions.from_settings(settings.ingest)
    fetched = Fetched()
    for config in settings.sources:
        try:
            source = open_source(config)
            items = list(source.items(start, end, settings.tz))
        except Exception as exc:  # an unreachable store or API: recorded, the night goes on
            reason = _reason(exc)
            log.warning("source %s: cannot list its logs: %s", config.name, reason)
            fetched.outcomes.append(Outcome(config.name, "*", FAILED, error=reason))
            _record(wh, fetched.outcomes[-1], Item("*"), None)
            continue
        if not items:
            log.info("source %s: nothing for %s to %s", config.name, start, end)
        else:
            _record_listing_ok(wh, config.name)
        for item in items:
            fetched.outcomes.append(_fetch_item(wh, source, item, options))
    return fetched


def _record_listing_ok(wh: Warehouse, source: str) -> None:
    """A source listed again after it failed: its failure is history."""
    wh.execute("DELETE FROM sources WHERE source = $s AND item = '*'", {"s": source})


def _fetch_item(wh: Warehouse, source: LogSource, item: Item, options: IngestOptions) -> Outcome:
    version, cursor, status = _ledger(wh, source.name, item.key)
    if item.version is not None and status == READ and version == item.version:
        return Outcome(source.name, item.key, UNCHANGED)
    try:
        read = source.read(wh, item, cursor, options)
    except Exception as exc:  # one unreadable file or page: recorded, the next item is read
        outcome = Outcome(source.name, item.key, FAILED, error=_reason(exc))
        log.warning("source %s: %s not read: %s", source.name, item.key, outcome.error)
        _record(wh, outcome, item, cursor)
        return outcome
    outcome = Outcome(source.name, item.key, READ, read.result)
    _record(wh, outcome, item, read.cursor)
    return outcome


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return scrub(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:500]


# --- freshness ---------------------------------------------------------------------------------

@dataclass
class Freshness:
    """Whether a window's logs are complete: the newest log in it, and what is missing."""

    newest: datetime | None
    end: datetime
    max_lag: timedelta
    failures: list[Outcome] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.failures and self.newest is not None and self.end - self.newest <= self.max_lag

    def reason(self) -> str | None:
        """Why the window counts as incomplete, in a sentence; None when it is complete."""
        if self.complete:
            return None
        parts = []
        if self.newest is None:
            parts.append("no logs at all in the window")
        elif self.end - self.newest > self.max_lag:
            parts.append(f"the newest log is {_hours(self.end - self.newest)} before the window's end "
                         f"({self.newest:%Y-%m-%d %H:%M} UTC; freshness allows {_hours(self.max_lag)})")
        for f in self.failures[:3]:
            parts.append(f"{f.source}: {f.item if f.item != '*' else 'not reachable'}: {f.error}")
        if len(self.failures) > 3:
            parts.append(f"and {len(self.failures) - 3} more sources or files not read")
        return "logs incomplete: " + "; ".join(parts)


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def freshness(wh: Warehouse, settings: Settings, start: datetime, end: datetime,
              fetched: Fetched | None = None) -> Freshness:
    """The newest log in [start, end) against the window's end, and the sources that failed."""
    newest = wh.execute("SELECT max(ts) FROM logs WHERE ts >= $start AND ts < $end",
                        {"start": start, "end": end}).fetchone()[0]
    if newest is not None and newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    return Freshness(newest, end, settings.freshness.max_lag, fetched.failures if fetched else [])


def fetch_until_fresh(wh: Warehouse, settings: Settings, start: datetime, end: datetime,
                      sleep: Callable[[float], None] = time.sleep,
                      clock: Callable[[], float] = time.monotonic) -> tuple[Fetched, Freshness]:
    """Fetch the window from every source; while it is not complete, wait `freshness.poll` and
    fetch again, for at most `freshness.wait`. Returns every fetch's outcomes and the last check."""
    deadline = clock() + settings.freshness.wait.total_seconds()
    everything = Fetched()
    while True:
        fetched = fetch(wh, settings, start, end)
        everything.outcomes.extend(fetched.outcomes)
        check = freshness(wh, settings, start, end, fetched)
        left = deadline - clock()
        if check.complete or left <= 0:
            return everything, check
        pause = min(settings.freshness.poll.total_seconds(), left)
        log.info("%s; reading the sources again in %.0f s (waiting %.0f s more at most)",
                 check.reason(), pause, left)
        sleep(pause)


__all__ = ["FAILED", "READ", "UNCHANGED", "Fetched", "FileSource", "Freshness", "Item", "LogSource",
           "Outcome", "Read", "SOURCE_KINDS", "fetch", "ledger", "fetch_until_fresh", "freshness",
           "open_source", "register_source", "window_days"]


@dataclass
class SourcesRead:
    """What a run's fetch did (a one-line summary) and why its logs are incomplete (None:
    complete)."""

    summary: str
    incomplete: str | None


def fetch_for_run(settings: Settings, run: Run, log: logging.Logger | Any) -> SourcesRead:
    """The night's first step: read its window's logs from every configured source (the ledger
    skips what was read already), wait for late logs within `freshness.wait`, and record on the
    run why its logs count as incomplete, if they do (the run then ends `partial`). A source that
    cannot be read is a warning on `log`, and the night goes on."""
    with open_warehouse(settings.warehouse) as wh:
        if not settings.sources:
            check = freshness(wh, settings, run.window_start, run.window_end)
            fetched = Fetched()
        else:
            fetched, check = fetch_until_fresh(wh, settings, run.window_start, run.window_end)
        for failure in fetched.failures:
            log.warning("source %s: %s not read: %s", failure.source, failure.item, failure.error)
        runs.note_incomplete_logs(wh, run.run_id, check.reason())
    return SourcesRead(fetched.summary() if settings.sources else "no sources configured",
                       check.reason())
