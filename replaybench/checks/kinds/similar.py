"""`expect_column_pair_values_to_be_similar` (column_A, column_B, threshold=90,
scorer="token_set_ratio", normalize=True): the rapidfuzz score of A against B (0-100) is at least
`threshold`; `scorer: ratio, threshold: 100` is exact agreement after normalisation. A missing
value on either side is never similar (`ignore_row_if` defaults to "neither").
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pandas as pd
from great_expectations.compatibility import pydantic
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnPairMapMetricProvider,
    column_pair_condition_partial,
)
from rapidfuzz import fuzz, utils

from replaybench.checks.kinds import CheckKind
from replaybench.checks.kinds._custom import PAIR_DOMAIN_KEYS, PairExpectation, is_missing
from replaybench.checks.reasons import show

Scorer = Literal["ratio", "token_set_ratio", "token_sort_ratio", "partial_ratio", "WRatio"]
_SCORERS = {name: getattr(fuzz, name) for name in Scorer.__args__}


def similarity(a: Any, b: Any, scorer: str = "token_set_ratio", normalize: bool = True) -> float:
    """The rapidfuzz score (0-100) of `a` against `b`; 0 when either is missing."""
    if is_missing(a) or is_missing(b):
        return 0.0
    processor = _normal if normalize else None
    return float(_SCORERS[scorer](str(a), str(b), processor=processor))


def _normal(text: str) -> str:
    """Lower-cased words: punctuation and runs of whitespace become single spaces."""
    return " ".join(utils.default_process(text).split())


class Similar(CheckKind):
    types = ("expect_column_pair_values_to_be_similar",)

    def explain(self, check, values: list[Any]) -> str:
        """"token_set_ratio 41 < 60: '...' vs '...'"."""
        kw = check.kwargs
        scorer, normalize = kw.get("scorer", "token_set_ratio"), kw.get("normalize", True)
        score = similarity(values[0], values[1], scorer, normalize)
        return (f"{scorer} {score:.0f} < {kw.get('threshold', 90):g}: {show(values[0])} vs "
                f"{show(values[1])}")


class ColumnPairValuesSimilar(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.similar"
    condition_domain_keys = PAIR_DOMAIN_KEYS
    condition_value_keys = ("threshold", "scorer", "normalize")

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A, column_B, threshold=90, scorer="token_set_ratio", normalize=True,
                **kwargs):
        return pd.Series(
            [not is_missing(a) and not is_missing(b)
             and similarity(a, b, scorer, normalize) >= threshold
             for a, b in zip(column_A, column_B, strict=True)],
            index=column_A.index, dtype=bool,
        )


class ExpectColumnPairValuesToBeSimilar(PairExpectation):
    """Expect column A's text to score at least `threshold` (0-100) against column B's."""

    threshold: float = pydantic.Field(90, ge=0, le=100, description="Lowest passing score, 0-100.")
    scorer: Scorer = pydantic.Field("token_set_ratio", description="A rapidfuzz.fuzz scorer.")
    normalize: bool = pydantic.Field(
        True, description="Compare lower-cased words, ignoring punctuation and spacing.")

    map_metric: ClassVar[str] = "column_pair_values.similar"
    success_keys = ("column_A", "column_B", "ignore_row_if", "threshold", "scorer", "normalize",
                    "mostly")
    docs_sentence: ClassVar[str] = ("Values in $column_A must be similar to $column_B: a $scorer "
                                    "score of at least $threshold out of 100.")
    docs_keys: ClassVar[tuple[str, ...]] = ("column_A", "column_B", "scorer", "threshold")
