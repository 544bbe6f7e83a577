"""Decisions in the warehouse: evidence that accumulates night after night.

A decision is keyed by (prompt_version, candidate, evidence key); the key hashes what would make
old evidence invalid — the provider and model string sent, the candidate's parameters, the
content of the prompt_version's suite, the baseline and the margin — so a changed candidate or
suite starts afresh. Each night adds its pairs (a request counts once, whatever reruns it), looks
once (`rules.look`), and stores the look. A reached decision stays reached until its key changes
or someone reopens it (`replaybench decisions reopen`); a reopened decision is history and a new
generation starts from zero evidence (looking on at the old evidence would spend error rate the
design no longer has).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from replaybench.config import Candidate, Settings
from replaybench.decide import rules
from replaybench.errors import ReplaybenchError
from replaybench.runs import Run
from replaybench.warehouse import Warehouse


def suite_digests(directory: Path) -> dict[str, str]:
    """prompt_version -> sha256 of its suite file's bytes (a changed suite is new evidence)."""
    digests: dict[str, str] = {}
    if not directory.is_dir():
        return digests
    for path in sorted(directory.glob("*.y*ml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue  # validate reports a broken suite; the key then has no suite part
        if isinstance(doc, dict) and doc.get("prompt_version") is not None:
            digests[str(doc["prompt_version"])] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return digests


def evidence_key(settings: Settings, candidate: Candidate, suite: str | None,
                 production_model: str | None) -> tuple[str, dict]:
    """(key, its parts) for a candidate's evidence on a prompt_version whose suite hashes to
    `suite` and whose production traffic is mostly served by `production_model`. The base URL is
    left out: the same model behind another address is the same model."""
    parts = {"provider": candidate.provider, "model": candidate.model,
             "params": candidate.params, "max_tokens_field": candidate.max_tokens_field,
             "suite": suite, "baseline": settings.baseline, "production_model": production_model,
             "judge": settings.judge.model if settings.judge else None,
             "margin": settings.decide.margin}
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16], parts


def _decision_id(pv: str, candidate: str, key: str, generation: int) -> str:
    return hashlib.sha256(f"{pv}\x00{candidate}\x00{key}\x00{generation}".encode()).hexdigest()[:16]


def production_models(wh: Warehouse, run: Run) -> dict[str, str]:
    """prompt_version -> the model that served most of its production traffic in the window (a
    prompt_version moved to another production model compares against another baseline)."""
    return dict(wh.execute("SELECT prompt_version, mode(model_id) FROM logs WHERE ts >= $s AND "
                           "ts < $e GROUP BY 1", {"s": run.window_start, "e": run.window_end}
                           ).fetchall())


def current(wh: Warehouse, pv: str, candidate: str, key: str) -> dict | None:
    """The live decision for this key: not reopened, newest generation."""
    found = wh.frame("SELECT * FROM decisions WHERE prompt_version = $pv AND candidate = $c AND "
                     "evidence_key = $k AND closed_at IS NULL ORDER BY generation DESC LIMIT 1",
                     pv=pv, c=candidate, k=key).to_dicts()
    return found[0] if found else None


def _next_generation(wh: Warehouse, pv: str, candidate: str, key: str) -> int:
    row = wh.execute("SELECT max(generation) FROM decisions WHERE prompt_version = $pv AND "
                     "candidate = $c AND evidence_key = $k", {"pv": pv, "c": candidate, "k": key}
                     ).fetchone()
    return (row[0] or 0) + 1


def _compared(settings: Settings) -> list[Candidate]:
    """The candidates that get decisions (the noise floor is no candidate to move to)."""
    return [c for c in settings.candidates if not c.replays_production]


# --- what tonight's sample must serve --------------------------------------------------------

@dataclass(frozen=True)
class Need:
    """What a prompt_version's decisions ask of tonight's sample."""

    pairs: int                 # requests wanted (before the cap and the budget)
    candidates: tuple[str, ...]  # replayed tonight (open or not yet opened decisions)
    reason: str


def needs(wh: Warehouse, settings: Settings, run: Run, prompt_versions: list[str]
          ) -> dict[str, Need]:
    """Per prompt_version: the pairs its open decisions still need (a new decision: a full
    night), and which candidates must answer. All reached: the monitoring sample, if any."""
    digests = suite_digests(settings.suites)
    production = production_models(wh, run)
    cap = settings.sample.per_prompt_version
    out: dict[str, Need] = {}
    for pv in prompt_versions:
        wanted, asked, reasons = 0, [], []
        for cand in _compared(settings):
            key, _ = evidence_key(settings, cand, digests.get(pv), production.get(pv))
            dec = current(wh, pv, cand.name, key)
            if dec is None:
                wanted, reasons = cap, [*reasons, f"{cand.name} new"]
                asked.append(cand.name)
            elif dec["state"] == rules.OPEN:
                left = max(1, dec["planned_pairs"] - dec["pairs"])
                wanted = max(wanted, left)
                asked.append(cand.name)
                reasons.append(f"{cand.name} needs ≤{left}")
        if asked:
            out[pv] = Need(wanted, tuple(asked), "; ".join(reasons))
        else:
            monitor = settings.sample.monitor_per_prompt_version
            out[pv] = Need(monitor, tuple(c.name for c in _compared(settings)) if monitor else (),
                           "all decisions reached" + (": monitoring sample" if monitor else ""))
    return out


# --- tonight's evidence and look --------------------------------------------------------------

# A pair is evidence of quality when the candidate answered, or refused this request as a bad
# request; a timeout, 429, 5xx, garbled body or a call never sent says nothing about quality (it
# is kept, to count in the error rate, and replaced if a later run gets an answer).
_PAIRS = """
SELECT c.prompt_version, c.model AS candidate, c.request_id,
       c.passed AS candidate_passed, b.passed AS baseline_passed,
       c.status <> 'ok' AS candidate_error,
       c.status = 'ok' OR (c.error_kind = 'bad_request' AND coalesce(c.attempts, 0) > 0) AS counts,
       c.cost_usd AS candidate_cost, b.cost_usd AS baseline_cost
FROM {outcomes} AS c
JOIN {outcomes} AS b ON b.request_id = c.request_id AND b.model = $baseline
WHERE c.model <> $baseline AND list_contains($compared, c.model)
"""

_TALLY = """
SELECT count(*) FILTER (WHERE counts) AS pairs,
       count(*) FILTER (WHERE counts AND candidate_passed AND NOT baseline_passed) AS only_candidate,
       count(*) FILTER (WHERE counts AND baseline_passed AND NOT candidate_passed) AS only_baseline,
       count(*) FILTER (WHERE counts AND candidate_passed) AS candidate_passed,
       count(*) FILTER (WHERE counts AND baseline_passed) AS baseline_passed,
       count(*) FILTER (WHERE candidate_error) AS errors,
       count(*) AS calls,
       CASE WHEN count(*) FILTER (WHERE counts AND NOT candidate_error
                                  AND candidate_cost IS NULL) > 0
            THEN NULL ELSE coalesce(sum(candidate_cost) FILTER (WHERE counts), 0)
       END AS candidate_cost,
       CASE WHEN count(*) FILTER (WHERE counts AND baseline_passed AND baseline_cost IS NULL) > 0
            THEN NULL ELSE coalesce(sum(baseline_cost) FILTER (WHERE counts), 0)
       END AS baseline_cost,
       count(DISTINCT run_id) FILTER (WHERE counts) AS nights
FROM {pairs}
"""

_TONIGHT = """(SELECT *, $run AS run_id FROM _night_pairs
               WHERE prompt_version = $pv AND candidate = $c)"""
"""Tonight's pairs of one prompt_version and candidate, as a decision's evidence holds them."""

_ADD = """
MERGE INTO decision_evidence AS held USING (
    SELECT * EXCLUDE (prompt_version, candidate), $d AS decision_id FROM {tonight}
    QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY counts DESC) = 1
) AS fresh
ON held.decision_id = fresh.decision_id AND held.request_id = fresh.request_id
-- an answer replaces a failed call; nothing replaces an answer
WHEN MATCHED AND NOT held.counts THEN UPDATE SET
    run_id = fresh.run_id, candidate_passed = fresh.candidate_passed,
    baseline_passed = fresh.baseline_passed, candidate_error = fresh.candidate_error,
    counts = fresh.counts, candidate_cost = fresh.candidate_cost,
    baseline_cost = fresh.baseline_cost
WHEN NOT MATCHED THEN INSERT BY NAME
"""


def tally(wh: Warehouse, decision_id: str) -> rules.Tally:
    """Every pair a decision holds, added up."""
    return _tally(wh, "decision_evidence WHERE decision_id = $d", d=decision_id)


def _tally(wh: Warehouse, pairs: str, **params: object) -> rules.Tally:
    row = wh.frame(_TALLY.format(pairs=pairs), **params).row(0, named=True)
    return rules.Tally(**{k: (v if v is not None or k.endswith("cost") else 0)
                          for k, v in row.items()})


def record_night(wh: Warehouse, settings: Settings, run: Run,
                 outcomes: str) -> dict[tuple[str, str], dict]:
    """Add tonight's pairs to every decision they serve, look once at each, and return the
    decision rows after tonight by (prompt_version, candidate). Idempotent per run.

    `outcomes` names the table (or view) of the night's outcomes (`sql/outcomes.sql`);
    the night's pairs stay in DuckDB (`_night_pairs`, a temp table): each decision adds
    them up and takes its share there, and Python holds none of them."""
    digests = suite_digests(settings.suites)
    production = production_models(wh, run)
    compared = {c.name: c for c in _compared(settings)}
    wh.execute("CREATE OR REPLACE TEMP TABLE _night_pairs AS " + _PAIRS.format(outcomes=outcomes),
               {"baseline": settings.baseline, "compared": list(compared)})
    after = _record(wh, settings, run, compared, digests, production)
    # not in a `finally`: after a failed statement the transaction refuses any other until it
    # is rolled back, which takes the table with it
    wh.execute("DROP TABLE _night_pairs")
    return after


def _record(wh: Warehouse, settings: Settings, run: Run, compared: dict[str, Candidate],
            digests: dict[str, str], production: dict[str, str]) -> dict[tuple[str, str], dict]:
    groups = [tuple(r) for r in wh.execute(
        "SELECT DISTINCT prompt_version, candidate FROM _night_pairs ORDER BY ALL")]
    day = run.run_date - timedelta(days=1)  # the night's day of traffic
    now = datetime.now(UTC)
    live: dict[tuple[str, str], dict] = {}
    opening: list[tuple[str, str, str, dict]] = []
    for pv, name in groups:
        key, parts = evidence_key(settings, compared[name], digests.get(pv), production.get(pv))
        dec = current(wh, pv, name, key)
        if dec is None:
            opening.append((pv, name, key, parts))
        else:
            live[(pv, name)] = dec
    for pv, name, key, parts in opening:  # one family: the decisions opened together tonight
        first = _tally(wh, _TONIGHT, run=run.run_id, pv=pv, c=name)
        plan = rules.plan(len(opening), first.pairs, rules.planning_discordance(first),
                          alpha=settings.decide.alpha, margin=settings.decide.margin,
                          difference=settings.sample.min_detectable_difference,
                          power=settings.sample.power, ni_power=settings.decide.power)
        # evidence under another key no longer applies: its decisions become history
        wh.execute("UPDATE decisions SET closed_at = $now, closed_reason = 'superseded: the "
                   "evidence key changed' WHERE prompt_version = $pv AND candidate = $c AND "
                   "evidence_key <> $k AND closed_at IS NULL",
                   {"now": now, "pv": pv, "c": name, "k": key})
        generation = _next_generation(wh, pv, name, key)
        decision_id = _decision_id(pv, name, key, generation)
        wh.execute(
            "INSERT INTO decisions (decision_id, prompt_version, candidate, evidence_key, "
            "key_parts, generation, state, alpha, family_size, margin, planned_pairs, "
            "fixed_pairs, opened_run, opened_on) VALUES ($id, $pv, $c, $k, $parts, $g, 'open', "
            "$a, $f, $m, $planned, $fixed, $run, $day)",
            {"id": decision_id, "pv": pv, "c": name, "k": key, "parts": json.dumps(parts, default=str),
             "g": generation, "a": plan.alpha, "f": len(opening), "m": plan.margin,
             "planned": plan.planned_pairs, "fixed": plan.fixed_pairs, "run": run.run_id,
             "day": day})
        live[(pv, name)] = current(wh, pv, name, key)
    after: dict[tuple[str, str], dict] = {}
    for (pv, name), dec in live.items():
        # a decision reached by this very run is looked at again (a resumed run re-scores)
        if dec["state"] != rules.OPEN and dec["reached_run"] != run.run_id:
            after[(pv, name)] = dec
            continue
        tonight = {"run": run.run_id, "pv": pv, "c": name}
        wh.execute(_ADD.format(tonight=_TONIGHT), {**tonight, "d": dec["decision_id"]})
        after[(pv, name)] = _look(wh, dec, run, day, now)
    return after


def _look(wh: Warehouse, dec: dict, run: Run, day: date, now: datetime) -> dict:
    plan = rules.Plan(dec["alpha"], dec["margin"], dec["planned_pairs"], dec["fixed_pairs"])
    total = tally(wh, dec["decision_id"])
    earlier = tuple(r[0] for r in wh.execute(
        "SELECT fraction FROM decision_looks WHERE decision_id = $d AND run_id <> $r ORDER BY look",
        {"d": dec["decision_id"], "r": run.run_id}))
    seen = rules.look(plan, total, earlier)
    ratio = total.cost_ratio
    recommendation = rules.recommend(seen.state, ratio, total.error_rate)
    reached = seen.state != rules.OPEN
    per_night = total.pairs / total.nights if total.nights else None
    wh.execute("DELETE FROM decision_looks WHERE decision_id = $d AND run_id = $r",
               {"d": dec["decision_id"], "r": run.run_id})
    wh.execute("INSERT INTO decision_looks VALUES ($d, $r, $look, $pairs, $f, $c, $delta, $lo, $hi, "
               "$s, $now)", {"d": dec["decision_id"], "r": run.run_id, "look": len(earlier) + 1,
                             "pairs": total.pairs, "f": seen.fraction,
                             "c": None if math.isinf(seen.critical) else seen.critical,
                             "delta": seen.delta, "lo": seen.low, "hi": seen.high,
                             "s": seen.state, "now": now})
    wh.execute(
        "UPDATE decisions SET state = $s, recommendation = $rec, pairs = $pairs, nights = $nights, "
        "only_candidate = $oc, only_baseline = $ob, delta = $delta, delta_low = $lo, "
        "delta_high = $hi, cost_ratio = $ratio, error_rate = $err, pairs_per_night = $ppn, "
        "reached_run = $rr, reached_on = $ron WHERE decision_id = $d",
        {"s": seen.state, "rec": recommendation, "pairs": total.pairs, "nights": total.nights,
         "oc": total.only_candidate, "ob": total.only_baseline, "delta": seen.delta,
         "lo": seen.low, "hi": seen.high, "ratio": ratio, "err": total.error_rate, "ppn": per_night,
         "rr": run.run_id if reached else None, "ron": day if reached else None,
         "d": dec["decision_id"]})
    return wh.frame("SELECT * FROM decisions WHERE decision_id = $d",
                    d=dec["decision_id"]).row(0, named=True)


def nights_left(dec: dict) -> int | None:
    """At most this many more nights at the decision's recent traffic (open decisions only)."""
    if dec["state"] != rules.OPEN or not dec.get("pairs_per_night"):
        return None
    return math.ceil(max(0, dec["planned_pairs"] - dec["pairs"]) / dec["pairs_per_night"])


# --- the `decisions` command -------------------------------------------------------------------

def listing(wh: Warehouse, every: bool = False) -> list[dict[str, Any]]:
    """The live decisions (or every one, history included), newest first per prompt_version."""
    where = "" if every else "WHERE closed_at IS NULL"
    rows = wh.frame(f"SELECT * FROM decisions {where} ORDER BY prompt_version, candidate, "
                    "generation DESC").to_dicts()
    for r in rows:
        r["nights_left"] = nights_left(r)
    return rows


def reopen(wh: Warehouse, prompt_version: str, candidate: str | None, reason: str) -> int:
    """Close the live decisions of a prompt_version (one candidate's, or all); the next night
    opens new ones from zero evidence. Returns how many were reopened."""
    live = wh.frame("SELECT decision_id FROM decisions WHERE prompt_version = $pv AND "
                    "closed_at IS NULL AND ($c IS NULL OR candidate = $c)",
                    pv=prompt_version, c=candidate)
    if live.is_empty():
        who = f" and candidate {candidate!r}" if candidate else ""
        raise ReplaybenchError(f"no live decision for prompt_version {prompt_version!r}{who} "
                               "(see `replaybench decisions`)")
    wh.execute("UPDATE decisions SET closed_at = $now, closed_reason = $why WHERE "
               "list_contains($ids, decision_id)",
               {"now": datetime.now(UTC), "why": f"reopened: {reason}",
                "ids": live["decision_id"].to_list()})
    return live.height
