"""Has production itself drifted? Tonight's pass rate against a beta-binomial prediction from its
earlier nights that allows for the night-to-night variation of a stable process."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

MIN_NIGHTS = 3
# Where the between-night variance's confidence distribution is sampled (evenly spaced quantiles).
_QUANTILES = (np.arange(40) + 0.5) / 40


def production_drift(history: list[dict[str, Any]], passed: int, n: int,
                     alpha: float = 0.01) -> str | None:
    """A sentence when tonight's passed/n is implausible (two-sided predictive p < alpha) given the
    earlier nights in `history` (oldest first, tonight excluded); None otherwise."""
    nights = [(h["passed"], h["n"]) for h in history if h.get("n")]
    if len(nights) < MIN_NIGHTS or not n:
        return None
    pmf = predictive_pmf(nights, n)
    at_most, at_least = np.cumsum(pmf), np.cumsum(pmf[::-1])[::-1]
    if min(1.0, 2 * min(at_most[passed], at_least[passed])) >= alpha:
        return None
    # the counts the same test would not flag, so the range printed is the one actually used
    low = int(np.argmax(at_most >= alpha / 2))
    high = int(np.flatnonzero(at_least >= alpha / 2)[-1])
    return (f"production's own pass rate tonight ({_pct(passed / n)}) is "
            f"{'below' if passed < low else 'above'} what its last {len(nights)} runs make plausible "
            f"({_pct(low / n)}–{_pct(high / n)}): the production model or its traffic has drifted")


def predictive_pmf(nights: list[tuple[int, int]], n: int) -> np.ndarray:
    """P(tonight passes 0..n) given earlier nights' (passed, n): beta-binomial, widened for the
    night-to-night variation and for how little k nights say about it."""
    passes, sizes = np.array(nights, dtype=float).T
    k = len(sizes)
    # half a pass keeps the mean inside (0, 1) when every earlier request passed (or failed)
    mean = (passes.sum() + 0.5) / (sizes.sum() + 1)
    binomial = mean * (1 - mean)
    # method of moments: the spread of nightly rates is between-night variance plus sampling noise
    spread = np.var(passes / sizes, ddof=1)
    noise = np.mean(binomial / sizes)
    # k nights pin the spread down only to a chi-square with k - 1 df; trusting the point estimate
    # let ~1 % of stable nights through at 14 nights and 1-6 % at 3-5, so average over its
    # confidence distribution instead (a t-like widening that leaves the known binomial part alone)
    between = np.maximum(spread * (k - 1) / stats.chi2.ppf(_QUANTILES, k - 1) - noise, 0.0)
    # the pooled mean is an estimate too: its own between-night and sampling variance
    mean_var = between * (sizes**2).sum() / sizes.sum() ** 2 + binomial / sizes.sum()
    # a rate in [0, 1] with this mean cannot vary by more than mean * (1 - mean)
    rho = np.minimum((between + mean_var) / binomial, 0.99)[:, None]
    pmf = stats.betabinom.pmf(np.arange(n + 1), n, mean * (1 / rho - 1),
                              (1 - mean) * (1 / rho - 1)).mean(axis=0)
    return pmf / pmf.sum()


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f} %"
