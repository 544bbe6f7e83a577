"""GX's regex kinds: the answer does (not) match a regular expression."""

from __future__ import annotations

import re
from typing import Any

from replaybench.checks.kinds import CheckKind
from replaybench.checks.reasons import show, truncate


class Pattern(CheckKind):
    types = ("expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex")

    def explain(self, check, values: list[Any]) -> str:
        """"does not match /.../: ...", or where a forbidden pattern matched."""
        regex = check.kwargs["regex"]
        shown = f"/{truncate(regex, 40)}/"
        if check.type == "expect_column_values_to_match_regex":
            return f"does not match {shown}: {show(values[0])}"
        hit = re.search(regex, str(values[0]))
        at = f" at {hit.group(0)!r}" if hit else ""
        return f"matches {shown}{at}: {show(values[0])}"
