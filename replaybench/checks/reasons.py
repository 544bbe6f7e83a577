"""How a failed check's reason reads: one short line, values shown briefly.

Each check kind says what was expected and what was seen (`replaybench.checks.kinds`); these are
the pieces they and the night's rules share ("no value in answer_number (no number in the
answer)", a value shown as `'Billing'`, a reason cut at REASON_MAX characters).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

REASON_MAX = 160
_VALUE_MAX = 60
# Why a derived column can be null on an answered row, for "no value in ..." reasons.
NULL_MEANS = {
    "answer_number": "no number in the answer",
    "answer_json": "the answer is not valid JSON",
    "answer_norm": "nothing to compare",
    "output_tokens": "no token count recorded",
    "reference_number": "the reference is not a number",
    "production_number": "no number in production's answer",
}


def no_value(columns: Iterable[str]) -> str:
    """ "no value in answer_number (no number in the answer)", for each column."""
    return "; ".join(
        f"no value in {c}" + (f" ({NULL_MEANS[c]})" if c in NULL_MEANS else "") for c in columns
    )


def show(value: Any) -> str:
    """A value as a reason quotes it: its repr, whole floats as integers, cut short."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return truncate(repr(value), _VALUE_MAX)


def scalar(value: Any) -> Any:
    """numpy scalars → Python values; NaN → None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def first_line(exc: BaseException | str) -> str:
    """An error's first line (its type's name when it has no text)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def truncate(text: str, limit: int) -> str:
    """Text on one line, cut to `limit` characters with an ellipsis."""
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 1] + "…"
