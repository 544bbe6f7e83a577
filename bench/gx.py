"""What Great Expectations itself costs a night: importing it, its Data Contexts, the suites'
sync, each check over N rows, and a night's Checkpoint with its Data Docs. Prints figures side by
side; asserts nothing.

    .venv/bin/python bench/gx.py                    # a demo-sized night, checks at 1k and 10k rows
    .venv/bin/python bench/gx.py --rows 1000,100000 --history 30

The night is built from the bundled demo logs (data/demo/production_logs.jsonl.gz): one day of
production answers and four candidates' versions of them (a tenth of those altered so that some
checks fail), about 3,500 answers as `replaybench demo` validates. Every figure is the median of
`--repeat` runs, in this process unless it says "fresh process". Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("REPLAYBENCH_HOME", tempfile.mkdtemp(prefix="replaybench-bench-"))

from replaybench.config import prepare_environment  # noqa: E402

prepare_environment()

import polars as pl  # noqa: E402

DEMO_LOGS = ROOT / "data" / "demo" / "production_logs.jsonl.gz"
SUITES = ROOT / "data" / "suites"
CANDIDATES = ["glm-5.2", "deepseek-v4-pro", "minimax-m3", "production-replay"]
DAY = "2026-11-27"


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fresh_process(code: str, repeat: int) -> float:
    """Seconds a child Python takes to run `code` (interpreter start-up subtracted)."""
    def run(snippet: str) -> float:
        out = subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter()\n"
                              f"{snippet}\nprint(time.perf_counter() - t)"],
                             capture_output=True, text=True, check=True, cwd=ROOT)
        return float(out.stdout.strip().splitlines()[-1])
    return statistics.median(run(code) for _ in range(repeat))


def night_answers() -> pl.DataFrame:
    """A demo day: production's answers and four candidates' (every tenth one altered)."""
    rows = []
    with gzip.open(DEMO_LOGS, "rt", encoding="utf-8") as logs:
        for line in logs:
            try:
                log = json.loads(line)
                if not log["ts"].startswith(DAY):
                    continue
                text = log["response"]["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                continue  # the demo's deliberately broken lines
            rows.append({"request_id": log["request_id"], "prompt_version": log["prompt_version"],
                         "output_text": text, "reference": log.get("reference"),
                         "output_tokens": log["response"]["usage"]["completion_tokens"],
                         "latency_ms": float(log["latency_ms"]),
                         "user_message": log["request"]["messages"][-1]["content"]})
    out = []
    for i, row in enumerate(rows):
        out.append({**row, "model": "production", "status": "ok", "production_text": None})
        for k, model in enumerate(CANDIDATES):
            text = row["output_text"]
            if (i + k) % 10 == 0:
                text = "Sure! Here it is:\n" + text.upper()
            out.append({**row, "model": model, "status": "ok", "output_text": text,
                        "production_text": row["output_text"]})
    return pl.DataFrame(out)


def tiled(frame: pl.DataFrame, n: int) -> pl.DataFrame:
    """`frame`'s rows repeated to n rows."""
    reps = -(-n // frame.height)
    return pl.concat([frame] * reps).head(n)


def table(header: list[str], rows: list[list[object]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000,10000", help="rows per check run, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--history", type=int, default=365,
                        help="nights of stored results before the measured one (Data Docs index)")
    args = parser.parse_args()
    sizes = [int(n) for n in args.rows.split(",")]

    print("## Imports (fresh process, interpreter start-up excluded)\n")
    lazy = "import sys, tasks.validate\nassert 'great_expectations' not in sys.modules"
    table(["what", "s"], [
        ["import great_expectations", f"{fresh_process('import great_expectations', args.repeat):.2f}"],
        ["import replaybench.checks.kinds.refusal (GX + a custom one)",
         f"{fresh_process('import replaybench.checks.kinds.refusal', args.repeat):.2f}"],
        ["import tasks.validate (what the flow imports; GX stays unloaded)",
         f"{fresh_process(lazy, args.repeat):.2f}"],
    ])

    import great_expectations as gx

    import replaybench.checks.gx_plugins as plugins
    from replaybench.checks.derive import derive_columns
    from replaybench.checks.gx_project import SITE, GxProject
    from replaybench.checks.run import check_answers, run_checks
    from replaybench.checks.suites import load_suites, to_gx
    from replaybench.config import load_settings
    from replaybench.redact import Redactor

    suites = load_suites(SUITES)
    work = Path(tempfile.mkdtemp(prefix="replaybench-gx-bench-"))
    try:
        print("## Data Contexts and suites\n")
        project_root = work / "contexts" / "gx"
        GxProject.open(project_root, work / "contexts" / "docs").sync(suites)
        n_new = [0]

        def new_project() -> None:
            n_new[0] += 1
            root = work / "contexts" / f"new{n_new[0]}"
            GxProject.open(root, work / "contexts" / "docs").sync(suites)

        existing = GxProject.open(project_root, work / "contexts" / "docs")
        table(["what", "ms"], [
            ["ephemeral context (+ pandas data source)",
             f"{median_time(GxProject.ephemeral, args.repeat) * 1000:.0f}"],
            ["file context, existing project",
             f"{median_time(lambda: GxProject.open(project_root, work / 'docs'), args.repeat) * 1000:.0f}"],
            [f"new project: create + sync {len(suites) + 1} suites and definitions",
             f"{median_time(new_project, args.repeat) * 1000:.0f}"],
            ["sync, nothing changed",
             f"{median_time(lambda: existing.sync(suites), args.repeat) * 1000:.0f}"],
        ])

        answers = derive_columns(night_answers())
        print(f"## Each check over N rows (in memory; the demo night's rows of each prompt_version, "
              f"repeated)\n\nGX's time for one suite, per check and per row·check. `own rows`: as a "
              f"night runs it, a Checkpoint whose definition validates the prompt_version's rows; "
              f"`one frame`: the alternative, the suite over all of a night's answers (the demo's "
              f"{answers.height:,}, scaled with N) with a prompt_version row condition on every "
              f"expectation.\n")
        from great_expectations.expectations.row_conditions import Column

        project = GxProject.ephemeral()
        project.sync(suites)
        batch_definition = project.batch_definition
        rf = {"result_format": "COMPLETE", "unexpected_index_column_names": ["_row"],
              "return_unexpected_index_query": False}
        rows = []
        for pv, suite in suites.items():
            own = answers.filter(pl.col("prompt_version") == pv)
            others = answers.filter(pl.col("prompt_version") != pv)
            scoped_suite = gx.ExpectationSuite(name=f"one-frame-{pv}", expectations=[
                to_gx(c.model_copy(update={"condition": Column("prompt_version") == pv}))
                for c in suite.checks])  # (the bundled suites declare no condition of their own)
            for n in sizes:
                frame = tiled(own, n).with_row_index("_row")
                night = pl.concat([frame, tiled(others, n * others.height // max(own.height, 1))
                                   .with_row_index("_row").with_columns(pl.col("_row") + n)],
                                  how="vertical_relaxed")
                pdf, night_pdf = frame.to_pandas(), night.to_pandas()

                def own_rows(pdf=pdf, pv=pv):
                    project.run({pv: pdf}, "bench")

                def one_frame(night_pdf=night_pdf, scoped_suite=scoped_suite):
                    batch_definition.get_batch(batch_parameters={"dataframe": night_pdf}).validate(
                        scoped_suite, result_format=rf)

                t_own, t_one = median_time(own_rows, args.repeat), median_time(one_frame, args.repeat)
                k = len(suite.checks)
                rows.append([pv, k, f"{n:,}", f"{t_own:.2f}", f"{t_own / k * 1000:.0f}",
                             f"{t_own / k / n * 1e6:.1f}", f"{night.height:,}", f"{t_one:.2f}",
                             f"{t_one / k * 1000:.0f}", f"{t_one / t_own:.1f}×"])
        table(["suite", "checks", "rows", "own rows s", "ms/check", "µs/row·check", "one frame: rows",
               "s", "ms/check", "÷ own rows"], rows)

        print("### The JSON-schema check: GX's own metric against the compiled one\n")
        import jsonschema

        schema = next(c.kwargs["json_schema"] for c in suites["invoice-extract@v2"].checks
                      if c.type == "expect_column_values_to_match_json_schema")
        values = [v for v in answers.filter(pl.col("prompt_version") == "invoice-extract@v2")
                  .get_column("answer_json").to_list() if v is not None]
        values = (values * (1000 // len(values) + 1))[:1000]
        compiled = jsonschema.validators.validator_for(schema)(schema)

        def gx_own() -> None:  # what GX's metric does for each value
            for value in values:
                with contextlib.suppress(jsonschema.ValidationError):
                    jsonschema.validate(json.loads(value), schema)

        def ours() -> None:
            for value in values:
                compiled.is_valid(json.loads(value))

        t_gx, t_ours = median_time(gx_own, args.repeat), median_time(ours, args.repeat)
        table(["1,000 invoice answers", "µs/value", "×"], [
            [f"jsonschema.validate per value (GX {gx.__version__}'s metric)", f"{t_gx * 1000:.0f}",
             f"{t_gx / t_ours:.0f}"],
            ["schema compiled once (replaybench.checks.kinds.json_answers)", f"{t_ours * 1000:.0f}", "1"],
        ])

        print(f"## A night: {answers.height:,} answers, {len(suites)} suites + reference_match\n")
        folder = work / "night"
        folder.mkdir()
        (folder / "replaybench.yaml").write_text(
            f"reports_dir: reports\nsuites: {SUITES}\nwarehouse: warehouse.duckdb\n")
        settings = load_settings(folder / "replaybench.yaml")
        raw = night_answers()
        check_answers(settings, raw, "warmup")  # creates and syncs the project
        project = GxProject.open(folder / "gx", folder / "reports" / "data-docs",
                                 Redactor(settings.redact.patterns))
        rows_of = answers.with_row_index("_row")
        night_frames = {pv: rows_of.filter(pl.col("prompt_version") == pv).to_pandas()
                        for pv in suites}
        night_frames["reference_match"] = rows_of.filter(pl.col("has_reference")).to_pandas()
        no_docs = GxProject(project.context, root=project.root, docs_dir=None)

        def gx_stock_docs() -> None:  # the same run, with GX's own action instead of ours
            ours = plugins.UpdateRunDataDocsAction
            plugins.UpdateRunDataDocsAction = gx.checkpoint.UpdateDataDocsAction
            try:
                project.run(night_frames, "stock")
            finally:
                plugins.UpdateRunDataDocsAction = ours

        def docs_only() -> None:
            project.context.build_data_docs(site_names=[SITE])

        def night_figures() -> list[float]:
            return [median_time(lambda: no_docs.run(night_frames, "no-docs"), args.repeat),
                    median_time(lambda: project.run(night_frames, "ours"), args.repeat),
                    median_time(gx_stock_docs, args.repeat),
                    median_time(lambda: check_answers(settings, raw, "night"), args.repeat)]

        t_checks = median_time(lambda: run_checks(raw, suites), args.repeat)
        fresh = night_figures()
        # history: earlier nights' results, as a year of runs leaves them (copies of tonight's)
        validations = folder / "gx" / "uncommitted" / "validations"
        for suite_dir in [p for p in validations.iterdir() if p.is_dir()]:
            source = next((suite_dir / "warmup").iterdir())
            for night in range(args.history):
                shutil.copytree(source, suite_dir / f"2025{night:04d}-history" / source.name)
        stored = sum(1 for _ in validations.rglob("*.json"))
        later = night_figures()
        t_docs = median_time(docs_only, 1)
        table(["what", "s, first nights", f"s, after {args.history} nights ({stored:,} results)"], [
            ["run_checks in memory (ephemeral context, no files, no docs)", f"{t_checks:.2f}", ""],
            *[[what, f"{a:.2f}", f"{b:.2f}"] for what, a, b in zip([
                "Checkpoint, results stored, no Data Docs",
                "Checkpoint + Data Docs, one build (UpdateRunDataDocsAction)",
                "Checkpoint + Data Docs, GX's UpdateDataDocsAction (a build per validation)",
                "check_answers: the validate step (sync, Checkpoint, docs, reasons redacted)",
            ], fresh, later, strict=True)],
            ["build_data_docs, whole site (the index lists the latest 100 results)", "",
             f"{t_docs:.2f}"],
        ])
        size = sum(p.stat().st_size for p in validations.glob("*/night/*/*.json"))
        site = folder / "reports" / "data-docs"
        pages = sum(p.stat().st_size for p in (site / "validations").glob("*/night/*/*.html"))
        static = sum(p.stat().st_size for p in (site / "static").rglob("*") if p.is_file())
        print(f"stored per night: {size / 1024:.0f} KB of results, {pages / 1024:.0f} KB of pages "
              f"(+ {static / 1024:.0f} KB of static files, once)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
