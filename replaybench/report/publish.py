"""Publishing: the night's report and the index of runs, where a stakeholder opens them from any
machine (config `report:`), instead of a file on the machine that ran the night.

- **a folder** (`publish_to: /srv/www/replaybench`, with `base_url:` the http(s) URL a web server
  serves it at): each page is written there whole, then renamed into place, so a reader never
  gets half a page;
- **an S3-compatible bucket** (`publish_to: s3://bucket/prefix`): each page is uploaded as
  `text/html` through s3fs, endpoint and keys from the environment exactly as the sources read
  them; readers open it at `base_url` (a website endpoint or a CDN in front of the bucket), or
  else at the object's own URL at the store's endpoint (the bucket must then let them read);
- **a URL** (`publish_to: https://reports.example.com/replaybench/`): `reports_dir` is served
  there already (a folder synced to a web server): nothing is copied, links point there.

A report is one self-contained page (styles inline, charts inline SVG, no script, nothing loaded
from elsewhere), so publishing it is copying one file. The published index links each run whose
report was published to the same place, by a relative link. Publishing never fails the run: the
outcome (`published`, `failed` with a scrubbed reason, `skipped` without `publish_to`) is
recorded on the run's row, and the e-mail and the Prefect artifact (`publish_artifacts`) link to
the published page.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

from replaybench import runs
from replaybench.config import Report, Settings
from replaybench.errors import scrub
from replaybench.report.index import INDEX, index_html
from replaybench.warehouse import Warehouse

PUBLISHED, FAILED, SKIPPED = "published", "failed", "skipped"
HTML = "text/html; charset=utf-8"
# the index changes every night, and a re-rendered report replaces its page: readers (and a CDN)
# ask again rather than show yesterday's copy
CACHE_CONTROL = "no-cache"
REPORT_ARTIFACT = "replaybench-report"  # one key for every night's report: the UI keeps the history


@dataclass(frozen=True)
class Published:
    """What publishing one run's report did."""

    status: str
    url: str | None = None  # the report's page, when published
    error: str | None = None


class Target(ABC):
    """Where the pages go, and the http(s) URL readers open them at (ending in "/")."""

    base_url: str

    @abstractmethod
    def put(self, name: str, page: bytes) -> None:
        """Store one page under `name`, replacing an earlier one."""

    def explain(self, exc: Exception) -> str:
        """Why a page could not be stored, on one line."""
        return f"{type(exc).__name__}: {exc}"


class Folder(Target):
    def __init__(self, folder: Path, base_url: str) -> None:
        self.folder, self.base_url = folder, base_url

    def put(self, name: str, page: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        part = self.folder / f".{name}.part"
        part.write_bytes(page)
        os.replace(part, self.folder / name)


class Bucket(Target):
    def __init__(self, url: str, base_url: str | None) -> None:
        from replaybench.ingest.sources import _open_filesystem  # the sources' s3 setup, reused

        self.url = url
        self.fs = _open_filesystem(url, "report.publish_to", remote=True)  # secrets registered
        self.prefix = url.split("://", 1)[1].rstrip("/")
        self.base_url = base_url or f"{self._endpoint()}/{quote(self.prefix)}/"

    def _endpoint(self) -> str:
        """The store's endpoint as the client resolved it (AWS_ENDPOINT_URL, or AWS's own for
        the region): path-style URLs work on every S3-compatible store."""
        return self.fs.s3.meta.endpoint_url.rstrip("/")

    def put(self, name: str, page: bytes) -> None:
        self.fs.pipe_file(f"{self.prefix}/{name}", page, ContentType=HTML,
                          CacheControl=CACHE_CONTROL)

    def explain(self, exc: Exception) -> str:
        from replaybench.ingest.sources import _store_failure  # names the likely fix

        return _store_failure(exc, self.fs, self.url)


class Served(Target):
    """reports_dir is served at base_url already: nothing to copy."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def put(self, name: str, page: bytes) -> None:
        pass


def target(report: Report) -> Target | None:
    """The configured place to publish to; None when nothing is published."""
    kind = report.publish_kind
    if kind == "folder":
        return Folder(Path(report.publish_to), report.base_url)
    if kind == "s3":
        return Bucket(report.publish_to, report.base_url)
    if kind == "url":
        return Served(report.publish_to)
    return None


def published_link(base_url: str, run_id: str, name: str) -> Callable[[dict[str, Any]], str | None]:
    """Links from the published index: this run's report, and every other run's whose report was
    published to the same place, relative to the index."""
    def link(run: dict[str, Any]) -> str | None:
        if run["run_id"] == run_id:
            return quote(name)
        url = run.get("report_url") or ""
        return url[len(base_url):] if url.startswith(base_url) else None
    return link


def publish(settings: Settings, run_id: str, report: Path, index: dict[str, Any]) -> Published:
    """Publish the run's report and the index (from `index.index_context`); never raises: a
    failure is a `failed` outcome with its reason, secrets removed. Holds no warehouse."""
    where = None
    try:
        where = target(settings.report)
        if where is None:
            return Published(SKIPPED)
        where.put(report.name, report.read_bytes())  # the report first: the index links it
        page = index_html(index, published_link(where.base_url, run_id, report.name))
        where.put(INDEX, page.encode("utf-8"))
        return Published(PUBLISHED, where.base_url + quote(report.name))
    except Exception as exc:
        why = where.explain(exc) if where else f"{type(exc).__name__}: {exc}"
        return Published(FAILED, error=scrub(f"{settings.report.publish_to}: {why}"))


def record(wh: Warehouse, run_id: str, outcome: Published) -> None:
    """The outcome on the run's row; a failure keeps the URL of an earlier publication."""
    runs.record_publication(wh, run_id, outcome.status, outcome.error, outcome.url)


def links(run: dict[str, Any]) -> dict[str, str | None]:
    """The published report and index of a stored run, for the e-mail; None when its report
    was not published (the e-mail then carries it as an attachment only)."""
    url = run.get("report_url") if run.get("publish_status") == PUBLISHED else None
    return {"report_url": url, "index_url": urljoin(url, INDEX) if url else None}


def publish_artifacts(wh: Warehouse, run_id: str, link: str, published: bool) -> None:
    """The night's outcome in the Prefect UI: the decision table, and the report as a link
    artifact under one key for every night (the UI keeps its history), to the published page
    (or, unpublished, the file)."""
    from prefect.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_table_artifact,
    )

    rows = wh.frame("SELECT prompt_version, model, recommendation, reason FROM scores "
                    "WHERE run_id = $r AND recommendation IS NOT NULL "
                    "ORDER BY prompt_version, model", r=run_id).to_dicts()
    key = "replaybench-" + run_id.lower()
    create_table_artifact(table=rows, key=f"{key}-decisions",
                          description=f"Recommendations of run {run_id}")
    where = "published" if published else "not published: a file on the machine that ran it"
    create_link_artifact(link=link, link_text=f"report of run {run_id}", key=REPORT_ARTIFACT,
                         description=f"The night's HTML report ({where})")
    create_markdown_artifact(markdown=f"Report of run `{run_id}`: [{run_id}]({link})",
                             key=f"{key}-report", description="The full HTML report")
