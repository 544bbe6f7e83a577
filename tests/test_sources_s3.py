"""Object storage as a log source, against a real S3-compatible server (moto's) on loopback: a
window's date partitions are read through s3fs, the ledger remembers each object's ETag, and a
store that cannot be read is a recorded failure whose reason names the fix and carries no secret."""

from __future__ import annotations

import gzip
import importlib
import json
import logging
import os
import secrets
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from replaybench.config import Source, load_settings
from replaybench.errors import scrub
from replaybench.ingest import ingest_paths, sources
from replaybench.ingest.formats import IngestOptions
from replaybench.warehouse import open_warehouse
from tests.conftest import DEMO_LOGS, write_config
from tests.s3_server import S3Server

DAYS = ("2026-11-25", "2026-11-26", "2026-11-27")
START, END = datetime(2026, 11, 26, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC)  # the 26th
TEMPLATE = "s3://{bucket}/openai/{{date:%Y/%m/%d}}/*.jsonl.gz"
# every column of `logs` but where a row came from and when it was loaded
COMPARED = ("request_id, ts, endpoint, model_id, prompt_version, messages, params, output_text, "
            "reference, input_tokens, output_tokens, reasoning_tokens, cached_tokens, latency_ms, "
            "ttft_ms, cost_usd, status, error, metadata, source_format")


@pytest.fixture(scope="session")
def s3_server():
    with S3Server() as server:
        yield server


@pytest.fixture(scope="session")
def partitions(tmp_path_factory) -> dict[str, list[Path]]:
    """The demo logs of three days (by UTC date), two gzipped JSONL parts a day, on local disk."""
    folder = tmp_path_factory.mktemp("partitions")
    lines: dict[str, list[str]] = {day: [] for day in DAYS}
    with gzip.open(DEMO_LOGS, "rt") as src:
        for line in src:
            try:
                day = json.loads(line).get("ts", "")[:10]
            except json.JSONDecodeError:
                continue
            if day in lines:
                lines[day].append(line)
    parts: dict[str, list[Path]] = {}
    for day, found in lines.items():
        parts[day] = []
        for i in range(2):
            path = folder / day / f"part-{i}.jsonl.gz"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(gzip.compress("".join(found[i::2]).encode()))
            parts[day].append(path)
    return parts


@pytest.fixture
def s3(s3_server, monkeypatch, tmp_path) -> Store:
    """The environment pointed at the server and nowhere else (no ~/.aws, no instance metadata),
    and a bucket of this test's own."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return Store(s3_server, s3_server.new_bucket())


class Store:
    """One test's bucket on the server."""

    def __init__(self, server: S3Server, bucket: str) -> None:
        self.server, self.bucket, self.client = server, bucket, server.client()
        self.template = TEMPLATE.format(bucket=bucket)

    def put(self, key: str, body: bytes | Path) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key,
                               Body=body.read_bytes() if isinstance(body, Path) else body)
        return f"s3://{self.bucket}/{key}"

    def put_days(self, parts: dict[str, list[Path]]) -> dict[str, list[str]]:
        """Every part of every day under openai/YYYY/MM/DD/; their URLs by day."""
        return {day: [self.put(f"openai/{day.replace('-', '/')}/{p.name}", p) for p in paths]
                for day, paths in parts.items()}

    def version(self, url: str) -> str:
        head = self.client.head_object(Bucket=self.bucket, Key=url.split("/", 3)[3])
        return f"size={head['ContentLength']} etag={head['ETag'].strip(chr(34))}"


def settings_for(folder: Path, *paths: str, fmt: str = "openai"):
    return load_settings(write_config(folder, logs=[],
                                      sources=[{"path": p, "format": fmt} for p in paths]))


def fetch(settings) -> sources.Fetched:
    with open_warehouse(settings.warehouse) as wh:
        return sources.fetch(wh, settings, START, END)


def query(settings, sql: str) -> list[tuple]:
    with open_warehouse(settings.warehouse) as wh:
        return wh.execute(sql).fetchall()


def row(request_id: str, ts: str = "2026-11-26T12:00:00Z") -> str:
    return json.dumps({
        "request_id": request_id, "ts": ts, "endpoint": "/support/triage",
        "model_id": "openai/gpt-5-mini", "prompt_version": "triage@v4",
        "request": {"model": "gpt-5-mini", "messages": [{"role": "user", "content": "charged twice"}]},
        "response": {"choices": [{"message": {"role": "assistant", "content": "billing"}}],
                     "usage": {"prompt_tokens": 12, "completion_tokens": 1}},
        "latency_ms": 400, "status": "ok"}) + "\n"


def gz(*lines: str) -> bytes:
    return gzip.compress("".join(lines).encode())


# --- what a window reads ---------------------------------------------------------------------------

def test_a_window_read_from_s3_stores_what_the_same_files_give_from_disk(s3, partitions, tmp_path):
    urls = s3.put_days(partitions)
    settings = settings_for(tmp_path, s3.template)

    fetched = fetch(settings)

    assert [(o.item, o.status) for o in fetched.outcomes] == [(u, "read") for u in urls["2026-11-26"]]
    by_hand = ingest_paths(tmp_path / "by-hand.duckdb", partitions["2026-11-26"])
    assert by_hand.ingested > 600 and fetched.total.ingested == by_hand.ingested
    with open_warehouse(settings.warehouse) as wh:
        from_s3 = wh.frame(f"SELECT {COMPARED} FROM logs ORDER BY request_id")
        assert set(wh.frame("SELECT DISTINCT source FROM logs")["source"]) == set(urls["2026-11-26"])
    with open_warehouse(tmp_path / "by-hand.duckdb") as wh:
        from_disk = wh.frame(f"SELECT {COMPARED} FROM logs ORDER BY request_id")
    assert from_s3.equals(from_disk)


def test_only_the_windows_date_partitions_are_read(s3, partitions, tmp_path):
    urls = s3.put_days(partitions)
    settings = settings_for(tmp_path, s3.template)

    fetch(settings)

    read = {item for (item,) in query(settings, "SELECT item FROM sources")}
    assert read == set(urls["2026-11-26"])
    assert not read & {*urls["2026-11-25"], *urls["2026-11-27"]}
    (outside,) = query(settings, f"SELECT count(*) FROM logs WHERE ts < '{START}' OR ts >= '{END}'")
    assert outside == (0,)


def test_a_day_without_objects_is_nothing_to_read_not_a_failure(s3, partitions, tmp_path):
    s3.put_days({"2026-11-25": partitions["2026-11-25"]})
    settings = settings_for(tmp_path, s3.template)

    fetched = fetch(settings)

    assert fetched.outcomes == [] and fetched.failures == []
    assert query(settings, "SELECT * FROM sources") == []


# --- the ledger ------------------------------------------------------------------------------------

def test_a_second_fetch_reads_nothing_and_the_ledger_holds_each_objects_etag(s3, partitions, tmp_path):
    urls = s3.put_days(partitions)["2026-11-26"]
    settings = settings_for(tmp_path, s3.template)
    first = fetch(settings)

    second = fetch(settings)

    assert first.total.ingested > 600
    assert [(o.item, o.status) for o in second.outcomes] == [(u, "unchanged") for u in urls]
    assert second.total.read == 0
    ledger = query(settings, "SELECT item, version, status FROM sources ORDER BY item")
    assert ledger == [(u, s3.version(u), "read") for u in urls]
    assert all("etag=" in version for _, version, _ in ledger)


def test_an_overwritten_object_is_read_again_and_only_its_new_rows_are_added(s3, partitions,
                                                                             tmp_path):
    part0, part1 = s3.put_days(partitions)["2026-11-26"]
    settings = settings_for(tmp_path, s3.template)
    first = {o.item: o.result for o in fetch(settings).outcomes}
    (before,) = query(settings, "SELECT count(*) FROM logs")
    old = gzip.decompress(partitions["2026-11-26"][0].read_bytes()).decode()

    s3.put(part0.split("/", 3)[3], gz(old, *(row(f"req_late_{i}") for i in range(3))))
    second = {o.item: o for o in fetch(settings).outcomes}

    assert second[part1].status == "unchanged"
    again = second[part0]
    assert again.status == "read"
    assert (again.result.read, again.result.ingested, again.result.duplicates) == \
        (first[part0].read + 3, 3, first[part0].read - first[part0].rejected)
    assert query(settings, "SELECT count(*) FROM logs") == [(before[0] + 3,)]
    assert query(settings, f"SELECT version FROM sources WHERE item = '{part0}'") == \
        [(s3.version(part0),)]


def test_an_object_replaced_between_listing_and_reading_is_not_read_as_the_listed_version(
        s3, tmp_path):
    url = s3.put("openai/2026/11/26/part-0.jsonl.gz", gz(row("req_1")))
    settings = settings_for(tmp_path, s3.template)
    source = sources.open_source(settings.sources[0])
    (item,) = source.items(START, END, UTC)

    s3.put("openai/2026/11/26/part-0.jsonl.gz", gz(row("req_1"), row("req_2")))
    with open_warehouse(settings.warehouse) as wh, pytest.raises(OSError, match="no longer exists"):
        source.read(wh, item, None, IngestOptions())

    (outcome,) = fetch(settings).outcomes  # the next fetch reads the object as it is now
    assert (outcome.item, outcome.status, outcome.result.ingested) == (url, "read", 2)
    assert query(settings, "SELECT version FROM sources") == [(s3.version(url),)]


# --- what goes wrong -------------------------------------------------------------------------------

def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("trouble, expected", [
    ("missing bucket", "does not exist"),
    ("wrong secret", "signature"),
    ("unknown key", "Access Key Id you provided does not exist"),
    ("dead endpoint", "not reachable"),
])
def test_a_store_that_cannot_be_read_is_a_failure_and_the_other_sources_are_read(
        s3, partitions, tmp_path, monkeypatch, caplog, trouble, expected):
    s3.put_days({"2026-11-26": partitions["2026-11-26"]})
    local = tmp_path / "local" / "2026-11-26"
    local.mkdir(parents=True)
    (local / "a.jsonl").write_text(row("req_local_1") + row("req_local_2"))
    broken = s3.template
    wrong_secret = "wrong-" + secrets.token_hex(16)  # unique: proves that the fetch registered it
    if trouble == "missing bucket":
        broken = TEMPLATE.format(bucket="no-such-bucket-" + secrets.token_hex(4))
    elif trouble == "wrong secret":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong_secret)
    elif trouble == "unknown key":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA" + secrets.token_hex(8).upper())
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{dead_port()}")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries would only slow the test
    settings = settings_for(tmp_path, broken, str(tmp_path / "local/{date:%Y-%m-%d}/*.jsonl"))
    caplog.set_level(logging.DEBUG)

    fetched = fetch(settings)

    (failed,) = fetched.failures
    assert (failed.source, failed.item) == (broken, "*")
    assert expected in failed.error and "\n" not in failed.error
    if trouble != "missing bucket":
        assert "AWS_" in failed.error  # the reason names what to check
    (local_read,) = [o for o in fetched.outcomes if o.status == "read"]
    assert local_read.item == str(local / "a.jsonl") and local_read.result.ingested == 2
    stored = query(settings, f"SELECT status, error FROM sources WHERE source = '{broken}'")
    assert stored == [("failed", failed.error)]
    if trouble == "wrong secret":
        assert scrub(f"key {wrong_secret}") == "key [REDACTED]"
    everything = " ".join([caplog.text, *(str(r) for r in query(settings, "SELECT * FROM sources")),
                           *(str(r) for r in query(settings, "SELECT * FROM rejects"))])
    for secret in (s3.server.keys.secret_access_key, wrong_secret):
        assert secret not in everything


def test_bad_lines_in_an_object_become_rejects_named_by_its_url(s3, tmp_path):
    url = s3.put("openai/2026/11/26/part-0.jsonl.gz",
                 gz(row("req_1"), '{"request_id": "req_2", "ts": \n', row("req_3"),
                    json.dumps({"ts": "2026-11-26T01:00:00Z"}) + "\n"))
    settings = settings_for(tmp_path, s3.template)

    (outcome,) = fetch(settings).outcomes

    assert (outcome.status, outcome.result.ingested, outcome.result.rejected) == ("read", 2, 2)
    rejects = query(settings, "SELECT source, position, reason FROM rejects ORDER BY position")
    assert [(source, position, reason.split(":")[0]) for source, position, reason in rejects] == \
        [(url, 2, "invalid JSON"), (url, 4, "missing request_id")]


# --- the environment ---------------------------------------------------------------------------

def test_the_endpoint_may_be_the_s3_specific_variable_and_the_region_aws_region(s3, tmp_path,
                                                                              monkeypatch):
    url = s3.put("openai/2026/11/26/part-0.jsonl.gz", gz(row("req_1")))
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.server.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{dead_port()}")  # _S3 wins
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    settings = settings_for(tmp_path, s3.template)

    (outcome,) = fetch(settings).outcomes

    assert (outcome.item, outcome.status) == (url, "read")
    client = sources.FileSource(Source(path=s3.template))._filesystem().s3
    assert client.meta.region_name == "eu-central-1"
    assert client.meta.endpoint_url == s3.server.endpoint


def test_without_s3fs_the_reason_says_what_to_install(tmp_path, monkeypatch):
    registry = importlib.import_module("fsspec.registry")._registry  # fsspec.registry: a mapping
    monkeypatch.delitem(registry, "s3", raising=False)
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if it were not installed
    settings = settings_for(tmp_path, "s3://llm-logs/openai/{date:%Y/%m/%d}/*.jsonl.gz")

    (failed,) = fetch(settings).failures

    assert "pip install 'replaybench[s3]'" in failed.error
