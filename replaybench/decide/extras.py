"""What a stakeholder needs next to a verdict: the quality–cost frontier, the money a move would
save at production volume, the trend of the last runs, drift of the production model itself, and
a canary routing snippet (drift lives in `decide.drift`) to paste into a gateway."""

from __future__ import annotations

import math
import statistics
from typing import Any

import yaml

from replaybench.config import Candidate

TREND_RUNS = 14


def plottable(row: dict[str, Any]) -> bool:
    """Whether a row can be placed on the quality–cost plane (it has both a pass rate and a cost
    per task); a row that cannot is neither on the frontier nor dominated."""
    return row.get("pass_rate") is not None and row.get("cost_per_task_usd") is not None


def _beats(a: float, b: float) -> bool:
    """a > b by more than float noise: two sums of the same prices in another order differ in
    the last bits (production and its own replay: 0.002331742105263158 against
    0.0023317421052631575), and that is a tie, not a lead."""
    return a > b and not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def pareto_frontier(rows: list[dict[str, Any]]) -> set[str]:
    """Models no other model beats on both quality (pass rate) and cost per task: beaten means
    no worse on either and better on one. A tie on both is no defeat."""
    points = [(r["model"], r["pass_rate"], r["cost_per_task_usd"]) for r in rows
              if plottable(r)]
    frontier = set()
    for model, quality, cost in points:
        dominated = any(not _beats(quality, q) and not _beats(c, cost)
                        and (_beats(q, quality) or _beats(cost, c))
                        for other, q, c in points if other != model)
        if not dominated:
            frontier.add(model)
    return frontier


def monthly_projection(row: dict[str, Any], baseline: dict[str, Any] | None,
                       monthly_requests: float | None) -> dict[str, float] | None:
    """Monthly cost of serving the prompt_version with this model, and the saving against the
    baseline, at the production volume measured from the logs."""
    if not monthly_requests or row.get("cost_per_task_usd") is None:
        return None
    cost = row["cost_per_task_usd"] * monthly_requests
    base = baseline.get("cost_per_task_usd") if baseline else None
    saving = base * monthly_requests - cost if base is not None else None
    return {"monthly_requests": monthly_requests, "monthly_cost_usd": cost,
            "monthly_saving_usd": saving}


def trend(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The pass rates of the last runs (oldest first) and tonight's against their median."""
    rates = [h["pass_rate"] for h in history if h["pass_rate"] is not None]
    if len(rates) < 2:
        return None
    earlier = rates[:-1]
    return {"pass_rates": rates, "median": statistics.median(earlier),
            "change": rates[-1] - statistics.median(earlier), "runs": len(rates)}


def litellm_canary(prompt_version: str, production_model: str | None, candidate: Candidate,
                   share: int = 5) -> str:
    """A LiteLLM router config that sends `share` % of this prompt's traffic to the candidate."""
    route = prompt_version.replace("@", "-")
    params: dict[str, Any] = {"model": f"{candidate.provider}/{candidate.model}",
                              "api_base": candidate.base_url, "weight": share}
    if candidate.api_key_env:
        params["api_key"] = f"os.environ/{candidate.api_key_env}"
    config = {
        "model_list": [
            {"model_name": route, "litellm_params": {"model": production_model or "production",
                                                     "weight": 100 - share}},
            {"model_name": route, "litellm_params": params},
        ],
        "router_settings": {"routing_strategy": "simple-shuffle"},
    }
    header = (f"# LiteLLM router: {100 - share}/{share} canary of {candidate.name} for "
              f"{prompt_version}\n# (your app calls model \"{route}\")\n")
    return header + yaml.safe_dump(config, sort_keys=False)
