"""GX's null kinds: they judge nulls themselves, so no row fails beforehand for a null."""

from __future__ import annotations

from typing import Any

from replaybench.checks.kinds import CheckKind


class Nulls(CheckKind):
    types = ("expect_column_values_to_be_null", "expect_column_values_to_not_be_null")
    judges_nulls = True

    def explain(self, check, values: list[Any]) -> str:
        """"is null" for a value that must not be; the generic reason otherwise."""
        if check.type == "expect_column_values_to_not_be_null":
            return "is null"
        return super().explain(check, values)
