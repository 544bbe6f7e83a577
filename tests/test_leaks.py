"""Nothing personal leaves: the whole request body is redacted (parameters too), every endpoint is
redacted unless the config trusts it, and a night seeded with personal data writes none of it
anywhere outside `logs` — not in what the endpoint received, the warehouse's other tables, the
journals, the report or the e-mail and its attachment."""

from __future__ import annotations

import asyncio
import email
import json
from datetime import UTC, date, datetime
from email import policy
from pathlib import Path

import polars as pl
import pytest
from aiosmtpd.controller import Controller

from flows.nightly import nightly
from replaybench.config import Candidate, Judge, load_settings, on_this_machine
from replaybench.redact import Redactor
from replaybench.redact.requests import redact_request
from replaybench.report.context import redacted_failures
from replaybench.warehouse import open_warehouse

from .conftest import write_config
from .prefect_server import free_port
from .servers import Keep, RecordingFleet

RUN_DATE = date(2026, 11, 28)
N = 5
EMAILS = [f"leak.victim{i}@mail.example.org" for i in range(N)]
PHONES = [f"+1 (555) 201-44{i}{i}" for i in range(N)]
CARDS = ["4111 1111 1111 1111", "5500-0055-5555-5559", "4012888888881881", "6011 1111 1111 1117",
         "5105105105105100"]
KEY = "sk-proj-Zz98Yy76Xx54Ww32Vv10Uu"
FORBIDDEN = EMAILS + PHONES + CARDS + [KEY]


def rows() -> list[dict]:
    """Log rows with personal data in the messages, in every kind of parameter (`user`,
    `metadata`, a tool's description and a tool call's arguments), and in the reference."""
    out = []
    for i in range(N):
        messages = [{"role": "user", "content": f"Refund card {CARDS[i]} and mail {EMAILS[i]}."},
                    {"role": "assistant", "content": None, "tool_calls": [{
                        "id": f"call_{i}", "type": "function", "function": {
                            "name": "lookup", "arguments": json.dumps({"phone": PHONES[i]})}}]},
                    {"role": "tool", "tool_call_id": f"call_{i}", "content": f"found {EMAILS[i]}"}]
        params = {"temperature": 0, "max_tokens": 64, "user": EMAILS[i],
                  "metadata": {"phone": PHONES[i], "api_key": KEY},
                  "tools": [{"type": "function", "function": {
                      "name": "lookup", "description": f"escalate to {EMAILS[i]}",
                      "parameters": {"type": "object", "properties": {}}}}]}
        out.append({"request_id": f"req_leak_{i}", "ts": datetime(2026, 11, 27, 9 + i, tzinfo=UTC),
                    "endpoint": "/support/refund", "model_id": "openai/gpt-5-mini",
                    "prompt_version": "refund@v9", "messages": json.dumps(messages),
                    "params": json.dumps(params), "output_text": f"Refunded; receipt to {EMAILS[i]}",
                    "reference": f"Refund issued to {EMAILS[i]} for card {CARDS[i]}",
                    "input_tokens": 100, "output_tokens": 8, "latency_ms": 500.0, "status": "ok",
                    "source_format": "openai"})
    return out


def found_in(text: str) -> list[str]:
    return [v for v in FORBIDDEN if v in text]


def test_the_whole_request_body_is_redacted_with_one_set_of_placeholders():
    row = rows()[0]
    body, counts = redact_request(Redactor(), json.loads(row["messages"]), json.loads(row["params"]))
    text = json.dumps(body)
    assert found_in(text) == []
    # the same address is the same placeholder in the messages and in every parameter
    assert body["params"]["user"] == "<EMAIL_1>" and "<EMAIL_1>" in body["messages"][0]["content"]
    assert body["params"]["tools"][0]["function"]["description"] == "escalate to <EMAIL_1>"
    assert json.loads(body["messages"][1]["tool_calls"][0]["function"]["arguments"]) == \
        {"phone": "<PHONE_1>"}
    assert body["params"]["temperature"] == 0 and body["params"]["max_tokens"] == 64
    assert counts["EMAIL"] == 4 and counts["PHONE"] == 2 and counts["CARD"] == 1


def test_every_endpoint_is_redacted_unless_the_config_trusts_it(tmp_path):
    settings = load_settings(write_config(tmp_path))
    gateway = Candidate(name="gw", base_url="http://localhost:4000/v1", model="gpt-5")
    fleet = Candidate(name="sim", base_url="http://127.0.0.1:8400/v1", model="glm-5.2",
                      trusted=True)
    remote = Candidate(name="glm", base_url="https://api.z.ai/api/paas/v4", model="glm-5.2")
    judge = Judge(base_url="http://127.0.0.1:8400/v1", model="gpt-5")
    assert settings.redact.enabled == "auto"
    assert [settings.needs_redaction(c) for c in (gateway, fleet, remote, judge)] == \
        [True, False, True, True]
    always = load_settings(write_config(tmp_path, redact={"enabled": "always"}))
    assert always.needs_redaction(fleet)
    # a name that merely starts like a loopback address is somebody else's host
    assert not on_this_machine("http://127.attacker.example/v1")
    assert on_this_machine("http://127.0.0.2:9/v1") and on_this_machine("http://[::1]:9/v1")
    assert not Candidate(name="x", base_url="http://127.attacker.example/v1", model="m").is_loopback


def test_the_report_shows_failing_answers_redacted_and_still_diffable():
    failure = {"user_message": f"mail {EMAILS[0]}", "candidate_answer": f"sent to {EMAILS[0]}",
               "production_answer": f"sent to {EMAILS[0]} and {PHONES[0]}",
               "reference": None, "reasons": f"expected '{CARDS[0]}'", "model": "m"}
    shown = redacted_failures([failure], Redactor())[0]
    assert found_in(json.dumps(shown)) == []
    assert shown["candidate_answer"] == "sent to <EMAIL_1>"          # same placeholder in both
    assert shown["production_answer"] == "sent to <EMAIL_1> and <PHONE_1>"
    assert shown["reference"] is None and shown["model"] == "m"


@pytest.fixture(scope="module")
def seeded_night(tmp_path_factory, prefect_harness):
    """A whole night on logs full of personal data, against candidates that are not trusted (so
    redacted), mailed to a real SMTP server on loopback."""
    folder = tmp_path_factory.mktemp("leaks")
    handler = Keep()
    smtp = Controller(handler, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        with RecordingFleet() as fleet:
            config = write_config(
                folder, fleet.base_url, sample={"per_prompt_version": 40, "seed": 7},
                candidates=[{"name": "glm-5.2", "base_url": fleet.base_url, "model": "glm-5.2",
                             "trusted": False}],
                email={"to": ["team@example.com"], "from": "rb@example.com",
                       "smtp": {"host": "127.0.0.1", "port": smtp.port}})
            settings = load_settings(config)
            with open_warehouse(settings.warehouse) as wh:
                wh.insert("logs", pl.DataFrame(rows()))
            result = asyncio.run(nightly(run_date=RUN_DATE, config=str(config)))
            bodies = list(fleet.bodies)
    finally:
        smtp.stop()
    return settings, result, bodies, handler.envelopes


def test_a_seeded_night_writes_none_of_the_personal_data_anywhere(seeded_night):
    settings, result, bodies, envelopes = seeded_night
    assert result["status"] == "completed" and len(bodies) == N and len(envelopes) == 1
    assert [found_in(b.decode()) for b in bodies] == [[]] * N
    assert all(b'"user": "<EMAIL_1>"' in b or b'"user":"<EMAIL_1>"' in b for b in bodies)

    with open_warehouse(settings.warehouse) as wh:
        tables = [t for (t,) in wh.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'")]
        leaks = {}
        for table in tables:
            if table == "logs":
                continue  # the logs are the source: they hold what was logged
            dump = wh.frame(f'SELECT * FROM "{table}"').write_csv()
            if found_in(dump):
                leaks[table] = found_in(dump)
        failed_reasons = wh.execute("SELECT count(*) FROM checks WHERE reason LIKE '%<EMAIL_%'"
                                    ).fetchone()[0]
    assert leaks == {}
    assert failed_reasons > 0  # the reference-match reasons quoted the data: redacted, not lost

    written = [p for p in settings.warehouse.parent.rglob("*")
               if p.is_file() and p != settings.warehouse and ".wal" not in p.name]
    leaks_in_files = {str(p): found_in(p.read_text(errors="replace")) for p in written
                      if p.suffix in {".html", ".jsonl", ".json", ".ndjson", ""}}
    assert {k: v for k, v in leaks_in_files.items() if v} == {}
    html = Path(result["report"]).read_text(encoding="utf-8")
    assert "&lt;EMAIL_1&gt;" in html and "Failing answers" in html   # shown, redacted, escaped
    assert "prompts redacted" in html

    async def artifacts() -> list[str]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.sorting import ArtifactSort

        found = []
        async with get_client() as client:  # every page, in a fixed order: 200 at most a page
            while page := await client.read_artifacts(offset=len(found), limit=200,
                                                      sort=ArtifactSort.ID_DESC):
                found += [json.dumps([a.key, a.description, a.data], default=str) for a in page]
        return found

    published = asyncio.run(artifacts())
    assert published and [found_in(a) for a in published if found_in(a)] == []  # Prefect's UI

    message = email.message_from_bytes(envelopes[0].content, policy=policy.default)
    texts = []
    for part in message.walk():
        if part.get_content_maintype() == "text":
            texts.append(part.get_content())
    assert len(texts) >= 3  # plain, HTML, the attached report
    assert [found_in(t) for t in texts] == [[]] * len(texts)


def test_a_judge_that_echoes_its_key_gets_it_into_no_reason():
    """An endpoint that answers 401 with the key it was given: the check's reason says so
    without the key (as a candidate's error does)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from replaybench.judge import JudgeItem, score_items

    class EchoKey(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"error": f"invalid key: {self.headers['Authorization']}"}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoKey)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        judge = Judge(base_url=f"http://127.0.0.1:{server.server_port}/v1", model="gpt-5")
        item = JudgeItem(question="q", answer="a", reference=None, rubric="r")
        [(score, why)] = score_items([item], judge, api_key="sk-judge-0123456789abcdef")
    finally:
        server.shutdown()
    assert score is None and "401" in why and "invalid key" in why
    assert "sk-judge-0123456789abcdef" not in why and "[REDACTED]" in why


def test_smtp_credentials_never_travel_in_clear(tmp_path):
    from replaybench.errors import ConfigError

    def smtp(**fields):
        return load_settings(write_config(tmp_path, email={
            "to": ["a@example.com"], "from": "b@example.com",
            "smtp": {"username_env": "SMTP_USER", "password_env": "SMTP_PASSWORD", **fields}}))

    with pytest.raises(ConfigError, match="without TLS: set starttls"):
        smtp(host="mail.example.com", port=25)
    with pytest.raises(ConfigError, match="without TLS"):  # the opt-in is for this machine only
        smtp(host="127.attacker.example", plaintext_on_loopback=True)
    assert smtp(host="mail.example.com", port=587, starttls=True).email.smtp.starttls
    assert smtp(host="mail.example.com", port=465, ssl=True).email.smtp.ssl
    assert smtp(host="127.0.0.1", plaintext_on_loopback=True).email.smtp.plaintext_on_loopback
