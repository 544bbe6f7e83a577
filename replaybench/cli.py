"""The `replaybench` command line. Every command takes --config (default replaybench.yaml) and
exits non-zero with a one-line reason on bad input."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from replaybench.config import DEFAULT_CONFIG, Settings, load_settings, prepare_environment
from replaybench.errors import ReplaybenchError
from replaybench.ingest.formats import FORMATS as PARSERS

prepare_environment()  # before anything imports Prefect: its settings are read at import

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
console = Console(soft_wrap=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Configuration file.")]
FORMATS = ["auto", *PARSERS]  # the registry of log formats


def _settings(config: Path) -> Settings:
    return load_settings(config)


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ReplaybenchError(f"{option} must be a date like 2026-11-28, not {value!r}") from None


def _run_flow(settings: Settings, config: Path, run_date: date | None, force: bool, kind: str,
              fleet_url: str | None = None, use_cache: bool = True) -> dict | None:
    from flows.nightly import nightly

    return asyncio.run(nightly(run_date=run_date, config=str(config), force=force, kind=kind,
                               fleet_url=fleet_url, use_cache=use_cache))


def _print_decisions(settings: Settings, run_id: str) -> None:
    from replaybench import runs
    from replaybench.warehouse import open_warehouse
    from tasks.report import best_candidate, others_line, standing_rows

    with open_warehouse(settings.warehouse) as wh:
        scores = wh.frame("SELECT * FROM scores WHERE run_id = $r", r=run_id).to_dicts()
        scores += standing_rows(wh, runs.get(wh, run_id), scores)
    table = Table(title=f"run {run_id}", show_lines=False)
    for col in ("prompt_version", "best candidate", "decision", "why"):
        table.add_column(col, overflow="fold")
    for pv in sorted({s["prompt_version"] for s in scores}):
        rows = [s for s in scores if s["prompt_version"] == pv]
        best = best_candidate(rows, settings.baseline, settings.noise_floor)
        if best:
            others = others_line(rows, best, settings.baseline, settings.noise_floor)
            table.add_row(pv, best["model"], best["recommendation"],
                          best["reason"] + (f"\nalso: {others}" if others else ""))
        else:
            table.add_row(pv, "—", "—", "no candidate answered")
    console.print(table)


@app.command()
def demo(config: ConfigOpt = Path(DEFAULT_CONFIG),
         force: Annotated[bool, typer.Option(help="Run again even if completed.")] = False,
         nights: Annotated[int, typer.Option(help="Past nights to run, oldest first, so that "
                                             "evidence accumulates as it would night after "
                                             "night.")] = 4):
    """Ingest the bundled demo logs, start the local model fleet, run the nightly flow for the
    last few days of traffic."""
    from replaybench.ingest import sources
    from replaybench.progress import console_bars
    from replaybench.sim.server import Fleet
    from replaybench.warehouse import open_warehouse

    if nights < 1:
        raise ReplaybenchError(f"--nights must be at least 1, not {nights}")
    settings = _settings(config)
    console.print(f"reading {', '.join(s.name for s in settings.sources) or 'no sources'}")
    with console_bars(), open_warehouse(settings.warehouse) as wh:
        # all the sources hold: the nights then find it read already, in the ledger
        fetched = sources.fetch(wh, settings, datetime.min.replace(tzinfo=UTC),
                                datetime.max.replace(tzinfo=UTC))
        console.print("  " + fetched.summary())
        last_day = wh.run("last_full_day", tz=settings.timezone).fetchone()[0]
    if last_day is None:
        raise ReplaybenchError("the demo logs are empty: nothing to replay")
    days = [last_day - timedelta(days=i) for i in reversed(range(nights))]
    with Fleet(time_scale=settings.fleet.time_scale) as fleet:
        console.print(f"local model fleet on {fleet.base_url} (simulated models)")
        for day in days:
            console.print(f"running the nightly flow for {day} …")
            with console_bars():
                result = _run_flow(settings, config, day + timedelta(days=1), force, "demo",
                                   fleet.base_url)
            if day != days[-1] and result is not None and result["status"] != "completed":
                console.print(f"  {day}: {result['status']}")
    _finish(settings, result, last_day + timedelta(days=1))


def _finish(settings: Settings, result: dict | None, run_date: date) -> None:
    from replaybench.warehouse import open_warehouse

    if result is None:
        with open_warehouse(settings.warehouse) as wh:
            row = wh.execute("SELECT run_id, report_path FROM runs WHERE run_date = $d AND "
                             "status = 'completed' ORDER BY started_at DESC LIMIT 1",
                             {"d": run_date}).fetchone()
        console.print(f"{run_date - timedelta(days=1)} was already completed "
                      f"(run {row[0]}); pass --force to run it again")
        console.print(f"report: {row[1]}")
        return
    _print_decisions(settings, result["run_id"])
    console.print(f"run {result['run_id']}: {result['status']}")
    console.print(f"report: {result['report']}")
    if result["status"] != "completed":
        raise typer.Exit(1)


@app.command()
def ingest(paths: Annotated[list[Path], typer.Argument(help="Log files: JSONL, JSON, Parquet, "
                                                            "CSV (.gz too).")],
           format: Annotated[str, typer.Option("--format", help="|".join(FORMATS))] = "auto",
           config: ConfigOpt = Path(DEFAULT_CONFIG)):
    """Load production log files into the warehouse's `logs` table."""
    from replaybench.ingest import ingest_paths
    from replaybench.progress import console_bars

    if format not in FORMATS:
        raise ReplaybenchError(f"--format must be one of {', '.join(FORMATS)}, not {format!r}")
    settings = _settings(config)
    with console_bars():
        result = ingest_paths(settings.warehouse, paths, format, settings.ingest)
    console.print(result.summary())
    if result.read and not (result.ingested or result.duplicates):
        raise ReplaybenchError("nothing usable was read: every record was rejected")


@app.command()
def run(date_: Annotated[str | None, typer.Option("--date", help="Run for the day before this "
                                                  "date (YYYY-MM-DD); default: yesterday.")] = None,
        force: Annotated[bool, typer.Option(help="Run even if that day is completed.")] = False,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Ask every request afresh, "
                                               "even if its answer was paid for before.")] = False,
        config: ConfigOpt = Path(DEFAULT_CONFIG)):
    """The nightly regression for the day before --date."""
    from replaybench.progress import console_bars

    settings = _settings(config)
    run_date = _parse_date(date_, "--date") or settings.default_date()
    with console_bars():
        result = _run_flow(settings, config, run_date, force, "nightly", use_cache=not no_cache)
    _finish(settings, result, run_date)


@app.command()
def backfill(start: Annotated[str, typer.Option("--start", help="First day of traffic "
                                                "(YYYY-MM-DD).")],
             end: Annotated[str, typer.Option("--end", help="Last day of traffic, inclusive.")],
             force: Annotated[bool, typer.Option(help="Run days that are completed again.")] = False,
             parallel: Annotated[int, typer.Option(help="Days run at once (1: in date order, "
                                                   "as decisions accumulate night after "
                                                   "night).")] = 1,
             no_cache: Annotated[bool, typer.Option("--no-cache", help="Ask every request afresh, "
                                                    "even if its answer was paid for before.")] = False,
             config: ConfigOpt = Path(DEFAULT_CONFIG)):
    """One run per day of traffic from --start to --end; completed days are skipped. Exits 1
    when a day failed or is partial."""
    settings = _settings(config)
    start_date, end_date = _parse_date(start, "--start"), _parse_date(end, "--end")
    if parallel < 1:
        raise ReplaybenchError(f"--parallel must be at least 1, not {parallel}")
    from flows.backfill import backfill as backfill_flow
    from flows.backfill import days_between
    from replaybench.progress import console_bars

    days_between(start_date, end_date, settings.default_date())  # bad input fails before a run
    with console_bars():
        rows = asyncio.run(backfill_flow(start_date=start_date, end_date=end_date,
                                         config=str(config), force=force, parallel=parallel,
                                         use_cache=not no_cache))
    table = Table(title=f"backfill {start_date} → {end_date}")
    for col in ("day", "status", "run", "report", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["date"], r["status"], r["run_id"] or "—", r["report"] or "—", r["reason"] or "")
    console.print(table)
    if any(r["status"] in ("failed", "partial") for r in rows):  # as `run` does for its one day
        raise typer.Exit(1)


@app.command("runs")
def list_runs(config: ConfigOpt = Path(DEFAULT_CONFIG)):
    """List the runs in the warehouse, newest first."""
    from replaybench.warehouse import open_warehouse

    settings = _settings(config)
    with open_warehouse(settings.warehouse) as wh:
        rows = wh.frame("SELECT run_id, kind, window_start, window_end, status, started_at, "
                        "finished_at, report_path FROM runs ORDER BY started_at DESC").to_dicts()
    table = Table()
    for col in ("run_id", "kind", "window", "status", "took", "report"):
        table.add_column(col, overflow="fold")
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

    settings = _settings(config)
    with open_warehouse(settings.warehouse) as wh:
        rows = sources.ledger(wh)
    table = Table()
    for col in ("source", "item", "status", "read at", "read", "ingested", "present", "rejected"):
        table.add_column(col, overflow="fold")
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

    settings = _settings(config)
    with open_warehouse(settings.warehouse) as wh:
        rows = evidence.listing(wh, every)
    table = Table()
    for col in ("prompt_version", "candidate", "state", "do", "pairs", "nights", "quality (pts)",
                "since / left"):
        table.add_column(col, overflow="fold")
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

    settings = _settings(config)
    with open_warehouse(settings.warehouse) as wh:
        count = evidence.reopen(wh, prompt_version, candidate, reason)
    console.print(f"reopened {count} decision{'s' if count != 1 else ''} of {prompt_version}")


@app.command()
def report(run_id: str, config: ConfigOpt = Path(DEFAULT_CONFIG)):
    """Re-render the report of a stored run."""
    from replaybench import runs
    from replaybench.warehouse import open_warehouse
    from tasks.report import render_report

    settings = _settings(config)
    with open_warehouse(settings.warehouse) as wh:
        runs.get(wh, run_id)
        path = render_report(wh, settings, run_id)
    console.print(f"report: {path}")


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
