"""What a report shows, read from the warehouse (so a stored run re-renders): the core every
section and the e-mail share — the run, and per prompt_version its rows, best candidate and the
others' decisions — then what each registered section adds (`report.sections`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from replaybench import runs
from replaybench.config import Settings
from replaybench.decide import evidence, extras
from replaybench.decide.rules import RANK
from replaybench.redact import Redactor
from replaybench.warehouse import Warehouse


def best_candidate(rows: list[dict[str, Any]], baseline: str,
                   exclude: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """The candidate to act on: best recommendation, then pass rate, then cost per success
    (a replay of production itself, the noise floor, is no candidate)."""
    candidates = [r for r in rows
                  if r["model"] != baseline and r["model"] not in exclude and r["recommendation"]]
    if not candidates:
        return None
    return min(candidates, key=lambda r: (RANK[r["recommendation"]], -(r["pass_rate"] or 0),
                                          r["cost_per_success_usd"] or float("inf")))


def others_line(rows: list[dict[str, Any]], best: dict[str, Any] | None, baseline: str,
                exclude: frozenset[str] = frozenset()) -> str:
    """The other candidates' decisions in one line, for the first screen: "glm-5.2 hold (open,
    ≤46 nights) · minimax-m3 reject (regressed since 2026-11-20)"."""
    parts = []
    for r in sorted(rows, key=lambda r: (RANK.get(r["recommendation"], 9), r["model"])):
        if r["model"] in (baseline, *exclude) or not r["recommendation"] or r is best:
            continue
        state = (r["verdict"] or "").replace("_", "-")
        when = (f" since {r['reached_on']}" if r.get("reached_on")
                else f", ≤{r['nights_left']} nights" if r.get("nights_left") is not None else "")
        parts.append(f"{r['model']} {r['recommendation']} ({state}{when})")
    return " · ".join(parts)


def window_label(run: dict[str, Any], settings: Settings) -> str:
    """The run's window as local days, e.g. '2026-11-27 (Europe/Berlin)'."""
    first = run["window_start"].astimezone(settings.tz).date()
    last = (run["window_end"].astimezone(settings.tz) - timedelta(seconds=1)).date()
    days = f"{first}" if first == last else f"{first} – {last}"
    return f"{days} ({settings.timezone})"


def standing_rows(wh: Warehouse, run: dict[str, Any], scores: list[dict[str, Any]]
                  ) -> list[dict[str, Any]]:
    """A row for each live decision that was not replayed tonight (reached on an earlier night):
    its verdict and recommendation stand, so the report still carries them."""
    tonight = {(s["prompt_version"], s["model"]) for s in scores}
    blank = dict.fromkeys(wh.frame("SELECT * FROM scores LIMIT 0").columns)
    rows = []
    for d in wh.frame("SELECT * FROM decisions WHERE closed_at IS NULL AND opened_on < $day "
                      "ORDER BY prompt_version, candidate", day=run["run_date"]).to_dicts():
        if (d["prompt_version"], d["candidate"]) in tonight:
            continue
        rows.append({**blank, "prompt_version": d["prompt_version"], "model": d["candidate"],
                     "verdict": d["state"], "recommendation": d["recommendation"],
                     "reason": d["reason"], "delta_vs_baseline": d["delta"],
                     "delta_low": d["delta_low"], "delta_high": d["delta_high"],
                     "decision_id": d["decision_id"], "decision_pairs": d["pairs"],
                     "decision_nights": d["nights"], "planned_pairs": d["planned_pairs"],
                     "fixed_pairs": d["fixed_pairs"], "reached_on": d["reached_on"],
                     "nights_left": evidence.nights_left(d), "standing": True})
    return rows


SHOWN_TEXTS = ("user_message", "candidate_answer", "production_answer", "reference", "reasons")


def redacted_failures(failures: list[dict[str, Any]], redactor: Redactor) -> list[dict[str, Any]]:
    """The failing answers as the report may show them: every text from the logs or a model —
    the request, both answers, the reference and the checks' reasons (which quote answers) —
    with personal data replaced, one set of placeholders per request so the diff still lines up.
    The report and the e-mail leave the warehouse; raw text stays in it."""
    out = []
    for f in failures:
        texts, _ = redactor.redact_messages([f[k] if f[k] is not None else "" for k in SHOWN_TEXTS])
        out.append({**f, **{k: (t if f[k] is not None else None)
                            for k, t in zip(SHOWN_TEXTS, texts, strict=True)}})
    return out


def _configured(settings: Settings, name: str) -> bool:
    return any(c.name == name for c in settings.candidates)


def _prompt_version(settings: Settings, pv: dict[str, Any], rows: list[dict[str, Any]],
                    baseline: str, history: list[dict[str, Any]], volume: float | None
                    ) -> dict[str, Any]:
    """One prompt_version's core: its rows (baseline first, then by recommendation and pass rate),
    each with its frontier, trend, monthly projection and canary snippet; the best candidate."""
    name, noise = pv["prompt_version"], settings.noise_floor
    rows.sort(key=lambda r: (r["model"] != baseline, RANK.get(r["recommendation"], 9),
                             -(r["pass_rate"] or 0)))
    base = next((r for r in rows if r["model"] == baseline), None)
    frontier = extras.pareto_frontier(rows)
    for r in rows:
        past = [h for h in history if h["prompt_version"] == name and h["model"] == r["model"]]
        r.update(on_frontier=r["model"] in frontier if extras.plottable(r) else None,
                 trend=extras.trend(past), projection=extras.monthly_projection(r, base, volume))
        r["canary"] = extras.litellm_canary(name, pv["production_model"],
                                            settings.candidate(r["model"])) \
            if r["recommendation"] == "canary" and _configured(settings, r["model"]) \
            and r["model"] not in noise else None
    return {
        **pv,
        "anchor": "pv-" + "".join(ch if ch.isalnum() else "-" for ch in name),
        "rows": rows,
        "baseline_row": base,
        "best": (best := best_candidate(rows, baseline, noise)),
        "others": others_line(rows, best, baseline, noise),
        "noise_floor": next((r for r in rows if r["model"] in noise), None),
        "monthly_requests": volume,
    }


def report_context(wh: Warehouse, settings: Settings, run_id: str) -> dict[str, Any]:
    """Everything the report and the e-mail show: the core, then each section's data."""
    from replaybench.report import sections

    run = runs.get(wh, run_id)
    baseline = run["baseline"] or settings.baseline
    scores = wh.frame("SELECT * FROM scores WHERE run_id = $r ORDER BY prompt_version, model",
                      r=run_id).to_dicts()
    volume = {v["prompt_version"]: v["monthly_requests"]
              for v in wh.frame("monthly_volume", run_id=run_id).to_dicts()}
    history = wh.frame("score_history", run_id=run_id, runs=extras.TREND_RUNS).to_dicts()
    standing = standing_rows(wh, run, scores)
    candidates = wh.frame("replay_summary", run_id=run_id).to_dicts()
    context = {
        "run": run,
        "window_label": window_label(run, settings),
        "baseline": baseline,
        "scores": scores,
        "sections": [
            _prompt_version(settings, pv, [s for s in scores + standing
                                           if s["prompt_version"] == pv["prompt_version"]],
                            baseline, history, volume.get(pv["prompt_version"]))
            for pv in wh.frame("prompt_versions", run_id=run_id).to_dicts()],
        "candidates": candidates,
        "simulated": any(c["simulated"] for c in candidates),
        "noise_floor_models": settings.noise_floor,
        "generated_at": datetime.now(UTC),
    }
    for add in sections.DATA:
        add(wh, settings, context)
    return context
