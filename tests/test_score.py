import numpy as np
import polars as pl
import pytest

from replaybench.decide import stats
from replaybench.decide.rules import recommend
from replaybench.decide.scores import score_outcomes


def outcomes(pv, model, passes, *, cost=0.001, tokens=100, status=None):
    n = len(passes)
    return pl.DataFrame({
        "request_id": [f"r{i}" for i in range(n)], "prompt_version": [pv] * n, "model": [model] * n,
        "status": status or ["ok"] * n, "output_tokens": [tokens] * n,
        "reasoning_tokens": [0] * n, "cost_usd": [cost] * n,
        "latency_ms": [float(100 + i) for i in range(n)], "ttft_ms": [50.0] * n, "output_tps": [80.0] * n,
        "passed": passes,
    })


def test_wilson_interval_matches_the_textbook_values():
    low, high = stats.wilson(81, 263)  # Wilson (1927) example used in many references
    assert low == pytest.approx(0.2553, abs=1e-3) and high == pytest.approx(0.3662, abs=1e-3)
    assert stats.wilson(0, 0) == (None, None)
    assert stats.wilson(10, 10)[1] == pytest.approx(1.0)


def test_scores_pair_the_candidate_with_production_on_the_same_requests():
    base = [True] * 80 + [False] * 20
    worse = [True] * 50 + [False] * 50          # fails 30 requests production passed
    frame = pl.concat([outcomes("t@v1", "production", base, cost=0.002),
                       outcomes("t@v1", "cand", worse, cost=0.001, tokens=300)])
    scores = {r["model"]: r for r in score_outcomes(frame, "production").iter_rows(named=True)}
    cand, prod = scores["cand"], scores["production"]
    assert (prod["n"], prod["passed"], prod["pass_rate"]) == (100, 80, 0.8)
    assert (cand["pairs"], cand["only_candidate"], cand["only_baseline"]) == (100, 0, 30)
    assert cand["cost_per_success_usd"] == pytest.approx(0.1 / 50)
    assert cand["output_tokens_per_task"] == 300
    assert cand["tokens_per_success"] == pytest.approx(300 * 100 / 50)  # all tokens / successes
    assert cand["output_tps_p50"] == 80.0
    assert cand["pass_rate_low"] < 0.5 < cand["pass_rate_high"]


def test_errors_count_as_failures_and_in_the_error_rate():
    status = ["ok"] * 90 + ["error"] * 10
    frame = pl.concat([outcomes("t@v1", "production", [True] * 100),
                       outcomes("t@v1", "cand", [True] * 90 + [False] * 10, status=status)])
    cand = score_outcomes(frame, "production").filter(pl.col("model") == "cand").row(0, named=True)
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


def test_scores_carry_paired_deltas_for_tokens_cost_and_latency():
    frame = pl.concat([outcomes("t@v1", "production", [True] * 50, cost=0.002, tokens=100),
                       outcomes("t@v1", "cand", [True] * 50, cost=0.001, tokens=300)])
    row = score_outcomes(frame, "production").filter(pl.col("model") == "cand").row(0, named=True)
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


def test_an_answer_without_a_price_makes_cost_unknown_not_zero():
    frame = pl.concat([outcomes("t@v1", "production", [True] * 10, cost=0.002),
                       outcomes("t@v1", "cand", [True] * 10, cost=None)])
    cand = score_outcomes(frame, "production").filter(pl.col("model") == "cand").row(0, named=True)
    assert cand["cost_per_success_usd"] is None and cand["cost_per_task_usd"] is None
