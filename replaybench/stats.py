"""The statistics the verdicts stand on: Wilson intervals, exact McNemar, paired differences."""

from __future__ import annotations

import math

from scipy import stats

Z95 = 1.959963984540054


def wilson(successes: int, n: int) -> tuple[float | None, float | None]:
    """Wilson 95 % interval for a pass rate (well-behaved near 0 % and 100 %)."""
    if n == 0:
        return None, None
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def mcnemar_exact(only_candidate: int, only_baseline: int) -> float | None:
    """Two-sided exact McNemar p-value from the discordant pairs; None without any."""
    discordant = only_candidate + only_baseline
    if discordant == 0:
        return 1.0
    return float(stats.binomtest(only_candidate, discordant, 0.5).pvalue)


def paired_difference(only_candidate: int, only_baseline: int,
                      n: int) -> tuple[float | None, float | None, float | None]:
    """Difference of two paired pass rates with a 95 % interval (Wald on the paired variance,
    with a continuity correction), as (delta, low, high)."""
    if n == 0:
        return None, None, None
    delta = (only_candidate - only_baseline) / n
    variance = (only_candidate + only_baseline - (only_candidate - only_baseline) ** 2 / n) / n**2
    half = Z95 * math.sqrt(max(variance, 0.0)) + 1 / n
    return delta, max(-1.0, delta - half), min(1.0, delta + half)


def required_sample_size(p_baseline: float, difference: float, alpha: float = 0.05,
                         power: float = 0.8) -> int:
    """Requests needed to detect a drop of `difference` from a pass rate of `p_baseline` with a
    two-sided test at `alpha` and the given power (the two-proportion formula; the paired test the
    verdicts use needs no more than this when answers to the same request agree more often than
    chance, as they do)."""
    p1 = min(max(p_baseline, 0.0), 1.0)
    p2 = p1 - difference if p1 - difference >= 0 else p1 + difference
    mean = (p1 + p2) / 2
    z_alpha = stats.norm.ppf(1 - alpha / 2)
    z_power = stats.norm.ppf(power)
    n = (z_alpha * math.sqrt(2 * mean * (1 - mean))
         + z_power * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / difference ** 2
    return max(1, math.ceil(n))
