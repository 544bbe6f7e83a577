"""The replay fan-out: every candidate at once from this process (one task each), or each
candidate's plan in chunks over the workers of a Dask cluster (`runner.kind: dask`), whose shards
this process then loads."""

from __future__ import annotations

import asyncio

from prefect import flow

from replaybench.config import Settings
from replaybench.replay import ReplayOutcome, ReplayPlan, Sent, load_replay, plan_replay, together
from replaybench.replay.plan import chunks
from replaybench.runs import Run
from tasks.replay import replay_task, send_task


@flow(name="replaybench-replay-on-dask")
def replay_on_dask(plans: list[ReplayPlan]) -> list[Sent]:
    """Each chunk sent by a task on the Dask cluster (the runner is set by `replay_all`)."""
    futures = [send_task.submit(p) for p in plans]
    return [f.result() for f in futures]


async def replay_all(settings: Settings, run: Run, use_cache: bool = True) -> list[ReplayOutcome]:
    """Every candidate's replay: from this process (one task per candidate, all at once), or
    chunked over a Dask cluster's workers, whose shards this process then loads."""
    if settings.runner.kind == "local":
        return await together(replay_task(settings, run, c, use_cache)
                              for c in settings.candidates)
    from prefect_dask import DaskTaskRunner

    plans = [await asyncio.to_thread(plan_replay, settings, run, c, use_cache)
             for c in settings.candidates]
    pieces = [(i, piece) for i, plan in enumerate(plans)
              for piece in chunks(plan, settings.runner.chunk_size)]
    runner = (DaskTaskRunner(address=settings.runner.address) if settings.runner.address else
              DaskTaskRunner(cluster_kwargs={"n_workers": settings.runner.workers,
                                             "threads_per_worker": 1, "processes": True,
                                             "host": "127.0.0.1", "dashboard_address": None}))
    try:
        sent = await asyncio.to_thread(replay_on_dask.with_options(task_runner=runner),
                                       [p for _, p in pieces])
    except BaseException:
        for plan in plans:  # their requests are in the warehouse: the next attempt plans again
            plan.discard()
        raise
    outcomes = []
    for i, plan in enumerate(plans):
        mine = [s for (j, _), s in zip(pieces, sent, strict=True) if j == i]
        outcomes.append(await asyncio.to_thread(load_replay, settings, run, plan.candidate, plan,
                                                mine))
    return outcomes
