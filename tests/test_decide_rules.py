"""The decision rules at their edges, and Tango's score interval against a direct computation."""

import math

import numpy as np
import pytest
from scipy import optimize

from replaybench.decide import rules, sequential, stats


def score_by_brute_force(b: int, c: int, n: int, delta0: float) -> float:
    """The score statistic from the restricted MLE found numerically (no closed form)."""
    a = n - b - c  # concordant pairs; only their total matters for the difference

    def nll(q: float) -> float:  # q = P(baseline only); P(candidate only) = q + delta0
        p = q + delta0
        rest = 1 - p - q
        return -(b * math.log(max(p, 1e-300)) + c * math.log(max(q, 1e-300))
                 + a * math.log(max(rest, 1e-300)))

    lo, hi = max(0.0, -delta0) + 1e-12, (1 - delta0) / 2 - 1e-12
    q = optimize.minimize_scalar(nll, bounds=(lo, hi), method="bounded",
                                 options={"xatol": 1e-12}).x
    variance = n * (2 * q + delta0 - delta0 ** 2)
    return (b - c - n * delta0) / math.sqrt(variance)


@pytest.mark.parametrize("b,c,n,delta0", [(10, 4, 100, 0.0), (10, 4, 100, 0.05), (40, 62, 2000, -0.02),
                                          (3, 7, 50, -0.1), (0, 5, 40, 0.03)])
def test_tango_statistic_is_the_score_statistic(b, c, n, delta0):
    assert stats.tango_statistic(b, c, n, delta0) == pytest.approx(
        score_by_brute_force(b, c, n, delta0), rel=1e-4)
    assert stats.tango_statistic(b, c, n, 0.0) == pytest.approx((b - c) / math.sqrt(b + c))


def test_no_discordant_pairs_is_no_proof_of_no_difference():
    # the review's case: 40 pairs that all agree. A Wald interval says +-2.5 points; the score
    # interval says +-8.8 (c^2 / (n + c^2)), so it is not within the 3-point margin.
    low, high = stats.tango_interval(0, 0, 40)
    assert low == pytest.approx(-high) and high == pytest.approx(1.96 ** 2 / (40 + 1.96 ** 2), rel=1e-3)
    assert rules.state_of(low, high, 0.03, final=False, cost_ratio=0.5) == rules.OPEN


def test_the_interval_and_the_verdict_never_disagree():
    # b = 40, c = 62 of 2,000 at the 95 % value: the interval excludes zero, and so does the state
    low, high = stats.tango_interval(40, 62, 2000)
    assert high < 0 and rules.state_of(low, high, 0.03, False, None) == rules.REGRESSED
    for b, c, n in [(0, 0, 10), (5, 0, 5), (0, 40, 40), (30, 10, 200), (12, 11, 2000)]:
        low, high = stats.tango_interval(b, c, n)
        state = rules.state_of(low, high, 0.03, False, 0.5)
        assert (state == rules.IMPROVED) == (low > 0) and (state == rules.REGRESSED) == (high < 0)


def test_edge_cases_of_a_look():
    plan = rules.plan(1, 100)
    assert rules.look(plan, rules.Tally(), ()).state == rules.OPEN            # n = 0
    all_pass = rules.Tally(pairs=100, candidate_passed=100, baseline_passed=100,
                           candidate_cost=0.1, baseline_cost=0.2, nights=1)
    first = rules.look(plan, all_pass, ())
    assert first.state == rules.OPEN and first.low < 0 < first.high           # b = c = 0 early
    all_fail = rules.Tally(pairs=100, candidate_cost=0.1, baseline_cost=0.2, nights=1)
    assert all_fail.cost_ratio is None                                        # nobody succeeded
    assert rules.recommend(rules.look(plan, all_fail, ()).state, None, 0) == "hold"
    broken = rules.Tally(pairs=100, only_baseline=90, baseline_passed=90, errors=100,
                         candidate_cost=0.0, baseline_cost=0.2, nights=1)
    seen = rules.look(plan, broken, ())
    assert seen.state == rules.REGRESSED                                      # errors on every request
    assert rules.recommend(seen.state, broken.cost_ratio, broken.error_rate) == "reject"
    unpriced = rules.Tally(pairs=10, candidate_passed=10, baseline_passed=10, candidate_cost=None,
                           baseline_cost=0.2, nights=1)
    assert unpriced.cost_ratio is None and unpriced.add(all_pass).candidate_cost is None
    assert rules.recommend(rules.NON_INFERIOR, unpriced.cost_ratio, 0) == "hold"


def test_at_the_planned_size_an_open_decision_ends():
    assert rules.state_of(-0.02, 0.05, 0.03, final=True, cost_ratio=2.0) == rules.NON_INFERIOR
    assert rules.state_of(-0.05, 0.01, 0.03, final=True, cost_ratio=0.5) == rules.INCONCLUSIVE
    assert rules.state_of(-0.05, 0.01, 0.03, final=False, cost_ratio=0.5) == rules.OPEN
    assert rules.state_of(-0.02, 0.05, 0.03, final=False, cost_ratio=2.0) == rules.OPEN  # dearer: go on


def test_the_design_spends_exactly_its_alpha():
    """The critical values, checked by Monte Carlo on the Brownian motion they were computed for."""
    fractions = (0.1, 0.25, 0.3, 0.6, 0.61, 1.0)
    crit = np.array(sequential.critical_values(fractions, 0.05))
    rng = np.random.default_rng(0)
    steps = np.diff((0.0, *fractions))
    paths = (rng.standard_normal((200_000, len(fractions))) * np.sqrt(steps)).cumsum(axis=1)
    crossed = (np.abs(paths / np.sqrt(fractions)) >= crit).any(axis=1).mean()
    assert crossed == pytest.approx(0.05, abs=0.003)
    assert sequential.looks_for([0.1, 0.10001, 0.5, 1.2, 1.5]) == (0.1, 0.5, 1.0)


def test_the_plan_needs_more_than_a_fixed_design_at_most_but_finishes_sooner_on_average():
    plan = rules.plan(4, 200, 0.2)
    assert plan.fixed_pairs < plan.planned_pairs < 1.5 * plan.fixed_pairs
    assert plan.alpha == pytest.approx(0.05 / 4)
