"""The columns suites refer to, derived from each answer, its reference and production's answer.

Suites name these columns (`answer`, `answer_number`, ...), never the raw `output_text`, so that
a rule about "the answer" reads the same for every prompt_version:

- `answer`: the output stripped; `answer_label`: lower-cased, edge punctuation removed;
  `answer_words`: its word count.
- `answer_number`: the number on a final `Answer: N` line, else the last number in the text;
  `reference_number`, `production_number` likewise (a bare number for the reference).
- `answer_json`: the answer when it parses as JSON, else null.
- `answer_norm` / `reference_norm`: both sides normalised the same way for the reference match —
  canonical JSON (key order ignored) when the reference is JSON, canonical numbers when it is a
  number, else case-folded text with whitespace collapsed.
- `production_answer`: production's answer to the same request (candidates' rows only).
- `has_reference`: the row has a non-blank reference (checks that read a reference apply to
  these rows only).
"""

from __future__ import annotations

import json
import math
import re
import string
from typing import Any

import polars as pl

_NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+"
_NUMBER_RE = re.compile(_NUMBER)
_ANSWER_LINE_RE = re.compile(
    r"^\W*(?:final\s+)?answer\W*[:=]\s*\**\s*\$?\s*(" + _NUMBER + r")\b[^\d]*$", re.IGNORECASE
)
_EDGE_CHARS = string.punctuation + string.whitespace

DERIVED_SCHEMA = {
    "answer": pl.String,
    "answer_label": pl.String,
    "answer_number": pl.Float64,
    "answer_json": pl.String,
    "reference_number": pl.Float64,
    "answer_words": pl.Int64,
    "answer_norm": pl.String,
    "reference_norm": pl.String,
    "production_answer": pl.String,
    "production_number": pl.Float64,
    "has_reference": pl.Boolean,
}
# The columns of the `answers` query (warehouse/sql/answers.sql) that suites may read as well.
ANSWER_SCHEMA = {
    "request_id": pl.String,
    "prompt_version": pl.String,
    "model": pl.String,
    "status": pl.String,
    "output_text": pl.String,
    "reference": pl.String,
    "output_tokens": pl.Int64,
    "latency_ms": pl.Float64,
    "production_text": pl.String,
    "user_message": pl.String,
}
COLUMNS = {**ANSWER_SCHEMA, **DERIVED_SCHEMA}
"""Every column a suite's expectation or row_condition can name."""


def parse_number(text: str | None) -> float | None:
    """A float from a bare number ("42", "-3.5", "1,234"), None if it is not one or not finite."""
    if text is None:
        return None
    stripped = text.strip()
    if not re.fullmatch(_NUMBER, stripped):
        return None
    value = float(stripped.replace(",", ""))
    return value if math.isfinite(value) else None


def answer_number(answer: str) -> float | None:
    """The number on a final `Answer: N` line, else the last number in the text."""
    lines = [line for line in answer.splitlines() if line.strip()]
    if lines:
        match = _ANSWER_LINE_RE.match(lines[-1].strip())
        if match:
            return parse_number(match.group(1))
    numbers = _NUMBER_RE.findall(answer)
    return parse_number(numbers[-1]) if numbers else None


def has_reference(reference: str | None) -> bool:
    """A reference that is there and not blank."""
    return reference is not None and reference.strip() != ""


def _canonical_number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _normal_text(text: str) -> str:
    """Case-folded, whitespace collapsed, trailing punctuation removed."""
    return " ".join(text.casefold().split()).rstrip(_EDGE_CHARS)


def _try_json(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError):
        return False, None


def _derive_row(
    output_text: str | None, reference: str | None, production_text: str | None = None
) -> dict[str, Any]:
    answer = output_text.strip() if output_text is not None else None
    production = production_text.strip() if production_text is not None else None
    row: dict[str, Any] = {
        "answer": answer,
        "answer_label": answer.lower().strip(_EDGE_CHARS) if answer is not None else None,
        "answer_number": answer_number(answer) if answer is not None else None,
        "answer_json": None,
        "reference_number": parse_number(reference),
        "answer_words": len(answer.split()) if answer is not None else None,
        "answer_norm": None,
        "reference_norm": None,
        "production_answer": production,
        "production_number": answer_number(production) if production is not None else None,
        "has_reference": has_reference(reference),
    }
    if answer is not None:
        parsed_ok, _ = _try_json(answer)
        row["answer_json"] = answer if parsed_ok else None
    if not row["has_reference"]:
        return row
    ref_ok, ref_value = _try_json(reference.strip())
    if ref_ok and isinstance(ref_value, dict | list):
        row["reference_norm"] = _canonical_json(ref_value)
        if answer is not None:
            # No fence stripping: fenced JSON is a format failure, so it must not match.
            ans_ok, ans_value = _try_json(answer)
            row["answer_norm"] = _canonical_json(ans_value) if ans_ok else answer
    elif row["reference_number"] is not None:
        row["reference_norm"] = _canonical_number(row["reference_number"])
        if answer is not None:
            number = row["answer_number"]
            # The raw text when there is no number: a failed match then shows what was said.
            row["answer_norm"] = _canonical_number(number) if number is not None else answer
    else:
        row["reference_norm"] = _normal_text(reference)
        if answer is not None:
            row["answer_norm"] = _normal_text(answer)
    return row


def derive_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Add the derived columns (see the module docstring) to a frame of answers with
    `output_text`, `reference` and, optionally, `production_text`."""
    if "production_text" not in frame.columns:
        frame = frame.with_columns(production_text=pl.lit(None, dtype=pl.String))
    rows = [
        _derive_row(out, ref, prod)
        for out, ref, prod in zip(
            frame.get_column("output_text").to_list(),
            frame.get_column("reference").to_list(),
            frame.get_column("production_text").to_list(),
            strict=True,
        )
    ]
    derived = (
        pl.DataFrame(rows, schema=DERIVED_SCHEMA, orient="row")
        if rows
        else pl.DataFrame(schema=DERIVED_SCHEMA)
    )
    return frame.drop([c for c in DERIVED_SCHEMA if c in frame.columns]).hstack(derived)
