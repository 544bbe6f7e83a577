"""Custom Great Expectations expectations for LLM answers, registered the GX way.

Defining a subclass of a GX expectation or metric provider registers it by its snake_case name,
so importing this module is all a suite needs before it names these types:

- `expect_column_pair_values_to_be_within_tolerance` (column_A, column_B, rel_tol=0, abs_tol=0):
  both values are numbers and |A - B| <= max(rel_tol * max(|A|, |B|), abs_tol) (`math.isclose`).
- `expect_column_pair_values_to_be_similar` (column_A, column_B, threshold=90,
  scorer="token_set_ratio", normalize=True): the rapidfuzz score of A against B (0-100) is at
  least `threshold`; `scorer: ratio, threshold: 100` is exact agreement after normalisation.
- `expect_column_values_to_not_be_a_refusal` (column, extra_patterns=[]): the opening of the text
  matches none of `REFUSAL_PATTERNS` (case-insensitive), nor any extra pattern.

The pair expectations judge nulls themselves (`ignore_row_if` defaults to "neither"): a missing
value on either side is never within tolerance and never similar.

Importing GX costs seconds: import this module lazily, where the validation runs.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar, Literal

import pandas as pd
from great_expectations.compatibility import pydantic
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import (
    ColumnMapExpectation,
    ColumnPairMapExpectation,
)
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    ColumnPairMapMetricProvider,
    column_condition_partial,
    column_pair_condition_partial,
)
from rapidfuzz import fuzz, utils

# A refusal is the model declining to do the task. First-person phrasings only, so a summary that
# reports what a person said is not one; matched against the opening of the answer, where models
# put their refusals, so a quotation deep inside a long answer does not count.
REFUSAL_PATTERNS: tuple[str, ...] = (
    r"\bI(?:'m| am) (?:sorry|afraid),? (?:but )?I (?:can(?:'|no)t|cannot|am unable to|won't|will not)\b",
    r"\bI (?:can(?:'|no)t|cannot|won't|will not|am unable to|am not able to) "
    r"(?:help|assist|comply|provide|do that|fulfil|fulfill|answer|support)\b",
    r"\bI(?:'m| am) (?:unable|not able) to (?:help|assist|comply|provide|answer|fulfil|fulfill)\b",
    r"\bAs an AI(?: language model| model| assistant)?\b",
    r"\bI(?:'m| am) (?:just )?an AI\b",
    r"\bI (?:must|have to) (?:respectfully )?decline\b",
    r"\bI(?:'m| am) not (?:allowed|permitted) to\b",
    r"\b(?:my|the) (?:guidelines|policies|policy) (?:do not|don't) (?:allow|permit)\b",
)
REFUSAL_OPENING = 200
"""How many characters from the start of an answer are searched for a refusal."""

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})
_COMPILED = tuple(re.compile(p, re.IGNORECASE) for p in REFUSAL_PATTERNS)

Scorer = Literal["ratio", "token_set_ratio", "token_sort_ratio", "partial_ratio", "WRatio"]
_SCORERS = {name: getattr(fuzz, name) for name in Scorer.__args__}


def refusal(text: str | None, extra_patterns: tuple[str, ...] | list[str] = ()) -> str | None:
    """The refusal phrase found in the opening of `text`, or None if it is not a refusal."""
    if text is None:
        return None
    opening = str(text)[:REFUSAL_OPENING].translate(_APOSTROPHES)
    extra = (re.compile(p, re.IGNORECASE) for p in extra_patterns)
    for pattern in (*_COMPILED, *extra):
        hit = pattern.search(opening)
        if hit:
            return hit.group(0)
    return None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def within_tolerance(a: Any, b: Any, rel_tol: float = 0.0, abs_tol: float = 0.0) -> bool:
    """Whether two numbers agree within a relative or absolute tolerance; a missing one never does."""
    if _missing(a) or _missing(b):
        return False
    try:
        return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=abs_tol)
    except (TypeError, ValueError):
        return False


def similarity(a: Any, b: Any, scorer: str = "token_set_ratio", normalize: bool = True) -> float:
    """The rapidfuzz score (0-100) of `a` against `b`; 0 when either is missing."""
    if _missing(a) or _missing(b):
        return 0.0
    processor = _normal if normalize else None
    return float(_SCORERS[scorer](str(a), str(b), processor=processor))


def _normal(text: str) -> str:
    """Lower-cased words: punctuation and runs of whitespace become single spaces."""
    return " ".join(utils.default_process(text).split())


# --- metrics: the row-wise conditions -------------------------------------------------------

class ColumnPairValuesWithinTolerance(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.within_tolerance"
    condition_domain_keys = ("batch_id", "table", "column_A", "column_B", "row_condition",
                             "condition_parser", "ignore_row_if")
    condition_value_keys = ("rel_tol", "abs_tol")

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A, column_B, rel_tol=0.0, abs_tol=0.0, **kwargs):
        return pd.Series(
            [within_tolerance(a, b, rel_tol, abs_tol) for a, b in zip(column_A, column_B, strict=True)],
            index=column_A.index, dtype=bool,
        )


class ColumnPairValuesSimilar(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.similar"
    condition_domain_keys = ("batch_id", "table", "column_A", "column_B", "row_condition",
                             "condition_parser", "ignore_row_if")
    condition_value_keys = ("threshold", "scorer", "normalize")

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A, column_B, threshold=90, scorer="token_set_ratio", normalize=True,
                **kwargs):
        return pd.Series(
            [not _missing(a) and not _missing(b) and similarity(a, b, scorer, normalize) >= threshold
             for a, b in zip(column_A, column_B, strict=True)],
            index=column_A.index, dtype=bool,
        )


class ColumnValuesNotRefusal(ColumnMapMetricProvider):
    condition_metric_name = "column_values.not_refusal"
    condition_value_keys = ("extra_patterns",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, extra_patterns=(), **kwargs):
        return column.map(lambda text: refusal(text, extra_patterns or ()) is None).astype(bool)


# --- expectations ---------------------------------------------------------------------------

_IgnoreRowIf = Literal["both_values_are_missing", "either_value_is_missing", "neither"]


class ExpectColumnPairValuesToBeWithinTolerance(ColumnPairMapExpectation):
    """Expect column A's number to equal column B's within `rel_tol` (relative) or `abs_tol`."""

    rel_tol: float = pydantic.Field(0.0, ge=0, description="Relative tolerance, e.g. 1e-6.")
    abs_tol: float = pydantic.Field(0.0, ge=0, description="Absolute tolerance, e.g. 0.01.")
    # "neither": GX hands nulls to the condition, which fails them (a null never passes).
    ignore_row_if: _IgnoreRowIf = "neither"

    map_metric: ClassVar[str] = "column_pair_values.within_tolerance"
    success_keys = ("column_A", "column_B", "ignore_row_if", "rel_tol", "abs_tol", "mostly")
    args_keys = ("column_A", "column_B")


class ExpectColumnPairValuesToBeSimilar(ColumnPairMapExpectation):
    """Expect column A's text to score at least `threshold` (0-100) against column B's."""

    threshold: float = pydantic.Field(90, ge=0, le=100, description="Lowest passing score, 0-100.")
    scorer: Scorer = pydantic.Field("token_set_ratio", description="A rapidfuzz.fuzz scorer.")
    normalize: bool = pydantic.Field(
        True, description="Compare lower-cased words, ignoring punctuation and spacing.")
    ignore_row_if: _IgnoreRowIf = "neither"

    map_metric: ClassVar[str] = "column_pair_values.similar"
    success_keys = ("column_A", "column_B", "ignore_row_if", "threshold", "scorer", "normalize",
                    "mostly")
    args_keys = ("column_A", "column_B")


class ExpectColumnValuesToNotBeARefusal(ColumnMapExpectation):
    """Expect the text not to open with a refusal ("I'm sorry, but I cannot...", "As an AI...")."""

    extra_patterns: list[str] = pydantic.Field(
        default_factory=list, description="More refusal regexes, matched case-insensitively.")

    map_metric: ClassVar[str] = "column_values.not_refusal"
    success_keys = ("extra_patterns", "mostly")
    args_keys = ("column",)

    @pydantic.validator("extra_patterns")
    def _patterns_compile(cls, v: list[str]) -> list[str]:
        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"extra pattern {pattern!r} is not a valid regex ({exc})") from None
        return v
