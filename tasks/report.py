"""Report: one self-contained HTML file per run, keyed by prompt_version.

Its first screen carries the decision (per prompt_version: the best candidate, its recommendation,
and what it would cost); below, a section per prompt_version with the full table and a few failing
answers next to production's. Everything that came from logs or models is autoescaped. The step
then publishes the report and the index of runs (`replaybench.report.publish`) and links the
published page from the Prefect UI.
"""

from __future__ import annotations

import difflib
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape
from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench import charts, runs
from replaybench.checks.docs import data_docs_pages
from replaybench.config import Settings
from replaybench.decide import drift, evidence
from replaybench.decide import extras as decisions
from replaybench.decide.rules import RANK
from replaybench.redact import Redactor
from replaybench.report import publish
from replaybench.report.index import index_context, render_index
from replaybench.report.render import environment
from replaybench.warehouse import Warehouse, open_warehouse
from tasks.redact import redacted_candidates, redaction_line

log = logging.getLogger(__name__)

FAILURES_PER_MODEL = 3
REPORT_ARTIFACT = "replaybench-report"  # one key for every night's report: the UI keeps the history
DIFF_MAX_WORDS = 3000  # beyond this, answers are shown without a diff (SequenceMatcher is quadratic)


def best_candidate(rows: list[dict[str, Any]], baseline: str,
                   exclude: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """The candidate to act on: best recommendation, then pass rate, then cost per success
    (a replay of production itself, the noise floor, is no candidate)."""
    candidates = [r for r in rows
                  if r["model"] != baseline and r["model"] not in exclude and r["recommendation"]]
    if not candidates:
        return None
    return min(candidates, key=lambda r: (RANK[r["recommendation"]], -(r["pass_rate"] or 0),
                                          r["cost_per_success_usd"] or float("inf")))


def others_line(rows: list[dict[str, Any]], best: dict[str, Any] | None, baseline: str,
                exclude: frozenset[str] = frozenset()) -> str:
    """The other candidates' decisions in one line, for the first screen: "glm-5.2 hold (open,
    ≤46 nights) · minimax-m3 reject (regressed since 2026-11-20)"."""
    parts = []
    for r in sorted(rows, key=lambda r: (RANK.get(r["recommendation"], 9), r["model"])):
        if r["model"] in (baseline, *exclude) or not r["recommendation"] or r is best:
            continue
        state = (r["verdict"] or "").replace("_", "-")
        when = (f" since {r['reached_on']}" if r.get("reached_on")
                else f", ≤{r['nights_left']} nights" if r.get("nights_left") is not None else "")
        parts.append(f"{r['model']} {r['recommendation']} ({state}{when})")
    return " · ".join(parts)


def window_label(run: dict[str, Any], settings: Settings) -> str:
    """The run's window as local days, e.g. '2026-11-27 (Europe/Berlin)'."""
    first = run["window_start"].astimezone(settings.tz).date()
    last = (run["window_end"].astimezone(settings.tz) - timedelta(seconds=1)).date()
    days = f"{first}" if first == last else f"{first} – {last}"
    return f"{days} ({settings.timezone})"


def _configured(settings: Settings, name: str) -> bool:
    return any(c.name == name for c in settings.candidates)


def _words(text: str) -> list[tuple[str, str]]:
    """(leading whitespace, word) pairs; a trailing whitespace run becomes ('  ', '')."""
    pairs = [(m.group(1), m.group(2)) for m in re.finditer(r"(\s*)(\S+)", text)]
    tail = text[len(text.rstrip()):] if text.strip() else text
    return pairs + ([(tail, "")] if tail else [])


def _render(pairs: list[tuple[str, str]], changed: list[tuple[int, int]]) -> Markup:
    """The text, escaped segment by segment, with each run of changed words in one <mark>."""
    out, i = [], 0
    for start, end in changed:
        out += [escape(ws) + escape(w) for ws, w in pairs[i:start]]
        out += [escape(pairs[start][0]), Markup("<mark>"), escape(pairs[start][1])]
        out += [escape(ws) + escape(w) for ws, w in pairs[start + 1:end]]
        out.append(Markup("</mark>"))
        i = end
    out += [escape(ws) + escape(w) for ws, w in pairs[i:]]
    return Markup("").join(out)


def word_diff(candidate: str | None, production: str | None) -> tuple[Markup, Markup] | None:
    """Both answers as safe markup with the words that differ wrapped in <mark> (word-level
    SequenceMatcher; whitespace kept as it was). Every piece of model text is escaped; only the
    <mark> tags are markup. None when an answer is missing or too long to diff."""
    if candidate is None or production is None:
        return None
    a, b = _words(candidate), _words(production)
    if len(a) > DIFF_MAX_WORDS or len(b) > DIFF_MAX_WORDS:
        return None
    a_words = [w for _, w in a if w]
    b_words = [w for _, w in b if w]
    ops = difflib.SequenceMatcher(None, a_words, b_words, autojunk=False).get_opcodes()
    return (_render(a, [(i1, i2) for tag, i1, i2, _, _ in ops if tag != "equal" and i2 > i1]),
            _render(b, [(j1, j2) for tag, _, _, j1, j2 in ops if tag != "equal" and j2 > j1]))


def _data_docs_links(settings: Settings, run_id: str) -> dict[str, str]:
    """{prompt_version: its Data Docs page}, relative to the report, where a reader of the report
    can follow them: beside the local report, or where `reports_dir` is served as it is. A report
    published to a folder or bucket is copied without the Data Docs site, so it links none."""
    if settings.report.publish_kind not in (None, "url"):
        return {}
    return data_docs_pages(settings, run_id)


def report_context(wh: Warehouse, settings: Settings, run_id: str) -> dict[str, Any]:
    """Everything the template shows, read from the warehouse (so a stored run re-renders)."""
    run = runs.get(wh, run_id)
    baseline = run["baseline"] or settings.baseline
    scores = wh.frame("SELECT * FROM scores WHERE run_id = $r ORDER BY prompt_version, model",
                      r=run_id).to_dicts()
    failures = redacted_failures(
        wh.frame("failures", run_id=run_id, per_model=FAILURES_PER_MODEL).to_dicts(),
        Redactor(settings.redact.patterns))
    check_failures = wh.frame("check_failures", run_id=run_id).to_dicts()
    candidates = wh.frame("replay_summary", run_id=run_id).to_dicts()
    totals = wh.frame("weighted_totals", run_id=run_id, baseline=baseline).to_dicts()
    volume = {v["prompt_version"]: v["monthly_requests"]
              for v in wh.frame("monthly_volume", run_id=run_id).to_dicts()}
    history = wh.frame("score_history", run_id=run_id, runs=decisions.TREND_RUNS).to_dicts()
    noise = settings.noise_floor
    standing = standing_rows(wh, run, scores)
    sections = []
    for pv in wh.frame("prompt_versions", run_id=run_id).to_dicts():
        name = pv["prompt_version"]
        rows = [s for s in scores + standing if s["prompt_version"] == name]
        rows.sort(key=lambda r: (r["model"] != baseline, RANK.get(r["recommendation"], 9),
                                 -(r["pass_rate"] or 0)))
        base = next((r for r in rows if r["model"] == baseline), None)
        frontier = decisions.pareto_frontier(rows)
        for r in rows:
            past = [h for h in history if h["prompt_version"] == name and h["model"] == r["model"]]
            r.update(on_frontier=r["model"] in frontier if decisions.plottable(r) else None,
                     trend=decisions.trend(past),
                     projection=decisions.monthly_projection(r, base, volume.get(name)))
            r["canary"] = decisions.litellm_canary(name, pv["production_model"],
                                                   settings.candidate(r["model"])) \
                if r["recommendation"] == "canary" and _configured(settings, r["model"]) \
                and r["model"] not in noise else None
        past_production = [h for h in history
                           if h["prompt_version"] == name and h["model"] == baseline]
        sections.append({
            **pv,
            "anchor": "pv-" + "".join(ch if ch.isalnum() else "-" for ch in name),
            "rows": rows,
            "baseline_row": base,
            "best": (best := best_candidate(rows, baseline, noise)),
            "others": others_line(rows, best, baseline, noise),
            "noise_floor": next((r for r in rows if r["model"] in noise), None),
            "drift": drift.production_drift([h for h in past_production if h["run_id"] != run_id],
                                            base["passed"], base["n"]) if base else None,
            "monthly_requests": volume.get(name),
            "failures": [{**f, "diff": word_diff(f["candidate_answer"], f["production_answer"])}
                         for f in failures if f["prompt_version"] == name],
            "checks": [c for c in check_failures if c["prompt_version"] == name and c["failed"]],
        })
    for section in sections:  # inline SVG made by charts.py from numbers; model names escaped there
        section["charts"] = {name: Markup(svg) for name, svg in charts.section_svgs(section).items()}
    return {
        "run": run,
        "window_label": window_label(run, settings),
        "baseline": baseline,
        "sections": sections,
        "data_docs": _data_docs_links(settings, run_id),
        "totals": totals,
        "candidates": candidates,
        "simulated": any(c["simulated"] for c in candidates),
        "sample": settings.sample,
        "margin": settings.decide.margin,
        "noise_floor_models": noise,
        "quotas": wh.frame("SELECT * FROM sample_quotas WHERE run_id = $r ORDER BY prompt_version",
                           r=run_id).to_dicts(),
        **_spend(wh, run_id, scores),
        "redaction": redaction_line(wh, run_id),
        "redacted_for": redacted_candidates(wh, run_id),
        "generated_at": datetime.now(UTC),
    }


def _spend(wh: Warehouse, run_id: str, scores: list[dict[str, Any]]) -> dict[str, Any]:
    """What the night paid candidates, and what a fixed-size design would pay per decision."""
    spent = wh.execute("SELECT coalesce(sum(cost_usd), 0) FROM replays WHERE run_id = $r AND NOT "
                       "coalesce(from_cache, false)", {"r": run_id}).fetchone()[0]
    decided = [s for s in scores if s.get("fixed_pairs")]
    if not decided:
        return {"spent_usd": spent, "fixed_usd": None, "fixed_pairs": None, "mean_pairs": None}
    fixed = sum(s["fixed_pairs"] for s in decided) / len(decided)
    per_request = [s["cost_per_task_usd"] for s in decided if s["cost_per_task_usd"] is not None]
    reached = [s["decision_pairs"] for s in decided if s["verdict"] != "open"]
    return {"spent_usd": spent, "fixed_pairs": fixed,
            "mean_pairs": sum(reached) / len(reached) if reached else None,
            "fixed_usd": fixed * sum(per_request) / len(per_request) if per_request else None}


SHOWN_TEXTS = ("user_message", "candidate_answer", "production_answer", "reference", "reasons")


def redacted_failures(failures: list[dict[str, Any]], redactor: Redactor) -> list[dict[str, Any]]:
    """The failing answers as the report may show them: every text from the logs or a model —
    the request, both answers, the reference and the checks' reasons (which quote answers) —
    with personal data replaced, one set of placeholders per request so the diff still lines up.
    The report and the e-mail leave the warehouse; raw text stays in it."""
    out = []
    for f in failures:
        texts, _ = redactor.redact_messages([f[k] if f[k] is not None else "" for k in SHOWN_TEXTS])
        out.append({**f, **{k: (t if f[k] is not None else None)
                            for k, t in zip(SHOWN_TEXTS, texts, strict=True)}})
    return out


def standing_rows(wh: Warehouse, run: dict[str, Any], scores: list[dict[str, Any]]
                  ) -> list[dict[str, Any]]:
    """A row for each live decision that was not replayed tonight (reached on an earlier night):
    its verdict and recommendation stand, so the report still carries them."""
    tonight = {(s["prompt_version"], s["model"]) for s in scores}
    blank = dict.fromkeys(wh.frame("SELECT * FROM scores LIMIT 0").columns)
    rows = []
    for d in wh.frame("SELECT * FROM decisions WHERE closed_at IS NULL AND opened_on < $day "
                      "ORDER BY prompt_version, candidate", day=run["run_date"]).to_dicts():
        if (d["prompt_version"], d["candidate"]) in tonight:
            continue
        rows.append({**blank, "prompt_version": d["prompt_version"], "model": d["candidate"],
                     "verdict": d["state"], "recommendation": d["recommendation"],
                     "reason": d["reason"], "delta_vs_baseline": d["delta"],
                     "delta_low": d["delta_low"], "delta_high": d["delta_high"],
                     "decision_id": d["decision_id"], "decision_pairs": d["pairs"],
                     "decision_nights": d["nights"], "planned_pairs": d["planned_pairs"],
                     "fixed_pairs": d["fixed_pairs"], "reached_on": d["reached_on"],
                     "nights_left": evidence.nights_left(d), "standing": True})
    return rows


def render_report(wh: Warehouse, settings: Settings, run_id: str) -> Path:
    """Write reports/<run_id>.html, record it with the run, and return its path."""
    html = environment().get_template("report.html.j2").render(
        **report_context(wh, settings, run_id))
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    path = settings.reports_dir / f"{run_id}.html"
    path.write_text(html, encoding="utf-8")
    wh.execute("UPDATE runs SET report_path = $p WHERE run_id = $r", {"p": str(path), "r": run_id})
    render_index(wh, settings)
    return path


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


def report_and_publish(settings: Settings, run_id: str) -> tuple[Path, publish.Published]:
    """Render the report and the local index, publish both where `report.publish_to` says
    (without holding the warehouse), and record how that went on the run. A failure to publish
    is recorded, never raised."""
    with open_warehouse(settings.warehouse) as wh:
        path = render_report(wh, settings, run_id)
        index = index_context(wh)
    outcome = publish.publish(settings, run_id, path, index)
    if outcome.status == publish.FAILED:
        log.warning("report of run %s not published: %s", run_id, outcome.error)
    with open_warehouse(settings.warehouse) as wh:
        publish.record(wh, run_id, outcome)
    return path, outcome


@task(name="report", cache_policy=NO_CACHE)
def report_task(settings: Settings, run_id: str) -> str:
    path, outcome = report_and_publish(settings, run_id)
    with open_warehouse(settings.warehouse) as wh:
        publish_artifacts(wh, run_id, outcome.url or path.as_uri(), outcome.url is not None)
    return str(path)
