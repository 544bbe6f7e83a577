"""A group-sequential design for a decision that is looked at every night.

Each night adds paired requests to a decision and looks at it once. Looking every night with a
fixed-sample test would multiply false calls (at 5 % a look, an equal candidate is called
different at least once in 30 nights far more often than 5 % of the time). So a decision spends
its error rate over its planned size with a Lan-DeMets alpha-spending function of the Pocock type,
alpha * ln(1 + (e - 1) t), where t is the share of the planned pairs seen so far. Each look gets a
critical value such that, under no difference, the chance of crossing it at that look and at none
before is exactly the alpha spent since the last look (computed by the recursive numerical
integration of Armitage, McPherson and Rowe on the Brownian-motion approximation). The interval at
a look (a repeated confidence interval, Jennison and Turnbull) uses that critical value: over all
looks together it covers the true difference with probability at least 1 - alpha, however many
nights are looked at and whenever the decision stops. Every verdict is read from that one interval.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

GRID_STEP = 0.01      # of the score process S(t) = Z(t) * sqrt(t), whose variance is t <= 1
GRID_HALF_WIDTH = 6.0
MIN_STEP = 0.0005     # a look adding less than this share of the plan is no new look


def spent(t: float, alpha: float) -> float:
    """Alpha spent by information fraction t (Lan-DeMets, Pocock type); all of it at t >= 1."""
    if t <= 0:
        return 0.0
    return alpha if t >= 1 else alpha * math.log(1 + (math.e - 1) * t)


@lru_cache(maxsize=4096)
def critical_values(fractions: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    """Two-sided critical values (on the z scale) for looks at the given increasing information
    fractions (the last may be 1, the final look), spending `alpha` in all."""
    grid = np.arange(-GRID_HALF_WIDTH, GRID_HALF_WIDTH + GRID_STEP / 2, GRID_STEP)
    weights = np.full(grid.size, GRID_STEP)
    weights[[0, -1]] = GRID_STEP / 2
    density = None  # sub-density of S at the previous look, over paths that have not crossed
    previous_t, previous_spent = 0.0, 0.0
    out: list[float] = []
    for t in fractions:
        t = min(t, 1.0)
        target = spent(t, alpha) - previous_spent
        if density is None:
            c = float(stats.norm.isf(target / 2)) if target > 0 else math.inf
            sd = math.sqrt(t)
            density = np.where(np.abs(grid) < c * sd, stats.norm.pdf(grid, scale=sd), 0.0)
        else:
            step_sd = math.sqrt(t - previous_t)
            mass = density * weights

            def crossing(c: float, mass=mass, step_sd=step_sd, t=t) -> float:
                b = c * math.sqrt(t)
                return float(mass @ (stats.norm.cdf((-b - grid) / step_sd)
                                     + stats.norm.sf((b - grid) / step_sd)))

            if target <= 0:
                c = math.inf
            else:
                c = float(optimize.brentq(lambda x, goal=target: crossing(x) - goal, 0.0, 40.0,
                                          xtol=1e-6))
            offsets = np.arange(-(grid.size - 1), grid.size) * GRID_STEP
            kernel = np.exp(-0.5 * (offsets / step_sd) ** 2) / (step_sd * math.sqrt(2 * math.pi))
            density = np.convolve(mass, kernel, mode="valid")  # sum over x of mass(x) k(y - x)
            density[np.abs(grid) >= c * math.sqrt(t)] = 0.0
        out.append(c)
        previous_t, previous_spent = t, spent(t, alpha)
    return tuple(out)


def looks_for(fractions: list[float]) -> tuple[float, ...]:
    """The looks that count: increasing fractions at least MIN_STEP apart, none after 1."""
    kept: list[float] = []
    for t in fractions:
        t = min(t, 1.0)
        if kept and (kept[-1] >= 1.0 or t - kept[-1] < MIN_STEP):
            continue
        kept.append(round(t, 6))
    return tuple(kept)


def planned_pairs(effect: float, sd: float, alpha: float, power: float,
                  pairs_per_night: float, max_nights: int = 60) -> int:
    """The most pairs the design may take to find a true `effect` (per-pair standard deviation
    `sd`) with `power`, judged at the critical value of its final look, with looks a night of
    `pairs_per_night` apart. Early looks only add chances to find it, so the power is at least
    that."""
    z_power = stats.norm.ppf(power)
    n = fixed_pairs(effect, sd, alpha, power)
    for _ in range(20):  # the final critical value depends on how many nights the plan takes
        nights = max(1, min(max_nights, math.ceil(n / max(pairs_per_night, 1.0))))
        final = critical_values(tuple((k + 1) / nights for k in range(nights)), alpha)[-1]
        new = ((final + z_power) * sd / effect) ** 2
        if abs(new - n) < 1:
            break
        n = new
    return max(1, math.ceil(n))


def fixed_pairs(effect: float, sd: float, alpha: float, power: float) -> int:
    """What a fixed-size design, tested once at two-sided `alpha`, needs for the same promise."""
    z = stats.norm.isf(alpha / 2) + stats.norm.ppf(power)
    return max(1, math.ceil((z * sd / effect) ** 2))
