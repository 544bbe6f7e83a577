"""The report as a reader gets it: hostile text from logs and models arrives as text, and the page
renders in headless Chromium at desktop and phone widths without overflowing, clipping a table's
last column or running a script; an answer that arrived in one piece has no output speed.
Screenshots are kept in test-artifacts/ for a person to look at."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date
from pathlib import Path

import pytest
from aiohttp import web
from jinja2 import ChoiceLoader, DictLoader, Environment

from flows.nightly import nightly
from replaybench.config import load_settings
from replaybench.ingest import ingest_paths
from replaybench.report import page
from replaybench.report.render import environment
from replaybench.sim.server import ThreadedFleet
from replaybench.warehouse import open_warehouse

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


PIECE_GAP_S = 0.25  # between the pieces of a streamed answer, and after the last one (longer
# than a busy 2-core runner keeps the client from reading: at 0.1 s both pieces were once read
# at once for every request, under the whole suite)
ANSWER_TOKENS = 12
PIECES = ("one-piece", "two-pieces")


async def pieces_then_done(request: web.Request, pieces: list[str]) -> web.StreamResponse:
    """An SSE answer in `pieces`, each sent on its own after a pause, then the end of the stream
    after another pause (so that the time to [DONE] is no measure of the answer's speed)."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)

    def event(payload: dict) -> bytes:
        return f"data: {json.dumps(payload)}\n\n".encode()

    for piece in pieces:
        await response.write(event({"choices": [{"index": 0, "delta": {"content": piece}}]}))
        await asyncio.sleep(PIECE_GAP_S)
    await response.write(event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                                "usage": {"prompt_tokens": 20,
                                          "completion_tokens": ANSWER_TOKENS}}))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


class HostileFleet(ThreadedFleet):
    """The fleet, except that the model `hostile` answers with markup and template syntax, and
    `one-piece` and `two-pieces` stream their answers in one piece and in two."""

    def __init__(self) -> None:
        super().__init__(time_scale=0)

        @web.middleware
        async def hostile(request: web.Request, handler):
            if request.method == "POST" and request.path.endswith("/chat/completions"):
                body = json.loads(await request.read())
                if body.get("model") == "one-piece":
                    return await pieces_then_done(request, ["billing"])
                if body.get("model") == "two-pieces":
                    return await pieces_then_done(request, ["bill", "ing"])
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
                                           "model": "glm-5.2"},
                                          *({"name": name, "base_url": fleet.base_url,
                                             "model": name} for name in PIECES)])
        settings = load_settings(config)
        ingest_paths(settings.warehouse, [hostile_logs(folder / "evil.jsonl")])
        result = asyncio.run(nightly(run_date=date(2026, 11, 28), config=str(config)))
    with open_warehouse(settings.warehouse) as wh:
        speeds = wh.frame("SELECT model, output_tps, ttft_ms FROM replays WHERE run_id = $r AND "
                          "list_contains($m, model) AND status = 'ok'", r=result["run_id"],
                          m=list(PIECES)).to_dicts()
    return Path(result["report"]), speeds


def test_everything_from_logs_and_models_arrives_as_text(hostile_report):
    html = hostile_report[0].read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert "<img" not in html and 'href="javascript:' not in html  # no tag, no live link
    assert "<h1 id='broken'>" not in html
    assert "&lt;script&gt;document.title=" in html      # shown, as text
    assert "{{ 7 * 7 }} {% if true %}jinja ran{% endif %}" in html  # template syntax, not run
    assert "/support/&lt;b&gt;triage&lt;/b&gt;" in html


def test_an_answer_that_arrived_in_one_piece_has_no_output_speed(hostile_report):
    report, speeds = hostile_report
    one = [r for r in speeds if r["model"] == "one-piece"]
    two = [r for r in speeds if r["model"] == "two-pieces"]
    assert one and two
    assert all(r["ttft_ms"] is not None for r in one)  # its first token did arrive, and is timed
    assert {r["output_tps"] for r in one} == {None}    # its speed is no measure: none, not 10⁵
    # two pieces sent PIECE_GAP_S apart have a speed (unless a busy client read both at once)
    assert any(r["output_tps"] for r in two)
    html = report.read_text(encoding="utf-8")
    assert money_cells(html, "output speed")["one-piece"] == "—"
    assert money_cells(html, "output speed")["two-pieces"].endswith("tok/s")


def money_cells(html: str, column: str) -> dict[str, str]:
    """One column of the money, frontier and trend tables, by model."""
    row = rf'<tr><td><b>([\w.-]+)</b></td>(?:(?!</tr>).)*?data-label="{column}">([^<]*)</td>'
    return dict(re.findall(row, html, re.S))


def test_a_model_without_a_cost_is_neither_on_the_frontier_nor_dominated(hostile_report):
    frontier = money_cells(hostile_report[0].read_text(encoding="utf-8"), "quality–cost frontier")
    assert frontier["one-piece"] == "—"  # no price: no cost per task, no place on the plane
    assert frontier["production"] in ("on the frontier", "dominated")


# The right edge of every table's last column, against the box that holds the table and the
# window: a column past either is cut off (or needs a sideways scroll the reader may not find).
CLIPPED_TABLES = """[...document.querySelectorAll('table')].map(t => {
  const box = (t.closest('.scroll') || t.parentElement).getBoundingClientRect();
  const ends = [...t.querySelectorAll('tbody tr > :last-child')].map(c => c.getBoundingClientRect().right);
  return [t.getAttribute('aria-label') || t.rows[0].cells[0].textContent, Math.max(...ends),
          Math.min(box.right, window.innerWidth)];
}).filter(([name, end, limit]) => end > limit + 0.5)"""


@pytest.mark.skipif(chromium_path() is None, reason="no chromium: .ci/run installs it")
@pytest.mark.parametrize("width, height, name", [(1280, 900, "desktop"), (390, 844, "phone")])
def test_the_report_renders_in_chromium_without_overflow_or_scripts(hostile_report, width,
                                                                     height, name):
    report, _ = hostile_report
    browser = Browser()
    try:
        seen = browser.render(report.as_uri(), width, height, {
            "clipped": CLIPPED_TABLES,
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
    assert seen["clipped"] == [], f"tables cut off at {width} px: {seen['clipped']}"
    assert seen["first_screen"]  # the decision is on the first screen
    assert (ARTIFACTS / f"report-{name}.png").stat().st_size > 10_000



EXTRA = '  <p class="extra">{{ s.prompt_version }}: {{ s.rows|length }} rows</p>\n'
GENERATED = re.compile(r"Generated [^<]* UTC")  # the minute it was rendered


def test_a_new_partial_is_on_the_page_in_its_place_and_nothing_else_moves(hostile_report,
                                                                           monkeypatch):
    report, _ = hostile_report
    settings = load_settings(report.parent.parent / "replaybench.yaml")
    with open_warehouse(settings.warehouse) as wh:
        before = page.report_html(wh, settings, report.stem)

        def with_extra() -> Environment:
            env = environment()
            env.loader = ChoiceLoader([DictLoader({"sections/prompt_version/45-extra.html.j2": EXTRA}),
                                       env.loader])
            return env

        monkeypatch.setattr(page, "environment", with_extra)
        after = page.report_html(wh, settings, report.stem)
    added = re.compile(r'  <p class="extra">[^<]*</p>\n')
    assert len(added.findall(after)) == after.count('<section id="pv-') > 0  # per prompt_version
    first = added.search(after).start()
    assert after.rfind(": models\">", 0, first) > after.rfind("<h2>", 0, first)  # after 10-models
    assert after.index("<h3>Money, frontier and trend</h3>", first) < after.index("<h2>", first)
    assert GENERATED.sub("", added.sub("", after)) == GENERATED.sub("", before)
