import zlib

import numpy as np
import polars as pl
import pytest

from replaybench.decide import stats
from replaybench.decide.rules import recommend
from replaybench.decide.scores import score_outcomes
from replaybench.warehouse import open_warehouse


def outcomes(pv, model, passes, *, cost=0.001, tokens=100, status=None):
    n = len(passes)
    return pl.DataFrame({
        "request_id": [f"r{i}" for i in range(n)], "prompt_version": [pv] * n, "model": [model] * n,
        "status": status or ["ok"] * n, "output_tokens": [tokens] * n,
        "reasoning_tokens": [0] * n, "cost_usd": [cost] * n,
        "latency_ms": [float(100 + i) for i in range(n)], "ttft_ms": [50.0] * n, "output_tps": [80.0] * n,
        "passed": passes,
    })


@pytest.fixture
def scored(tmp_path):
    """Scores of outcomes held in a warehouse (a real DuckDB file), as a night's are."""
    def score(frame: pl.DataFrame) -> pl.DataFrame:
        with open_warehouse(tmp_path / "warehouse.duckdb") as wh, wh.registered("_o", frame):
            return score_outcomes(wh, "_o", "production")
    return score


def test_wilson_interval_matches_the_textbook_values():
    low, high = stats.wilson(81, 263)  # Wilson (1927) example used in many references
    assert low == pytest.approx(0.2553, abs=1e-3) and high == pytest.approx(0.3662, abs=1e-3)
    assert stats.wilson(0, 0) == (None, None)
    assert stats.wilson(10, 10)[1] == pytest.approx(1.0)


def test_scores_pair_the_candidate_with_production_on_the_same_requests(scored):
    base = [True] * 80 + [False] * 20
    worse = [True] * 50 + [False] * 50          # fails 30 requests production passed
    frame = pl.concat([outcomes("t@v1", "production", base, cost=0.002),
                       outcomes("t@v1", "cand", worse, cost=0.001, tokens=300)])
    scores = {r["model"]: r for r in scored(frame).iter_rows(named=True)}
    cand, prod = scores["cand"], scores["production"]
    assert (prod["n"], prod["passed"], prod["pass_rate"]) == (100, 80, 0.8)
    assert (cand["pairs"], cand["only_candidate"], cand["only_baseline"]) == (100, 0, 30)
    assert cand["cost_per_success_usd"] == pytest.approx(0.1 / 50)
    assert cand["output_tokens_per_task"] == 300
    assert cand["tokens_per_success"] == pytest.approx(300 * 100 / 50)  # all tokens / successes
    assert cand["output_tps_p50"] == 80.0
    assert cand["pass_rate_low"] < 0.5 < cand["pass_rate_high"]


def test_errors_count_as_failures_and_in_the_error_rate(scored):
    status = ["ok"] * 90 + ["error"] * 10
    frame = pl.concat([outcomes("t@v1", "production", [True] * 100),
                       outcomes("t@v1", "cand", [True] * 90 + [False] * 10, status=status)])
    cand = scored(frame).filter(pl.col("model") == "cand").row(0, named=True)
    assert cand["error_rate"] == pytest.approx(0.10)
    assert cand["pass_rate"] == pytest.approx(0.90)


def test_paired_bootstrap_brackets_the_mean_difference_and_is_deterministic():
    rng = np.random.default_rng(7)
    base = rng.normal(100, 20, 400)
    cand = base + 30 + rng.normal(0, 5, 400)       # same requests: 30 more, little extra noise
    delta, low, high = stats.paired_bootstrap(cand, base, seed=3)
    assert delta[0] == pytest.approx(np.mean(cand - base))
    assert low[0] < delta[0] < high[0] and high[0] - low[0] < 2.0   # pairing removes the spread
    again = stats.paired_bootstrap(cand, base, seed=3)
    assert (again[1] == low).all() and (again[2] == high).all()
    with_gap = stats.paired_bootstrap(np.array([[1.0, np.nan], [3.0, 5.0]]), np.zeros((2, 2)))
    assert list(with_gap[0]) == [2.0, 5.0]      # a NaN drops that request from that metric only


def test_scores_carry_paired_deltas_for_tokens_cost_and_latency(scored):
    frame = pl.concat([outcomes("t@v1", "production", [True] * 50, cost=0.002, tokens=100),
                       outcomes("t@v1", "cand", [True] * 50, cost=0.001, tokens=300)])
    row = scored(frame).filter(pl.col("model") == "cand").row(0, named=True)
    assert row["output_tokens_delta"] == pytest.approx(200)
    assert row["output_tokens_delta_low"] == pytest.approx(200)   # no spread, no uncertainty
    assert row["cost_delta_usd"] == pytest.approx(-0.001)
    assert row["latency_delta_ms"] == pytest.approx(0)
    assert row["reasoning_share"] == 0


def test_recommendation_needs_proof_and_a_known_cost():
    assert recommend("non_inferior", 0.5, 0.0) == "promote"
    assert recommend("equivalent", 0.9, 0.0) == "canary"
    assert recommend("equivalent", 1.2, 0.0) == "hold"
    assert recommend("non_inferior", None, 0.0) == "hold"        # unknown cost is not free
    assert recommend("improved", 1.2, 0.0) == "promote"
    assert recommend("improved", 3.0, 0.0) == "canary"
    assert recommend("improved", None, 0.0) == "canary"
    assert recommend("open", 0.1, 0.0) == "hold"                 # no proof yet: never promote
    assert recommend("inconclusive", 0.1, 0.0) == "hold"
    assert recommend("regressed", 0.1, 0.0) == "reject"
    assert recommend("improved", 0.5, 0.2) == "reject"           # too many failed calls


def test_an_answer_without_a_price_makes_cost_unknown_not_zero(scored):
    frame = pl.concat([outcomes("t@v1", "production", [True] * 10, cost=0.002),
                       outcomes("t@v1", "cand", [True] * 10, cost=None)])
    cand = scored(frame).filter(pl.col("model") == "cand").row(0, named=True)
    assert cand["cost_per_success_usd"] is None and cand["cost_per_task_usd"] is None


# --- a reference: the scores as Polars computed them in memory, for DuckDB's to be held to ----

def reference_scores(outcomes: pl.DataFrame, baseline: str) -> pl.DataFrame:
    """Tonight's scores from a frame of outcomes, by Polars (as `score_outcomes` computed them
    before it counted in DuckDB): the same columns, for the same numbers."""
    ok = pl.col("status") == "ok"
    summary = (
        outcomes.group_by("prompt_version", "model")
        .agg(n=pl.len(), passed=pl.col("passed").sum(),
             output_tokens_per_task=pl.col("output_tokens").mean(),
             reasoning_tokens_per_task=pl.col("reasoning_tokens").mean(),
             cost_total=pl.when((ok & pl.col("cost_usd").is_null()).any()).then(None)
             .otherwise(pl.col("cost_usd").sum()),
             latency_p50_ms=pl.col("latency_ms").filter(ok).quantile(0.5, "linear"),
             latency_p95_ms=pl.col("latency_ms").filter(ok).quantile(0.95, "linear"),
             ttft_p50_ms=pl.col("ttft_ms").filter(ok).quantile(0.5, "linear"),
             output_tps_p50=pl.col("output_tps").filter(ok).median(),
             output_tokens_total=pl.col("output_tokens").sum(),
             error_rate=(~ok).mean())
        .with_columns(pass_rate=pl.col("passed") / pl.col("n"),
                      cost_per_task_usd=pl.col("cost_total") / pl.col("n"),
                      cost_per_success_usd=pl.when(pl.col("passed") > 0)
                      .then(pl.col("cost_total") / pl.col("passed")),
                      tokens_per_success=pl.when(pl.col("passed") > 0)
                      .then(pl.col("output_tokens_total") / pl.col("passed")))
    )
    base = outcomes.filter(pl.col("model") == baseline).select(
        "request_id", base_passed=pl.col("passed"),
        base_tokens=pl.col("output_tokens").cast(pl.Float64),
        base_cost=pl.col("cost_usd").fill_null(0.0).cast(pl.Float64),
        base_latency=pl.when(ok).then(pl.col("latency_ms")).cast(pl.Float64))
    pairs = (outcomes.filter(pl.col("model") != baseline)
             .with_columns(tokens=pl.col("output_tokens").cast(pl.Float64),
                           cost=pl.col("cost_usd").fill_null(0.0).cast(pl.Float64),
                           latency=pl.when(ok).then(pl.col("latency_ms")).cast(pl.Float64))
             .join(base, on="request_id", how="inner").sort("request_id"))
    deltas = []
    for (pv, model), group in pairs.group_by("prompt_version", "model", maintain_order=True):
        delta, low, high = stats.paired_bootstrap(
            group.select("tokens", "cost", "latency").fill_null(np.nan).to_numpy(),
            group.select("base_tokens", "base_cost", "base_latency").fill_null(np.nan).to_numpy(),
            seed=zlib.crc32(f"{pv}\x00{model}".encode()))
        row = {"prompt_version": pv, "model": model, "pairs": group.height,
               "only_candidate": (group["passed"] & ~group["base_passed"]).sum(),
               "only_baseline": (~group["passed"] & group["base_passed"]).sum()}
        for i, name in enumerate(["output_tokens_delta", "cost_delta_usd", "latency_delta_ms"]):
            for suffix, array in (("", delta), ("_low", low), ("_high", high)):
                row[name + suffix] = None if np.isnan(array[i]) else float(array[i])
        deltas.append(row)
    rows = list(summary.join(pl.DataFrame(deltas, infer_schema_length=None),
                             on=["prompt_version", "model"], how="left")
                .with_columns(reasoning_share=pl.when(pl.col("output_tokens_per_task") > 0).then(
                    pl.col("reasoning_tokens_per_task") / pl.col("output_tokens_per_task")))
                .sort("prompt_version", "model").iter_rows(named=True))
    for row in rows:
        row["pass_rate_low"], row["pass_rate_high"] = stats.wilson(row["passed"], row["n"])
    return pl.DataFrame(rows, infer_schema_length=None)


def test_scores_counted_in_duckdb_are_those_polars_counted(scored):
    """Failures, unpriced answers, failed calls and latencies that differ: the scores counted in
    DuckDB are the reference's, column for column: counts and the bootstrap's deltas and
    intervals to the bit (its pairs in the same order, byte order of their ids), sums and
    quantiles to 1e-12 (rounded as DuckDB rounds)."""
    rng = np.random.default_rng(11)
    n = 300
    frames = []
    for pv in ("a@v1", "b@v2"):
        for model in ("production", "cand", "other"):
            frame = outcomes(pv, model, list(rng.random(n) < 0.8),
                             cost=None, tokens=0,
                             status=list(np.where(rng.random(n) < 0.1, "error", "ok")))
            frames.append(frame.with_columns(  # ids whose byte order is not their case-less one
                request_id=pl.Series([f"{pv}{'Rr_-'[i % 4]}{i}" for i in range(n)]),
                output_tokens=pl.Series(rng.integers(10, 500, n)),
                reasoning_tokens=pl.Series(rng.integers(0, 50, n)),
                cost_usd=pl.Series(np.where((rng.random(n) < 0.05) & (model == "other"), None,
                                            rng.random(n) / 100).tolist(), dtype=pl.Float64),
                latency_ms=pl.Series(rng.normal(800, 200, n)),
                ttft_ms=pl.Series(rng.normal(100, 20, n))))
    frame = pl.concat(frames)
    assert_same_scores(scored(frame), reference_scores(frame, "production"))


BOOTSTRAPPED = ("output_tokens_delta", "cost_delta_usd", "latency_delta_ms")


def assert_same_scores(got: pl.DataFrame, expected: pl.DataFrame) -> None:
    """The same rows and numbers (integers as integers of any width): the bootstrap's to the
    bit, other floats to 1e-12 (DuckDB sums and interpolates in its own order)."""
    assert got.columns == expected.columns
    got = got.sort("prompt_version", "model")
    expected = expected.sort("prompt_version", "model")
    for column in got.columns:
        mine, theirs = got[column].to_list(), expected[column].to_list()
        if got[column].dtype.is_float() and not column.startswith(BOOTSTRAPPED):
            assert [m is None for m in mine] == [t is None for t in theirs], column
            assert [m for m in mine if m is not None] == pytest.approx(
                [t for t in theirs if t is not None], rel=1e-12, nan_ok=True), column
        else:
            assert mine == theirs, column
