"""Score: per prompt_version × model, quality with its interval, the paired difference to the
baseline, tokens, cost and latency — then a verdict and a recommendation in a sentence.

The rules (also in the README):
- p_value_adjusted: the exact McNemar p of each candidate row, Holm-adjusted across all the
  candidate rows of the run (every prompt_version × candidate), so that a run of many comparisons
  still raises a false alarm in at most ALPHA of runs.
- verdict: `improved` / `regressed` when the adjusted p < ALPHA and the 95 % interval of the paired
  difference lies above / below zero; `no_difference` when that interval lies inside ±MARGIN;
  `inconclusive` otherwise, with the paired sample size that would settle it.
- tokens, cost and latency: the mean paired difference per request (candidate minus baseline) with
  a 95 % paired bootstrap interval.
- recommendation: `reject` if regressed or the error rate is over MAX_ERROR_RATE; `promote` if
  improved at no more than PROMOTE_COST_RATIO × the baseline's cost per success, or no different
  and at most SAVING_RATIO of it; `canary` if improved (but dearer) or no different and cheaper;
  `hold` otherwise.
"""

from __future__ import annotations

import zlib

import numpy as np
import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from replaybench import stats
from replaybench.config import Settings
from replaybench.runs import Run
from replaybench.warehouse import Warehouse, open_warehouse

ALPHA = 0.05
MARGIN = 0.03  # 3 points: below the 5-point change the sample is planned to detect
MAX_ERROR_RATE = 0.10
PROMOTE_COST_RATIO = 1.25
SAVING_RATIO = 0.80

RANK = {"promote": 0, "canary": 1, "hold": 2, "reject": 3}


def summarise(outcomes: pl.DataFrame) -> pl.DataFrame:
    """Per prompt_version × model: counts, efficiency and latency from one row per answer."""
    ok = pl.col("status") == "ok"
    return (
        outcomes.group_by("prompt_version", "model")
        .agg(
            n=pl.len(),
            passed=pl.col("passed").sum(),
            output_tokens_per_task=pl.col("output_tokens").mean(),
            reasoning_tokens_per_task=pl.col("reasoning_tokens").mean(),
            cost_total=pl.col("cost_usd").sum(),
            latency_p50_ms=pl.col("latency_ms").filter(ok).quantile(0.5, "linear"),
            latency_p95_ms=pl.col("latency_ms").filter(ok).quantile(0.95, "linear"),
            ttft_p50_ms=pl.col("ttft_ms").filter(ok).quantile(0.5, "linear"),
            output_tps_p50=pl.col("output_tps").filter(ok).median(),
            output_tokens_total=pl.col("output_tokens").sum(),
            error_rate=(~ok).mean(),
        )
        .with_columns(
            pass_rate=pl.col("passed") / pl.col("n"),
            cost_per_task_usd=pl.col("cost_total") / pl.col("n"),
            cost_per_success_usd=pl.when(pl.col("passed") > 0)
            .then(pl.col("cost_total") / pl.col("passed")),
            tokens_per_success=pl.when(pl.col("passed") > 0)
            .then(pl.col("output_tokens_total") / pl.col("passed")),
        )
        .sort("prompt_version", "model")
    )


def pair_with_baseline(outcomes: pl.DataFrame, baseline: str) -> pl.DataFrame:
    """Per prompt_version × model, the discordant pairs against the baseline on the same requests."""
    base = outcomes.filter(pl.col("model") == baseline).select(
        "request_id", base_passed=pl.col("passed")
    )
    return (
        outcomes.filter(pl.col("model") != baseline)
        .join(base, on="request_id", how="inner")
        .group_by("prompt_version", "model")
        .agg(
            pairs=pl.len(),
            only_candidate=(pl.col("passed") & ~pl.col("base_passed")).sum(),
            only_baseline=(~pl.col("passed") & pl.col("base_passed")).sum(),
        )
    )


def metric_deltas(outcomes: pl.DataFrame, baseline: str) -> pl.DataFrame:
    """Per prompt_version × candidate, the mean paired difference to the baseline in output tokens,
    cost and latency per request, each with a 95 % paired bootstrap interval."""
    ok = pl.col("status") == "ok"
    per_request = [pl.col("output_tokens").cast(pl.Float64),
                   pl.col("cost_usd").fill_null(0.0).cast(pl.Float64),  # as in cost per task
                   pl.when(ok).then(pl.col("latency_ms")).cast(pl.Float64)]  # answered calls only
    metrics = ["output_tokens", "cost", "latency"]
    values = outcomes.select("request_id", "prompt_version", "model",
                             *[e.alias(m) for e, m in zip(per_request, metrics, strict=True)])
    base = values.filter(pl.col("model") == baseline).select(
        "request_id", *[pl.col(m).alias(f"base_{m}") for m in metrics])
    pairs = values.filter(pl.col("model") != baseline).join(base, on="request_id", how="inner")
    rows = []
    for (pv, model), group in pairs.sort("request_id").group_by(
            "prompt_version", "model", maintain_order=True):
        # A seed per row, so adding a candidate never moves another row's interval.
        seed = zlib.crc32(f"{pv}\x00{model}".encode())
        delta, low, high = stats.paired_bootstrap(
            group.select(metrics).fill_null(np.nan).to_numpy(),
            group.select([f"base_{m}" for m in metrics]).fill_null(np.nan).to_numpy(), seed=seed)
        row = {"prompt_version": pv, "model": model}
        for i, name in enumerate(["output_tokens_delta", "cost_delta_usd", "latency_delta_ms"]):
            for suffix, array in (("", delta), ("_low", low), ("_high", high)):
                row[name + suffix] = None if np.isnan(array[i]) else float(array[i])
        rows.append(row)
    schema = {"prompt_version": pl.String, "model": pl.String} | {
        name + suffix: pl.Float64 for name in ["output_tokens_delta", "cost_delta_usd",
                                               "latency_delta_ms"] for suffix in ("", "_low", "_high")}
    return pl.DataFrame(rows, schema=schema)


def verdict(p_value: float | None, low: float | None, high: float | None) -> str:
    """The verdict from the (Holm-adjusted) p-value and the interval of the paired difference."""
    if p_value is None or low is None or high is None:
        return "inconclusive"
    if p_value < ALPHA and low > 0:
        return "improved"
    if p_value < ALPHA and high < 0:
        return "regressed"
    if low >= -MARGIN and high <= MARGIN:
        return "no_difference"
    return "inconclusive"


def recommend(row: dict, base: dict) -> tuple[str, str]:
    """(recommendation, the reasons in a sentence) for one candidate row against the baseline."""
    v = row["verdict"]
    cost, base_cost = row["cost_per_success_usd"], base.get("cost_per_success_usd")
    cost_ratio = cost / base_cost if cost is not None and base_cost else None
    if v == "regressed" or row["error_rate"] > MAX_ERROR_RATE:
        rec = "reject"
    elif (v == "improved" and cost_ratio is not None and cost_ratio <= PROMOTE_COST_RATIO) or (
        v == "no_difference" and cost_ratio is not None and cost_ratio <= SAVING_RATIO
    ):
        rec = "promote"
    elif v == "improved" or (v == "no_difference" and cost_ratio is not None and cost_ratio < 1):
        rec = "canary"
    else:
        rec = "hold"

    parts = []
    if row["delta_vs_baseline"] is not None:
        p = row.get("p_value_adjusted", row["p_value"])
        sig = "significant" if p is not None and p < ALPHA else "not significant"
        parts.append(f"quality {row['delta_vs_baseline'] * 100:+.1f} pts "
                     f"[{row['delta_low'] * 100:+.1f}, {row['delta_high'] * 100:+.1f}], {sig}")
    tokens, base_tokens = row["output_tokens_per_task"], base.get("output_tokens_per_task")
    if tokens is not None and base_tokens:
        parts.append(f"{tokens / base_tokens:.1f}× the output tokens")
    if cost_ratio is not None:
        parts.append(f"cost per success {(cost_ratio - 1) * 100:+.0f} %")
    if row.get("latency_delta_ms") is not None and row.get("latency_delta_ms_low") is not None:
        parts.append(f"latency {row['latency_delta_ms']:+.0f} ms "
                     f"[{row['latency_delta_ms_low']:+.0f}, {row['latency_delta_ms_high']:+.0f}]")
    if row["error_rate"] > 0:
        parts.append(f"{row['error_rate'] * 100:.0f} % errors")
    if v == "inconclusive" and row.get("n_needed") and row["pairs"] < row["n_needed"]:
        parts.append(f"about {row['n_needed'] - row['pairs']} more samples needed")
    return rec, "; ".join(parts) + f": {rec}"


def score_outcomes(outcomes: pl.DataFrame, baseline: str, difference: float = 0.05,
                   power: float = 0.8) -> pl.DataFrame:
    """The `scores` rows of one run (without run_id) from its per-answer outcomes; `difference`
    and `power` plan the sample size each prompt_version would need."""
    summary = (
        summarise(outcomes)
        .join(pair_with_baseline(outcomes, baseline), on=["prompt_version", "model"], how="left")
        .join(metric_deltas(outcomes, baseline), on=["prompt_version", "model"], how="left")
        .with_columns(reasoning_share=pl.when(pl.col("output_tokens_per_task") > 0).then(
            pl.col("reasoning_tokens_per_task") / pl.col("output_tokens_per_task")))
    )
    baseline_rows = {r["prompt_version"]: r for r in
                     summary.filter(pl.col("model") == baseline).iter_rows(named=True)}
    rows = list(summary.iter_rows(named=True))
    compared = [row for row in rows if row["model"] != baseline and row["pairs"]]
    # Holm's family: every candidate row of the run; sample sizes are planned at ALPHA / family
    # (Bonferroni), which keeps their power under Holm's less strict steps.
    family = max(1, len(compared))
    for row in rows:
        row["pass_rate_low"], row["pass_rate_high"] = stats.wilson(row["passed"], row["n"])
        base_rate = baseline_rows.get(row["prompt_version"], {}).get("pass_rate")
        row["n_needed"] = stats.required_sample_size(base_rate, difference, ALPHA, power) \
            if base_rate is not None else None
        row.update(delta_vs_baseline=None, delta_low=None, delta_high=None, p_value=None,
                   p_value_adjusted=None, verdict=None, recommendation=None, reason=None)
    for row in compared:
        delta, low, high = stats.paired_difference(
            row["only_candidate"], row["only_baseline"], row["pairs"])
        row.update(delta_vs_baseline=delta, delta_low=low, delta_high=high,
                   p_value=stats.mcnemar_exact(row["only_candidate"], row["only_baseline"]))
        # Plan on the upper bound of the discordance rate: a small sample must not promise too much.
        discordance = stats.wilson(row["only_candidate"] + row["only_baseline"], row["pairs"])[1]
        row["n_needed"] = stats.paired_sample_size(discordance, difference, ALPHA / family, power)
    adjusted_p = stats.holm([row["p_value"] for row in compared])
    for row, adjusted in zip(compared, adjusted_p, strict=True):
        row["p_value_adjusted"] = adjusted
        row["verdict"] = verdict(adjusted, row["delta_low"], row["delta_high"])
        row["recommendation"], row["reason"] = recommend(
            row, baseline_rows.get(row["prompt_version"], {}))
    columns = ["prompt_version", "model", "n", "passed", "pass_rate", "pass_rate_low",
               "pass_rate_high", "delta_vs_baseline", "delta_low", "delta_high", "p_value",
               "verdict", "output_tokens_per_task", "reasoning_tokens_per_task",
               "cost_per_task_usd", "cost_per_success_usd", "latency_p50_ms", "latency_p95_ms",
               "ttft_p50_ms", "error_rate", "n_needed", "recommendation", "reason",
               "p_value_adjusted", "output_tokens_delta", "output_tokens_delta_low",
               "output_tokens_delta_high", "cost_delta_usd", "cost_delta_usd_low",
               "cost_delta_usd_high", "latency_delta_ms", "latency_delta_ms_low",
               "latency_delta_ms_high", "reasoning_share", "tokens_per_success", "output_tps_p50"]
    return pl.DataFrame(rows, infer_schema_length=None).select(columns)


def score_run(wh: Warehouse, settings: Settings, run: Run) -> pl.DataFrame:
    """Compute and store the run's scores (replacing any from an earlier attempt)."""
    scores = score_outcomes(wh.frame("outcomes", run_id=run.run_id), settings.baseline,
                            settings.sample.min_detectable_difference, settings.sample.power)
    # production replayed is the noise floor, not a model to move to: it gets no recommendation
    noise = list(settings.noise_floor)
    scores = scores.with_columns(
        recommendation=pl.when(pl.col("model").is_in(noise)).then(None)
        .otherwise(pl.col("recommendation")),
        reason=pl.when(pl.col("model").is_in(noise))
        .then(pl.lit("noise floor: production's own model, asked again"))
        .otherwise(pl.col("reason")))
    with wh.transaction():
        wh.execute("DELETE FROM scores WHERE run_id = $r", {"r": run.run_id})
        wh.insert("scores", scores.with_columns(run_id=pl.lit(run.run_id)))
    return scores


@task(name="score", cache_policy=NO_CACHE)
def score_task(settings: Settings, run: Run) -> int:
    with open_warehouse(settings.warehouse) as wh:
        return len(score_run(wh, settings, run))
