"""The decision rule's guarantees, measured: the simulation of tests/test_decide_simulation.py
(500 seeds × 30 nights of 200 pairs, a family of four decisions) run with the shipping rule and
with three weakened ones side by side, so each guarantee's figure can be seen to move.

    .venv/bin/python bench/decisions.py [--seeds 500]

Columns: the share of families in which an equal candidate is ever called better or worse
(every look up to its planned size counted, as if it never stopped), the share of 5-point drops
called `regressed` within the nights the planner promised, the share of cheaper equal candidates
promoted, and the pairs spent per reached decision against a fixed-size design of the same power.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_decide_simulation as sim  # noqa: E402

from replaybench.decide import rules, sequential  # noqa: E402


@contextmanager
def variant(name: str):
    """Swap one part of the rule for a weaker one for the duration of the block."""
    plan, critical = rules.plan, sequential.critical_values
    if name == "alpha = 0.10":
        rules.plan = lambda k, ppn, d=None, **kw: plan(k, ppn, d, alpha=0.10)
    elif name == "no multiplicity control":
        rules.plan = lambda k, ppn, d=None, **kw: plan(1, ppn, d)
    elif name == "naive nightly test":
        sequential.critical_values = lambda fr, a: tuple(float(sps.norm.isf(a / 2)) for _ in fr)
    try:
        yield
    finally:
        rules.plan, sequential.critical_values = plan, critical


def measure(seeds: int) -> dict[str, float]:
    runs = [sim.simulate(seed) for seed in range(seeds)]
    worse = [r["worse"] for r in runs]
    reached = [r[c] for r in runs for c in r if r[c]["night"] is not None]
    return {
        "false calls": sum(any(r[c]["false_call"] for c in r) for r in runs) / seeds,
        "drop caught in time": sum(w["state"] == rules.REGRESSED and w["night"] <= w["promised"]
                                   for w in worse) / seeds,
        "cheaper promoted": sum(r[c]["recommendation"] == "promote" for r in runs
                                for c in ("cheaper-a", "cheaper-b")) / (2 * seeds),
        "pairs / fixed design": sum(d["pairs"] for d in reached) / sum(d["fixed"] for d in reached),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=sim.SEEDS)
    args = parser.parse_args()
    bounds = {"false calls": "≤ 0.05", "drop caught in time": "≥ 0.90",
              "cheaper promoted": "≥ 0.80", "pairs / fixed design": "≤ 0.70"}
    print(f"| rule | {' | '.join(bounds)} | seconds |")
    print(f"|---|{'---|' * (len(bounds) + 1)}")
    print(f"| (asserted) | {' | '.join(bounds.values())} | |")
    for name in ("shipping", "alpha = 0.10", "no multiplicity control", "naive nightly test"):
        start = time.perf_counter()
        with variant(name):
            figures = measure(args.seeds)
        cells = " | ".join(f"{figures[k]:.3f}" for k in bounds)
        print(f"| {name} | {cells} | {time.perf_counter() - start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
