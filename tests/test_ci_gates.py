"""CI and data out, as a CI job meets them: `replaybench run|backfill --fail-on … --summary json
--junit …` and `replaybench export` in their own processes, against the local model fleet on
loopback, read back with DuckDB, Polars and xml.etree.

One night is run for the module (two candidates: glm-5.2, and a candidate with a hostile name
whose endpoint fails half its requests, so that it is rejected for its error rate); the other
invocations read that night (a completed day is summarised again, not rerun). A second, small
night with a dead endpoint ends partial.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from replaybench.config import load_settings
from replaybench.ingest import ingest_paths
from replaybench.report import outcomes
from replaybench.sim.profiles import load_profiles
from replaybench.sim.server import ThreadedFleet
from replaybench.warehouse import open_warehouse

from .conftest import ROOT, write_config

RUN_DATE = date(2026, 11, 28)  # the traffic of 2026-11-27 (UTC in the test config)
DUD = 'dud <b>&"|x'            # a display name with everything that needs escaping somewhere
STEP_SUMMARY_BEFORE = "# an earlier step\n\nits own summary\n"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    return subprocess.run([sys.executable, "-m", "replaybench.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env={**base, **(env or {})})


@pytest.fixture(scope="module")
def dud_fleet():
    """The fleet's profiles plus `dud-1`, whose every attempt fails with a 500 half the time."""
    profiles = load_profiles()
    profiles["dud-1"] = profiles["minimax-m3"].model_copy(update={"name": "dud-1"})
    with ThreadedFleet(time_scale=0, profiles=profiles,
                       faults={"dud-1": {"server_error": 0.5}}) as fleet:
        yield fleet


@pytest.fixture(scope="module")
def night(tmp_path_factory, dud_fleet, demo_slice):
    """`replaybench run --fail-on reject,regressed --summary json --junit …` on one night, with
    GITHUB_STEP_SUMMARY set; the finished process and where everything went."""
    folder = tmp_path_factory.mktemp("ci")
    config = write_config(folder, dud_fleet.base_url, sample={"per_prompt_version": 20, "seed": 7},
                          candidates=[
                              {"name": "glm-5.2", "base_url": dud_fleet.base_url, "model": "glm-5.2"},
                              {"name": DUD, "base_url": dud_fleet.base_url, "model": "dud-1",
                               "retry": {"max_attempts": 1}}])
    settings = load_settings(config)
    ingest_paths(settings.warehouse, [demo_slice])
    junit, step = folder / "out" / "junit.xml", folder / "step-summary.md"
    step.write_text(STEP_SUMMARY_BEFORE)
    done = cli("run", "--date", str(RUN_DATE), "--config", str(config), "--fail-on",
               "reject,regressed", "--summary", "json", "--junit", str(junit),
               env={"GITHUB_STEP_SUMMARY": str(step)})
    return {"settings": settings, "config": config, "done": done, "junit": junit, "step": step,
            "folder": folder}


def _summary(night) -> dict:
    done = night["done"]
    assert done.stdout.lstrip().startswith("{"), done.stdout[:500] + done.stderr[-3000:]
    return json.loads(done.stdout)  # stdout is the document and nothing else


# --- run: exit codes and the JSON summary ----------------------------------------------------------

@pytest.mark.e2e
def test_a_gated_outcome_exits_3_and_the_json_matches_the_warehouse(night):
    done, settings = night["done"], night["settings"]
    assert done.returncode == 3, done.stderr[-3000:]
    summary = _summary(night)
    assert (summary["command"], summary["status"], summary["exit_code"]) == ("run", "completed", 3)
    assert summary["fail_on"] == ["reject", "regressed"] and summary["gated"]
    (run,) = summary["runs"]
    assert run["day"] == "2026-11-27" and run["status"] == "completed" and not run["skipped"]
    with open_warehouse(settings.warehouse) as wh:
        stored = wh.frame("SELECT * FROM runs WHERE run_id = $r", r=run["run_id"]).row(0, named=True)
        scores = {(s["prompt_version"], s["model"]): s for s in wh.frame(
            "SELECT * FROM scores WHERE run_id = $r AND model <> 'production'",
            r=run["run_id"]).to_dicts()}
        decisions = {d["decision_id"]: d for d in wh.frame("SELECT * FROM decisions").to_dicts()}
    assert run["report"] == stored["report_path"] and Path(run["report"]).is_file()
    # one result per prompt_version × candidate, each as the warehouse has it
    assert {(r["prompt_version"], r["candidate"]) for r in run["results"]} == set(scores)
    for r in run["results"]:
        s = scores[(r["prompt_version"], r["candidate"])]
        d = decisions[r["decision_id"]]
        assert (r["recommendation"], r["verdict"], r["decision_state"]) == \
            (s["recommendation"], s["verdict"], d["state"])
        assert r["interval"] == {"delta": s["delta_vs_baseline"], "low": s["delta_low"],
                                 "high": s["delta_high"]}
        assert (r["pairs"], r["cost_ratio"], r["error_rate"]) == \
            (s["decision_pairs"], d["cost_ratio"], s["error_rate"])
        assert r["gated"] == (r["recommendation"] == "reject" or r["verdict"] == "regressed")
        assert r["gated_by"] == [w for w in ("reject", "regressed")
                                 if w in (r["recommendation"], r["verdict"])]
    # the dud failed about half its calls: rejected for its error rate on every prompt_version
    dud = [r for r in run["results"] if r["candidate"] == DUD]
    assert dud and all(r["recommendation"] == "reject" and r["gated"] for r in dud)
    assert all(0.1 < r["error_rate"] < 0.9 for r in dud)
    assert not any(r["gated"] for r in run["results"] if r["candidate"] == "glm-5.2")
    assert sum(r["best"] for r in run["results"]) == len({r["prompt_version"] for r in dud})
    # the people's output went to stderr
    assert f"run {run['run_id']}: completed" in done.stderr
    assert "gated (--fail-on): reject" in done.stderr


@pytest.mark.e2e
def test_the_junit_file_has_a_testcase_per_result_failing_on_the_gated_ones(night):
    summary = _summary(night)
    tree = ET.parse(night["junit"])
    assert_junit_schema(tree.getroot())
    (suite,) = tree.getroot().findall("testsuite")
    (run,) = summary["runs"]
    cases = suite.findall("testcase")
    assert len(cases) == len(run["results"]) + 1            # the results and the run's status
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(failed) == sum(r["gated"] for r in run["results"]) > 0
    assert int(suite.get("failures")) == len(failed) and suite.get("errors") == "0"
    by_case = {(r["prompt_version"], r["candidate"]): r for r in run["results"]}
    for case in failed:  # the hostile name comes back as it was: escaped, never markup
        assert case.get("name") == DUD
        r = by_case[(case.get("classname"), DUD)]
        failure = case.find("failure")
        assert failure.get("type") == "reject"
        assert failure.get("message") == f"reject ({r['verdict']}): {r['reason']}"
        assert "% of calls failed" in r["reason"] and run["report"] in failure.text
    assert {c.get("classname") for c in failed} == {r["prompt_version"] for r in run["results"]}
    status = next(c for c in cases if c.get("classname") == "replaybench.run")
    assert list(status) == []                                # a completed run passes
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["run_id"] == run["run_id"] and props["status"] == "completed"


@pytest.mark.e2e
def test_the_step_summary_gets_markdown_appended(night):
    summary = _summary(night)
    text = night["step"].read_text()
    assert text.startswith(STEP_SUMMARY_BEFORE)              # appended, not overwritten
    added = text[len(STEP_SUMMARY_BEFORE) + 1:]                # after a blank line
    assert added.startswith("## replaybench run: completed — gated: reject")
    rows = [line for line in added.splitlines() if line.startswith("| ") and "---" not in line]
    (run,) = summary["runs"]
    assert len(rows) == len(run["results"]) + 1              # a header and a row per result
    for row in rows:  # an escaped pipe never splits a cell
        assert len(re.findall(r"(?<!\\)\|", row)) == 9, row
    assert "<b>" not in added and r'dud &lt;b&gt;&amp;"\|x' in added
    assert added.count("❌ reject") == sum(r["gated"] for r in run["results"])


@pytest.mark.e2e
def test_a_completed_day_is_summarised_again_and_gates_alike(night):
    """Rerunning the command for a completed day reads that run: 0 without a gated outcome,
    Markdown on stdout when asked."""
    first = _summary(night)["runs"][0]
    again = cli("run", "--date", str(RUN_DATE), "--config", str(night["config"]),
                "--fail-on", "promote", "--fail-on", "improved,non-inferior", "--summary", "markdown")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.startswith("## replaybench run: completed\n")
    assert f"run {first['run_id']}" in again.stdout and "(completed before)" in again.stdout
    assert "already completed" in again.stderr

    backfill = cli("backfill", "--start", "2026-11-27", "--end", "2026-11-27", "--config",
                   str(night["config"]), "--fail-on", "reject", "--summary", "json")
    assert backfill.returncode == 3, backfill.stderr[-3000:]
    summary = json.loads(backfill.stdout)
    (day,) = summary["runs"]
    assert summary["command"] == "backfill" and day["skipped"] and day["run_id"] == first["run_id"]
    assert [r["gated"] for r in day["results"]] == [r["gated"] for r in first["results"]]


@pytest.mark.e2e
def test_a_failed_run_still_hands_over_its_summary(night, tmp_path):
    """A day without traffic fails the run (exit 2 and a one-line reason, as before); the
    summary and the JUnit file still say so."""
    junit = tmp_path / "junit.xml"
    done = cli("run", "--date", "2026-11-21", "--config", str(night["config"]), "--summary",
               "json", "--junit", str(junit))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")
    summary = json.loads(done.stdout)
    (run,) = summary["runs"]
    assert (summary["status"], summary["exit_code"], run["results"]) == ("failed", 2, [])
    assert run["reason"] and run["day"] == "2026-11-20"
    root = ET.parse(junit).getroot()
    assert_junit_schema(root)
    (case,) = root.iter("testcase")
    assert case.find("error").get("type") == "failed" and root.get("errors") == "1"


def test_bad_ci_options_exit_2_before_anything_runs(tmp_path):
    config = write_config(tmp_path)
    bad = cli("run", "--date", "2026-11-28", "--config", str(config), "--fail-on", "reject,rejected")
    assert bad.returncode == 2
    (line,) = bad.stderr.strip().splitlines()
    assert line.startswith("error: --fail-on: 'rejected' is no outcome; choose from promote")
    bad = cli("backfill", "--start", "2026-11-26", "--end", "2026-11-27", "--config", str(config),
              "--summary", "yaml")
    assert bad.returncode == 2 and "--summary must be one of text, json, markdown" in bad.stderr
    assert not (tmp_path / "warehouse.duckdb").exists()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens here once the socket is closed


@pytest.mark.e2e
def test_a_partial_run_exits_1_even_with_a_gated_outcome(tmp_path, demo_slice):
    config = write_config(tmp_path, sample={"per_prompt_version": 3, "seed": 7}, candidates=[
        {"name": "dead-endpoint", "base_url": closed_port_url(), "model": "glm-5.2",
         "retry": {"max_attempts": 1}}])
    ingest_paths(load_settings(config).warehouse, [demo_slice])
    junit = tmp_path / "junit.xml"
    done = cli("run", "--date", str(RUN_DATE), "--config", str(config), "--fail-on", "reject",
               "--summary", "json", "--junit", str(junit))
    assert done.returncode == 1, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert (summary["status"], summary["exit_code"]) == ("partial", 1)
    assert summary["gated_by"] == ["reject"]  # rejected too, but the broken night comes first
    root = ET.parse(junit).getroot()
    assert_junit_schema(root)
    status = next(c for c in root.iter("testcase") if c.get("classname") == "replaybench.run")
    assert status.find("failure").get("type") == "partial"


# --- export ----------------------------------------------------------------------------------------

TABLES = {"runs", "samples", "replays", "answers", "checks", "scores", "decisions",
          "decision_evidence", "decision_looks", "sample_plan", "sample_quotas", "traffic_mix"}


def _rows_of_run(table: str) -> str:
    """The warehouse's rows of a run, written independently of the export's own queries."""
    if table == "decisions":
        return ("SELECT * FROM decisions WHERE decision_id IN (SELECT decision_id FROM "
                "decision_looks WHERE run_id = $r)")
    return f'SELECT * FROM "{table}" WHERE run_id = $r'


def _comparable(frame: pl.DataFrame) -> pl.DataFrame:
    """Sorted rows, timestamps in UTC by one name, 128-bit sums as 64-bit."""
    frame = frame.with_columns(pl.col(pl.Datetime("us", "Etc/UTC")).dt.convert_time_zone("UTC"),
                               pl.col(pl.Decimal).cast(pl.Int64))
    return frame.sort(frame.columns, nulls_last=True)


@pytest.mark.e2e
def test_export_parquet_reads_back_equal_in_duckdb_and_polars(night, tmp_path):
    run_id = _summary(night)["runs"][0]["run_id"]
    out = tmp_path / "export"
    done = cli("export", run_id, "--to", str(out), "--config", str(night["config"]))
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run_id"] == run_id and set(manifest["tables"]) >= TABLES
    reader = duckdb.connect()  # a DuckDB of its own, reading the files
    reader.execute("SET TimeZone = 'UTC'")  # as the warehouse's connections do
    with open_warehouse(night["settings"].warehouse) as wh:
        for table, entry in manifest["tables"].items():
            path = out / entry["file"]
            expected = wh.frame(_rows_of_run(table), r=run_id)
            # DuckDB on its own (its Python values: JSON is text either way, a sum an int)
            got = reader.execute("SELECT * FROM read_parquet($p)", {"p": str(path)}).fetchall()
            want = wh.execute(_rows_of_run(table), {"r": run_id}).fetchall()
            assert sorted(got, key=repr) == sorted(want, key=repr), table
            # Polars
            assert_frame_equal(_comparable(pl.read_parquet(path)), _comparable(expected))
            assert entry["rows"] == expected.height
        counts = {t: e["rows"] for t, e in manifest["tables"].items()}
    assert counts["runs"] == 1 and all(counts[t] > 0 for t in TABLES)


@pytest.mark.e2e
def test_export_csv_reads_back_equal_in_polars_and_an_unknown_run_is_one_line(night, tmp_path):
    run_id = _summary(night)["runs"][0]["run_id"]
    out = tmp_path / "csv"
    done = cli("export", run_id, "--to", str(out), "--format", "csv", "--config",
               str(night["config"]))
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    with open_warehouse(night["settings"].warehouse) as wh:
        for table, entry in manifest["tables"].items():
            expected = wh.frame(_rows_of_run(table), r=run_id)
            got = pl.read_csv(out / entry["file"], schema=expected.schema)
            assert_frame_equal(_comparable(got), _comparable(expected))

    missing = cli("export", "no-such-run", "--to", str(tmp_path / "none"), "--config",
                  str(night["config"]))
    assert missing.returncode == 2
    (line,) = missing.stderr.strip().splitlines()
    assert line.startswith("error: no run 'no-such-run'")
    bad = cli("export", run_id, "--to", str(tmp_path / "x"), "--format", "xlsx", "--config",
              str(night["config"]))
    assert bad.returncode == 2 and "--format must be one of parquet, csv" in bad.stderr


# --- the summary's writers, on hostile text ---------------------------------------------------------

def _entry(name: str, reason: str, status: str = "completed") -> dict:
    result = {"prompt_version": "pv|1", "candidate": name, "recommendation": "reject",
              "verdict": "regressed", "decision_state": "regressed", "decision_id": "d",
              "interval": {"delta": -0.2, "low": -0.3, "high": -0.1}, "pairs": 40, "nights": 1,
              "planned_pairs": 400, "nights_left": None, "reached_on": "2026-11-27",
              "cost_ratio": None, "n": 40, "pass_rate": 0.5, "baseline_pass_rate": 0.7,
              "error_rate": 0.0, "cost_per_success_usd": None, "reason": reason, "best": True,
              "standing": False, "gated": True, "gated_by": ["reject", "regressed"]}
    return {"run_id": "r1", "kind": "nightly", "day": "2026-11-27", "run_date": "2026-11-28",
            "window_start": None, "window_end": None, "status": status, "skipped": False,
            "reason": None, "report": None, "started_at": "2026-11-28T02:30:00Z",
            "finished_at": None, "seconds": None, "gated": True,
            "gated_by": ["reject", "regressed"], "results": [result]}


def test_the_writers_escape_what_a_config_or_a_model_can_say():
    name = "a]]></x>&\x00\x1b[31m<script>|*_`"
    reason = "line one\nline two | <img src=x onerror=alert(1)> ]]> \x07"
    summary = outcomes.summarize("run", [_entry(name, reason)], ("reject", "regressed"))
    assert summary["exit_code"] == outcomes.GATED
    root = ET.fromstring(outcomes.junit_xml(summary))      # parses: control characters replaced
    assert_junit_schema(root)
    case = next(c for c in root.iter("testcase") if c.get("classname") == "pv|1")
    assert case.get("name") == name.replace("\x00", "\ufffd").replace("\x1b", "\ufffd")
    assert "<img" in case.find("failure").get("message")  # text, given back as text
    text = outcomes.markdown(summary)
    row = next(line for line in text.splitlines() if line.startswith("| pv"))
    assert len(re.findall(r"(?<!\\)\|", row)) == 9 and "<script>" not in text
    assert "\x1b" not in text and "\x00" not in text
    json.loads(outcomes.to_json(summary))


def test_exit_codes_put_a_broken_run_before_a_gated_outcome():
    gated = _entry("c", "r")
    assert outcomes.exit_code([gated]) == 3
    assert outcomes.exit_code([gated, _entry("c", "r", status="partial")]) == 1
    assert outcomes.exit_code([{**gated, "gated": False}]) == 0
    assert outcomes.exit_code([{**gated, "gated": False, "status": "failed"}]) == 1
    assert outcomes.parse_fail_on(["Reject, non-inferior", "reject"]) == ("reject", "non_inferior")


# --- the JUnit schema every reader accepts -----------------------------------------------------------

SUITE_ATTRS = {"name", "tests", "failures", "errors", "time", "timestamp", "hostname", "id", "package"}


def assert_junit_schema(root: ET.Element) -> None:
    """What both the Ant JUnit schema (strict: every testsuite attribute and its properties,
    system-out and system-err present; a testcase holds at most one failure or error) and
    Jenkins' junit-10.xsd allow: what GitHub's, GitLab's and Jenkins' readers take."""
    decimal = re.compile(r"^\d+(\.\d+)?$")
    assert root.tag == "testsuites"
    assert set(root.attrib) <= {"name", "time", "tests", "failures", "disabled", "errors"}
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for suite in root:
        assert suite.tag == "testsuite" and set(suite.attrib) == SUITE_ATTRS, suite.attrib
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp"))
        assert decimal.match(suite.get("time")) and suite.get("name")
        tags = [child.tag for child in suite]
        assert tags[0] == "properties" and tags[-2:] == ["system-out", "system-err"]
        assert set(tags[1:-2]) <= {"testcase"}
        for prop in suite.find("properties"):
            assert prop.tag == "property" and set(prop.attrib) == {"name", "value"}
        cases = suite.findall("testcase")
        counts = {"tests": len(cases), "failures": 0, "errors": 0}
        for case in cases:
            assert set(case.attrib) == {"name", "classname", "time"}
            assert decimal.match(case.get("time"))
            assert len(case) <= 1 and all(c.tag in ("failure", "error") for c in case)
            for outcome in case:
                assert set(outcome.attrib) <= {"message", "type"}
                counts["failures" if outcome.tag == "failure" else "errors"] += 1
        for key, n in counts.items():
            assert int(suite.get(key)) == n
            totals[key] += n
    for key, n in totals.items():
        assert int(root.get(key)) == n
