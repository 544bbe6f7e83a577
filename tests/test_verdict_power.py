"""The verdict rule, proved on runs with a known truth: at the sample size the README recommends
(planned for 90 % power) it catches a 5-point drop in at least 80 % of runs, and flags an equally
good candidate `regressed` in at most 5 %.

Pure simulation (the fleet's profiles draw each model's correctness independently per request, so
they cannot show how much pairing gains): each request has a shared difficulty, and a model passes
when difficulty plus its own noise clears its threshold — a latent correlation of 0.5 between two
models' pass/fail on the same request."""

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from replaybench import stats
from tasks.score import ALPHA, score_outcomes

BASELINE_PASS, DROP, LATENT_CORRELATION, POWER = 0.85, 0.05, 0.5, 0.9
MODELS = {"production": BASELINE_PASS, "worse": BASELINE_PASS - DROP, "same": BASELINE_PASS}
SEEDS = 240


def discordance(p1: float, p2: float, rho: float) -> float:
    """P(exactly one of two models passes) under the shared-difficulty model."""
    both = sps.multivariate_normal([0, 0], [[1, rho], [rho, 1]]).cdf(
        [sps.norm.ppf(p1), sps.norm.ppf(p2)])
    return p1 + p2 - 2 * both


def recommended_n() -> int:
    """The README's rule: paired sample size at ALPHA / (candidate rows in the run)."""
    psi = discordance(BASELINE_PASS, BASELINE_PASS - DROP, LATENT_CORRELATION)
    return stats.paired_sample_size(psi, DROP, ALPHA / (len(MODELS) - 1), POWER)


def simulated_run(seed: int, n: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    difficulty = rng.standard_normal(n)
    ids = [f"r{i}" for i in range(n)]
    frames = []
    for model, pass_rate in MODELS.items():
        latent = (np.sqrt(LATENT_CORRELATION) * difficulty
                  + np.sqrt(1 - LATENT_CORRELATION) * rng.standard_normal(n))
        frames.append(pl.DataFrame({
            "request_id": ids, "prompt_version": "t@v1", "model": model, "status": "ok",
            "output_tokens": rng.integers(50, 150, n), "reasoning_tokens": 0,
            "cost_usd": rng.uniform(0, 0.002, n), "latency_ms": rng.uniform(100, 900, n),
            "ttft_ms": 50.0, "output_tps": 80.0, "passed": latent < sps.norm.ppf(pass_rate),
        }))
    return pl.concat(frames)


def verdict_rates(n: int) -> dict[str, float]:
    verdicts = {"worse": [], "same": []}
    for seed in range(SEEDS):
        scores = score_outcomes(simulated_run(seed, n), "production")
        for model, v in scores.select("model", "verdict").iter_rows():
            if model in verdicts:
                verdicts[model].append(v)
    return {"power": np.mean([v == "regressed" for v in verdicts["worse"]]),
            "false_regressed": np.mean([v == "regressed" for v in verdicts["same"]])}


def test_pairing_needs_fewer_requests_than_two_independent_samples():
    n = recommended_n()
    psi = discordance(BASELINE_PASS, BASELINE_PASS - DROP, LATENT_CORRELATION)
    assert 0.15 < psi < 0.25  # models agree on most requests, as real ones do
    assert stats.paired_sample_size(psi, DROP) < stats.required_sample_size(BASELINE_PASS, DROP)
    assert n < stats.required_sample_size(BASELINE_PASS, DROP, ALPHA / 2, POWER)


def test_at_the_recommended_size_the_rule_has_the_promised_power():
    # Exact, over every possible outcome: the planning formula keeps its promise.
    psi = discordance(BASELINE_PASS, BASELINE_PASS - DROP, LATENT_CORRELATION)
    family = len(MODELS) - 1
    assert stats.regression_power(recommended_n(), psi, DROP, ALPHA / family) >= POWER
    assert stats.regression_power(recommended_n() // 2, psi, DROP, ALPHA / family) < POWER


def test_the_rule_catches_a_five_point_drop_and_rarely_cries_wolf():
    rates = verdict_rates(recommended_n())
    assert rates["power"] >= 0.80
    assert rates["false_regressed"] <= 0.05


def test_holm_adjusts_across_the_family():
    assert stats.holm([0.01, 0.04, None, 0.03, 0.005]) == pytest.approx(
        [0.03, 0.06, None, 0.06, 0.02])
    assert stats.holm([]) == [] and stats.holm([0.2]) == [0.2]


def test_the_rule_holds_on_the_fleets_own_simulated_models():
    """The same proof driven by the local fleet: a production profile, a copy of it 5 points worse
    at triage and an identical twin answer the same generated tickets under many seeds; the truth
    is each answer's `correct` flag (the fleet draws each model's correctness independently)."""
    import random

    from replaybench.sim import workloads
    from replaybench.sim.profiles import load_profiles

    production = load_profiles()["gpt-5-mini"]
    p = production.accuracy["triage"]
    worse = production.model_copy(update={"name": "gpt-5-mini-worse",
                                          "accuracy": {**production.accuracy, "triage": p - DROP}})
    twin = production.model_copy(update={"name": "gpt-5-mini-twin"})
    psi = p * (1 - (p - DROP)) + (p - DROP) * (1 - p)  # independent draws: P(exactly one passes)
    n = stats.paired_sample_size(psi, DROP, ALPHA / 2, POWER)
    tickets = [workloads.generate("triage", "triage@v4", random.Random(i)).messages for i in range(n)]
    ids = [f"r{i}" for i in range(n)]
    caught = false_alarms = 0
    seeds = 120
    for seed in range(seeds):
        frames = [pl.DataFrame({
            "request_id": ids, "prompt_version": "triage@v4", "model": name, "status": "ok",
            "output_tokens": 3, "reasoning_tokens": 0, "cost_usd": 0.0001, "latency_ms": 500.0,
            "ttft_ms": 100.0, "output_tps": 80.0,
            "passed": [bool(profile.respond(m, seed).correct) for m in tickets]})
            for name, profile in (("production", production), ("worse", worse), ("twin", twin))]
        verdicts = dict(score_outcomes(pl.concat(frames), "production")
                        .select("model", "verdict").iter_rows())
        caught += verdicts["worse"] == "regressed"
        false_alarms += verdicts["twin"] == "regressed"
    assert caught / seeds >= 0.80
    assert false_alarms / seeds <= 0.05
