"""The decision rule's guarantees, proved on simulated nights driven by the shipping functions
(`replaybench.decide.rules`): evidence accumulates, each night is one look, sampling stops for a
decision once it is reached. No HTTP: outcomes are drawn directly, so 500 seeds of 30 nights run
in seconds.

Each seed is one night-after-night family of four decisions opened together (Bonferroni shares
the 5 % between them): an equal candidate at the same cost, two more equal candidates that are
cheaper (so non-inferiority settles them), and one 5 points worse. Three of four are equal: the
family's false-call rate then sits close to its 5 % bound, so the test notices a weakened rule.
"""

from __future__ import annotations

import numpy as np
import pytest

from replaybench.decide import rules

SEEDS, NIGHTS, PAIRS_PER_NIGHT = 500, 30, 200
BASELINE_PASS, DISCORDANCE = 0.85, 0.20
# name: (true difference in pass rate, cost per request relative to the baseline's)
CANDIDATES = {"equal": (0.0, 1.0), "cheaper-a": (0.0, 0.6), "cheaper-b": (0.0, 0.6),
              "worse": (-0.05, 0.6)}
BASE_COST = 0.001


def night(rng: np.random.Generator, delta: float, pairs: int, cost_ratio: float) -> rules.Tally:
    """One night's pairs for a candidate `delta` better than the baseline."""
    only_c, only_b = (DISCORDANCE + delta) / 2, (DISCORDANCE - delta) / 2
    both = BASELINE_PASS - only_b
    oc, ob, bo, _ = rng.multinomial(pairs, [only_c, only_b, both, 1 - only_c - only_b - both])
    return rules.Tally(pairs=pairs, only_candidate=int(oc), only_baseline=int(ob),
                       candidate_passed=int(oc + bo), baseline_passed=int(ob + bo), errors=0,
                       candidate_cost=pairs * BASE_COST * cost_ratio,
                       baseline_cost=pairs * BASE_COST, nights=1)


def simulate(seed: int) -> dict[str, dict]:
    """30 nights of one family; per candidate: the state reached, the night and pairs it took,
    the night the planner promised after the first, and (for an equal candidate) whether it was
    ever called different, counting every look up to its planned size as if it never stopped:
    the interval's guarantee covers all of them, whenever a decision stops."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict] = {}
    for name, (delta, cost_ratio) in CANDIDATES.items():
        tally = night(rng, delta, PAIRS_PER_NIGHT, cost_ratio)
        plan = rules.plan(len(CANDIDATES), PAIRS_PER_NIGHT, rules.planning_discordance(tally))
        fractions: tuple[float, ...] = ()
        state, reached_at, spent, false_call = rules.OPEN, None, tally.pairs, False
        for n in range(1, NIGHTS + 1):
            if n > 1:
                tally = tally.add(night(rng, delta, PAIRS_PER_NIGHT, cost_ratio))
            seen = rules.look(plan, tally, fractions)
            fractions = (*fractions, seen.fraction)
            false_call |= delta == 0 and seen.state in (rules.IMPROVED, rules.REGRESSED)
            if reached_at is None and seen.state != rules.OPEN:
                state, reached_at, spent = seen.state, n, tally.pairs
                final_tally = tally
            if reached_at is not None and (delta != 0 or seen.fraction >= 1):
                break
        final_tally = final_tally if reached_at is not None else tally
        out[name] = {"state": state, "night": reached_at, "pairs": spent,
                     "promised": rules.nights_needed(plan, PAIRS_PER_NIGHT), "fixed": plan.fixed_pairs,
                     "false_call": false_call,
                     "recommendation": rules.recommend(state, final_tally.cost_ratio,
                                                       final_tally.error_rate)}
    return out


@pytest.fixture(scope="module")
def runs() -> list[dict[str, dict]]:
    return [simulate(seed) for seed in range(SEEDS)]


def test_an_equal_candidate_is_almost_never_called_different(runs):
    family_false = np.mean([any(r[c]["false_call"] for c in r) for r in runs])
    assert family_false <= 0.05


def test_a_five_point_drop_is_caught_within_the_promised_nights(runs):
    worse = [r["worse"] for r in runs]
    caught = np.mean([w["state"] == rules.REGRESSED and w["night"] <= w["promised"] for w in worse])
    assert caught >= 0.90
    assert np.mean([w["recommendation"] == "reject" for w in worse]) >= 0.90


def test_a_cheaper_non_inferior_candidate_is_promoted(runs):
    promoted = np.mean([r[c]["recommendation"] == "promote" for r in runs
                        for c in ("cheaper-a", "cheaper-b")])
    assert promoted >= 0.80


def test_the_sequential_design_spends_less_than_a_fixed_one(runs):
    reached = [r[c] for r in runs for c in r if r[c]["night"] is not None]
    spent = sum(d["pairs"] for d in reached) / len(reached)
    fixed = sum(d["fixed"] for d in reached) / len(reached)
    assert spent <= 0.70 * fixed
