"""Replay: ask one candidate every sampled request it has not answered yet in this run.

Three steps, so that the warehouse is held only briefly (another run may be waiting for it):

- plan (`plan.py`, in the warehouse): what is pending, written to a file beside the warehouse;
  what the response cache already answers, stored at once;
- send (`send.py`, no warehouse): the plan read a batch at a time; answers go to a journal and to
  Parquet shards (`journal.py`); answers another run has paid for are taken (`shared.py`);
- load (`load.py`, in the warehouse): the shards, and what only a journal holds.

Sending runs in this process, or chunk by chunk on the workers of a Dask cluster
(`runner.kind: dask`, `flows/replay.py`); the workers write shards and this process loads them.

Nothing paid for is lost or paid twice: every answer is journaled the moment it arrives, and a
journal is deleted only once the warehouse holds every answer in it; every successful answer
lands in `response_cache`, and a request whose answer is cached is not sent again (by a rerun, a
`--force` run or an overlapping backfill) unless `use_cache` is off.
"""

from __future__ import annotations

import asyncio

from replaybench.config import Candidate, Settings
from replaybench.replay.load import ReplayOutcome, load_replay
from replaybench.replay.plan import ReplayPlan, plan_replay
from replaybench.replay.send import Sent, send_plan, together
from replaybench.runs import Run

__all__ = ["ReplayOutcome", "ReplayPlan", "Sent", "load_replay", "plan_replay", "replay_candidate",
           "send_plan", "together"]


async def replay_candidate(settings: Settings, run: Run, candidate: Candidate,
                           use_cache: bool = True) -> ReplayOutcome:
    """Send the run's pending requests to one candidate from this process and store every answer."""
    plan = await asyncio.to_thread(plan_replay, settings, run, candidate, use_cache)
    try:
        sent = await send_plan(plan)
    except BaseException:
        plan.discard()  # its requests are in the warehouse: the next attempt plans again
        raise
    return await asyncio.to_thread(load_replay, settings, run, candidate, plan, [sent])
