"""GX's pair equality, as the automatic reference match uses it: "'big ben' != 'the eiffel tower'"."""

from __future__ import annotations

from typing import Any

from replaybench.checks.kinds import CheckKind
from replaybench.checks.reasons import show


class PairEqual(CheckKind):
    types = ("expect_column_pair_values_to_be_equal",)

    def explain(self, check, values: list[Any]) -> str:
        """The two values that differ."""
        return f"{show(values[0])} != {show(values[1])}"
