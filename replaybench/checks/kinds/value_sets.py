"""GX's value-set kinds: the answer is (not) one of the listed values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from replaybench.checks.kinds import CheckKind
from replaybench.checks.reasons import show


class ValueSet(CheckKind):
    types = ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set")

    def explain(self, check, values: list[Any]) -> str:
        """"not in {billing, ...}: 'Billing'" (or "in {...}" for the forbidden values)."""
        shown = show_set(check.kwargs["value_set"])
        allowed = check.type == "expect_column_values_to_be_in_set"
        return f"{'not in' if allowed else 'in'} {shown}: {show(values[0])}"


def show_set(values: Iterable) -> str:
    """The first three values of a set, "{a, b, c, ...}"."""
    items = [str(v) for v in values]
    shown = ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")
    return "{" + shown + "}"
