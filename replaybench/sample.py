"""The sample step: per prompt_version, a seeded, reproducible, stratified draw of the run's
window that serves the open decisions (no more than they still need, within the cap and the
night's budget), and the production mix it came from (so that totals can be weighted back to it)."""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from replaybench.config import Settings
from replaybench.decide import evidence
from replaybench.errors import SampleError
from replaybench.runs import Run
from replaybench.warehouse import Warehouse

_COST_PER_REQUEST = """
SELECT prompt_version, model, avg(cost_usd) AS usd
FROM answers WHERE cost_usd IS NOT NULL GROUP BY ALL
"""


def window_filters(settings: Settings, run: Run) -> dict[str, Any]:
    """The parameters that pick the run's eligible requests."""
    f = settings.sample.filter
    return {"window_start": run.window_start, "window_end": run.window_end,
            "endpoints": f.endpoints, "model_ids": f.model_ids,
            "successful_only": f.successful_only}


def plan_quotas(wh: Warehouse, settings: Settings, run: Run) -> pl.DataFrame:
    """Per prompt_version of the window: available requests, tonight's quota, why, and the
    estimated spend; and `sample_plan`: which candidates each one is replayed against."""
    s = settings.sample
    traffic = dict(wh.execute("SELECT prompt_version, requests FROM traffic_mix WHERE run_id = $r",
                              {"r": run.run_id}).fetchall())
    total = sum(traffic.values())
    need = evidence.needs(wh, settings, run, sorted(traffic))
    noise = [c.name for c in settings.candidates if c.replays_production]  # asked on every request
    known = {(pv, m): usd for pv, m, usd in wh.execute(_COST_PER_REQUEST).fetchall()}
    logged = dict(wh.execute(
        "SELECT prompt_version, avg(cost_usd) FROM logs WHERE ts >= $start AND ts < $end "
        "AND cost_usd IS NOT NULL GROUP BY 1", {"start": run.window_start, "end": run.window_end}
    ).fetchall())
    rows, plan = [], []
    for pv, available in sorted(traffic.items()):
        cap = s.per_prompt_version if s.allocation == "equal" else \
            max(s.min_per_prompt_version, round(s.size * available / total))
        n = need[pv]
        quota = min(available, cap, n.pairs)
        # a candidate's cost per request from its past answers, else production's logged cost
        # of the window as a stand-in (a first night has no answers to go by)
        per_request = sum(known.get((pv, c)) or logged.get(pv) or 0.0
                          for c in (*n.candidates, *noise))
        rows.append({"prompt_version": pv, "available": available, "quota": quota,
                     "reason": n.reason, "estimated_usd": quota * per_request})
        plan += [{"prompt_version": pv, "candidate": c} for c in n.candidates] if quota else []
    estimated = sum(r["estimated_usd"] for r in rows)
    if s.budget_usd is not None and estimated > s.budget_usd:
        scale = s.budget_usd / estimated  # every prompt_version gives up the same share
        for r in rows:
            r["quota"] = math.floor(r["quota"] * scale)
            r["estimated_usd"] *= scale
            r["reason"] += f"; budget ${s.budget_usd:g} scales quotas by {scale:.2f}"
    frame = pl.DataFrame(rows, schema={"prompt_version": pl.String, "available": pl.Int64,
                                       "quota": pl.Int64, "reason": pl.String,
                                       "estimated_usd": pl.Float64})
    wh.insert("sample_quotas", frame.with_columns(run_id=pl.lit(run.run_id)))
    kept = set(frame.filter(pl.col("quota") > 0)["prompt_version"])
    wh.insert("sample_plan", pl.DataFrame(
        [p for p in plan if p["prompt_version"] in kept],
        schema={"prompt_version": pl.String, "candidate": pl.String}
    ).with_columns(run_id=pl.lit(run.run_id)))
    return frame


def draw_sample(wh: Warehouse, settings: Settings, run: Run) -> dict[str, int]:
    """Fill `samples`, `sample_quotas`, `sample_plan` and `traffic_mix` for the run (idempotent: a
    resumed run keeps its plan); return the size per prompt_version."""
    where = window_filters(settings, run)
    wh.query("window_macros")
    wh.query("traffic_mix", run_id=run.run_id, **where)
    if not wh.execute("SELECT 1 FROM traffic_mix WHERE run_id = $r", {"r": run.run_id}).fetchall():
        raise SampleError(f"no traffic to sample in the window {run.window_start:%Y-%m-%d %H:%M} – "
                          f"{run.window_end:%Y-%m-%d %H:%M} ({settings.timezone}) for run "
                          f"{run.run_id}: ingest that day's logs first, or check sample.filter")
    quotas = wh.frame("SELECT prompt_version, quota FROM sample_quotas WHERE run_id = $r",
                      r=run.run_id)
    if quotas.is_empty():
        quotas = plan_quotas(wh, settings, run).select("prompt_version", "quota")
    with wh.registered("_quotas", quotas):
        wh.query("sample", run_id=run.run_id, seed=str(settings.sample.seed), **where)
    rows = wh.execute(
        "SELECT prompt_version, count(*) FROM samples WHERE run_id = $r GROUP BY 1 ORDER BY 1",
        {"r": run.run_id},
    ).fetchall()
    return dict(rows)

