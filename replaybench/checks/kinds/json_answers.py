"""GX's JSON kinds: the answer parses as JSON, or matches a JSON schema.

GX's own `column_values.match_json_schema` metric is re-registered here with the schema compiled
once per column: GX calls `jsonschema.validate` for every value, which checks the schema itself
against its meta-schema each time (70 % of a demo night's validation time). Same verdicts: the
same validator class (`validator_for(schema)`), no format checking, a value that is not JSON
still an error.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from typing import Any

from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.metrics.column_map_metrics.column_values_match_json_schema import (  # noqa: E501
    ColumnValuesMatchJsonSchema,
)
from great_expectations.expectations.metrics.map_metric_provider import column_condition_partial

from replaybench.checks.kinds import CheckKind
from replaybench.checks.reasons import first_line, show, truncate


class JsonParseable(CheckKind):
    types = ("expect_column_values_to_be_json_parseable",)

    def explain(self, check, values: list[Any]) -> str:
        """"not valid JSON: '...'"."""
        return f"not valid JSON: {show(values[0])}"


class JsonSchema(CheckKind):
    types = ("expect_column_values_to_match_json_schema",)

    def explain(self, check, values: list[Any]) -> str:
        """The schema's best-matching complaint about the answer."""
        return f"does not match the JSON schema ({schema_error(values[0], check.kwargs['json_schema'])})"

    def vet(self, check) -> None:
        """A schema that is not one fails at load, not on every row of the night."""
        import jsonschema

        schema = check.kwargs.get("json_schema")
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"json_schema is not a valid JSON schema: "
                             f"{truncate(exc.message, 200)}") from None


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
