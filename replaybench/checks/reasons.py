"""Why an answer failed a check, in one short line: each check kind explains its own failures.

An explainer is registered for an expectation type with `@explains("expect_...")` where the
kind is defined: GX's own kinds here, replaybench's custom ones beside their classes in
`replaybench.expectations`. It gets the check and the values of the columns it read for the
failing row, and says what was expected and what was seen ("not in {billing, ...}: 'Billing'").
A kind without an explainer gets "failed <type>: column=value, ...".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from replaybench.checks.suites import CheckSpec

REASON_MAX = 160
_VALUE_MAX = 60
# Why a derived column can be null on an answered row, for "no value in ..." reasons.
NULL_MEANS = {
    "answer_number": "no number in the answer",
    "answer_json": "the answer is not valid JSON",
    "answer_norm": "nothing to compare",
    "output_tokens": "no token count recorded",
    "reference_number": "the reference is not a number",
    "production_number": "no number in production's answer",
}

Explainer = Callable[[CheckSpec, list[Any]], str]
_EXPLAINERS: dict[str, Explainer] = {}


def explains(*types: str) -> Callable[[Explainer], Explainer]:
    """Register a function `(check, values) -> text` as the explanation of these types' failures."""

    def register(fn: Explainer) -> Explainer:
        for etype in types:
            _EXPLAINERS[etype] = fn
        return fn

    return register


def reason(check: CheckSpec, values: list[Any]) -> str:
    """What was expected and what was seen, briefly, for a row that failed `check`."""
    import replaybench.expectations  # noqa: F401 - registers the custom kinds' explainers

    missing = [c for c, v in zip(check.columns, values, strict=True) if v is None]
    if missing and check.type.startswith("expect_column_pair"):
        return truncate(no_value(missing), REASON_MAX)
    explain = _EXPLAINERS.get(check.type, _generic)
    return truncate(explain(check, values), REASON_MAX)


def no_value(columns: Iterable[str]) -> str:
    """ "no value in answer_number (no number in the answer)", for each column."""
    return "; ".join(
        f"no value in {c}" + (f" ({NULL_MEANS[c]})" if c in NULL_MEANS else "") for c in columns
    )


def _generic(check: CheckSpec, values: list[Any]) -> str:
    shown = ", ".join(f"{c}={show(v)}" for c, v in zip(check.columns, values, strict=True))
    return f"failed {check.type}: {shown}"


# --- GX's own kinds --------------------------------------------------------------------------


@explains("expect_column_values_to_be_in_set")
def _in_set(check: CheckSpec, values: list[Any]) -> str:
    return f"not in {show_set(check.kwargs['value_set'])}: {show(values[0])}"


@explains("expect_column_values_to_not_be_in_set")
def _not_in_set(check: CheckSpec, values: list[Any]) -> str:
    return f"in {show_set(check.kwargs['value_set'])}: {show(values[0])}"


@explains("expect_column_values_to_match_regex")
def _regex(check: CheckSpec, values: list[Any]) -> str:
    return f"does not match /{truncate(check.kwargs['regex'], 40)}/: {show(values[0])}"


@explains("expect_column_values_to_not_match_regex")
def _not_regex(check: CheckSpec, values: list[Any]) -> str:
    regex = check.kwargs["regex"]
    hit = re.search(regex, str(values[0]))
    at = f" at {hit.group(0)!r}" if hit else ""
    return f"matches /{truncate(regex, 40)}/{at}: {show(values[0])}"


@explains("expect_column_values_to_be_json_parseable")
def _json(check: CheckSpec, values: list[Any]) -> str:
    return f"not valid JSON: {show(values[0])}"


@explains("expect_column_values_to_match_json_schema")
def _json_schema(check: CheckSpec, values: list[Any]) -> str:
    return f"does not match the JSON schema ({schema_error(values[0], check.kwargs['json_schema'])})"


@explains("expect_column_values_to_be_between")
def _between(check: CheckSpec, values: list[Any]) -> str:
    return f"not {show_range(check.kwargs)}: {show(values[0])}"


@explains("expect_column_value_lengths_to_be_between")
def _length_between(check: CheckSpec, values: list[Any]) -> str:
    return f"length {len(str(values[0]))} not {show_range(check.kwargs)}: {show(values[0])}"


@explains("expect_column_values_to_not_be_null")
def _not_null(check: CheckSpec, values: list[Any]) -> str:
    return "is null"


@explains("expect_column_pair_values_to_be_equal")
def _pair_equal(check: CheckSpec, values: list[Any]) -> str:
    return f"{show(values[0])} != {show(values[1])}"


# --- helpers ---------------------------------------------------------------------------------


def schema_error(value: Any, schema: dict) -> str:
    """The JSON schema's best-matching complaint about a value (a JSON text)."""
    import jsonschema

    try:
        error = jsonschema.exceptions.best_match(
            jsonschema.validators.validator_for(schema)(schema).iter_errors(json.loads(value))
        )
    except Exception as exc:  # noqa: BLE001 - the reason is best effort
        return first_line(exc)
    return truncate(error.message, 100) if error else "?"


def show_range(kw: dict) -> str:
    low, high = kw.get("min_value"), kw.get("max_value")
    if low is not None and high is not None:
        return f"between {low} and {high}"
    return f"≥ {low}" if low is not None else f"≤ {high}"


def show_set(values: Iterable) -> str:
    items = [str(v) for v in values]
    shown = ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")
    return "{" + shown + "}"


def show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return truncate(repr(value), _VALUE_MAX)


def scalar(value: Any) -> Any:
    """numpy scalars → Python values; NaN → None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def first_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def truncate(text: str, limit: int) -> str:
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 1] + "…"
