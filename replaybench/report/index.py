"""The index page: the live decisions across nights (open, and reached with the night that reached
them), then every run with its day, status and headline, each linked to its report where one can
be opened from the index's own location (`reports_dir`, or where the reports are published)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from replaybench.config import Settings
from replaybench.decide import evidence
from replaybench.report.render import environment
from replaybench.warehouse import Warehouse

INDEX = "index.html"


def index_context(wh: Warehouse) -> dict[str, Any]:
    """What the index shows, read from the warehouse: runs newest first, live decisions."""
    runs = wh.frame("run_index").to_dicts()
    for r in runs:
        r["day"] = r["run_date"] - timedelta(days=1)
    return {"runs": runs, "decisions": evidence.listing(wh), "generated_at": datetime.now(UTC)}


def index_html(context: dict[str, Any], link: Callable[[dict[str, Any]], str | None]) -> str:
    """The page, with each run's report linked as `link(run)` says (None: not linked)."""
    links = {r["run_id"]: link(r) for r in context["runs"]}
    runs = [{**r, "link": links[r["run_id"]]} for r in context["runs"]]
    decisions = [{**d, "link": links.get(d["reached_run"] or "")} for d in context["decisions"]]
    return environment().get_template("index.html.j2").render(
        **{**context, "runs": runs, "decisions": decisions})


def local_link(settings: Settings) -> Callable[[dict[str, Any]], str | None]:
    """Links from reports_dir/index.html: the reports written into that folder, by name."""
    def link(run: dict[str, Any]) -> str | None:
        report = Path(run["report_path"]) if run["report_path"] else None
        return report.name if report and report.parent == settings.reports_dir else None
    return link


def render_index(wh: Warehouse, settings: Settings) -> Path:
    """Write reports_dir/index.html and return its path."""
    path = settings.reports_dir / INDEX
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(index_html(index_context(wh), local_link(settings)), encoding="utf-8")
    return path
