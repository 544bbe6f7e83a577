"""Reports anyone can open: the nightly flow publishes its report and the index of runs and
decisions to a folder a web server serves, or to an S3-compatible bucket (moto's real server on
loopback); headless Chromium opens the published index over HTTP and follows its links to the
report and back; the e-mail (a real SMTP server on loopback) and the Prefect UI link the published
page, never a file; a store that refuses the upload is recorded on the run, which completes and
mails its report anyway."""

from __future__ import annotations

import asyncio
import email
import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from aiosmtpd.controller import Controller

from replaybench.config import Report, load_settings
from replaybench.errors import ConfigError
from replaybench.report import publish
from replaybench.report.index import index_context
from replaybench.report.page import report_and_publish
from replaybench.report.publish import REPORT_ARTIFACT
from replaybench.warehouse import open_warehouse

from .browser import Browser, chromium_path
from .conftest import write_config
from .s3_server import S3Server
from .servers import Keep
from .test_notify import free_port, run_nightly
from .test_report import CLIPPED_TABLES

TO, SENDER = ["lead@example.com"], "replaybench@example.com"
WRONG_SECRET = "wrong-secret-key-0123456789abcdefXYZ"
needs_chromium = pytest.mark.skipif(chromium_path() is None,
                                    reason="no chromium: .ci/run installs it")


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextmanager
def serving(handler) -> Iterator[str]:
    """An HTTP server on loopback with this request handler; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def web_server(root: Path):
    """A static web server serving the folder `root` (what a folder is published for)."""
    return serving(functools.partial(Quiet, directory=str(root)))


def bucket_gateway(client, bucket: str):
    """What readers reach a private bucket through (a CDN or a website endpoint in front of it):
    GET /KEY answers the object, read with the store's keys, as the store typed it."""
    class Gateway(Quiet):
        def do_GET(self) -> None:
            key = unquote(self.path.split("?", 1)[0].lstrip("/"))
            try:
                found = client.get_object(Bucket=bucket, Key=key)
            except client.exceptions.NoSuchKey:
                self.send_error(404)
                return
            body = found["Body"].read()
            self.send_response(200)
            self.send_header("Content-Type", found["ContentType"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return serving(Gateway)


@contextmanager
def smtp_server() -> Iterator[tuple[int, Keep]]:
    handler = Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, handler
    finally:
        controller.stop()


@contextmanager
def aws_environment(env: dict[str, str]) -> Iterator[None]:
    """The environment pointed at one store and nowhere else (no ~/.aws, no instance metadata)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("AWS_")]:
            mp.delenv(name)
        mp.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name, value in env.items():
            mp.setenv(name, value)
        yield


def mailing(port: int) -> dict:
    return {"to": TO, "from": SENDER, "smtp": {"host": "127.0.0.1", "port": port}}


def run_row(settings, run_id) -> dict:
    with open_warehouse(settings.warehouse) as wh:
        return wh.frame("SELECT * FROM runs WHERE run_id = $r", r=run_id).row(0, named=True)


def texts(raw: bytes) -> dict[str, str]:
    """Every text part of a message, decoded, by content type (the attachment as text/html+)."""
    message = email.message_from_bytes(raw, policy=policy.default)
    found: dict[str, str] = {}
    for part in message.walk():
        if part.get_content_maintype() == "text":
            kind = part.get_content_type() + ("+attachment" if part.is_attachment() else "")
            found[kind] = part.get_content()
    return found


@pytest.fixture(scope="module")
def published_night(tmp_path_factory, prefect_harness, fleet, demo_slice):
    """A night publishing to a folder that a web server serves under /replaybench/, and mailing."""
    folder = tmp_path_factory.mktemp("published")
    site = folder / "site"
    with web_server(site) as http, smtp_server() as (port, handler):
        base = http + "replaybench/"
        settings, result = run_nightly(folder, fleet, demo_slice, email=mailing(port), report={
            "publish_to": str(site / "replaybench"), "base_url": base})
        yield settings, result, base, handler


# --- the config ---------------------------------------------------------------------------------

@pytest.mark.parametrize("report, error", [
    ({"publish_to": "site"}, "set base_url"),
    ({"base_url": "https://reports.example.com/"}, "set publish_to"),
    ({"publish_to": "https://reports.example.com/rb", "base_url": "https://cdn.example.com/"},
     "leave base_url out"),
    ({"publish_to": "ftp://host/reports"}, "is no folder, s3://bucket/prefix or http"),
    ({"publish_to": "s3://reports/rb", "base_url": "s3://other/"}, "base_url must be an http"),
    ({"publish_to": "s3://reports/rb", "bucket": "x"}, "bucket"),
])
def test_a_report_block_no_reader_could_open_is_refused(tmp_path, report, error):
    with pytest.raises(ConfigError, match=error):
        load_settings(write_config(tmp_path, report=report))


def test_the_forms_of_publish_to(tmp_path):
    def report(**block):
        return load_settings(write_config(tmp_path, report=block)).report

    folder = report(publish_to="site/rb/", base_url="https://reports.example.com/rb")
    assert folder.publish_kind == "folder" and folder.publish_to == str(tmp_path / "site" / "rb")
    assert folder.base_url == "https://reports.example.com/rb/"
    assert report(publish_to="s3://reports/rb/").publish_to == "s3://reports/rb"
    served = report(publish_to="https://reports.example.com/rb")
    assert served.publish_kind == "url" and served.publish_to == "https://reports.example.com/rb/"
    assert report().publish_kind is None


# --- a folder served by a web server ------------------------------------------------------------

def test_the_night_publishes_its_report_and_the_index_to_the_folder(published_night):
    settings, result, base, _ = published_night
    run_id = result["run_id"]
    assert result["status"] == "completed"
    row = run_row(settings, run_id)
    assert row["publish_status"] == "published" and row["publish_error"] is None
    assert row["report_url"] == f"{base}{run_id}.html" and row["published_at"] is not None
    served = httpx.get(row["report_url"])
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/html")
    assert served.content == Path(result["report"]).read_bytes()  # the page, as rendered
    index = httpx.get(base + "index.html").text
    assert f'href="{run_id}.html"' in index and 'aria-label="decisions"' in index
    published = Path(settings.report.publish_to)
    assert sorted(p.name for p in published.iterdir()) == sorted([f"{run_id}.html", "index.html"])


@needs_chromium
def test_a_reader_opens_the_published_index_and_follows_its_links(published_night):
    settings, result, base, _ = published_night
    run_id = result["run_id"]
    browser = Browser()
    try:
        index = browser.render(base + "index.html", 1280, 900, {
            "reports": "[...document.querySelectorAll('table[aria-label=runs] a')].map(a => a.href)",
            "decisions": "document.querySelectorAll('table[aria-label=decisions] tbody tr').length",
            "fetched": "performance.getEntriesByType('resource').map(r => r.name)",
        })
        assert index["reports"] == [f"{base}{run_id}.html"] and index["decisions"] > 0
        report = browser.render(index["reports"][0], 1280, 900, {
            "title": "document.title",
            "back": "document.querySelector('a.nav').href",
            "fetched": "performance.getEntriesByType('resource').map(r => r.name)",
            "charts": "document.querySelectorAll('figure svg').length",
            "clipped": CLIPPED_TABLES,
        })
        phone = browser.render(base + "index.html", 390, 844, {
            "overflow": "document.documentElement.scrollWidth - window.innerWidth",
            "clipped": CLIPPED_TABLES})
    finally:
        browser.close()
    assert report["title"] == f"replaybench · {run_id}"
    assert report["fetched"] == [] and index["fetched"] == []  # self-contained: nothing else loads
    assert report["charts"] > 0 and report["clipped"] == []
    assert report["back"] == base + "index.html"
    assert phone["overflow"] <= 0 and phone["clipped"] == []


def test_the_email_links_the_published_page_and_never_a_file(published_night):
    settings, result, base, handler = published_night
    url = run_row(settings, result["run_id"])["report_url"]
    assert len(handler.envelopes) == 1
    raw = handler.envelopes[0].content
    parts = texts(raw)
    assert set(parts) == {"text/plain", "text/html", "text/html+attachment"}
    assert f"Full report: {url}" in parts["text/plain"]
    assert f"All runs and decisions: {base}index.html" in parts["text/plain"]
    assert f'href="{url}"' in parts["text/html"] and f'href="{base}index.html"' in parts["text/html"]
    # the link is on the first screen: before the first prompt_version's card
    assert parts["text/html"].index(f'href="{url}"') < parts["text/html"].index('class="card"')
    assert b"file://" not in raw and not [k for k, text in parts.items() if "file://" in text]


def test_the_prefect_ui_links_the_published_report(published_night):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    settings, result, _, _ = published_night
    url = run_row(settings, result["run_id"])["report_url"]

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[REPORT_ARTIFACT])))

    found = asyncio.run(artifacts())  # one key for every night: the UI keeps their history
    assert any(f"]({url})" in str(a.data) for a in found)


def test_a_served_reports_dir_is_linked_where_it_is_served(published_night):
    settings, result, _, _ = published_night
    served = settings.model_copy(update={
        "report": Report(publish_to="https://reports.example.com/replaybench")})
    with open_warehouse(settings.warehouse) as wh:
        index = index_context(wh)
    outcome = publish.publish(served, result["run_id"], Path(result["report"]), index)
    assert outcome == publish.Published(
        "published", f"https://reports.example.com/replaybench/{result['run_id']}.html")


# --- an S3-compatible bucket ---------------------------------------------------------------------

@needs_chromium
def test_the_report_is_published_to_an_s3_compatible_bucket(published_night):
    settings, result, _, _ = published_night
    run_id = result["run_id"]
    with S3Server() as server, aws_environment(server.env()):
        bucket = server.new_bucket()
        client = server.client()

        def publish_to(**where):
            return report_and_publish(settings.model_copy(update={"report": Report(
                publish_to=f"s3://{bucket}/reports/nightly", **where)}), run_id)

        # by default readers open the objects at the store's own endpoint (path-style)
        path, outcome = publish_to()
        assert outcome.status == "published", outcome.error
        assert outcome.url == f"{server.endpoint}/{bucket}/reports/nightly/{run_id}.html"
        for name in (f"{run_id}.html", "index.html"):
            stored = client.get_object(Bucket=bucket, Key=f"reports/nightly/{name}")
            assert stored["ContentType"] == "text/html; charset=utf-8"
            assert stored["CacheControl"] == "no-cache"
        assert client.get_object(Bucket=bucket, Key=f"reports/nightly/{run_id}.html")[
            "Body"].read() == path.read_bytes()
        # or through what serves the bucket to them, at base_url
        with bucket_gateway(client, bucket) as gateway:
            base = f"{gateway}reports/nightly/"
            _, outcome = publish_to(base_url=base)
            assert outcome.url == f"{base}{run_id}.html" == run_row(settings, run_id)["report_url"]
            browser = Browser()
            try:
                index = browser.render(base + "index.html", 1280, 900, {
                    "reports": "[...document.querySelectorAll('table[aria-label=runs] a')]"
                               ".map(a => a.href)"})
                report = browser.render(index["reports"][0], 390, 844, {
                    "title": "document.title", "back": "document.querySelector('a.nav').href"})
            finally:
                browser.close()
    assert index["reports"] == [outcome.url]
    assert report["title"] == f"replaybench · {run_id}" and report["back"] == base + "index.html"


@pytest.fixture(scope="module")
def refused_night(tmp_path_factory, prefect_harness, fleet, demo_slice):
    """A night whose store refuses the upload (a wrong secret key), mailing."""
    folder = tmp_path_factory.mktemp("refused")
    with S3Server() as server, smtp_server() as (port, handler):
        bucket = server.new_bucket()
        with aws_environment({**server.env(), "AWS_SECRET_ACCESS_KEY": WRONG_SECRET}):
            settings, result = run_nightly(folder, fleet, demo_slice, email=mailing(port),
                                           report={"publish_to": f"s3://{bucket}/reports"})
        objects = server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return settings, result, handler, objects


def test_a_store_that_refuses_the_report_is_recorded_and_the_night_goes_on(refused_night):
    settings, result, handler, objects = refused_night
    assert result["status"] == "completed" and Path(result["report"]).is_file()
    row = run_row(settings, result["run_id"])
    assert row["publish_status"] == "failed" and row["report_url"] is None and objects == []
    assert "no access to bucket" in row["publish_error"]  # and it names the fix:
    assert "AWS_SECRET_ACCESS_KEY" in row["publish_error"] and WRONG_SECRET not in row["publish_error"]
    assert row["email_status"] == "sent" and len(handler.envelopes) == 1
    parts = texts(handler.envelopes[0].content)
    assert "Full report:" not in parts["text/plain"] and "is attached" in parts["text/plain"]
    assert not [k for k, text in parts.items() if "file://" in text or WRONG_SECRET in text]
