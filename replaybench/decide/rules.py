"""A decision's rules, free of the warehouse: how evidence adds up, what a look concludes, and
what a stakeholder is told to do. The warehouse side (`decide.evidence`) and the simulation that
proves the guarantees both call these same functions.

A decision compares one candidate with the baseline on one prompt_version, for one evidence key.
Its pairs accumulate night after night; each night is one look of the group-sequential design in
`decide.sequential`, and every verdict is read from that look's interval:

- `improved` / `regressed`: the interval lies wholly above / below zero;
- `equivalent`: it lies wholly within +-margin;
- `non_inferior`: its lower end is above -margin, and the candidate is known to be cheaper (a
  dearer one keeps going, so that it can still show it is better);
- at the planned size, a decision still open ends `non_inferior` if the lower end clears -margin,
  else `inconclusive`: the planned pairs did not settle it (it stays so; reopening starts a new
  design with its own error rate, so reopen when something changed, not to try again).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from replaybench.decide import sequential, stats

OPEN = "open"
IMPROVED, REGRESSED = "improved", "regressed"
EQUIVALENT, NON_INFERIOR, INCONCLUSIVE = "equivalent", "non_inferior", "inconclusive"
REACHED = (IMPROVED, REGRESSED, EQUIVALENT, NON_INFERIOR, INCONCLUSIVE)

ALPHA = 0.05              # family-wise: shared by the decisions opened together
MARGIN = 0.03             # non-inferiority / equivalence margin (config: decide.margin)
DIFFERENCE = 0.05         # the change the plan promises to catch
POWER = 0.9               # ... with this power
NI_POWER = 0.8            # and to show non-inferiority of an equal candidate with this one
PLANNING_DISCORDANCE = 0.2  # share of pairs where only one model passes, before any is seen
MAX_ERROR_RATE = 0.10
PROMOTE_COST_RATIO = 1.25   # an improved candidate is promoted up to this cost per success
SAVING_RATIO = 0.80         # a non-inferior one only at this cost per success or less

RANK = {"promote": 0, "canary": 1, "hold": 2, "reject": 3}


@dataclass(frozen=True)
class Tally:
    """Paired evidence so far: requests both answered-or-failed, who passed alone, and cost."""

    pairs: int = 0
    only_candidate: int = 0
    only_baseline: int = 0
    candidate_passed: int = 0
    baseline_passed: int = 0
    errors: int = 0
    candidate_cost: float | None = 0.0   # None: some answer had no known price
    baseline_cost: float | None = 0.0
    nights: int = 0
    calls: int | None = None   # candidate calls, failed ones included (None: as many as pairs)

    def add(self, other: Tally) -> Tally:
        """This evidence and another night's, as one (a night with no pairs adds no night)."""
        def plus(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a + b

        return Tally(self.pairs + other.pairs, self.only_candidate + other.only_candidate,
                     self.only_baseline + other.only_baseline,
                     self.candidate_passed + other.candidate_passed,
                     self.baseline_passed + other.baseline_passed, self.errors + other.errors,
                     plus(self.candidate_cost, other.candidate_cost),
                     plus(self.baseline_cost, other.baseline_cost),
                     self.nights + (1 if other.pairs else 0), self.attempted + other.attempted)

    @property
    def attempted(self) -> int:
        """Calls made, failed ones included."""
        return self.pairs if self.calls is None else self.calls

    @property
    def delta(self) -> float | None:
        return (self.only_candidate - self.only_baseline) / self.pairs if self.pairs else None

    @property
    def discordance(self) -> float | None:
        return (self.only_candidate + self.only_baseline) / self.pairs if self.pairs else None

    @property
    def error_rate(self) -> float:
        return self.errors / self.attempted if self.attempted else 0.0

    @property
    def cost_ratio(self) -> float | None:
        """Candidate's cost per success over the baseline's, on the same requests; None when
        either cost is unknown or either never succeeded (unknown cost is not zero cost)."""
        if self.candidate_cost is None or self.baseline_cost is None:
            return None
        if not self.candidate_passed or not self.baseline_passed or not self.baseline_cost:
            return None
        return (self.candidate_cost / self.candidate_passed) / (
            self.baseline_cost / self.baseline_passed)


@dataclass(frozen=True)
class Plan:
    """A decision's design, fixed when it opens."""

    alpha: float          # its share of the family's error rate
    margin: float
    planned_pairs: int    # the most pairs it may take (its final look)
    fixed_pairs: int      # what a fixed-size design would take for the same power

    def fraction(self, pairs: int) -> float:
        return min(1.0, pairs / self.planned_pairs)


def plan(family_size: int, pairs_per_night: float, discordance: float | None = None,
         alpha: float = ALPHA, margin: float = MARGIN, difference: float = DIFFERENCE,
         power: float = POWER, ni_power: float = NI_POWER) -> Plan:
    """The design of a decision opened in a family of `family_size` decisions (Bonferroni: each
    gets alpha / family_size) that expects `pairs_per_night`, planned on the discordance seen so
    far (its upper 95 % bound), else PLANNING_DISCORDANCE."""
    share = alpha / max(1, family_size)
    psi = min(max(discordance if discordance is not None else PLANNING_DISCORDANCE,
                  difference, 1e-3), 1.0)
    # two promises: catch a change of `difference` (sd of a pair's difference under it), and
    # show an equal candidate within `margin`
    promises = [(difference, math.sqrt(max(psi - difference ** 2, 1e-6)), power),
                (margin, math.sqrt(psi), ni_power)]
    planned = max(sequential.planned_pairs(e, sd, share, pw, pairs_per_night)
                  for e, sd, pw in promises)
    fixed = max(sequential.fixed_pairs(e, sd, share, pw) for e, sd, pw in promises)
    return Plan(share, margin, planned, fixed)


@dataclass(frozen=True)
class Look:
    """What one night's look at a decision found."""

    fraction: float
    critical: float
    delta: float | None
    low: float | None
    high: float | None
    state: str


def look(p: Plan, tally: Tally, earlier: tuple[float, ...]) -> Look:
    """Look at the evidence after tonight, given the information fractions of the earlier looks:
    the repeated confidence interval at this look's critical value, and the state it reaches."""
    fraction = p.fraction(tally.pairs)
    fractions = sequential.looks_for([*earlier, fraction])
    if not tally.pairs:
        return Look(fraction, math.inf, None, None, None, OPEN)
    # too little new since the last look: that look's critical value stands
    critical = sequential.critical_values(fractions, p.alpha)[-1]
    low, high = stats.tango_interval(tally.only_candidate, tally.only_baseline, tally.pairs,
                                     critical)
    final = fraction >= 1.0
    return Look(fraction, critical, tally.delta, low, high,
                state_of(low, high, p.margin, final, tally.cost_ratio))


def state_of(low: float | None, high: float | None, margin: float, final: bool,
             cost_ratio: float | None) -> str:
    """The state an interval reaches (see the module docstring)."""
    if low is None or high is None:
        return OPEN
    if low > 0:
        return IMPROVED
    if high < 0:
        return REGRESSED
    if low > -margin and high < margin:
        return EQUIVALENT
    cheaper = cost_ratio is not None and cost_ratio < 1
    if low > -margin and (cheaper or final):
        return NON_INFERIOR
    return INCONCLUSIVE if final else OPEN


def recommend(state: str, cost_ratio: float | None, error_rate: float) -> str:
    """promote | canary | hold | reject for a decision's state.

    reject: regressed, or more than MAX_ERROR_RATE of calls failed. promote: improved at no more
    than PROMOTE_COST_RATIO x the baseline's cost per success, or non-inferior/equivalent at
    SAVING_RATIO or less, cost known in both cases. canary: improved but dearer or of unknown cost,
    or non-inferior/equivalent and cheaper. hold: anything else, open decisions included."""
    if state == REGRESSED or error_rate > MAX_ERROR_RATE:
        return "reject"
    if state == IMPROVED:
        return "promote" if cost_ratio is not None and cost_ratio <= PROMOTE_COST_RATIO \
            else "canary"
    if state in (NON_INFERIOR, EQUIVALENT) and cost_ratio is not None:
        if cost_ratio <= SAVING_RATIO:
            return "promote"
        if cost_ratio < 1:
            return "canary"
    return "hold"


def planning_discordance(tally: Tally) -> float | None:
    """The discordance a plan is made on: the upper 95 % bound of what the first night saw,
    rounded up to a multiple of 0.05 (so decisions alike share one plan); None before any pair."""
    if not tally.pairs:
        return None
    upper = stats.wilson(tally.only_candidate + tally.only_baseline, tally.pairs)[1]
    return min(1.0, math.ceil(upper / 0.05 - 1e-9) * 0.05)


def nights_needed(p: Plan, pairs_per_night: float, tally: Tally | None = None) -> int:
    """Nights until the final look at `pairs_per_night` (from the start, or from `tally`)."""
    left = p.planned_pairs - (tally.pairs if tally else 0)
    return max(0, math.ceil(left / max(pairs_per_night, 1.0)))


def remaining(p: Plan, tally: Tally) -> int:
    """Pairs the decision may still take before its final look."""
    return max(0, p.planned_pairs - tally.pairs)

