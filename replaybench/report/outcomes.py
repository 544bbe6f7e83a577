"""What a run decided, for machines: one summary per `run` or `backfill`, rendered as a JSON
document, a JUnit XML file and Markdown, and the exit code a CI job or an automation gates on.

    0  every run completed (or was completed already) and no outcome named by --fail-on occurred
    1  a run failed or is partial (always, whatever --fail-on says)
    2  bad input: a one-line reason on stderr (an unknown --fail-on word, a bad date, ...)
    3  gated: a run completed, and an outcome named by --fail-on occurred

--fail-on names outcomes of a decision — its recommendation (promote, canary, hold, reject) or its
state (open, improved, regressed, equivalent, non_inferior, inconclusive) — and of a run (partial,
failed; those exit 1 in any case). A result is one prompt_version × candidate of a run: the
decisions it looked at, and those reached on an earlier night that still stand (as the report
shows them). The baseline and the noise floor are no candidates and have no result.

Everything here reads the warehouse and the summary dict; nothing writes to the warehouse. Text
from the config or a model (candidate names, reasons) is escaped by the writer of each format:
`json`, `xml.etree`, and `md` below for Markdown.
"""

from __future__ import annotations

import html
import json
import math
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from replaybench import runs
from replaybench.config import Settings
from replaybench.decide import rules
from replaybench.decide.scores import outward
from replaybench.errors import ReplaybenchError
from replaybench.warehouse import Warehouse, open_warehouse

OK, RUN_FAILED, BAD_INPUT, GATED = 0, 1, 2, 3
SCHEMA_VERSION = 1

RECOMMENDATIONS = tuple(rules.RANK)                # promote, canary, hold, reject
STATES = (rules.OPEN, *rules.REACHED)              # open, improved, regressed, ...
RUN_OUTCOMES = (runs.PARTIAL, runs.FAILED)         # always exit 1
VOCABULARY = RECOMMENDATIONS + STATES + RUN_OUTCOMES
SKIPPED = "skipped"  # a backfill's day that was completed already (its stored run is summarised)


def parse_fail_on(values: Iterable[str] | None) -> tuple[str, ...]:
    """The outcomes named by --fail-on (comma-separated, the option may repeat), in order,
    without repeats; a clear error naming the vocabulary for any other word."""
    words: list[str] = []
    for value in values or ():
        words += [w.strip().lower().replace("-", "_") for w in value.split(",") if w.strip()]
    unknown = [w for w in words if w not in VOCABULARY]
    if unknown:
        raise ReplaybenchError(
            f"--fail-on: {unknown[0]!r} is no outcome; choose from {', '.join(RECOMMENDATIONS)} "
            f"(recommendations), {', '.join(STATES)} (decision states), "
            f"{', '.join(RUN_OUTCOMES)} (run status)")
    return tuple(dict.fromkeys(words))


# --- the summary ---------------------------------------------------------------------------------

def _number(value: Any) -> float | int | None:
    """A number JSON can carry (NaN and infinities become null)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


def _iso(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _results(wh: Warehouse, settings: Settings, run: dict[str, Any],
             fail_on: tuple[str, ...]) -> list[dict[str, Any]]:
    """One result per prompt_version × candidate of the run, best candidate first."""
    from replaybench.report.context import best_candidate, standing_rows

    baseline = run["baseline"] or settings.baseline
    noise = settings.noise_floor
    scores = wh.frame("SELECT * FROM scores WHERE run_id = $r ORDER BY prompt_version, model",
                      r=run["run_id"]).to_dicts()
    rows = scores + standing_rows(wh, run, scores)
    ids = sorted({r["decision_id"] for r in rows if r.get("decision_id")})
    decisions = {d["decision_id"]: d for d in wh.frame(
        "SELECT decision_id, state, cost_ratio, error_rate, closed_at FROM decisions "
        "WHERE list_contains($ids, decision_id)", ids=ids).to_dicts()} if ids else {}
    out = []
    for pv in sorted({r["prompt_version"] for r in rows}):
        here = [r for r in rows if r["prompt_version"] == pv]
        base = next((r for r in here if r["model"] == baseline), None)
        best = best_candidate(here, baseline, noise)
        candidates = [r for r in here if r["model"] != baseline and r["model"] not in noise]
        candidates.sort(key=lambda r: (r is not best, rules.RANK.get(r["recommendation"], 9),
                                       r["model"]))
        for r in candidates:
            dec = decisions.get(r.get("decision_id"), {})
            gated_by = [w for w in fail_on if w in (r["recommendation"], r["verdict"])]
            out.append({
                "prompt_version": pv,
                "candidate": r["model"],
                "recommendation": r["recommendation"],
                "verdict": r["verdict"],
                "decision_state": dec.get("state", r["verdict"]),
                "decision_id": r.get("decision_id"),
                "interval": {"delta": _number(r["delta_vs_baseline"]),
                             "low": _number(r["delta_low"]), "high": _number(r["delta_high"])},
                "pairs": r.get("decision_pairs"),
                "nights": r.get("decision_nights"),
                "planned_pairs": r.get("planned_pairs"),
                "nights_left": r.get("nights_left"),
                "reached_on": _iso(r.get("reached_on")),
                "cost_ratio": _number(dec.get("cost_ratio")),
                "n": r["n"],
                "pass_rate": _number(r["pass_rate"]),
                "baseline_pass_rate": _number(base["pass_rate"]) if base else None,
                "error_rate": _number(r["error_rate"] if r["error_rate"] is not None
                                      else dec.get("error_rate")),
                "cost_per_success_usd": _number(r["cost_per_success_usd"]),
                "reason": r["reason"],
                "best": r is best,
                "standing": bool(r.get("standing")),
                "gated": bool(gated_by),
                "gated_by": gated_by,
            })
    return out


def run_entry(wh: Warehouse, settings: Settings, run_id: str, fail_on: tuple[str, ...],
              skipped: bool = False, reason: str | None = None) -> dict[str, Any]:
    """A stored run and its results; `skipped`: it was completed before this command."""
    run = runs.get(wh, run_id)
    results = _results(wh, settings, run, fail_on)
    last_day = (run["window_end"].astimezone(settings.tz) - timedelta(seconds=1)).date()
    run_gates = [w for w in fail_on if w == run["status"]]
    took = (run["finished_at"] - run["started_at"]).total_seconds() if run["finished_at"] else None
    return {
        "run_id": run_id,
        "kind": run["kind"],
        "day": last_day.isoformat(),
        "run_date": _iso(run["run_date"]),
        "window_start": _iso(run["window_start"]),
        "window_end": _iso(run["window_end"]),
        "status": run["status"],
        "skipped": skipped,
        "reason": reason if reason is not None else run["error"],
        "report": run["report_path"],
        "started_at": _iso(run["started_at"]),
        "finished_at": _iso(run["finished_at"]),
        "seconds": _number(took),
        "gated": bool(run_gates) or any(r["gated"] for r in results),
        "gated_by": list(dict.fromkeys(run_gates + [w for r in results for w in r["gated_by"]])),
        "results": results,
    }


def missing_entry(day: str, status: str, reason: str | None,
                  fail_on: tuple[str, ...]) -> dict[str, Any]:
    """A day that has no stored run (it failed before one began)."""
    gates = [w for w in fail_on if w == status]
    return {"run_id": None, "kind": None, "day": day, "run_date": None, "window_start": None,
            "window_end": None, "status": status, "skipped": False, "reason": reason,
            "report": None, "started_at": None, "finished_at": None, "seconds": None,
            "gated": bool(gates), "gated_by": gates, "results": []}


def exit_code(entries: list[dict[str, Any]]) -> int:
    """1 unless every run completed (failed, partial, or still running when the command ended),
    else 3 if an outcome named by --fail-on occurred, else 0."""
    if any(e["status"] != runs.COMPLETED for e in entries):
        return RUN_FAILED
    return GATED if any(e["gated"] for e in entries) else OK


def summarize(command: str, entries: list[dict[str, Any]],
              fail_on: tuple[str, ...]) -> dict[str, Any]:
    """The document `--summary json` prints: the command's runs, their results, the exit code."""
    order = (runs.FAILED, runs.PARTIAL, runs.RUNNING, runs.COMPLETED)
    statuses = [e["status"] for e in entries]
    status = next((s for s in order if s in statuses), statuses[0] if statuses else None)
    return {"version": SCHEMA_VERSION, "command": command, "status": status,
            "exit_code": exit_code(entries), "fail_on": list(fail_on),
            "gated": any(e["gated"] for e in entries),
            "gated_by": list(dict.fromkeys(w for e in entries for w in e["gated_by"])),
            "runs": entries}


def collect(settings: Settings, command: str, days: list[dict[str, Any]],
            fail_on: tuple[str, ...]) -> dict[str, Any]:
    """The summary of a command's days, each {day, status, run_id, reason, skipped}: a day with
    a stored run is read from the warehouse, one without is its status and reason alone."""
    entries = []
    with open_warehouse(settings.warehouse) as wh:
        for d in days:
            if d.get("run_id"):
                entries.append(run_entry(wh, settings, d["run_id"], fail_on,
                                         skipped=bool(d.get("skipped")), reason=d.get("reason")))
            else:
                entries.append(missing_entry(d["day"], d["status"], d.get("reason"), fail_on))
    return summarize(command, entries, fail_on)


def to_json(summary: dict[str, Any]) -> str:
    """The summary as one JSON document (strict: no NaN)."""
    return json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False)


# --- JUnit XML -----------------------------------------------------------------------------------

# XML 1.0 cannot carry these characters even escaped; ElementTree would write them raw
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text: Any) -> str:
    return _NOT_XML.sub("\ufffd", "" if text is None else str(text))


def _quality(r: dict[str, Any]) -> str:
    """'-12.5 pts [-20.1, -4.0]' (the decision's interval, rounded outwards), or '—'."""
    i = r["interval"]
    if i["delta"] is None:
        return "—"
    bounds = f" [{', '.join(outward(i['low'], i['high']))}]" if i["low"] is not None else ""
    return f"{i['delta'] * 100:+.1f} pts{bounds}"


def _ratio(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}×"


def _facts(r: dict[str, Any]) -> str:
    return (f"{r['prompt_version']} · {r['candidate']}: {r['recommendation'] or '—'} "
            f"({r['verdict'] or '—'}); quality {_quality(r)}; pairs {r['pairs'] or 0}; "
            f"cost ratio {_ratio(r['cost_ratio'])}")


def _result_line(r: dict[str, Any]) -> str:
    return _facts(r) + (f" — {r['reason']}" if r["reason"] else "")


def _suite_name(e: dict[str, Any]) -> str:
    return f"replaybench {e['kind'] or 'run'} {e['day']}" + (f" ({e['run_id']})" if e["run_id"] else "")


def junit_xml(summary: dict[str, Any]) -> bytes:
    """The summary as JUnit XML: a testsuite per run, a testcase per prompt_version × candidate
    (failing on a gated outcome, the reason as its message) and one for the run's status (a
    partial run fails, a failed run errs). Only what both the Ant schema and Jenkins' junit-10
    schema allow, so that GitHub, GitLab and Jenkins all read it."""
    root = ET.Element("testsuites", name="replaybench")
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    host = socket.gethostname() or "localhost"
    for index, e in enumerate(summary["runs"]):
        cases: list[ET.Element] = []
        failures = errors = 0
        status_case = ET.Element("testcase", classname="replaybench.run",
                                 name=_x(f"status {e['day']}"), time="0")
        if e["status"] == runs.FAILED:
            ET.SubElement(status_case, "error", type="failed",
                          message=_x(f"run failed: {e['reason'] or 'no reason recorded'}")
                          ).text = _x(e["reason"])
            errors += 1
        elif e["status"] == runs.PARTIAL:
            ET.SubElement(status_case, "failure", type="partial",
                          message=_x(f"run partial: {e['reason'] or 'no reason recorded'}")
                          ).text = _x(e["reason"])
            failures += 1
        cases.append(status_case)
        for r in e["results"]:
            case = ET.Element("testcase", classname=_x(r["prompt_version"]), name=_x(r["candidate"]),
                              time="0")
            if r["gated"]:
                ET.SubElement(case, "failure", type=_x(",".join(r["gated_by"])),
                              message=_x(f"{r['recommendation']} ({r['verdict']}): "
                                         f"{r['reason'] or 'no reason recorded'}")
                              ).text = _x(_facts(r) + (f"\nreport: {e['report']}" if e["report"] else ""))
                failures += 1
            cases.append(case)
        started = datetime.fromisoformat(e["started_at"]) if e["started_at"] else datetime.now(UTC)
        suite = ET.SubElement(
            root, "testsuite", name=_x(_suite_name(e)), package="replaybench", id=str(index),
            timestamp=started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), hostname=_x(host),
            tests=str(len(cases)), failures=str(failures), errors=str(errors),
            time=f"{e['seconds'] or 0:.3f}")
        props = ET.SubElement(suite, "properties")
        for name in ("run_id", "kind", "day", "status", "report", "reason"):
            if e.get(name) is not None:
                ET.SubElement(props, "property", name=name, value=_x(e[name]))
        if e["skipped"]:
            ET.SubElement(props, "property", name="skipped", value="completed before")
        suite.extend(cases)
        ET.SubElement(suite, "system-out").text = _x("\n".join(
            _result_line(r) for r in e["results"]) or "no results")
        ET.SubElement(suite, "system-err").text = ""
        totals["tests"] += len(cases)
        totals["failures"] += failures
        totals["errors"] += errors
        totals["time"] += e["seconds"] or 0
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", str(totals["errors"]))
    root.set("time", f"{totals['time']:.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(summary: dict[str, Any], path: Path) -> None:
    """Write the JUnit XML file (its folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(junit_xml(summary))


# --- Markdown ------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")  # what acts inside a table cell (< and & are HTML)


def md(text: Any) -> str:
    """Text as literal Markdown in a table cell: HTML escaped, Markdown's punctuation escaped,
    one line."""
    plain = " ".join(_x(text).split())
    return _MD_SPECIAL.sub(r"\\\1", html.escape(plain, quote=False))


def markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown (GitHub's job summary): per run a headline and a table of its
    results."""
    gate = ", ".join(summary["gated_by"])
    lines = [f"## replaybench {md(summary['command'])}: {md(summary['status'])}"
             + (f" — gated: {md(gate)}" if gate else ""), ""]
    if summary["fail_on"]:
        lines += [f"Fails on: {md(', '.join(summary['fail_on']))} · exit code {summary['exit_code']}", ""]
    for e in summary["runs"]:
        head = f"### {md(e['day'])}: {md(e['status'])}"
        if e["skipped"]:
            head += " (completed before)"
        lines += [head, ""]
        facts = [f"run {md(e['run_id'])}" if e["run_id"] else "no run stored"]
        if e["report"]:
            facts.append(f"report {md(e['report'])}")
        lines.append(" · ".join(facts))
        if e["reason"]:
            lines.append(f"\n**Reason:** {md(e['reason'])}")
        lines.append("")
        if not e["results"]:
            lines += ["No results.", ""]
            continue
        lines += ["| prompt_version | candidate | recommendation | decision | quality | pairs | "
                  "cost ratio | gate |", "|---|---|---|---|---|---:|---:|---|"]
        for r in e["results"]:
            cells = [md(r["prompt_version"]), md(r["candidate"]) + (" (best)" if r["best"] else ""),
                     md(r["recommendation"] or "—"),
                     md((r["verdict"] or "—").replace("_", "-"))
                     + (" (standing)" if r["standing"] else ""),
                     md(_quality(r)), str(r["pairs"] or 0), md(_ratio(r["cost_ratio"])),
                     "❌ " + md(", ".join(r["gated_by"])) if r["gated"] else ""]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def append_markdown(summary: dict[str, Any], path: Path) -> None:
    """Append the Markdown summary to a file (GitHub's $GITHUB_STEP_SUMMARY), a blank line
    apart from what an earlier step wrote."""
    before = path.stat().st_size if path.exists() else 0
    with path.open("a", encoding="utf-8") as out:
        out.write(("\n" if before else "") + markdown(summary))
