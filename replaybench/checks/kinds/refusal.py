"""`expect_column_values_to_not_be_a_refusal` (column, extra_patterns=[]): the opening of the text
matches none of `REFUSAL_PATTERNS` (case-insensitive), nor any extra pattern."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from great_expectations.compatibility import pydantic
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)

from replaybench.checks.kinds import CheckKind
from replaybench.checks.kinds._custom import Described
from replaybench.checks.reasons import show

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
# Whether any pattern matches, in one pass over the opening (the metric's question; `refusal`
# names the phrase, for the reason).
_ANY = re.compile("|".join(f"(?:{p})" for p in REFUSAL_PATTERNS), re.IGNORECASE)


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


def is_refusal(text: str, extra: tuple[re.Pattern, ...] = ()) -> bool:
    """Whether the opening of `text` is a refusal (`refusal` finds one), with `extra` compiled
    patterns besides REFUSAL_PATTERNS."""
    opening = str(text)[:REFUSAL_OPENING].translate(_APOSTROPHES)
    return _ANY.search(opening) is not None or any(p.search(opening) for p in extra)


class Refusal(CheckKind):
    types = ("expect_column_values_to_not_be_a_refusal",)

    def explain(self, check, values: list[Any]) -> str:
        """The refusal phrase found: "refusal 'As an AI language model': '...'"."""
        found = refusal(values[0], check.kwargs.get("extra_patterns") or ())
        return f"refusal {found!r}: {show(values[0])}"


class ColumnValuesNotRefusal(ColumnMapMetricProvider):
    condition_metric_name = "column_values.not_refusal"
    condition_value_keys = ("extra_patterns",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, extra_patterns=(), **kwargs):
        extra = tuple(re.compile(p, re.IGNORECASE) for p in extra_patterns or ())
        return column.map(lambda text: text is None or not is_refusal(text, extra)).astype(bool)


class ExpectColumnValuesToNotBeARefusal(Described, ColumnMapExpectation):
    """Expect the text not to open with a refusal ("I'm sorry, but I cannot...", "As an AI...")."""

    extra_patterns: list[str] = pydantic.Field(
        default_factory=list, description="More refusal regexes, matched case-insensitively.")

    map_metric: ClassVar[str] = "column_values.not_refusal"
    success_keys = ("extra_patterns", "mostly")
    args_keys = ("column",)
    docs_sentence: ClassVar[str] = ("values must not open with a refusal (\"I'm sorry, but I "
                                    "cannot...\", \"As an AI...\").")
    docs_keys: ClassVar[tuple[str, ...]] = ("column",)

    @pydantic.validator("extra_patterns")
    def _patterns_compile(cls, v: list[str]) -> list[str]:
        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"extra pattern {pattern!r} is not a valid regex ({exc})") from None
        return v
