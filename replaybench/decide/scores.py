"""Scores: per prompt_version × model, tonight's quality, tokens, cost and latency, and the
decision each candidate's evidence has reached across nights (`decide.evidence`), with the
recommendation in a sentence.

- pass rate with a Wilson 95 % interval; tokens, cost and latency per request, and their mean
  paired difference to the baseline with a 95 % paired bootstrap interval;
- verdict, delta_vs_baseline and its interval: the decision's, accumulated over the nights it has
  seen; the interval is the one the verdict is read from (`decide.rules`), never another;
- cost per success is unknown (not zero) when a candidate answered without a known price.
"""

from __future__ import annotations

import math
import threading
import zlib

import numpy as np
import polars as pl

from replaybench.config import Settings
from replaybench.decide import evidence, rules, stats
from replaybench.runs import Run
from replaybench.warehouse import Warehouse, sql_text

# Per prompt_version × model, from one row per answer: counts, efficiency and latency. As Polars
# computed them (`tests/test_score.py` holds that code): an empty sum is 0, and quantiles
# interpolate linearly (the same to ~1e-16: DuckDB rounds the interpolation its own way). The
# cost is a compensated (Kahan) sum, `fsum`, so that its last digits hardly depend on the order
# DuckDB's threads add in (a resumed run scores the night again).
_SUMMARY = """
SELECT prompt_version, model,
       count(*) AS n,
       count(*) FILTER (WHERE passed) AS passed,
       avg(output_tokens) AS output_tokens_per_task,
       avg(reasoning_tokens) AS reasoning_tokens_per_task,
       -- an answer without a known price makes the total unknown, not smaller
       CASE WHEN bool_or(status = 'ok' AND cost_usd IS NULL) THEN NULL
            ELSE coalesce(fsum(cost_usd), 0) END AS cost_total,
       quantile_cont(latency_ms, 0.5) FILTER (WHERE status = 'ok') AS latency_p50_ms,
       quantile_cont(latency_ms, 0.95) FILTER (WHERE status = 'ok') AS latency_p95_ms,
       quantile_cont(ttft_ms, 0.5) FILTER (WHERE status = 'ok') AS ttft_p50_ms,
       quantile_cont(output_tps, 0.5) FILTER (WHERE status = 'ok') AS output_tps_p50,
       coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens_total,
       avg((status <> 'ok')::DOUBLE) AS error_rate
FROM {outcomes}
GROUP BY prompt_version, model
ORDER BY prompt_version, model
"""

# Per prompt_version × candidate, the discordant pairs against the baseline on the same requests.
_PAIRED = """
SELECT c.prompt_version, c.model, count(*) AS pairs,
       count(*) FILTER (WHERE c.passed AND NOT b.passed) AS only_candidate,
       count(*) FILTER (WHERE NOT c.passed AND b.passed) AS only_baseline
FROM {outcomes} AS c
JOIN {outcomes} AS b ON b.prompt_version = c.prompt_version AND b.request_id = c.request_id
                     AND b.model = $baseline
WHERE c.model <> $baseline
GROUP BY c.prompt_version, c.model
ORDER BY c.prompt_version, c.model
"""

METRICS = {"output_tokens": "{t}.output_tokens",
           "cost": "coalesce({t}.cost_usd, 0)",  # as in cost per task
           "latency": "CASE WHEN {t}.status = 'ok' THEN {t}.latency_ms END"}  # answered calls only
"""The per-request values whose mean paired difference to the baseline a score carries."""

# One prompt_version × candidate's paired values (NaN for none), in the order of the requests.
_PAIR_VALUES = """
SELECT {values}
FROM {outcomes} AS c
JOIN {outcomes} AS b ON b.prompt_version = c.prompt_version AND b.request_id = c.request_id
                     AND b.model = $baseline
WHERE c.prompt_version = $pv AND c.model = $model
ORDER BY c.request_id
"""


def summarise(wh: Warehouse, outcomes: str) -> pl.DataFrame:
    """Per prompt_version × model: counts, efficiency and latency (`outcomes` names a table of
    one row per answer)."""
    summary = wh.frame(_SUMMARY.format(outcomes=outcomes))
    return summary.with_columns(
        pass_rate=pl.col("passed") / pl.col("n"),
        cost_per_task_usd=pl.col("cost_total") / pl.col("n"),
        cost_per_success_usd=pl.when(pl.col("passed") > 0)
        .then(pl.col("cost_total") / pl.col("passed")),
        tokens_per_success=pl.when(pl.col("passed") > 0)
        .then(pl.col("output_tokens_total") / pl.col("passed")),
    )


def pair_with_baseline(wh: Warehouse, outcomes: str, baseline: str) -> pl.DataFrame:
    """Per prompt_version × candidate, the discordant pairs against the baseline on the same
    requests."""
    return wh.frame(_PAIRED.format(outcomes=outcomes), baseline=baseline)


def metric_deltas(wh: Warehouse, outcomes: str, baseline: str,
                  paired: pl.DataFrame) -> pl.DataFrame:
    """Per prompt_version × candidate with pairs (`paired`), the mean paired difference to the
    baseline in output tokens, cost and latency per request, each with a 95 % paired bootstrap
    interval. Python holds one prompt_version × candidate's values at a time, as floats."""
    values = ", ".join(f"coalesce(({e.format(t=t)})::DOUBLE, 'NaN'::DOUBLE) AS {t}_{m}"
                       for t in ("c", "b") for m, e in METRICS.items())
    query = _PAIR_VALUES.format(values=values, outcomes=outcomes)
    rows = []
    for pv, model in paired.select("prompt_version", "model").iter_rows():
        found = wh.arrays(query, baseline=baseline, pv=pv, model=model)
        # A seed per row, so adding a candidate never moves another row's interval.
        seed = zlib.crc32(f"{pv}\x00{model}".encode())
        # column-major, as Polars gave them: NumPy's sums then add in the same order
        delta, low, high = stats.paired_bootstrap(
            np.asfortranarray(np.column_stack([found[f"c_{m}"] for m in METRICS])),
            np.asfortranarray(np.column_stack([found[f"b_{m}"] for m in METRICS])), seed=seed)
        row = {"prompt_version": pv, "model": model}
        for i, name in enumerate(["output_tokens_delta", "cost_delta_usd", "latency_delta_ms"]):
            for suffix, array in (("", delta), ("_low", low), ("_high", high)):
                row[name + suffix] = None if np.isnan(array[i]) else float(array[i])
        rows.append(row)
    schema = {"prompt_version": pl.String, "model": pl.String} | {
        name + suffix: pl.Float64 for name in ["output_tokens_delta", "cost_delta_usd",
                                               "latency_delta_ms"] for suffix in ("", "_low", "_high")}
    return pl.DataFrame(rows, schema=schema)


STATE_WORDS = {
    rules.IMPROVED: "better", rules.REGRESSED: "worse",
    rules.EQUIVALENT: "equivalent (within ±{m} pts)", rules.NON_INFERIOR: "not worse by {m} pts",
    rules.INCONCLUSIVE: "not settled by the planned pairs", rules.OPEN: "open",
}


def reason(row: dict, base: dict) -> str:
    """The recommendation's reasons in a sentence, from the decision's own interval."""
    parts = []
    if row.get("delta_vs_baseline") is not None:
        words = STATE_WORDS[row["verdict"]].format(m=f"{row['margin'] * 100:g}")
        low, high = outward(row["delta_low"], row["delta_high"])
        parts.append(f"quality {row['delta_vs_baseline'] * 100:+.1f} pts [{low}, {high}] over "
                     f"{row['decision_pairs']} pairs in {row['decision_nights']} "
                     f"night{'s' if row['decision_nights'] != 1 else ''}: {words}")
    tokens, base_tokens = row["output_tokens_per_task"], base.get("output_tokens_per_task")
    if tokens is not None and base_tokens:
        parts.append(f"{tokens / base_tokens:.1f}× the output tokens")
    ratio = row.get("cost_ratio")
    parts.append(f"cost per success {(ratio - 1) * 100:+.0f} %" if ratio is not None
                 else "cost unknown (no price for it)")
    if row.get("latency_delta_ms") is not None and row.get("latency_delta_ms_low") is not None:
        parts.append(f"latency {row['latency_delta_ms']:+.0f} ms "
                     f"[{row['latency_delta_ms_low']:+.0f}, {row['latency_delta_ms_high']:+.0f}]")
    errors = row.get("decision_error_rate", row["error_rate"])
    if errors:
        parts.append(f"{errors * 100:.0f} % of calls failed")
    if row["verdict"] == rules.OPEN and row.get("nights_left") is not None:
        left = max(0, row["planned_pairs"] - row["decision_pairs"])
        parts.append(f"at most {left} more pairs ≈ {row['nights_left']} "
                     f"night{'s' if row['nights_left'] != 1 else ''} at current traffic")
    return "; ".join(parts) + f": {row['recommendation']}"


def outward(low: float, high: float) -> tuple[str, str]:
    """An interval in points to one decimal, rounded outwards: the printed bounds never look
    narrower than the ones the verdict was read from (-2.96 shows as -3.0 only if it was -3.0)."""
    return (f"{math.floor(round(low * 1000, 6)) / 10:+.1f}",
            f"{math.ceil(round(high * 1000, 6)) / 10:+.1f}")


def score_outcomes(wh: Warehouse, outcomes: str, baseline: str) -> pl.DataFrame:
    """Tonight's `scores` rows (without run_id and the decision columns) from per-answer
    outcomes (`outcomes` names a table or view of them, `sql/outcomes.sql`'s columns): per
    prompt_version × model, quality, efficiency and paired deltas. Counted and summed in
    DuckDB; Python holds the scores, and one prompt_version × candidate's paired values."""
    paired = pair_with_baseline(wh, outcomes, baseline)
    summary = (
        summarise(wh, outcomes)
        .join(paired, on=["prompt_version", "model"], how="left")
        .join(metric_deltas(wh, outcomes, baseline, paired), on=["prompt_version", "model"],
              how="left")
        .with_columns(reasoning_share=pl.when(pl.col("output_tokens_per_task") > 0).then(
            pl.col("reasoning_tokens_per_task") / pl.col("output_tokens_per_task")))
    )
    rows = list(summary.iter_rows(named=True))
    for row in rows:
        row["pass_rate_low"], row["pass_rate_high"] = stats.wilson(row["passed"], row["n"])
    return pl.DataFrame(rows, schema=summary.schema | {"pass_rate_low": pl.Float64,
                                                       "pass_rate_high": pl.Float64})


DECISION_COLUMNS = {
    "delta_vs_baseline": pl.Float64, "delta_low": pl.Float64, "delta_high": pl.Float64,
    "verdict": pl.String, "recommendation": pl.String, "reason": pl.String,
    "decision_id": pl.String, "decision_pairs": pl.Int64, "decision_nights": pl.Int64,
    "planned_pairs": pl.Int64, "fixed_pairs": pl.Int64, "nights_left": pl.Int64,
    "reached_on": pl.Date, "n_needed": pl.Int64,
}


def with_decisions(scores: pl.DataFrame, decisions: dict[tuple[str, str], dict],
                   baseline: str, noise: frozenset[str] = frozenset()) -> pl.DataFrame:
    """Tonight's scores with each candidate's decision after tonight: its state as the verdict,
    its interval, its recommendation and the reasons; the noise floor gets a sentence instead."""
    rows = list(scores.iter_rows(named=True))
    bases = {r["prompt_version"]: r for r in rows if r["model"] == baseline}
    for row in rows:
        row.update(dict.fromkeys(DECISION_COLUMNS))
        dec = decisions.get((row["prompt_version"], row["model"]))
        if row["model"] in noise and row.get("pairs"):
            low, high = stats.tango_interval(row["only_candidate"], row["only_baseline"],
                                             row["pairs"])
            row.update(delta_vs_baseline=(row["only_candidate"] - row["only_baseline"])
                       / row["pairs"], delta_low=low, delta_high=high,
                       reason="noise floor: production's own model, asked again")
        if dec is None:
            continue
        row.update(delta_vs_baseline=dec["delta"], delta_low=dec["delta_low"],
                   delta_high=dec["delta_high"], verdict=dec["state"],
                   recommendation=dec["recommendation"], decision_id=dec["decision_id"],
                   decision_pairs=dec["pairs"], decision_nights=dec["nights"],
                   planned_pairs=dec["planned_pairs"], fixed_pairs=dec["fixed_pairs"],
                   nights_left=evidence.nights_left(dec), reached_on=dec["reached_on"],
                   n_needed=max(0, dec["planned_pairs"] - dec["pairs"]))
        row["reason"] = reason({**row, "margin": dec["margin"], "cost_ratio": dec["cost_ratio"],
                                "decision_error_rate": dec["error_rate"]},
                               bases.get(row["prompt_version"], {}))
    return pl.DataFrame(rows, schema=scores.schema | DECISION_COLUMNS)


OUTCOMES = "_night_outcomes"
"""The temp table the night's outcomes gather in while it is scored (`sql/outcomes.sql`)."""


def score_run(wh: Warehouse, settings: Settings, run: Run) -> pl.DataFrame:
    """Score tonight, add its pairs to the decisions and look at them; store the run's scores
    (replacing any from an earlier attempt). The night's outcomes gather in DuckDB (a temp
    table it may spill), read one prompt_version at a time; they are counted, summed and paired
    there, so that what Python holds of a night is its scores and one prompt_version ×
    candidate's paired values, not its answers."""
    wh.execute(f"DROP TABLE IF EXISTS {OUTCOMES}")
    try:
        return _score_run(wh, settings, run)
    finally:
        wh.execute(f"DROP TABLE IF EXISTS {OUTCOMES}")


def gather_outcomes(wh: Warehouse, run: Run, table: str) -> None:
    """The run's outcomes in a new temp table, one prompt_version's at a time."""
    query = sql_text("outcomes").strip().removesuffix(";")
    wh.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM ({query}) LIMIT 0",
               {"run_id": run.run_id, "prompt_version": None})
    # the run's prompt_versions from its sample and replays (the `answers` view joins the logs)
    for (prompt_version,) in wh.execute(
            "SELECT prompt_version FROM samples WHERE run_id = $r UNION "
            "SELECT prompt_version FROM replays WHERE run_id = $r ORDER BY 1", {"r": run.run_id}):
        wh.execute(f"INSERT INTO {table} SELECT * FROM ({query})",
                   {"run_id": run.run_id, "prompt_version": prompt_version})


def _score_run(wh: Warehouse, settings: Settings, run: Run) -> pl.DataFrame:
    gather_outcomes(wh, run, OUTCOMES)
    scores = score_outcomes(wh, OUTCOMES, settings.baseline)

    def store() -> pl.DataFrame:
        decisions = evidence.record_night(wh, settings, run, OUTCOMES)
        decided = with_decisions(scores, decisions, settings.baseline, settings.noise_floor)
        for row in decided.filter(pl.col("decision_id").is_not_null()).iter_rows(named=True):
            wh.execute("UPDATE decisions SET reason = $why WHERE decision_id = $d",
                       {"why": row["reason"], "d": row["decision_id"]})
        wh.execute("DELETE FROM scores WHERE run_id = $r", {"r": run.run_id})
        stored = {r[0] for r in wh.execute("SELECT column_name FROM information_schema.columns "
                                           "WHERE table_name = 'scores'")}
        columns = [c for c in decided.columns if c in stored]
        wh.insert("scores", decided.select(columns).with_columns(run_id=pl.lit(run.run_id)))
        return decided

    with decision_turn:
        return wh.atomic(store)


decision_turn = threading.Lock()
"""One night's decisions at a time in a process (the nights of a parallel backfill): a
decision's evidence spans nights, and `decision_evidence` has no key to refuse a request two
nights with overlapping windows would both add (migration 015); each night's unit of work sees
the one before it committed. Other processes wait for the warehouse itself (`WarehouseLock`)."""

