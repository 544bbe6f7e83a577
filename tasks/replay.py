"""Replay tasks: one candidate's replay from this process, or one chunk sent on a Dask worker
(`replaybench.replay`)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench.config import Candidate, Settings
from replaybench.replay import ReplayOutcome, ReplayPlan, Sent, replay_candidate, send_plan
from replaybench.runs import Run


@task(name="replay", task_run_name="replay-{candidate.name}", cache_policy=NO_CACHE)
async def replay_task(settings: Settings, run: Run, candidate: Candidate,
                      use_cache: bool = True) -> ReplayOutcome:
    return await replay_candidate(settings, run, candidate, use_cache)


@task(name="send", task_run_name="send-{plan.candidate.name}-{plan.chunk}", cache_policy=NO_CACHE)
async def send_task(plan: ReplayPlan) -> Sent:
    return await send_plan(plan)
