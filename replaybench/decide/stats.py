"""The statistics the scores and verdicts stand on: Wilson intervals, Tango's score statistic and
interval for a paired difference, and paired bootstrap intervals. Planning and the sequential
design are in `decide.sequential`."""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

Z95 = 1.959963984540054
RESAMPLES = 2_000


def wilson(successes: int, n: int) -> tuple[float | None, float | None]:
    """Wilson 95 % interval for a pass rate (well-behaved near 0 % and 100 %)."""
    if n == 0:
        return None, None
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def tango_statistic(only_candidate: int, only_baseline: int, n: int, delta0: float) -> float:
    """Tango's (1998) score statistic for H0: p_candidate - p_baseline = delta0 on n paired
    requests (b = passed by the candidate only, c = by the baseline only); McNemar's at delta0 = 0."""
    b, c = only_candidate, only_baseline
    a_ = 2 * n
    b_ = -b - c + (2 * n - b + c) * delta0
    c_ = -c * delta0 * (1 - delta0)
    # the restricted maximum-likelihood estimate of P(baseline only) under H0
    q = (math.sqrt(max(b_ * b_ - 4 * a_ * c_, 0.0)) - b_) / (2 * a_)
    variance = n * (2 * q + delta0 * (1 - delta0))
    diff = b - c - n * delta0
    if variance <= 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / math.sqrt(variance)


def tango_interval(only_candidate: int, only_baseline: int, n: int,
                   critical: float = Z95) -> tuple[float | None, float | None]:
    """Score interval for the paired difference in pass rate: every delta0 whose Tango statistic
    stays within +-critical (1.96 for 95 %; a sequential design passes its own, wider value).
    Honest at small n and with no discordant pairs, where a Wald interval shrinks to nothing."""
    if n == 0:
        return None, None
    estimate = (only_candidate - only_baseline) / n

    def excess(d: float) -> float:
        return abs(tango_statistic(only_candidate, only_baseline, n, d)) - critical

    eps = 1e-12
    low = -1.0 if excess(-1 + eps) <= 0 else optimize.brentq(excess, -1 + eps, estimate, xtol=1e-10)
    high = 1.0 if excess(1 - eps) <= 0 else optimize.brentq(excess, estimate, 1 - eps, xtol=1e-10)
    return float(low), float(high)


BLOCK_COUNTS = 1_000_000
"""Resampled counts held at once by `paired_bootstrap`."""


def paired_bootstrap(candidate: np.ndarray, baseline: np.ndarray, resamples: int = RESAMPLES,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of candidate minus baseline over the same requests, with a 95 % percentile interval
    from resampling requests (all metrics share the resamples), as (delta, low, high) arrays.

    `candidate` and `baseline` are (n,) or (n, k) for k metrics, row i being request i; a NaN in
    either drops that request from that metric only. Deterministic for a given seed."""
    diff = np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float)
    if diff.ndim == 1:
        diff = diff[:, None]
    valid = ~np.isnan(diff)
    filled = np.where(valid, diff, 0.0)
    n, k = diff.shape
    counts = valid.sum(axis=0)
    delta = np.divide(filled.sum(axis=0), counts, out=np.full(k, np.nan), where=counts > 0)
    if n == 0:
        return delta, np.full(k, np.nan), np.full(k, np.nan)
    rng = np.random.default_rng(seed)
    # Each resample as counts per request, so a mean is one matrix product; in blocks of about a
    # million counts (three arrays of them, ~24 MB, whatever the night's size: at 4 million,
    # ~100 MB came and went with every block)
    stacked = np.hstack([filled, valid.astype(float)])
    block = max(1, BLOCK_COUNTS // n)
    sums, sizes = [], []
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        idx = rng.integers(0, n, size=(rows, n), dtype=np.int64)
        idx += n * np.arange(rows, dtype=np.int64)[:, None]
        weights = np.bincount(idx.ravel(), minlength=rows * n).reshape(rows, n).astype(float)
        totals = weights @ stacked
        sums.append(totals[:, :k])
        sizes.append(totals[:, k:])
    sums_all, sizes_all = np.concatenate(sums), np.concatenate(sizes)
    means = np.divide(sums_all, sizes_all, out=np.full(sums_all.shape, np.nan), where=sizes_all > 0)
    low, high = np.full(k, np.nan), np.full(k, np.nan)
    some = counts > 0
    if some.any():
        low[some], high[some] = np.nanpercentile(means[:, some], [2.5, 97.5], axis=0)
    return delta, low, high
