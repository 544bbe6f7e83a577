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


_JSON_STARTS = frozenset('{["-0123456789tfnNI')
"""The characters a JSON text can start with once stripped (`json.loads` also reads NaN and
Infinity): anything else is not JSON, without parsing it."""


def _try_json(text: str) -> tuple[bool, Any]:
    if not text or text[0] not in _JSON_STARTS and not text[0].isspace():
        return False, None
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError):
        return False, None


class _Deriver:
    """`derive_row`'s parts, each computed once per distinct text: in a night the same text
    comes back often (production's answer is every candidate's `production_text`, a label is
    answered thousands of times, a reference serves every model)."""

    def __init__(self) -> None:
        self._answers: dict[str, tuple] = {}
        self._references: dict[str | None, tuple] = {}
        self._numbers: dict[str, float | None] = {}

    def number(self, answer: str) -> float | None:
        found = self._numbers.get(answer, _UNSET)
        if found is _UNSET:
            found = self._numbers[answer] = answer_number(answer)
        return found

    def answer(self, output_text: str) -> tuple:
        """(answer, label, number, words, json text or None, parsed JSON ok, parsed value)."""
        found = self._answers.get(output_text)
        if found is None:
            answer = output_text.strip()
            ok, value = _try_json(answer)
            found = self._answers[output_text] = (
                answer, answer.lower().strip(_EDGE_CHARS), self.number(answer),
                len(answer.split()), answer if ok else None, ok, value)
        return found

    def reference(self, reference: str | None) -> tuple:
        """(reference_number, has_reference, kind, reference_norm): kind json|number|text."""
        found = self._references.get(reference)
        if found is None:
            number = parse_number(reference)
            kind = norm = None
            if has_reference(reference):
                ref_ok, ref_value = _try_json(reference.strip())
                if ref_ok and isinstance(ref_value, dict | list):
                    kind, norm = "json", _canonical_json(ref_value)
                elif number is not None:
                    kind, norm = "number", _canonical_number(number)
                else:
                    kind, norm = "text", _normal_text(reference)
            found = self._references[reference] = (number, kind is not None, kind, norm)
        return found

    def row(self, output_text: str | None, reference: str | None,
            production_text: str | None) -> tuple:
        """The derived columns of one answer, in DERIVED_SCHEMA's order."""
        reference_number, has_ref, kind, reference_norm = self.reference(reference)
        production = production_text.strip() if production_text is not None else None
        production_number = self.number(production) if production is not None else None
        if output_text is None:
            return (None, None, None, None, reference_number, None, None, reference_norm,
                    production, production_number, has_ref)
        answer, label, number, words, answer_json, ok, value = self.answer(output_text)
        answer_norm = None
        if kind == "json":
            # No fence stripping: fenced JSON is a format failure, so it must not match.
            answer_norm = _canonical_json(value) if ok else answer
        elif kind == "number":
            # The raw text when there is no number: a failed match then shows what was said.
            answer_norm = _canonical_number(number) if number is not None else answer
        elif kind == "text":
            answer_norm = _normal_text(answer)
        return (answer, label, number, answer_json, reference_number, words, answer_norm,
                reference_norm, production, production_number, has_ref)


_UNSET = object()


def _derive_row(
    output_text: str | None, reference: str | None, production_text: str | None = None
) -> dict[str, Any]:
    return dict(zip(DERIVED_SCHEMA, _Deriver().row(output_text, reference, production_text),
                    strict=True))


def derive_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Add the derived columns (see the module docstring) to a frame of answers with
    `output_text`, `reference` and, optionally, `production_text`."""
    if "production_text" not in frame.columns:
        frame = frame.with_columns(production_text=pl.lit(None, dtype=pl.String))
    deriver = _Deriver()
    rows = [
        deriver.row(out, ref, prod)
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
