"""GX's range kinds: a number, or a text's length, within bounds."""

from __future__ import annotations

from typing import Any

from replaybench.checks.kinds import CheckKind
from replaybench.checks.reasons import show


class Range(CheckKind):
    types = ("expect_column_values_to_be_between", "expect_column_value_lengths_to_be_between")

    def explain(self, check, values: list[Any]) -> str:
        """"not ≤ 6000: 9000", or "length 23 not ≤ 10: '...'" for a length."""
        bounds = f"not {show_range(check.kwargs)}: {show(values[0])}"
        if check.type == "expect_column_value_lengths_to_be_between":
            return f"length {len(str(values[0]))} {bounds}"
        return bounds


def show_range(kw: dict) -> str:
    """A check's min_value/max_value as "between a and b", "≥ a" or "≤ b"."""
    low, high = kw.get("min_value"), kw.get("max_value")
    if low is not None and high is not None:
        return f"between {low} and {high}"
    return f"≥ {low}" if low is not None else f"≤ {high}"
