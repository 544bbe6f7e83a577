"""The report as a reader gets it: hostile text from logs and models arrives as text, and the page
renders in headless Chromium at desktop and phone widths without overflowing or running a script.
Screenshots are kept in test-artifacts/ for a person to look at."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path

import pytest
from aiohttp import web

from flows.nightly import nightly
from replaybench.config import load_settings
from replaybench.ingest import ingest_paths
from replaybench.sim.server import ThreadedFleet

from .browser import Browser, chromium_path
from .conftest import ROOT, write_config

ARTIFACTS = ROOT / "test-artifacts"
HOSTILE = [
    "<script>document.title='pwned'</script>",
    "<img src=x onerror=\"document.title='pwned'\">",
    "<a href=\"javascript:document.title='pwned'\">click me</a>",
    "</pre></td></tr></table></section><h1 id='broken'>layout broken</h1>",
    "{{ 7 * 7 }} {% if true %}jinja ran{% endif %}",
]


class HostileFleet(ThreadedFleet):
    """The fleet, except that the model `hostile` answers with markup and template syntax."""

    def __init__(self) -> None:
        super().__init__(time_scale=0)

        @web.middleware
        async def hostile(request: web.Request, handler):
            if request.method == "POST" and request.path.endswith("/chat/completions"):
                body = json.loads(await request.read())
                if body.get("model") == "hostile":
                    text = " ".join(HOSTILE)
                    return web.json_response({
                        "id": "x", "object": "chat.completion", "model": "hostile",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": text}}],
                        "usage": {"prompt_tokens": 20, "completion_tokens": 40}})
            return await handler(request)

        self.app.middlewares.insert(0, hostile)


def hostile_logs(path: Path) -> Path:
    rows = []
    for i in range(12):
        payload = HOSTILE[i % len(HOSTILE)]
        rows.append({
            "request_id": f"evil-{i}", "ts": f"2026-11-27T1{i % 10}:00:00Z",
            "endpoint": "/support/<b>triage</b>", "model_id": "openai/gpt-5-mini",
            "prompt_version": "triage@v4",
            "request": {"model": "gpt-5-mini", "max_tokens": 16, "messages": [
                {"role": "system", "content": "Classify the ticket."},
                {"role": "user", "content": f"Ticket {i}: {payload}"}]},
            "response": {"choices": [{"message": {"role": "assistant", "content": payload}}],
                         "usage": {"prompt_tokens": 30, "completion_tokens": 5}},
            "latency_ms": 500, "ttft_ms": 100, "cost_usd": 0.0001, "status": "ok",
            "reference": payload})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory, prefect_harness):
    folder = tmp_path_factory.mktemp("hostile")
    with HostileFleet() as fleet:
        config = write_config(folder, fleet.base_url, sample={"per_prompt_version": 12, "seed": 7},
                              candidates=[{"name": "hostile", "base_url": fleet.base_url,
                                           "model": "hostile", "stream": False},
                                          {"name": "glm-5.2", "base_url": fleet.base_url,
                                           "model": "glm-5.2"}])
        settings = load_settings(config)
        ingest_paths(settings.warehouse, [hostile_logs(folder / "evil.jsonl")])
        result = asyncio.run(nightly(run_date=date(2026, 11, 28), config=str(config)))
    return Path(result["report"])


def test_everything_from_logs_and_models_arrives_as_text(hostile_report):
    html = hostile_report.read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert "<img" not in html and 'href="javascript:' not in html  # no tag, no live link
    assert "<h1 id='broken'>" not in html
    assert "&lt;script&gt;document.title=" in html      # shown, as text
    assert "{{ 7 * 7 }} {% if true %}jinja ran{% endif %}" in html  # template syntax, not run
    assert "/support/&lt;b&gt;triage&lt;/b&gt;" in html


@pytest.mark.skipif(chromium_path() is None, reason="no chromium: .ci/run installs it")
@pytest.mark.parametrize("width, height, name", [(1280, 900, "desktop"), (390, 844, "phone")])
def test_the_report_renders_in_chromium_without_overflow_or_scripts(hostile_report, width,
                                                                     height, name):
    browser = Browser()
    try:
        seen = browser.render(hostile_report.as_uri(), width, height, {
            "title": "document.title",
            "scripts": "document.scripts.length",
            "overflow": "document.documentElement.scrollWidth - window.innerWidth",
            "broken": "document.getElementById('broken') !== null",
            "first_screen": "document.querySelector('section[aria-label=decision]')"
                            ".getBoundingClientRect().top < window.innerHeight",
        }, screenshot=ARTIFACTS / f"report-{name}.png")
    finally:
        browser.close()
    assert seen["title"].startswith("replaybench")  # no payload ran
    assert seen["scripts"] == 0 and not seen["broken"]
    assert seen["overflow"] <= 0, f"the page is {seen['overflow']} px wider than a {name} screen"
    assert seen["first_screen"]  # the decision is on the first screen
    assert (ARTIFACTS / f"report-{name}.png").stat().st_size > 10_000
