"""Sample: per prompt_version, a seeded, reproducible draw of the run's window."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench.config import Settings
from replaybench.runs import Run
from replaybench.warehouse import Warehouse, open_warehouse


def draw_sample(wh: Warehouse, settings: Settings, run: Run) -> dict[str, int]:
    """Fill `samples` for the run (idempotent); return the sample size per prompt_version."""
    wh.run("sample", run_id=run.run_id, window_start=run.window_start, window_end=run.window_end,
           seed=str(settings.sample.seed), per_prompt_version=settings.sample.per_prompt_version)
    rows = wh.execute(
        "SELECT prompt_version, count(*) FROM samples WHERE run_id = $r GROUP BY 1 ORDER BY 1",
        {"r": run.run_id},
    ).fetchall()
    return dict(rows)


@task(name="sample", cache_policy=NO_CACHE)
def sample_task(settings: Settings, run: Run) -> dict[str, int]:
    with open_warehouse(settings.warehouse) as wh:
        return draw_sample(wh, settings, run)
