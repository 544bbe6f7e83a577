import numpy as np
import polars as pl
import pytest

from replaybench import stats
from tasks.score import recommend, score_outcomes, verdict


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


def test_mcnemar_exact_on_discordant_pairs():
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(10, 0) == pytest.approx(2 * 0.5**10)
    assert stats.mcnemar_exact(5, 5) == pytest.approx(1.0)


def test_verdict_rule():
    assert verdict(0.001, 0.05, 0.20) == "improved"
    assert verdict(0.001, -0.20, -0.05) == "regressed"
    assert verdict(0.80, -0.02, 0.02) == "no_difference"
    assert verdict(0.20, -0.10, 0.04) == "inconclusive"


def test_scores_pair_the_candidate_with_production_on_the_same_requests():
    base = [True] * 80 + [False] * 20
    worse = [True] * 50 + [False] * 50          # fails 30 requests production passed
    frame = pl.concat([outcomes("t@v1", "production", base, cost=0.002),
                       outcomes("t@v1", "cand", worse, cost=0.001, tokens=300)])
    scores = {r["model"]: r for r in score_outcomes(frame, "production").iter_rows(named=True)}
    cand, prod = scores["cand"], scores["production"]
    assert (prod["n"], prod["passed"], prod["pass_rate"]) == (100, 80, 0.8)
    assert prod["verdict"] is None and prod["recommendation"] is None
    assert cand["delta_vs_baseline"] == pytest.approx(-0.30)
    assert cand["verdict"] == "regressed" and cand["recommendation"] == "reject"
    assert cand["cost_per_success_usd"] == pytest.approx(0.1 / 50)
    assert cand["output_tokens_per_task"] == 300
    assert cand["tokens_per_success"] == pytest.approx(300 * 100 / 50)  # all tokens / successes
    assert cand["output_tps_p50"] == 80.0
    assert "3.0× the output tokens" in cand["reason"]
    assert cand["pass_rate_low"] < 0.5 < cand["pass_rate_high"]


def test_errors_count_as_failures_and_in_the_error_rate():
    status = ["ok"] * 90 + ["error"] * 10
    frame = pl.concat([outcomes("t@v1", "production", [True] * 100),
                       outcomes("t@v1", "cand", [True] * 90 + [False] * 10, status=status)])
    cand = score_outcomes(frame, "production").filter(pl.col("model") == "cand").row(0, named=True)
    assert cand["error_rate"] == pytest.approx(0.10)
    assert cand["pass_rate"] == pytest.approx(0.90)


def test_recommendation_weighs_quality_against_cost():
    base = {"cost_per_success_usd": 0.010, "output_tokens_per_task": 100}
    row = {"verdict": "no_difference", "cost_per_success_usd": 0.005, "error_rate": 0.0,
           "output_tokens_per_task": 100, "delta_vs_baseline": 0.0, "delta_low": -0.02,
           "delta_high": 0.02, "p_value": 1.0}
    assert recommend(row, base)[0] == "promote"
    assert recommend({**row, "cost_per_success_usd": 0.009}, base)[0] == "canary"
    assert recommend({**row, "cost_per_success_usd": 0.020}, base)[0] == "hold"
    assert recommend({**row, "verdict": "improved", "cost_per_success_usd": 0.030}, base)[0] == \
        "canary"
    assert recommend({**row, "verdict": "inconclusive"}, base)[0] == "hold"
    assert recommend({**row, "error_rate": 0.2}, base)[0] == "reject"


def test_sample_size_planning_matches_the_textbook_formula():
    # two proportions 80 % vs 75 %, alpha 0.05 two-sided, power 0.8: 1,094 per group
    assert stats.required_sample_size(0.80, 0.05) == 1094
    assert stats.required_sample_size(0.50, 0.10) < stats.required_sample_size(0.50, 0.05)
    assert stats.required_sample_size(0.80, 0.05, power=0.9) > 1094


def test_an_inconclusive_verdict_says_how_many_more_samples_it_needs():
    base = [True] * 40 + [False] * 10
    cand = [True] * 38 + [False] * 12
    frame = pl.concat([outcomes("t@v1", "production", base), outcomes("t@v1", "cand", cand)])
    row = score_outcomes(frame, "production").filter(pl.col("model") == "cand").row(0, named=True)
    assert row["verdict"] == "inconclusive" and row["n_needed"] > 50
    assert f"about {row['n_needed'] - 50} more samples needed" in row["reason"]


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


def test_holm_keeps_the_family_wise_error_rate():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([None, 0.5]) == [None, 0.5]


def test_paired_planning_needs_fewer_requests_when_models_agree():
    unpaired = stats.required_sample_size(0.80, 0.05)
    assert stats.paired_sample_size(0.10, 0.05) < stats.paired_sample_size(0.30, 0.05) < unpaired
    assert stats.paired_sample_size(0.10, 0.05, alpha=0.01) > stats.paired_sample_size(0.10, 0.05)


def test_the_verdict_uses_holm_across_every_candidate_row_of_the_run():
    base = [True] * 90 + [False] * 10
    slightly_worse = [True] * 80 + [False] * 20    # 10 discordant, all against: p = 0.002
    frames = [outcomes("t@v1", "production", base), outcomes("t@v1", "cand", slightly_worse)]
    alone = score_outcomes(pl.concat(frames), "production").filter(pl.col("model") == "cand")
    assert alone["p_value_adjusted"][0] == pytest.approx(alone["p_value"][0])
    assert alone["verdict"][0] == "regressed"
    for i in range(30):                            # 30 more comparisons, none of them different
        frames.append(outcomes("t@v1", f"same{i}", base))
    crowd = score_outcomes(pl.concat(frames), "production").filter(pl.col("model") == "cand")
    assert crowd["p_value_adjusted"][0] == pytest.approx(31 * alone["p_value"][0])
    assert crowd["verdict"][0] == "inconclusive"


def test_scores_carry_paired_deltas_for_tokens_cost_and_latency():
    frame = pl.concat([outcomes("t@v1", "production", [True] * 50, cost=0.002, tokens=100),
                       outcomes("t@v1", "cand", [True] * 50, cost=0.001, tokens=300)])
    row = score_outcomes(frame, "production").filter(pl.col("model") == "cand").row(0, named=True)
    assert row["output_tokens_delta"] == pytest.approx(200)
    assert row["output_tokens_delta_low"] == pytest.approx(200)   # no spread, no uncertainty
    assert row["cost_delta_usd"] == pytest.approx(-0.001)
    assert row["latency_delta_ms"] == pytest.approx(0)
    assert row["reasoning_share"] == 0
    assert row["verdict"] == "no_difference"   # identical answers: interval ±1 point
