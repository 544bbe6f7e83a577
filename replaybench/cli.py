"""The `replaybench` command line. Every command takes --config (default replaybench.yaml) and
exits non-zero with a one-line reason on bad input."""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from replaybench.config import DEFAULT_CONFIG, Settings, load_settings, prepare_environment
from replaybench.errors import ReplaybenchError
from replaybench.ingest.formats import FORMATS

if TYPE_CHECKING:
    from replaybench.warehouse import Warehouse

prepare_environment()  # before anything imports Prefect: its settings are read at import

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
console = Console(soft_wrap=True)
err_console = Console(soft_wrap=True, stderr=True)  # human output when stdout carries a summary

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Configuration file.")]
# what `run` and `backfill` hand a CI job (replaybench/report/outcomes.py); exit codes 0 ok, 1 a
# run failed or is partial, 2 bad input, 3 an outcome named by --fail-on occurred
FailOnOpt = Annotated[list[str] | None, typer.Option(
    "--fail-on", metavar="OUTCOMES", help="Exit 3 when one of these outcomes occurred, comma-"
    "separated: promote, canary, hold, reject (recommendations); open, improved, regressed, "
    "equivalent, non_inferior, inconclusive (decision states); partial, failed (a run; these "
    "always exit 1).")]
SummaryOpt = Annotated[str, typer.Option(
    "--summary", metavar="text|json|markdown", help="text: the decision table; json: one JSON "
    "document on stdout; markdown: Markdown on stdout (human output then goes to stderr).")]
JunitOpt = Annotated[Path | None, typer.Option(
    "--junit", metavar="PATH", help="Write a JUnit XML file: a testcase per prompt_version × "
    "candidate, failing on the --fail-on outcomes.")]
StepSummaryOpt = Annotated[Path | None, typer.Option(
    "--step-summary", metavar="PATH", envvar="GITHUB_STEP_SUMMARY",
    help="Append a Markdown summary to this file (GitHub Actions sets GITHUB_STEP_SUMMARY).")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Ask every request afresh, even if "
                                           "its answer was paid for before.")]
SUMMARY_FORMATS = ("text", "json", "markdown")
FORMAT_CHOICES = ["auto", *FORMATS]  # --format: the registry of log formats, or sniff each file


def _table(*columns: str, title: str | None = None) -> Table:
    """A table with these columns, whose long cells fold."""
    table = Table(title=title)
    for col in columns:
        table.add_column(col, overflow="fold")
    return table


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ReplaybenchError(f"{option} must be a date like 2026-11-28, not {value!r}") from None


def _run_flow(settings: Settings, run_date: date | None, force: bool, kind: str,
              fleet_url: str | None = None, use_cache: bool = True) -> dict | None:
    from flows.nightly import nightly

    return asyncio.run(nightly(run_date=run_date, config=settings, force=force, kind=kind,
                               fleet_url=fleet_url, use_cache=use_cache))


def _print_decisions(wh: Warehouse, settings: Settings, run_id: str,
                     out: Console = console) -> None:
    from replaybench import runs
    from replaybench.report.context import best_candidate, others_line, standing_rows

    scores = runs.scores(wh, run_id)
    scores += standing_rows(wh, runs.get(wh, run_id), scores)
    table = _table("prompt_version", "best candidate", "decision", "why", title=f"run {run_id}")
    for pv in sorted({s["prompt_version"] for s in scores}):
        rows = [s for s in scores if s["prompt_version"] == pv]
        best = best_candidate(rows, settings.baseline, settings.noise_floor)
        if best:
            others = others_line(rows, best, settings.baseline, settings.noise_floor)
            table.add_row(pv, best["model"], best["recommendation"],
                          best["reason"] + (f"\nalso: {others}" if others else ""))
        else:
            table.add_row(pv, "—", "—", "no candidate answered")
    out.print(table)


@app.command()
def demo(config: ConfigOpt = Path(DEFAULT_CONFIG),
         force: Annotated[bool, typer.Option(help="Run again even if completed.")] = False,
         nights: Annotated[int, typer.Option(help="Past nights to run, oldest first, so that "
                                             "evidence accumulates as it would night after "
                                             "night.")] = 4):
    """Ingest the bundled demo logs, start the local model fleet, run the nightly flow for the
    last few days of traffic."""
    from replaybench import runs
    from replaybench.ingest import sources
    from replaybench.progress import console_bars
    from replaybench.sim.server import ProcessFleet
    from replaybench.warehouse import open_warehouse

    if nights < 1:
        raise ReplaybenchError(f"--nights must be at least 1, not {nights}")
    settings = load_settings(config)
    console.print(f"reading {', '.join(s.name for s in settings.sources) or 'no sources'}")
    with console_bars(), open_warehouse(settings.warehouse) as wh:
        # all the sources hold: the nights then find it read already, in the ledger
        fetched = sources.fetch(wh, settings, datetime.min.replace(tzinfo=UTC),
                                datetime.max.replace(tzinfo=UTC))
        console.print("  " + fetched.summary())
        last_day = runs.last_full_day(wh, settings.timezone)
    if last_day is None:
        raise ReplaybenchError("the demo logs are empty: nothing to replay")
    days = [last_day - timedelta(days=i) for i in reversed(range(nights))]
    with ProcessFleet(time_scale=settings.fleet.time_scale) as fleet:
        console.print(f"local model fleet on {fleet.base_url} (simulated models)")
        for day in days:
            console.print(f"running the nightly flow for {day} …")
            with console_bars():
                result = _run_flow(settings, day + timedelta(days=1), force, "demo",
                                   fleet.base_url)
            if day != days[-1] and result is not None and result["status"] != "completed":
                console.print(f"  {day}: {result['status']}")
    _finish(settings, result, last_day + timedelta(days=1), command="demo")


@dataclass(frozen=True)
class _Outputs:
    """What `run` and `backfill` hand a CI job besides the decision table: the outcomes that
    gate (exit 3), a summary on stdout, a JUnit file, a Markdown step summary."""

    fail_on: tuple[str, ...] = ()
    summary: str = "text"
    junit: Path | None = None
    step_summary: Path | None = None

    @property
    def out(self) -> Console:
        """Where human output goes: stderr when stdout carries the summary."""
        return console if self.summary == "text" else err_console

    @property
    def wanted(self) -> bool:
        return self.summary != "text" or self.junit is not None or self.step_summary is not None


def _outputs(fail_on: list[str] | None, summary: str, junit: Path | None,
             step_summary: Path | None) -> _Outputs:
    """The CI options, checked before anything runs."""
    from replaybench.report.outcomes import parse_fail_on

    if summary not in SUMMARY_FORMATS:
        raise ReplaybenchError(f"--summary must be one of {', '.join(SUMMARY_FORMATS)}, "
                               f"not {summary!r}")
    return _Outputs(parse_fail_on(fail_on), summary, junit, step_summary)


_CI_OPTIONS = {"fail_on": (FailOnOpt, None), "summary": (SummaryOpt, "text"),
               "junit": (JunitOpt, None), "step_summary": (StepSummaryOpt, None)}


def _with_ci_outputs(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the options a CI job passes (--fail-on, --summary, --junit,
    --step-summary), listed before its --config; it receives them checked, as `outputs`."""
    own = inspect.signature(command, eval_str=True).parameters
    ci = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation,
                            default=default) for name, (annotation, default) in _CI_OPTIONS.items()]
    params = [p for name, p in own.items() if name not in ("outputs", "config")] + ci + [own["config"]]

    @functools.wraps(command)
    def with_outputs(*args: Any, fail_on: list[str] | None = None, summary: str = "text",
                     junit: Path | None = None, step_summary: Path | None = None,
                     **kwargs: Any) -> None:
        command(*args, outputs=_outputs(fail_on, summary, junit, step_summary), **kwargs)

    with_outputs.__signature__ = inspect.Signature(params)  # what typer reads the options from
    with_outputs.__annotations__ = {p.name: p.annotation for p in params}
    return with_outputs


def _hand_over(settings: Settings, command: str, days: list[dict], outputs: _Outputs,
               exit_code: int | None = None) -> int:
    """Summarise the command's runs (replaybench/report/outcomes.py) on stdout, in the JUnit
    file and the step summary, as asked; return the exit code. Each day: {run_id, status, and
    day, reason, skipped when known}."""
    from replaybench.report import outcomes

    if not outputs.fail_on and not outputs.wanted:  # nothing asked: the exit codes of old
        return int(any(d["status"] not in ("completed", "skipped") for d in days))
    summary = outcomes.collect(settings, command, days, outputs.fail_on)
    if exit_code is not None:
        summary["exit_code"] = exit_code
    if outputs.summary == "json":
        sys.stdout.write(outcomes.to_json(summary) + "\n")
    elif outputs.summary == "markdown":
        sys.stdout.write(outcomes.markdown(summary))
    if outputs.junit is not None:
        outcomes.write_junit(summary, outputs.junit)
        outputs.out.print(f"junit: {outputs.junit}")
    if outputs.step_summary is not None:
        outcomes.append_markdown(summary, outputs.step_summary)
    if summary["gated"]:
        outputs.out.print(f"gated (--fail-on): {', '.join(summary['gated_by'])}")
    return summary["exit_code"]


def _hand_over_failed(settings: Settings, run_date: date, outputs: _Outputs,
                      exc: Exception) -> None:
    """A run the flow ended with an exception: its summary still goes out, with the exit code
    the exception is about to give (2 for a ReplaybenchError's one-line reason, else 1)."""
    from replaybench import runs

    if not outputs.wanted:
        return
    try:
        stored = runs.stored_run(settings.warehouse, run_date)
        if stored["run_id"] and stored["status"] == runs.FAILED:
            day = {"run_id": stored["run_id"], "status": stored["status"]}
            _hand_over(settings, "run", [day], outputs,
                       exit_code=2 if isinstance(exc, ReplaybenchError) else 1)
    except Exception as also:  # the run's own exception is the one to report
        err_console.print(f"no summary: {type(also).__name__}: {also}")


def _finish(settings: Settings, result: dict | None, run_date: date,
            outputs: _Outputs = _Outputs(), command: str = "run") -> None:
    from replaybench import runs
    from replaybench.warehouse import open_warehouse

    out = outputs.out
    with open_warehouse(settings.warehouse) as wh:
        if result is None:
            done = runs.latest(wh, run_date, runs.COMPLETED)
            out.print(f"{run_date - timedelta(days=1)} was already completed "
                      f"(run {done['run_id']}); pass --force to run it again")
            out.print(f"report: {done['report_path']}")
            days = [{"run_id": done["run_id"], "status": runs.COMPLETED, "skipped": True}]
        else:
            _print_decisions(wh, settings, result["run_id"], out)
            out.print(f"run {result['run_id']}: {result['status']}")
            out.print(f"report: {result['report']}")
            days = [{"run_id": result["run_id"], "status": result["status"]}]
    code = _hand_over(settings, command, days, outputs)
    if code:
        raise typer.Exit(code)


@app.command()
def ingest(paths: Annotated[list[Path], typer.Argument(help="Log files: JSONL, JSON, Parquet, "
                                                            "CSV (.gz or .zst too).")],
           format: Annotated[str, typer.Option("--format", help="|".join(FORMAT_CHOICES))] = "auto",
           config: ConfigOpt = Path(DEFAULT_CONFIG)):
    """Load production log files into the warehouse's `logs` table."""
    from replaybench.ingest import ingest_paths
    from replaybench.progress import console_bars

    if format not in FORMAT_CHOICES:
        raise ReplaybenchError(f"--format must be one of {', '.join(FORMAT_CHOICES)}, "
                               f"not {format!r}")
    settings = load_settings(config)
    with console_bars():
        result = ingest_paths(settings.warehouse, paths, format, settings.ingest)
    console.print(result.summary())
    if result.read and not (result.ingested or result.duplicates):
        raise ReplaybenchError("nothing usable was read: every record was rejected")


@app.command()
@_with_ci_outputs
def run(date_: Annotated[str | None, typer.Option("--date", help="Run for the day before this "
                                                  "date (YYYY-MM-DD); default: yesterday.")] = None,
        force: Annotated[bool, typer.Option(help="Run even if that day is completed.")] = False,
        no_cache: NoCacheOpt = False,
        config: ConfigOpt = Path(DEFAULT_CONFIG), *, outputs: _Outputs):
    """The nightly regression for the day before --date. Exits 0 when it completed, 1 when it
    failed or is partial, 2 on bad input, 3 when an outcome named by --fail-on occurred."""
    from replaybench.progress import console_bars

    settings = load_settings(config)
    run_date = _parse_date(date_, "--date") or settings.default_date()
    with console_bars():
        try:
            result = _run_flow(settings, run_date, force, "nightly", use_cache=not no_cache)
        except Exception as exc:
            _hand_over_failed(settings, run_date, outputs, exc)
            raise
    _finish(settings, result, run_date, outputs)


@app.command()
@_with_ci_outputs
def backfill(start: Annotated[str, typer.Option("--start", help="First day of traffic "
                                                "(YYYY-MM-DD).")],
             end: Annotated[str, typer.Option("--end", help="Last day of traffic, inclusive.")],
             force: Annotated[bool, typer.Option(help="Run days that are completed again.")] = False,
             parallel: Annotated[int, typer.Option(help="Days run at once (1: in date order, "
                                                   "as decisions accumulate night after "
                                                   "night).")] = 1,
             no_cache: NoCacheOpt = False,
             config: ConfigOpt = Path(DEFAULT_CONFIG), *, outputs: _Outputs):
    """One run per day of traffic from --start to --end; completed days are skipped. Exits 1
    when a day failed or is partial, 3 when an outcome named by --fail-on occurred."""
    settings = load_settings(config)
    start_date, end_date = _parse_date(start, "--start"), _parse_date(end, "--end")
    if parallel < 1:
        raise ReplaybenchError(f"--parallel must be at least 1, not {parallel}")
    from flows.backfill import SKIPPED, days_between
    from flows.backfill import backfill as backfill_flow
    from replaybench.progress import console_bars

    days_between(start_date, end_date, settings.default_date())  # bad input fails before a run
    with console_bars():
        rows = asyncio.run(backfill_flow(start_date=start_date, end_date=end_date,
                                         config=settings, force=force, parallel=parallel,
                                         use_cache=not no_cache))
    table = _table("day", "status", "run", "report", "reason",
                   title=f"backfill {start_date} → {end_date}")
    for r in rows:
        table.add_row(r["date"], r["status"], r["run_id"] or "—", r["report"] or "—", r["reason"] or "")
    outputs.out.print(table)
    days = [{"day": r["date"], "status": r["status"], "run_id": r["run_id"],
             "reason": r["reason"], "skipped": r["status"] == SKIPPED} for r in rows]
    code = _hand_over(settings, "backfill", days, outputs)  # 1 if a day failed or is partial,
    if code:                                                 # as `run` does for its one day
        raise typer.Exit(code)


@app.command("runs")
def list_runs(config: ConfigOpt = Path(DEFAULT_CONFIG)):
    """List the runs in the warehouse, newest first."""
    from replaybench import runs
    from replaybench.warehouse import open_warehouse

    settings = load_settings(config)
    with open_warehouse(settings.warehouse) as wh:
        rows = runs.listing(wh)
    table = _table("run_id", "kind", "window", "status", "took", "report")
    for r in rows:
        took = (r["finished_at"] - r["started_at"]) if r["finished_at"] else None
        window = f"{r['window_start']:%Y-%m-%d %H:%M} → {r['window_end']:%Y-%m-%d %H:%M} UTC"
        table.add_row(r["run_id"], r["kind"], window, r["status"],
                      f"{took.total_seconds():.0f} s" if took else "—", r["report_path"] or "—")
    console.print(table if rows else "no runs yet")


@app.command("sources")
def list_sources(config: ConfigOpt = Path(DEFAULT_CONFIG)):
    """The sources ledger: what each configured source held and what was read of it."""
    from replaybench.ingest import sources
    from replaybench.warehouse import open_warehouse

    settings = load_settings(config)
    with open_warehouse(settings.warehouse) as wh:
        rows = sources.ledger(wh)
    table = _table("source", "item", "status", "read at", "read", "ingested", "present", "rejected")
    for r in rows:
        status = r["status"] if r["status"] != sources.FAILED else f"failed: {r['error']}"
        table.add_row(r["source"], r["item"], status, f"{r['read_at']:%Y-%m-%d %H:%M}",
                      f"{r['rows_read']:,}", f"{r['ingested']:,}", f"{r['duplicates']:,}",
                      f"{r['rejected']:,}")
    configured = ", ".join(s.name for s in settings.sources) or "none"
    console.print(table if rows else f"nothing read yet (sources: {configured})")


decisions_app = typer.Typer(help="Decisions that outlive runs: list them, or reopen one.",
                            invoke_without_command=True, no_args_is_help=False)
app.add_typer(decisions_app, name="decisions")


@decisions_app.callback()
def decisions(ctx: typer.Context, every: Annotated[bool, typer.Option(
                  "--all", help="History too: reopened decisions and older keys.")] = False,
              config: ConfigOpt = Path(DEFAULT_CONFIG)):
    """List the decisions: state, evidence, interval, and how many nights an open one may take."""
    if ctx.invoked_subcommand:
        return
    from replaybench.decide import evidence
    from replaybench.decide.scores import outward
    from replaybench.warehouse import open_warehouse

    settings = load_settings(config)
    with open_warehouse(settings.warehouse) as wh:
        rows = evidence.listing(wh, every)
    table = _table("prompt_version", "candidate", "state", "do", "pairs", "nights", "quality (pts)",
                   "since / left")
    for r in rows:
        interval = "—" if r["delta"] is None else (
            f"{r['delta'] * 100:+.1f} [{', '.join(outward(r['delta_low'], r['delta_high']))}]")
        when = str(r["reached_on"]) if r["reached_on"] else (
            f"≤{r['nights_left']} nights" if r["nights_left"] is not None else "—")
        state = r["state"] + (f" ({r['closed_reason']})" if r["closed_at"] else "")
        table.add_row(r["prompt_version"], r["candidate"], state, r["recommendation"] or "—",
                      str(r["pairs"]), str(r["nights"]), interval, when)
    console.print(table if rows else "no decisions yet")


@decisions_app.command("reopen")
def reopen(prompt_version: str,
           candidate: Annotated[str | None, typer.Option(help="Only this candidate's.")] = None,
           reason: Annotated[str, typer.Option(help="Why, kept with the old decision.")] = "by hand",
           config: ConfigOpt = Path(DEFAULT_CONFIG)):
    """Reopen a prompt_version's live decisions: the next night starts them from zero evidence."""
    from replaybench.decide import evidence
    from replaybench.warehouse import open_warehouse

    settings = load_settings(config)
    with open_warehouse(settings.warehouse) as wh:
        count = evidence.reopen(wh, prompt_version, candidate, reason)
    console.print(f"reopened {count} decision{'s' if count != 1 else ''} of {prompt_version}")


@app.command()
def report(run_id: str, config: ConfigOpt = Path(DEFAULT_CONFIG)):
    """Re-render the report of a stored run (and publish it again where `report.publish_to` says)."""
    from replaybench import runs
    from replaybench.report.page import report_and_publish
    from replaybench.warehouse import open_warehouse

    settings = load_settings(config)
    with open_warehouse(settings.warehouse) as wh:
        runs.get(wh, run_id)
    path, published = report_and_publish(settings, run_id)
    console.print(f"report: {published.url or path}")


@app.command()
def export(run_id: str,
           to: Annotated[Path, typer.Option("--to", metavar="DIR", help="Folder to write the "
                                            "files to (created).")],
           format: Annotated[str, typer.Option("--format", metavar="parquet|csv",
                                               help="File format.")] = "parquet",
           config: ConfigOpt = Path(DEFAULT_CONFIG)):
    """Write every table of a run (runs, samples, replays, answers, checks, scores, decisions,
    evidence, …) to DIR, one Parquet or CSV file per table, with a manifest.json."""
    from replaybench.warehouse.export import FORMATS as EXPORT_FORMATS
    from replaybench.warehouse.export import export_run

    if format not in EXPORT_FORMATS:
        raise ReplaybenchError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, "
                               f"not {format!r}")
    settings = load_settings(config)
    written = export_run(settings.warehouse, run_id, to, format)
    table = _table("table", "rows", "file", title=f"run {run_id} → {to}")
    for e in written:
        table.add_row(e.table, f"{e.rows:,}", e.path.name)
    console.print(table)


@app.command()
def sim(host: str = "127.0.0.1", port: int = 8400,
        time_scale: Annotated[float, typer.Option(help="Fraction of simulated latency to "
                                                  "sleep (0 = answer at once).")] = 1.0,
        latency_ms: Annotated[float | None, typer.Option(help="Answer every request in exactly "
                                                         "this many ms instead.")] = None,
        faults: Annotated[str | None, typer.Option(help='Fault injection as JSON, e.g. '
                                                   '\'{"*": {"rate_limited": 0.1}}\'.')] = None,
        config: ConfigOpt = Path(DEFAULT_CONFIG)):
    """Serve the local model fleet (OpenAI-compatible and Anthropic) until interrupted."""
    import json

    from replaybench.sim.server import run as serve

    try:
        spec = json.loads(faults) if faults else None
    except json.JSONDecodeError as exc:
        raise ReplaybenchError(f"--faults is not valid JSON: {exc}") from None
    try:
        serve(host=host, port=port, time_scale=time_scale, faults=spec, fixed_latency_ms=latency_ms)
    except ValueError as exc:
        raise ReplaybenchError(f"--faults: {exc}".splitlines()[0]) from None


def main() -> None:
    try:
        app()
    except ReplaybenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
