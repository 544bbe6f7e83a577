"""The report's sections, a registry. A section is one Jinja partial in `templates/sections/`
(the page's, in file-name order: `10-header`, `20-decision`, ...) or in
`templates/sections/prompt_version/` (repeated for each prompt_version, `s` being its core from
`report.context`); a section that needs data beyond that core registers one function here with
`@section("<name>")`, which adds its keys to the context. A new section: one partial, its
function if it needs one, and its test."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from markupsafe import Markup

from replaybench.checks.docs import data_docs_pages
from replaybench.config import Settings
from replaybench.decide import drift, extras
from replaybench.redact import Redactor
from replaybench.redact.audit import redacted_candidates, redaction_line
from replaybench.report import charts
from replaybench.report.context import redacted_failures
from replaybench.report.diff import word_diff
from replaybench.warehouse import Warehouse

PAGE, PER_PROMPT_VERSION = "sections/", "sections/prompt_version/"
FAILURES_PER_MODEL = 3

Data = Callable[[Warehouse, Settings, dict[str, Any]], None]
DATA: list[Data] = []   # in the order registered
NAMES: list[str] = []   # the section each one serves


def section(name: str) -> Callable[[Data], Data]:
    """Register `fn(wh, settings, context)` as the data of the partial `NN-<name>.html.j2`."""
    def register(fn: Data) -> Data:
        DATA.append(fn)
        NAMES.append(name)
        return fn
    return register


def partials(names: list[str], folder: str) -> list[str]:
    """The partials directly in `folder` (of the template names `names`), in file-name order."""
    return sorted(n for n in names if n.startswith(folder) and "/" not in n[len(folder):])


def section_name(partial: str) -> str:
    """'sections/40-charts.html.j2' -> 'charts'."""
    return re.sub(r"^\d+-", "", partial.rsplit("/", 1)[-1].removesuffix(".html.j2"))


# --- the page's sections -------------------------------------------------------------------------

@section("totals")
def totals(wh: Warehouse, settings: Settings, context: dict[str, Any]) -> None:
    """`totals`: every model over all traffic, weighted to the production mix."""
    context["totals"] = wh.frame("weighted_totals", run_id=context["run"]["run_id"],
                                 baseline=context["baseline"]).to_dicts()


@section("about")
def about(wh: Warehouse, settings: Settings, context: dict[str, Any]) -> None:
    """The sample, its quotas, the night's spend, the decision margin and the redaction."""
    run_id = context["run"]["run_id"]
    context.update(
        sample=settings.sample,
        margin=settings.decide.margin,
        quotas=wh.frame("SELECT * FROM sample_quotas WHERE run_id = $r ORDER BY prompt_version",
                        r=run_id).to_dicts(),
        **_spend(wh, run_id, context["scores"]),
        redaction=redaction_line(wh, run_id),
        redacted_for=redacted_candidates(wh, run_id),
    )


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


@section("prompt_versions")
def data_docs(wh: Warehouse, settings: Settings, context: dict[str, Any]) -> None:
    """`data_docs`: {prompt_version: its Data Docs page}, relative to the report, where a reader of the report
    can follow them: beside the local report, or where `reports_dir` is served as it is. A report
    published to a folder or bucket is copied without the Data Docs site, so it links none."""
    context["data_docs"] = (data_docs_pages(settings, context["run"]["run_id"])
                            if settings.report.publish_kind in (None, "url") else {})


# --- each prompt_version's sections --------------------------------------------------------------

@section("drift")
def production_drift(wh: Warehouse, settings: Settings, context: dict[str, Any]) -> None:
    """Each prompt_version's `drift`: production's pass rate tonight against its past nights."""
    run_id, baseline = context["run"]["run_id"], context["baseline"]
    history = wh.frame("score_history", run_id=run_id, runs=extras.TREND_RUNS).to_dicts()
    for s in context["sections"]:
        past = [h for h in history if h["prompt_version"] == s["prompt_version"]
                and h["model"] == baseline and h["run_id"] != run_id]
        base = s["baseline_row"]
        s["drift"] = drift.production_drift(past, base["passed"], base["n"]) if base else None


@section("charts")
def chart_svgs(wh: Warehouse, settings: Settings, context: dict[str, Any]) -> None:
    """Each prompt_version's `charts`: inline SVG by name."""
    for s in context["sections"]:  # inline SVG made by charts.py from numbers; names escaped there
        s["charts"] = {name: Markup(svg) for name, svg in charts.section_svgs(s).items()}


@section("check_failures")
def check_failures(wh: Warehouse, settings: Settings, context: dict[str, Any]) -> None:
    """Each prompt_version's `checks`: the checks that failed, per model."""
    found = wh.frame("check_failures", run_id=context["run"]["run_id"]).to_dicts()
    for s in context["sections"]:
        s["checks"] = [c for c in found if c["prompt_version"] == s["prompt_version"] and c["failed"]]


@section("failing_answers")
def failing_answers(wh: Warehouse, settings: Settings, context: dict[str, Any]) -> None:
    """Each prompt_version's `failures`: a few failing answers per model, redacted, each with
    its word diff against production's."""
    found = redacted_failures(
        wh.frame("failures", run_id=context["run"]["run_id"],
                 per_model=FAILURES_PER_MODEL).to_dicts(),
        Redactor(settings.redact.patterns))
    for s in context["sections"]:
        s["failures"] = [{**f, "diff": word_diff(f["candidate_answer"], f["production_answer"])}
                         for f in found if f["prompt_version"] == s["prompt_version"]]
