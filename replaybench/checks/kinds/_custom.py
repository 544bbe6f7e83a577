"""What replaybench's custom expectations share: their Data Docs sentence, nulls, pairs.

Importing GX costs seconds: the kinds that import this are loaded lazily (`load_kinds`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import pandas as pd
from great_expectations.expectations.expectation import ColumnPairMapExpectation
from great_expectations.render import LegacyRendererType, RenderedStringTemplateContent
from great_expectations.render.renderer.renderer import renderer
from great_expectations.render.util import parse_row_condition_string, substitute_none_for_missing

PAIR_DOMAIN_KEYS = ("batch_id", "table", "column_A", "column_B", "row_condition",
                    "condition_parser", "ignore_row_if")
"""The domain of a column-pair metric, as GX's own pair metrics declare it."""

IgnoreRowIf = Literal["both_values_are_missing", "either_value_is_missing", "neither"]


def is_missing(value: Any) -> bool:
    """None, NaN or pandas' NA: a value no check passes."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


class Described:
    """A custom expectation's prescriptive sentence in Data Docs: `docs_sentence` with its
    `$keys` filled in, "If <row_condition>, then ..." when it has one."""

    docs_sentence: ClassVar[str]
    docs_keys: ClassVar[tuple[str, ...]]

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(cls, configuration=None, result=None, runtime_configuration=None,
                               **kwargs):
        template = cls.docs_sentence
        params = substitute_none_for_missing(configuration.kwargs if configuration else {},
                                             [*cls.docs_keys, "row_condition"])
        styling = (runtime_configuration or {}).get("styling")
        if params["row_condition"] is not None:
            params["condition_content"] = parse_row_condition_string(params["row_condition"])
            styling = {**(styling or {}), "params": {**(styling or {}).get("params", {}),
                                                      "condition_content": {"classes": ["badge"]}}}
            template = "If $condition_content, then " + template[0].lower() + template[1:]
        return [RenderedStringTemplateContent(
            content_block_type="string_template",
            string_template={"template": template, "params": params, "styling": styling})]


class PairExpectation(Described, ColumnPairMapExpectation):
    """A custom expectation on a pair of columns. It judges nulls itself: "neither" hands them
    to the condition, which fails them (a null never passes). Abstract: no `map_metric`."""

    ignore_row_if: IgnoreRowIf = "neither"
    args_keys = ("column_A", "column_B")
