"""The command line, as a user runs it: a real process, a real config, real files."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DEMO_LOGS, ROOT, write_config


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "replaybench.cli", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=600)


def test_help_lists_every_command():
    out = cli("--help").stdout
    for command in ("demo", "ingest", "run", "backfill", "runs", "sources", "report", "sim"):
        assert command in out


def test_ingest_prints_counts_and_is_idempotent(tmp_path, demo_slice):
    config = write_config(tmp_path)
    first = cli("ingest", str(demo_slice), "--config", str(config))
    assert first.returncode == 0, first.stderr
    ingested = re.search(r"ingested ([\d,]+)", first.stdout).group(1)
    assert ingested != "0" and "rejected 1 — commonest reasons: completion_tokens is negative" \
        in first.stdout
    second = cli("ingest", str(demo_slice), "--config", str(config))
    assert f"ingested 0 · already present {ingested}" in second.stdout


def test_bad_input_exits_non_zero_with_a_one_line_reason(tmp_path):
    config = write_config(tmp_path)
    bad_date = cli("run", "--date", "28/11/2026", "--config", str(config))
    assert bad_date.returncode != 0
    assert bad_date.stderr.strip().splitlines() == [
        "error: --date must be a date like 2026-11-28, not '28/11/2026'"]

    broken = tmp_path / "broken.yaml"
    broken.write_text("candidats: []\n")
    result = cli("runs", "--config", str(broken))
    assert result.returncode == 2
    assert "unknown key 'candidats'" in result.stderr and "candidates" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    junk = tmp_path / "junk.jsonl"
    junk.write_text("not json\n{}\n")
    result = cli("ingest", str(junk), "--config", str(config))
    assert result.returncode == 2 and "nothing usable" in result.stderr

    missing = cli("report", "no-such-run", "--config", str(config))
    assert missing.returncode == 2 and "no run 'no-such-run'" in missing.stderr


@pytest.mark.e2e
def test_demo_runs_end_to_end_and_prints_the_report_path(tmp_path):
    """The README's first command, on a copy of the bundled config pointed at a temporary folder."""
    config = write_config(tmp_path, "http://127.0.0.1:8400/v1", timezone="Europe/Berlin",
                          sources=[{"path": str(DEMO_LOGS)}], fleet={"port": 8400, "time_scale": 0},
                          sample={"per_prompt_version": 20, "seed": 7})
    result = cli("demo", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rejected 3" in result.stdout
    report = Path(result.stdout.strip().splitlines()[-1].removeprefix("report: "))
    assert report.is_file() and report.parent == tmp_path / "reports"
    html = report.read_text()
    assert "Simulated numbers" in html and "triage@v4" in html
    # the night's account of itself: a line per phase, in order, without the task runs' chatter
    said = [line.split(" - ", 1)[1] for line in result.stderr.splitlines() if "| INFO" in line]
    order = [next(i for i, line in enumerate(said) if line.startswith(p))
             for p in ("sampled ", "replayed ", "validated: ", "scored ", "finished run ", "report: ")]
    assert order == sorted(order), said
    assert "Task run" not in result.stderr

    listed = cli("runs", "--config", str(config))
    assert "completed" in listed.stdout and "demo" in listed.stdout
    ledger = subprocess.run([sys.executable, "-m", "replaybench.cli", "sources", "--config",
                             str(config)], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "COLUMNS": "250"})  # a wide table: one line a row
    assert ledger.returncode == 0, ledger.stderr
    assert "production_logs.jsonl.gz" in ledger.stdout and "9,035" in ledger.stdout  # read once
    again = cli("demo", "--config", str(config))
    assert again.returncode == 0 and "already completed" in again.stdout
    run_id = report.stem
    rerendered = cli("report", run_id, "--config", str(config))
    assert rerendered.returncode == 0 and str(report) in rerendered.stdout.replace("\n", "")
