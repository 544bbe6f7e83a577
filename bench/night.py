"""A whole night at two sizes, phase by phase: what each step of the nightly flow costs as the
night grows. Prints figures side by side; asserts nothing.

    .venv/bin/python bench/night.py                                  # 10k and 100k requests
    .venv/bin/python bench/night.py --requests 2000 --requests 8000   # quicker
    .venv/bin/python bench/night.py --compare ../replaybench-main     # validate, score of both

Each size runs in a child process of its own (a fresh interpreter, so neither size inherits the
other's memory): demo logs of N requests over the 14 demo days
(`replaybench.sim.demo_logs`) are ingested into a new warehouse (not measured), then the night
runs with every request of the window sampled, against the bundled config's four candidates on the
local model fleet at zero latency (`ProcessFleet(time_scale=0)`, a child process). The phases call the
plain logic of the nightly flow's tasks (`flows/nightly.py`), without Prefect's task machinery:

- sample: `replaybench.sample.draw_sample`, then `replaybench.redact.requests.redact_run` (nothing to
  redact: the fleet is trusted);
- replay: `replaybench.replay.replay_candidate` for every candidate at once (`replay_all`'s local path);
- validate: `replaybench.checks.run.validate_run` (the GX Checkpoint, Data Docs, the `checks` rows);
- score: `replaybench.decide.scores.score_run` and the decisions it looked at (`score_task`
  without the Prefect events and artifacts);
- report: `runs.finish`, then `replaybench.report.page.report_and_publish` (the HTML report and the index).

Each phase runs in a fresh child process of its own, its modules imported before the clock
starts (Great Expectations too, before validate: the flow imports it there, about 3 s), so that
its memory is its own and not what an earlier phase left behind. Per phase: wall seconds, CPU
seconds of that process (the fleet's own CPU apart, shown for replay), rows per second (requests
sampled, answers replayed, checks written, answers scored, answers reported), RSS when the phase
starts (the interpreter and its imports) and the phase's peak RSS (VmHWM, reset at the start by
writing 5 to /proc/self/clear_refs; Linux only). A cost that grows at most linearly shows as a
steady rate; memory that stays flat shows as the same peak at both sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if "--tree" in sys.argv:  # a phase run with another checkout's code (--compare)
    sys.path.insert(0, sys.argv[sys.argv.index("--tree") + 1])

PHASES = ["sample", "replay", "validate", "score", "report"]
RUN_DATE = date(2026, 11, 28)  # the demo logs' 14 days end on 2026-11-27
UNITS = {"sample": "requests", "replay": "answers", "validate": "checks", "score": "answers",
         "report": "answers"}


def rss_peak_reset() -> bool:
    """Reset this process's peak RSS (VmHWM); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def process_cpu(pid: int) -> float:
    """CPU seconds a process has used so far (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(name: str, fn: Callable[[], int], fleet_pid: int | None = None) -> dict:
    """Run one phase: wall s, CPU s, its row count, RSS at its start and its peak RSS."""
    resettable = rss_peak_reset()
    start_mb = status_mb("VmRSS")
    fleet_before = process_cpu(fleet_pid) if fleet_pid else 0.0
    cpu, wall = time.process_time(), time.perf_counter()
    rows = fn()
    return {
        "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "rows": rows,
        "start_mb": start_mb, "peak_mb": status_mb("VmHWM") if resettable else float("nan"),
        "fleet_cpu": process_cpu(fleet_pid) - fleet_before if fleet_pid else None,
    }


def write_config(folder: Path) -> Path:
    """The bundled config, pointed at this folder's warehouse and reports, every request of the
    14 days sampled, no sources (the logs are ingested beforehand), no e-mail."""
    import yaml

    config = yaml.safe_load((ROOT / "replaybench.yaml").read_text(encoding="utf-8"))
    config.update({
        "timezone": "UTC", "warehouse": str(folder / "warehouse.duckdb"),
        "reports_dir": str(folder / "reports"), "sources": [],
        "suites": str(ROOT / "data" / "suites"), "prices": str(ROOT / "data" / "prices.yaml"),
        "sample": {"per_prompt_version": 10_000_000, "seed": 7, "window_days": 14},
        "fleet": {**config.get("fleet", {}), "time_scale": 0},
    })
    config["email"] = {**config.get("email", {}), "enabled": False}
    path = folder / "replaybench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def one_night(requests: int, compare: str | None = None) -> dict:
    """The figures of one night of about `requests` requests × the config's candidates: the
    logs written and ingested here, each phase in a child process (`--phase`)."""
    os.environ.setdefault("REPLAYBENCH_HOME", tempfile.mkdtemp(prefix="replaybench-bench-"))
    from replaybench.config import prepare_environment

    prepare_environment()

    from replaybench import locks, runs
    from replaybench.config import load_settings
    from replaybench.ingest.load import ingest_paths
    from replaybench.sim import demo_logs
    from replaybench.sim.server import ProcessFleet
    from replaybench.warehouse import open_warehouse

    figures: dict = {"requests": requests}
    with tempfile.TemporaryDirectory(prefix="replaybench-night-") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        logs = folder / "logs.jsonl"
        demo_logs.write(logs, requests)
        config = write_config(folder)
        settings = load_settings(config)
        ingested = ingest_paths(settings.warehouse, [logs])
        with open_warehouse(settings.warehouse) as wh:
            run = runs.begin(wh, settings, RUN_DATE, "bench")
        assert run is not None
        locks.release_day(settings.warehouse, RUN_DATE)  # the phases' processes run it
        figures["setup_s"] = time.perf_counter() - t
        print(f"  setup: {figures['setup_s']:.1f} s ({ingested.ingested:,} log rows)",
              file=sys.stderr, flush=True)
        steps = [(p, None) for p in PHASES]
        if compare:  # validate and score again with the other tree's code, on the same night
            # (after this tree's: the first validation creates the GX project and the first
            # score opens the decisions, which the second finds done)
            at = PHASES.index("score") + 1
            steps[at:at] = [("validate", compare), ("score", compare)]
        with ProcessFleet(time_scale=0) as fleet:
            for phase, tree in steps:
                child = subprocess.run(
                    [sys.executable, __file__, "--phase", phase, "--config", str(config),
                     "--run-id", run.run_id, "--fleet", fleet.base_url, "--fleet-pid",
                     str(fleet.pid), *(["--tree", tree] if tree else [])],
                    cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
                name = f"{phase} ({Path(tree).name})" if tree else phase
                figures[name] = json.loads(child.stdout.strip().splitlines()[-1])
                print(f"  {name}: {figures[name]['wall']:.1f} s, {figures[name]['rows']:,} "
                      f"{UNITS[phase]}", file=sys.stderr, flush=True)
    return figures


def one_phase(phase: str, config: str, run_id: str, fleet_url: str, fleet_pid: int) -> dict:
    """One phase of the night `run_id`, through the nightly flow's own step functions."""
    os.environ.setdefault("REPLAYBENCH_HOME", tempfile.mkdtemp(prefix="replaybench-bench-"))
    from replaybench.config import prepare_environment

    prepare_environment()

    if phase == "validate":  # GX's import (seconds) is not the checks' cost
        import replaybench.checks.kinds.refusal  # noqa: F401
    from replaybench import events, runs
    from replaybench.config import load_settings
    from replaybench.decide.scores import score_run
    from replaybench.redact.requests import redact_run
    from replaybench.replay import replay_candidate
    from replaybench.replay.send import together
    from replaybench.report.page import report_and_publish
    from replaybench.sample import draw_sample
    from replaybench.warehouse import open_warehouse
    from tasks.validate import validate_run

    settings = load_settings(config).with_fleet(fleet_url)
    with open_warehouse(settings.warehouse) as wh:
        stored = runs.get(wh, run_id)
    run = runs.Run(run_id, stored["kind"], stored["run_date"], stored["window_start"],
                   stored["window_end"])

    def answers() -> int:
        with open_warehouse(settings.warehouse) as wh:
            return wh.execute("SELECT count(*) FROM answers WHERE run_id = $r",
                              {"r": run_id}).fetchone()[0]

    def sample() -> int:
        with open_warehouse(settings.warehouse) as wh:
            sizes = draw_sample(wh, settings, run)
            redact_run(wh, settings, run)
        return sum(sizes.values())

    def replay() -> int:
        async def go():
            return await together(replay_candidate(settings, run, c)
                                  for c in settings.candidates)
        outcomes = asyncio.run(go())
        failed.append(sum(o.failed for o in outcomes))
        return sum(o.ok + o.failed for o in outcomes)

    def score() -> int:
        with open_warehouse(settings.warehouse) as wh:
            score_run(wh, settings, run)
            events.looked_decisions(wh, run.run_id)
        return answers()

    def report() -> int:
        with open_warehouse(settings.warehouse) as wh:
            runs.finish(wh, run.run_id, runs.COMPLETED)
        report_and_publish(settings, run.run_id)
        return answers()

    failed: list[int] = []
    steps = {"sample": sample, "replay": replay, "validate": lambda: validate_run(settings, run),
             "score": score, "report": report}
    figures = measure(phase, steps[phase], fleet_pid if phase == "replay" else None)
    figures["failed_calls"] = sum(failed)
    figures["code"] = str(Path(sys.modules["tasks.validate"].__file__).parents[1])
    return figures


def table(results: list[dict]) -> None:
    sizes = [r["requests"] for r in results]
    print("| phase | " + " | ".join(
        f"{n:,}: wall s | CPU s | rows/s | RSS MB start → peak" for n in sizes) + " |")
    print("|---|" + "|".join("---:|---:|---:|---:" for _ in sizes) + "|")
    for name in [k for k in results[0] if isinstance(results[0][k], dict)]:
        cells = []
        for r in results:
            f = r[name]
            rate = f["rows"] / f["wall"] if f["wall"] else float("nan")
            cells.append(f"{f['wall']:.1f} | {f['cpu']:.1f} | {rate:,.0f} "
                         f"{UNITS[name.split()[0]]} | {f['start_mb']:,.0f} → {f['peak_mb']:,.0f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    trees = {n: f["code"] for n, f in results[0].items() if isinstance(f, dict) and "(" in n}
    if trees:
        print("code: " + "; ".join(
            [f"{n}: {t}" for n, t in trees.items()] + [f"the others: {results[0]['validate']['code']}"]))
    for r in results:
        replay = r["replay"]
        print(f"{r['requests']:,} requests: {r['sample']['rows']:,} sampled, "
              f"{replay['rows']:,} answers replayed ({replay['failed_calls']:,} failed calls; the "
              f"fleet used {replay['fleet_cpu']:.1f} CPU s), {r['validate']['rows']:,} checks; "
              f"setup (logs written and ingested, not measured) {r['setup_s']:.1f} s")
    for first, last in zip(results, results[1:], strict=False):  # each size against the one before
        scale = last["requests"] / first["requests"]
        print(f"\n{last['requests']:,} ÷ {first['requests']:,} ({scale:.0f}× the requests): "
              "wall time × " + ", ".join(
                  f"{p} {last[p]['wall'] / first[p]['wall']:.1f}" for p in PHASES)
              + "; peak RSS × " + ", ".join(
                  f"{p} {last[p]['peak_mb'] / first[p]['peak_mb']:.2f}" for p in PHASES)
              + "; peak above the start × " + ", ".join(
                  f"{p} {_above(last[p]) / max(_above(first[p]), 1):.2f}" for p in PHASES))


def _above(f: dict) -> float:
    return f["peak_mb"] - f["start_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, action="append",
                        help="requests in the night (repeatable; default 10000 and 100000)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: one size, JSON out
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)  # a grandchild
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", help=argparse.SUPPRESS)
    parser.add_argument("--fleet", help=argparse.SUPPRESS)
    parser.add_argument("--fleet-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--compare", metavar="TREE",
                        help="another checkout (e.g. `git worktree` of the last release): its "
                             "validate and score run too, after this tree's, on the same night")
    parser.add_argument("--tree", help=argparse.SUPPRESS)  # a phase with --compare's code
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(one_phase(args.phase, args.config, args.run_id, args.fleet,
                                   args.fleet_pid), default=str))
        return
    if args.one:
        print(json.dumps(one_night(args.one, args.compare)))
        return
    sizes = args.requests or [10_000, 100_000]
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    from replaybench.warehouse import memory

    print(f"# A night at {', '.join(f'{n:,}' for n in sizes)} requests × the bundled config's "
          f"candidates, fleet at zero latency ({os.cpu_count()} cores, load {' '.join(load)}; "
          f"{memory.VARIABLE}={os.environ.get(memory.VARIABLE, memory.DEFAULT)})\n")
    results = []
    for n in sizes:
        print(f"{n:,} requests …", file=sys.stderr, flush=True)
        child = subprocess.run([sys.executable, __file__, "--one", str(n),
                                *(["--compare", str(Path(args.compare).resolve())]
                                  if args.compare else [])],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    table(results)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    print(f"\nload at the end: {' '.join(load)}")


if __name__ == "__main__":
    main()
