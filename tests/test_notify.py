"""The night's e-mail: the nightly flow sends it to a real SMTP server on loopback (aiosmtpd);
MIME structure, inlined and escaped HTML under 100 KB, the report attached; a failure to send is
recorded with a scrubbed reason and never fails the run; no `email:` means skipped."""

import asyncio
import email
import os
import shutil
import socket
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from flows.nightly import nightly
from replaybench.config import Email, load_settings
from replaybench.ingest import ingest_paths
from replaybench.report.context import report_context
from replaybench.report.email import MAX_HTML_BYTES, build_message, notify, render_bodies
from replaybench.warehouse import open_warehouse

from .conftest import write_config
from .servers import Keep
from .test_nightly import RUN_DATE

TO = ["lead@example.com", "oncall@example.com"]
SENDER = "replaybench@example.com"
PASSWORD = "s3cret-smtp-password-xyz"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def smtp_server():
    handler = Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


def run_nightly(folder: Path, fleet, demo_slice, **overrides):
    config = write_config(folder, fleet.base_url, **overrides)
    settings = load_settings(config)
    ingest_paths(settings.warehouse, [demo_slice])
    result = asyncio.run(nightly(run_date=RUN_DATE, config=str(config)))
    return settings, result


@pytest.fixture(scope="module")
def emailed_run(tmp_path_factory, prefect_harness, fleet, demo_slice, smtp_server):
    controller, handler = smtp_server
    settings, result = run_nightly(
        tmp_path_factory.mktemp("emailed"), fleet, demo_slice,
        email={"to": TO, "from": SENDER, "smtp": {"host": "127.0.0.1", "port": controller.port}})
    return settings, result, handler


def run_row(settings, run_id):
    with open_warehouse(settings.warehouse) as wh:
        return wh.frame("SELECT * FROM runs WHERE run_id = $r", r=run_id).row(0, named=True)


def parts(msg):
    return [(p.get_content_type(), p) for p in msg.iter_parts()]


def test_one_message_to_the_configured_recipients(emailed_run):
    settings, result, handler = emailed_run
    assert result["status"] == "completed"
    assert len(handler.envelopes) == 1
    env = handler.envelopes[0]
    assert sorted(env.rcpt_tos) == sorted(TO) and env.mail_from == SENDER
    msg = email.message_from_bytes(env.content, policy=policy.default)
    assert msg["Subject"].startswith("replaybench 2026-11-27: ")
    assert any(w in msg["Subject"] for w in ("promote", "canary", "hold", "reject"))
    run = run_row(settings, result["run_id"])
    assert run["email_status"] == "sent" and run["email_error"] is None
    assert run["emailed_at"] is not None


def test_mime_structure_and_the_attached_report(emailed_run):
    _, result, handler = emailed_run
    msg = email.message_from_bytes(handler.envelopes[0].content, policy=policy.default)
    assert msg.get_content_type() == "multipart/mixed"
    (body_type, body), (att_type, att) = parts(msg)
    assert body_type == "multipart/alternative" and att_type == "text/html"
    kinds = [t for t, _ in parts(body)]
    assert kinds[0] == "text/plain" and kinds[-1] in {"text/html", "multipart/related"}
    assert len(kinds) == 2  # HTML last
    assert att.get_content_disposition() == "attachment" and att.get_filename().endswith(".html")
    assert att.get_payload(decode=True) == Path(result["report"]).read_bytes()
    html_part = msg.get_body(preferencelist=("html",))
    html = html_part.get_content()
    assert len(html.encode("utf-8")) < MAX_HTML_BYTES
    assert 'style="' in html and "<style" not in html  # CSS inlined, no <style> left to rely on
    assert "Simulated numbers" in html
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert "SIMULATED" in text
    for cid in [p["Content-ID"] for p in msg.walk() if p.get_content_type() == "image/png"]:
        assert f"cid:{cid.strip('<>')}" in html  # charts, when the chart module provides them


def test_charts_travel_as_related_png_parts_referenced_by_cid(emailed_run):
    settings, result, _ = emailed_run
    with open_warehouse(settings.warehouse) as wh:
        context = report_context(wh, settings, result["run_id"])
    msg = build_message(settings, context, Path(result["report"]),
                        charts={"pass_rate": PNG, "cost": PNG})
    body = next(p for t, p in parts(msg) if t == "multipart/alternative")
    plain, related = body.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, *images = related.iter_parts()
    assert html_part.get_content_type() == "text/html" and len(images) == 2
    html = html_part.get_content()
    for image in images:
        assert image.get_content_type() == "image/png" and image.get_content() == PNG
        assert f'src="cid:{image["Content-ID"].strip("<>")}"' in html
    sizes = {p.get_content_type(): len(p.as_bytes()) for p in msg.walk() if not p.is_multipart()}
    assert sizes["text/html"] > 0


def test_hostile_text_is_escaped_and_oversized_html_drops_detail(emailed_run):
    settings, result, _ = emailed_run
    with open_warehouse(settings.warehouse) as wh:
        context = report_context(wh, settings, result["run_id"])
    section = context["sections"][0]
    section["prompt_version"] = "<script>alert('pv')</script>"
    section["best"]["reason"] = "answer <img src=x onerror=alert(1)> wins"
    text, html = render_bodies(context, [], "report.html")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x" in html
    assert "<script>alert('pv')</script>" in text  # plain text is not HTML: nothing to escape
    full = len(html.encode("utf-8"))
    _, small = render_bodies(context, [], "report.html", limit=full - 1)
    assert "detail rows are left out" in small and len(small.encode("utf-8")) < full


def test_a_failed_send_is_recorded_scrubbed_and_the_run_completes(tmp_path_factory, prefect_harness,
                                                                  fleet, demo_slice):
    os.environ["RB_TEST_SMTP_USER"] = "mailer"
    os.environ["RB_TEST_SMTP_PASSWORD"] = PASSWORD
    try:
        settings, result = run_nightly(
            tmp_path_factory.mktemp("unsent"), fleet, demo_slice,
            email={"to": TO, "from": SENDER,
                   "smtp": {"host": "127.0.0.1", "port": free_port(), "starttls": True,
                            "username_env": "RB_TEST_SMTP_USER",
                            "password_env": "RB_TEST_SMTP_PASSWORD"}})
    finally:
        del os.environ["RB_TEST_SMTP_USER"], os.environ["RB_TEST_SMTP_PASSWORD"]
    assert result["status"] == "completed"
    run = run_row(settings, result["run_id"])
    assert run["status"] == "completed"
    assert run["email_status"] == "failed" and run["emailed_at"] is None
    assert "ConnectionRefused" in run["email_error"] and PASSWORD not in run["email_error"]


@pytest.fixture
def copied_run(emailed_run, tmp_path):
    """The e-mailed run's warehouse, copied: notify() can be run again without touching it."""
    settings, result, _ = emailed_run
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(settings.warehouse, warehouse)
    return settings.model_copy(update={"warehouse": warehouse}), result


def test_no_email_config_is_skipped(copied_run):
    settings, result = copied_run
    assert notify(settings.model_copy(update={"email": None}), result["run_id"],
                  result["report"]) == "skipped"
    assert run_row(settings, result["run_id"])["email_status"] == "skipped"


def test_a_block_without_prefect_email_is_a_recorded_failure(copied_run):
    settings, result = copied_run
    try:
        import prefect_email  # noqa: F401
        pytest.skip("prefect-email is installed")
    except ImportError:
        pass
    block = Email.model_validate({"to": TO, "from": SENDER, "block": "night-mail"})
    status = notify(settings.model_copy(update={"email": block}), result["run_id"],
                    result["report"])
    run = run_row(settings, result["run_id"])
    assert status == "failed" and run["email_status"] == "failed"
    assert "prefect-email is not installed" in run["email_error"]


def test_credentials_come_from_the_environment_and_are_registered(monkeypatch):
    from replaybench.config import Smtp
    from replaybench.errors import ConfigError, scrub

    smtp = Smtp(username_env="RB_U", password_env="RB_P", starttls=True)
    monkeypatch.setenv("RB_U", "someone")
    monkeypatch.setenv("RB_P", "another-password-123")
    assert smtp.credentials() == ("someone", "another-password-123")
    assert "another-password-123" not in scrub("auth failed for another-password-123")
    monkeypatch.delenv("RB_P")
    with pytest.raises(ConfigError, match="RB_P"):
        smtp.credentials()
