"""The LLM-as-judge check: a suite's `judge:` block, scored by the config's `judge:` endpoint.

Every answered row of the suite's prompt_version (production's only with `include_production`)
gets one check: the question (the request's last message, `user_message`), the answer, the
reference and the rubric go to the judge (`replaybench.judge`), and the check passes when its
score (1-5) is at least the threshold; the reason gives the score and the judge's explanation.
A judge that fails (unreachable, HTTP error, a reply with no JSON score) is a failed check with
the reason, never a pass. Requests are redacted first when `redactor` is given.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from replaybench.checks.reasons import REASON_MAX, truncate
from replaybench.checks.rows import check_rows
from replaybench.checks.suites import PRODUCTION_MODEL, JudgeSpec, SuiteSpec
from replaybench.config import Judge


def judge_parts(answered: pl.DataFrame, suites: dict[str, SuiteSpec], judge: Judge,
                api_key: str | None, redactor: Any) -> list[pl.DataFrame]:
    """One judge check row per answered row whose suite has a judge block, scored in one batch."""
    from replaybench.judge import JudgeItem, score_items

    selected: list[tuple[pl.DataFrame, JudgeSpec]] = []
    for (prompt_version,), rows in answered.group_by("prompt_version", maintain_order=True):
        suite = suites.get(prompt_version)
        if suite is None or suite.judge is None:
            continue
        if not suite.judge.include_production:
            rows = rows.filter(pl.col("model") != PRODUCTION_MODEL)
        if rows.height:
            selected.append((rows, suite.judge))
    items: list[JudgeItem] = []
    for rows, spec in selected:
        questions = (
            rows.get_column("user_message").to_list()
            if "user_message" in rows.columns
            else [None] * rows.height
        )
        for question, answer, reference in zip(
            questions,
            rows.get_column("output_text").to_list(),
            rows.get_column("reference").to_list(),
            strict=True,
        ):
            texts = [question or "", answer or "", reference or ""]
            if redactor is not None:
                texts, _ = redactor.redact_messages(texts)
            items.append(JudgeItem(texts[0], texts[1], texts[2] or None, spec.rubric))
    verdicts = iter(score_items(items, judge, api_key))
    parts = []
    for rows, spec in selected:
        passed, reasons = [], []
        for _ in range(rows.height):
            score, why = next(verdicts)
            ok = score is not None and score >= spec.threshold
            passed.append(ok)
            if score is None:
                reasons.append(why)
            else:
                verdict = f"score {score}/5" + ("" if ok else f" < {spec.threshold:g}")
                reasons.append(truncate(f"{verdict}: {why}", REASON_MAX))
        parts.append(check_rows(rows, spec.name, passed, reasons))
    return parts
