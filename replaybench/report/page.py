"""The report: one self-contained HTML file per run, keyed by prompt_version.

Its first screen carries the decision (per prompt_version: the best candidate, its recommendation,
and what it would cost); below, a section per prompt_version with the full table and a few failing
answers next to production's. Each part of the page is a section (`report.sections`). Everything
that came from logs or models is autoescaped. The report is then published with the index of runs
(`report.publish`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from replaybench import runs
from replaybench.config import Settings
from replaybench.report import publish, sections
from replaybench.report.context import report_context
from replaybench.report.index import index_context, render_index
from replaybench.report.render import environment
from replaybench.warehouse import Warehouse, open_warehouse

log = logging.getLogger(__name__)


def report_html(wh: Warehouse, settings: Settings, run_id: str) -> str:
    """The page of a stored run, its sections in the order of their partials."""
    # a partial keeps its last newline: it renders exactly as if it were written in place
    env = environment().overlay(keep_trailing_newline=True)
    names = env.list_templates(extensions=["j2"])
    return env.get_template("report.html.j2").render(
        **report_context(wh, settings, run_id),
        page_sections=sections.partials(names, sections.PAGE),
        prompt_version_sections=sections.partials(names, sections.PER_PROMPT_VERSION))


def render_report(wh: Warehouse, settings: Settings, run_id: str) -> Path:
    """Write reports/<run_id>.html, record it with the run, and return its path."""
    html = report_html(wh, settings, run_id)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    path = settings.reports_dir / f"{run_id}.html"
    path.write_text(html, encoding="utf-8")
    runs.set_report_path(wh, run_id, path)
    render_index(wh, settings)
    return path


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
