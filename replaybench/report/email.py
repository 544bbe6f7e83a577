"""The e-mail: the night's decision, after the report.

The message is `multipart/mixed`: a `multipart/alternative` body (plain text, then HTML inside a
`multipart/related` with the charts as PNG parts referenced by `cid:`), and the full report as an
`.html` attachment. When the report was published (`report.publish_to`), both bodies link to its
page and to the index of runs, where any reader's browser opens them; never to a local file.
The HTML has its CSS inlined (mail clients drop `<style>`) and stays under 100 KB (Gmail clips at
~102 KB): when it would not, the detail rows are left out and it says so.

Sending never fails the run: the outcome (`sent`, `failed` with a scrubbed reason, `skipped` when
no `email:` is configured or it is disabled) is recorded on the run's row.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from replaybench import runs
from replaybench.config import Settings, on_this_machine
from replaybench.errors import ConfigError, register_secret, scrub
from replaybench.report import charts as report_charts
from replaybench.report import publish
from replaybench.report.context import report_context
from replaybench.report.render import environment
from replaybench.warehouse import Warehouse, open_warehouse

log = logging.getLogger(__name__)

SENT, FAILED, SKIPPED = "sent", "failed", "skipped"
MAX_HTML_BYTES = 100_000  # Gmail clips an HTML body at ~102 KB
TIMEOUT_S = 30.0
RECOMMENDATIONS = ("promote", "canary", "hold", "reject")


# --- the message ---------------------------------------------------------------------------------

def subject(context: dict[str, Any]) -> str:
    """e.g. 'replaybench 2026-11-27: 1 promote, 2 canary, 3 hold [PARTIAL]'."""
    run = context["run"]
    last = (run["window_end"].astimezone(context.get("tz", UTC)) - timedelta(seconds=1)).date()
    counts = Counter(s["best"]["recommendation"] for s in context["sections"] if s["best"])
    summary = ", ".join(f"{counts[r]} {r}" for r in RECOMMENDATIONS if counts[r]) or "no decision"
    flag = f" [{run['status'].upper()}]" if run["status"] in ("partial", "failed") else ""
    return f"replaybench {last}: {summary}{flag}"


def chart_pngs(context: dict[str, Any]) -> dict[str, bytes]:
    """PNG charts from `report.charts.png_charts`. A chart that cannot be drawn costs the e-mail
    its charts, not the e-mail."""
    try:
        pngs = report_charts.png_charts(context) or {}
    except Exception as exc:  # the charts are decoration: never lose the e-mail for them
        log.warning("e-mail charts skipped: %s", scrub(f"{type(exc).__name__}: {exc}"))
        return {}
    return {str(name): data for name, data in pngs.items()
            if isinstance(data, bytes | bytearray) and bytes(data[:8]) == b"\x89PNG\r\n\x1a\n"}


def _cid(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", name) + "@replaybench"


def render_bodies(context: dict[str, Any], charts: list[dict[str, str]], report_name: str,
                  limit: int = MAX_HTML_BYTES) -> tuple[str, str]:
    """(plain text, HTML with inlined CSS) for the message. HTML over `limit` bytes loses its
    per-model detail rows and says so (the summary itself is not cut further)."""
    import css_inline

    env = environment()
    values = {**context, "subject": subject(context), "charts": charts, "report_name": report_name,
              **publish.links(context["run"])}
    text = env.overlay(autoescape=False).get_template("email.txt.j2").render(**values)
    template = env.get_template("email.html.j2")
    attempts = [
        {"detail": True, "dropped": None},
        {"detail": False, "dropped": "The per-model detail rows are left out to keep this e-mail "
                                     "under 100 KB; they are in the attached report."},
    ]
    html = ""
    for extra in attempts:
        html = css_inline.inline(template.render(**values, **extra))
        if len(html.encode("utf-8")) < limit:
            break
    return text, html


def build_message(settings: Settings, context: dict[str, Any], report_path: Path,
                  charts: dict[str, bytes] | None = None) -> EmailMessage:
    """The whole e-mail: mixed[alternative[text/plain, related[text/html, image/png…]], report]."""
    assert settings.email is not None
    charts = chart_pngs(context) if charts is None else charts
    refs = [{"name": n, "cid": _cid(n), "title": n.replace("_", " ")} for n in charts]
    text, html = render_bodies(context, refs, report_path.name)
    msg = EmailMessage()
    msg["Subject"] = subject(context)
    msg["From"] = settings.email.from_
    msg["To"] = ", ".join(settings.email.to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="replaybench")
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    html_part = msg.get_payload()[-1]
    used = [r for r in refs if f"cid:{r['cid']}" in html]
    for ref in used:
        html_part.add_related(charts[ref["name"]], maintype="image", subtype="png",
                              cid=f"<{ref['cid']}>", disposition="inline",
                              filename=f"{ref['name']}.png")
    # as bytes (base64): the report arrives exactly as written, line endings included
    msg.add_attachment(report_path.read_bytes(), maintype="text", subtype="html",
                       filename=report_path.name, params={"charset": "utf-8"})
    return msg


# --- sending -------------------------------------------------------------------------------------

def send(settings: Settings, msg: EmailMessage) -> None:
    """Send with the configured Prefect block, or else the `smtp:` settings; raises on failure."""
    email = settings.email
    assert email is not None
    if email.block:
        server = _block_server(email.block)
    else:
        smtp = email.smtp
        username, password = smtp.credentials()  # resolved (and registered) before connecting
        if smtp.ssl:
            server = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=TIMEOUT_S,
                                      context=ssl.create_default_context())
        else:
            server = smtplib.SMTP(smtp.host, smtp.port, timeout=TIMEOUT_S)
        try:
            if smtp.starttls and not smtp.ssl:
                server.starttls(context=ssl.create_default_context())
            if username or password:
                server.login(username or "", password or "")
        except BaseException:
            server.close()
            raise
    with server:
        server.send_message(msg, from_addr=email.from_, to_addrs=email.to)


def _block_server(name: str) -> smtplib.SMTP:
    """A connected, logged-in server from a Prefect `EmailServerCredentials` block."""
    try:
        from prefect_email import EmailServerCredentials
    except ImportError:
        raise ConfigError(f"email.block is {name!r}, but prefect-email is not installed: install it "
                          "(pip install prefect-email) or configure email.smtp instead") from None
    creds = EmailServerCredentials.load(name)
    register_secret(getattr(creds, "username", None))
    password = getattr(creds, "password", None)
    if password is not None and hasattr(password, "get_secret_value"):
        register_secret(password.get_secret_value())
    insecure = str(getattr(creds.smtp_type, "name", creds.smtp_type)).upper() == "INSECURE"
    if insecure and (creds.username or password) and not on_this_machine(f"smtp://{creds.smtp_server}"):
        # as for email.smtp: no credentials in clear, except to a relay on this machine
        raise ConfigError(f"the e-mail block {name!r} would send its credentials without TLS to "
                          f"{creds.smtp_server}: set its smtp_type to SSL or STARTTLS")
    server = creds.get_server()
    if getattr(server, "sock", None) is not None:
        server.sock.settimeout(TIMEOUT_S)
    return server


# --- the outcome ---------------------------------------------------------------------------------

def record(wh: Warehouse, run_id: str, status: str, error: str | None = None) -> None:
    """How e-mailing went, on the run's row (with the time, when sent)."""
    runs.record_email(wh, run_id, status, error, datetime.now(UTC) if status == SENT else None)


def notify(settings: Settings, run_id: str, report_path: str | Path | None) -> str:
    """E-mail the run's outcome; record and return `sent`, `failed` or `skipped`. Never raises
    for a failure to build or send the message. The warehouse is held to build the message and
    to record the outcome, not while the mail server is talked to."""
    if settings.email is None or not settings.email.enabled:
        with open_warehouse(settings.warehouse) as wh:
            record(wh, run_id, SKIPPED)
        return SKIPPED
    status, reason = SENT, None
    try:
        with open_warehouse(settings.warehouse) as wh:
            path = Path(report_path or runs.get(wh, run_id)["report_path"])
            context = {**report_context(wh, settings, run_id), "tz": settings.tz}
        send(settings, build_message(settings, context, path))
    except Exception as exc:
        status, reason = FAILED, scrub(f"{type(exc).__name__}: {exc}")
        log.warning("e-mail of run %s not sent: %s", run_id, reason)
    with open_warehouse(settings.warehouse) as wh:
        record(wh, run_id, status, reason)
    return status

