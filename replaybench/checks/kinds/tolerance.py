"""`expect_column_pair_values_to_be_within_tolerance` (column_A, column_B, rel_tol=0, abs_tol=0):
both values are numbers and |A - B| <= max(rel_tol * max(|A|, |B|), abs_tol) (`math.isclose`).
A missing value on either side is never within tolerance (`ignore_row_if` defaults to "neither").
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pandas as pd
from great_expectations.compatibility import pydantic
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnPairMapMetricProvider,
    column_pair_condition_partial,
)

from replaybench.checks.kinds import CheckKind
from replaybench.checks.kinds._custom import PAIR_DOMAIN_KEYS, PairExpectation, is_missing
from replaybench.checks.reasons import show


def within_tolerance(a: Any, b: Any, rel_tol: float = 0.0, abs_tol: float = 0.0) -> bool:
    """Whether two numbers agree within a relative or absolute tolerance; a missing one never does."""
    if is_missing(a) or is_missing(b):
        return False
    try:
        return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=abs_tol)
    except (TypeError, ValueError):
        return False


class Tolerance(CheckKind):
    types = ("expect_column_pair_values_to_be_within_tolerance",)

    def explain(self, check, values: list[Any]) -> str:
        """"41 != 42 (beyond rel_tol 1e-06)"."""
        kw = check.kwargs
        tolerance = ", ".join(f"{k} {kw[k]:g}" for k in ("rel_tol", "abs_tol") if kw.get(k))
        return f"{show(values[0])} != {show(values[1])}" + (f" (beyond {tolerance})" if tolerance else "")


class ColumnPairValuesWithinTolerance(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.within_tolerance"
    condition_domain_keys = PAIR_DOMAIN_KEYS
    condition_value_keys = ("rel_tol", "abs_tol")

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A, column_B, rel_tol=0.0, abs_tol=0.0, **kwargs):
        return pd.Series(
            [within_tolerance(a, b, rel_tol, abs_tol) for a, b in zip(column_A, column_B, strict=True)],
            index=column_A.index, dtype=bool,
        )


class ExpectColumnPairValuesToBeWithinTolerance(PairExpectation):
    """Expect column A's number to equal column B's within `rel_tol` (relative) or `abs_tol`."""

    rel_tol: float = pydantic.Field(0.0, ge=0, description="Relative tolerance, e.g. 1e-6.")
    abs_tol: float = pydantic.Field(0.0, ge=0, description="Absolute tolerance, e.g. 0.01.")

    map_metric: ClassVar[str] = "column_pair_values.within_tolerance"
    success_keys = ("column_A", "column_B", "ignore_row_if", "rel_tol", "abs_tol", "mostly")
    docs_sentence: ClassVar[str] = ("Values in $column_A and $column_B must be equal within a "
                                    "relative $rel_tol or an absolute $abs_tol.")
    docs_keys: ClassVar[tuple[str, ...]] = ("column_A", "column_B", "rel_tol", "abs_tol")
