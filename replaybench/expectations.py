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
value on either side is never within tolerance and never similar. Each kind explains its own
failures (`@explains`, see `replaybench.checks.reasons`).

GX's own `column_values.match_json_schema` metric is re-registered here with the schema compiled
once per column: GX calls `jsonschema.validate` for every value, which checks the schema itself
against its meta-schema each time (70 % of a demo night's validation time). Same verdicts: the
same validator class (`validator_for(schema)`), no format checking, a value that is not JSON
still an error.

Importing GX costs seconds: import this module lazily, where the validation runs.
"""

from __future__ import annotations

import json
import logging
import math
import re
from functools import lru_cache
from typing import Any, ClassVar, Literal

import pandas as pd
from great_expectations.compatibility import pydantic
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import (
    ColumnMapExpectation,
    ColumnPairMapExpectation,
)
from great_expectations.expectations.metrics.column_map_metrics.column_values_match_json_schema import (  # noqa: E501
    ColumnValuesMatchJsonSchema,
)
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    ColumnPairMapMetricProvider,
    column_condition_partial,
    column_pair_condition_partial,
)
from great_expectations.render import LegacyRendererType, RenderedStringTemplateContent
from great_expectations.render.renderer.renderer import renderer
from great_expectations.render.util import parse_row_condition_string, substitute_none_for_missing
from rapidfuzz import fuzz, utils

from replaybench.checks.reasons import explains, show

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


def is_refusal(text: str, extra: tuple[re.Pattern, ...] = ()) -> bool:
    """Whether the opening of `text` is a refusal (`refusal` finds one), with `extra` compiled
    patterns besides REFUSAL_PATTERNS."""
    opening = str(text)[:REFUSAL_OPENING].translate(_APOSTROPHES)
    return _ANY.search(opening) is not None or any(p.search(opening) for p in extra)


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
        extra = tuple(re.compile(p, re.IGNORECASE) for p in extra_patterns or ())
        return column.map(lambda text: text is None or not is_refusal(text, extra)).astype(bool)


# --- expectations ---------------------------------------------------------------------------


def _sentence(template: str, configuration, runtime_configuration, keys: list[str]) -> list:
    """A prescriptive sentence for Data Docs, "If <row_condition>, then ..." when it has one."""
    params = substitute_none_for_missing(configuration.kwargs if configuration else {},
                                         [*keys, "row_condition"])
    styling = (runtime_configuration or {}).get("styling")
    if params["row_condition"] is not None:
        params["condition_content"] = parse_row_condition_string(params["row_condition"])
        styling = {**(styling or {}), "params": {**(styling or {}).get("params", {}),
                                                  "condition_content": {"classes": ["badge"]}}}
        template = "If $condition_content, then " + template[0].lower() + template[1:]
    return [RenderedStringTemplateContent(
        content_block_type="string_template",
        string_template={"template": template, "params": params, "styling": styling})]

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

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(cls, configuration=None, result=None, runtime_configuration=None,
                               **kwargs):
        return _sentence("Values in $column_A and $column_B must be equal within a relative "
                         "$rel_tol or an absolute $abs_tol.", configuration,
                         runtime_configuration, ["column_A", "column_B", "rel_tol", "abs_tol"])


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

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(cls, configuration=None, result=None, runtime_configuration=None,
                               **kwargs):
        return _sentence("Values in $column_A must be similar to $column_B: a $scorer score of at "
                         "least $threshold out of 100.", configuration, runtime_configuration,
                         ["column_A", "column_B", "scorer", "threshold"])


class ExpectColumnValuesToNotBeARefusal(ColumnMapExpectation):
    """Expect the text not to open with a refusal ("I'm sorry, but I cannot...", "As an AI...")."""

    extra_patterns: list[str] = pydantic.Field(
        default_factory=list, description="More refusal regexes, matched case-insensitively.")

    map_metric: ClassVar[str] = "column_values.not_refusal"
    success_keys = ("extra_patterns", "mostly")
    args_keys = ("column",)

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(cls, configuration=None, result=None, runtime_configuration=None,
                               **kwargs):
        return _sentence("values must not open with a refusal (\"I'm sorry, but I cannot...\", "
                         "\"As an AI...\").", configuration, runtime_configuration, ["column"])

    @pydantic.validator("extra_patterns")
    def _patterns_compile(cls, v: list[str]) -> list[str]:
        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"extra pattern {pattern!r} is not a valid regex ({exc})") from None
        return v


# --- how each kind explains a failure ---------------------------------------------------------


@explains("expect_column_pair_values_to_be_within_tolerance")
def _explain_tolerance(check, values: list[Any]) -> str:
    kw = check.kwargs
    tolerance = ", ".join(f"{k} {kw[k]:g}" for k in ("rel_tol", "abs_tol") if kw.get(k))
    return f"{show(values[0])} != {show(values[1])}" + (f" (beyond {tolerance})" if tolerance else "")


@explains("expect_column_pair_values_to_be_similar")
def _explain_similar(check, values: list[Any]) -> str:
    kw = check.kwargs
    scorer, normalize = kw.get("scorer", "token_set_ratio"), kw.get("normalize", True)
    score = similarity(values[0], values[1], scorer, normalize)
    return (f"{scorer} {score:.0f} < {kw.get('threshold', 90):g}: {show(values[0])} vs "
            f"{show(values[1])}")


@explains("expect_column_values_to_not_be_a_refusal")
def _explain_refusal(check, values: list[Any]) -> str:
    found = refusal(values[0], check.kwargs.get("extra_patterns") or ())
    return f"refusal {found!r}: {show(values[0])}"


# --- GX's JSON-schema metric, with the schema compiled once -----------------------------------


@lru_cache(maxsize=64)
def _schema_validator(schema_json: str):
    import jsonschema

    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)  # a bad schema errors the expectation, as jsonschema.validate does
    return cls(schema)


_registry_log = logging.getLogger("great_expectations.expectations.registry")
_level = _registry_log.level
_registry_log.setLevel(logging.ERROR)  # replacing GX's pandas provider is the point: no warning
try:

    class ColumnValuesMatchJsonSchemaCompiled(ColumnValuesMatchJsonSchema):
        """`column_values.match_json_schema` for pandas, the schema compiled once per column."""

        @column_condition_partial(engine=PandasExecutionEngine)
        def _pandas(cls, column, json_schema, **kwargs):
            validator = _schema_validator(json.dumps(json_schema, sort_keys=True))
            seen: dict[str, bool] = {}  # a night repeats answers: each distinct one checked once

            def valid(value: str) -> bool:
                found = seen.get(value)
                if found is None:
                    found = seen[value] = validator.is_valid(json.loads(value))
                return found

            return column.map(valid)

finally:
    _registry_log.setLevel(_level)
