"""Sample: per prompt_version, a seeded, reproducible, stratified draw of the run's window, and
the production mix it came from (so that totals can be weighted back to it)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench.config import Settings
from replaybench.errors import SampleError
from replaybench.runs import Run
from replaybench.warehouse import Warehouse, open_warehouse


def window_filters(settings: Settings, run: Run) -> dict[str, Any]:
    """The parameters that pick the run's eligible requests."""
    f = settings.sample.filter
    return {"window_start": run.window_start, "window_end": run.window_end,
            "endpoints": f.endpoints, "model_ids": f.model_ids,
            "successful_only": f.successful_only}


def draw_sample(wh: Warehouse, settings: Settings, run: Run) -> dict[str, int]:
    """Fill `samples` and `traffic_mix` for the run (idempotent); return the size per
    prompt_version."""
    s = settings.sample
    where = window_filters(settings, run)
    wh.run("sample", run_id=run.run_id, seed=str(s.seed), allocation=s.allocation,
           per_prompt_version=s.per_prompt_version, size=s.size,
           min_per_pv=s.min_per_prompt_version, **where)
    wh.run("traffic_mix", run_id=run.run_id, **where)
    rows = wh.execute(
        "SELECT prompt_version, count(*) FROM samples WHERE run_id = $r GROUP BY 1 ORDER BY 1",
        {"r": run.run_id},
    ).fetchall()
    if not rows:
        raise SampleError(f"no traffic to sample in the window {run.window_start:%Y-%m-%d %H:%M} – "
                          f"{run.window_end:%Y-%m-%d %H:%M} ({settings.timezone}) for run "
                          f"{run.run_id}: ingest that day's logs first, or check sample.filter")
    return dict(rows)


@task(name="sample", cache_policy=NO_CACHE)
def sample_task(settings: Settings, run: Run) -> dict[str, int]:
    with open_warehouse(settings.warehouse) as wh:
        return draw_sample(wh, settings, run)
