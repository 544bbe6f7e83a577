"""The drift warning, proved on simulated nights with a known truth: on a stable process (whose true
pass rate still moves from night to night with the traffic mix) it fires on at most 1 % of
prompt_versions per night, where the rule it replaced fired on several %, and it still catches a
real drop."""

import statistics

import numpy as np
import pytest
from scipy import stats

from replaybench.decide.drift import production_drift

EARLIER_NIGHTS, STABLE_NIGHTS, DROP_NIGHTS = 14, 2000, 1000
# logit-normal night-to-night variation: sd 0.15 on the logit scale is a traffic-mix change of
# about +-1.4 points around 90 %
NIGHT_SD = 0.15


def old_rule(history: list[dict], passed: int, n: int) -> bool:
    """The rule this replaced: the median of >= 3 earlier pass rates outside tonight's Wilson 95 %."""
    earlier = [h["passed"] / h["n"] for h in history if h["n"]]
    if len(earlier) < 3 or not n:
        return False
    ci = stats.binomtest(passed, n).proportion_ci(0.95, method="wilson")
    return not ci.low <= statistics.median(earlier) <= ci.high


def simulate(nights: int, seed: int, tonight_rate: float | None = None,
             tonight_n: int | None = None) -> list[tuple[list[dict], int, int]]:
    """(history, passed, n) for `nights` prompt_version-nights, each with 14 earlier nights of a
    process whose mean is drawn in 70-95 % (or 90 % when tonight's rate is forced)."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(nights):
        mean = 0.9 if tonight_rate is not None else rng.uniform(0.7, 0.95)
        logits = np.log(mean / (1 - mean)) + NIGHT_SD * rng.standard_normal(EARLIER_NIGHTS + 1)
        rates = 1 / (1 + np.exp(-logits))
        sizes = rng.integers(80, 201, size=EARLIER_NIGHTS + 1)
        if tonight_rate is not None:
            rates[-1], sizes[-1] = tonight_rate, tonight_n
        passes = rng.binomial(sizes, rates)
        history = [{"passed": int(p), "n": int(s)} for p, s in zip(passes[:-1], sizes[:-1], strict=True)]
        cases.append((history, int(passes[-1]), int(sizes[-1])))
    return cases


@pytest.fixture(scope="module")
def stable() -> list[tuple[list[dict], int, int]]:
    return simulate(STABLE_NIGHTS, seed=20261129)


def test_stable_process_rarely_alarms(stable):
    alarms = sum(production_drift(*case) is not None for case in stable) / len(stable)
    assert alarms <= 0.01, f"{alarms:.2%} false alarms on a stable process"


def test_old_rule_alarmed_on_a_stable_process(stable):
    # documents the bug: the median of past nights is treated as exact and the nights as identical
    alarms = sum(old_rule(*case) for case in stable) / len(stable)
    assert alarms > 0.01, f"old rule: {alarms:.2%}"


def test_real_drop_is_caught():
    drops = simulate(DROP_NIGHTS, seed=7, tonight_rate=0.75, tonight_n=150)
    warnings = [production_drift(*case) for case in drops]
    assert sum(w is not None for w in warnings) / len(drops) >= 0.8
    assert all("below what its last 14 runs" in w for w in warnings if w)


def test_sentence_names_rate_range_and_direction():
    history = [{"passed": p, "n": 100} for p in (88, 91, 90, 89, 92)]
    below = production_drift(history, passed=70, n=100)
    assert below.startswith("production's own pass rate tonight (70.0 %) is below what its last 5 runs")
    assert below.endswith("the production model or its traffic has drifted")
    assert "above" in production_drift(history, passed=100, n=100)
    assert production_drift(history, passed=90, n=100) is None


def test_too_little_to_go_on():
    three = [{"passed": 90, "n": 100}] * 3
    assert production_drift(three[:2], passed=10, n=100) is None
    assert production_drift(three, passed=0, n=0) is None


def test_perfect_history():
    perfect = [{"passed": 100, "n": 100}] * 3
    assert production_drift(perfect, passed=100, n=100) is None
    assert "below" in production_drift(perfect, passed=80, n=100)


def test_empty_nights_are_ignored():
    history = [{"passed": 90, "n": 100}, {"passed": 0, "n": 0}, {"passed": 91, "n": 100},
               {"passed": None, "n": None}]
    assert production_drift(history, passed=10, n=100) is None  # two usable nights: too few
    history.append({"passed": 89, "n": 100})
    assert "last 3 runs" in production_drift(history, passed=10, n=100)
