"""replaybench/checks/kinds: the custom expectations, through real GX, on hand-built frames."""

from __future__ import annotations

import re

import pandas as pd
import polars as pl
import pytest

from replaybench.checks.kinds.refusal import REFUSAL_PATTERNS, refusal
from replaybench.checks.kinds.similar import similarity
from replaybench.checks.kinds.tolerance import within_tolerance
from replaybench.checks.run import run_checks
from replaybench.checks.suites import load_suites

from .conftest import ANSWER_SCHEMA
from .suite_files import load_error, one_expectation

SCHEMA = ANSWER_SCHEMA


def answers(*rows: tuple) -> pl.DataFrame:
    """Frame from (request_id, output_text, reference, production_text); model glm-5.2."""
    full = [(r[0], "glm-5.2", "t@v1", r[1], r[2], 10, 100.0, r[3]) for r in rows]
    return pl.DataFrame(full, schema=SCHEMA, orient="row")


def check(tmp_path, entry: str, frame: pl.DataFrame) -> dict[str, tuple[bool, str | None]]:
    """Run one suite entry (YAML under `expectations:`) named `c`; {request_id: (passed, reason)}."""
    (tmp_path / "t.yaml").write_text(one_expectation(entry))
    out = run_checks(frame, load_suites(tmp_path)).filter(pl.col("check") == "c")
    return {r["request_id"]: (r["passed"], r["reason"]) for r in out.iter_rows(named=True)}


# --- tolerance ------------------------------------------------------------------------------

TOLERANCE = (
    "type: expect_column_pair_values_to_be_within_tolerance\n"
    "    kwargs: {column_A: answer_number, column_B: reference_number, rel_tol: 1.0e-6}\n"
    "    meta: {name: c, description: Number within tolerance}"
)


PRODUCTION_NUMBER = (
    "type: expect_column_pair_values_to_be_within_tolerance\n"
    "    kwargs: {column_A: answer_number, column_B: production_number, rel_tol: 1.0e-6}\n"
    "    meta: {name: c, description: Same number as production}"
)


@pytest.mark.parametrize(
    "entry, rows, expected",
    [
        pytest.param(
            TOLERANCE,
            [
                ("exact", "Answer: 42", "42", None),
                ("rounding", "Answer: 0.30000000000000004", "0.3", None),
                ("close", "Answer: 1000000.5", "1000000", None),
                ("wrong", "Answer: 41", "42", None),
                ("nonumber", "I don't know", "42", None),
                ("noref", "Answer: 42", None, None),
            ],
            {
                "exact": (True, None),
                "rounding": (True, None),
                "close": (True, None),
                "wrong": (False, "41 != 42 (beyond rel_tol 1e-06)"),
                "nonumber": (False, "no value in answer_number (no number in the answer)"),
                # reads the reference: rows without one get no row for the check
            },
            id="relative",
        ),
        pytest.param(
            TOLERANCE.replace("rel_tol: 1.0e-6", "abs_tol: 0.01"),
            [("in", "Answer: 12.345", "12.34", None), ("out", "Answer: 12.36", "12.34", None)],
            {"in": (True, None), "out": (False, "12.36 != 12.34 (beyond abs_tol 0.01)")},
            id="absolute",
        ),
        pytest.param(
            PRODUCTION_NUMBER,
            [
                ("same", "so x = 7\nAnswer: 7", None, "Answer: 7.0"),
                ("differ", "Answer: 8", None, "Answer: 7"),
                ("prod_words", "Answer: 8", None, "I cannot tell"),
            ],
            {
                "same": (True, None),
                "differ": (False, "8 != 7 (beyond rel_tol 1e-06)"),
                "prod_words": (False, "no value in production_number (no number in production's answer)"),
            },
            id="agreement_with_production",
        ),
    ],
)
def test_within_tolerance_per_row(tmp_path, entry, rows, expected):
    assert check(tmp_path, entry, answers(*rows)) == expected


def test_within_tolerance_helper():
    assert within_tolerance(1.0, 1.0 + 1e-9, rel_tol=1e-6)
    assert not within_tolerance(1.0, 1.1, rel_tol=1e-6)
    assert not within_tolerance(None, 1.0, abs_tol=10)
    assert not within_tolerance(float("nan"), 1.0, abs_tol=10)
    assert not within_tolerance("x", 1.0, abs_tol=10)


# --- agreement with production --------------------------------------------------------------

SIMILAR = (
    "type: expect_column_pair_values_to_be_similar\n"
    "    kwargs: {column_A: answer, column_B: production_answer, threshold: 60}\n"
    "    meta: {name: c, description: Agrees with production}"
)


def test_similar_to_production_per_row(tmp_path):
    prod = "The customer wants a refund for order 123 because it arrived broken."
    frame = answers(
        ("reordered", "Because it arrived broken, the customer wants a refund for order 123.", None, prod),
        ("superset", "Summary: " + prod + " Agent agreed.", None, prod),
        ("different", "Shipping address was changed to Berlin.", None, prod),
        ("noprod", "anything", None, None),
    ).with_columns(
        model=pl.when(pl.col("request_id") == "noprod").then(pl.lit("production")).otherwise("model")
    )
    result = check(tmp_path, SIMILAR, frame)
    assert set(result) == {"reordered", "superset", "different"}  # production's own row: no check
    assert result["reordered"] == (True, None)
    assert result["superset"] == (True, None)
    passed, reason = result["different"]
    assert passed is False
    score = similarity("Shipping address was changed to Berlin.", prod)
    assert score < 60
    assert reason.startswith(
        f"token_set_ratio {score:.0f} < 60: 'Shipping address was changed to Berlin.' vs 'The customer"
    )


def test_exact_agreement_is_ratio_100_after_normalisation(tmp_path):
    entry = SIMILAR.replace("threshold: 60", "threshold: 100, scorer: ratio")
    result = check(
        tmp_path,
        entry,
        answers(
            ("same", "Billing.", None, "billing"),
            ("other", "technical", None, "billing"),
        ),
    )
    assert result["same"] == (True, None)
    assert result["other"][0] is False
    assert result["other"][1].startswith("ratio ") and "< 100: 'technical' vs 'billing'" in result["other"][1]


def test_similarity_helper_scores():
    assert similarity("Hello, World!", "hello world", scorer="ratio") == 100
    assert similarity("Hello, World!", "hello world", scorer="ratio", normalize=False) < 100
    assert similarity("a b c", "c b a", scorer="token_set_ratio") == 100
    assert similarity(None, "x") == 0


# --- refusals -------------------------------------------------------------------------------

REFUSALS = [
    "I can't help with that.",
    "I cannot assist with this request.",
    "I’m sorry, but I can’t share that.",  # typographic apostrophes
    "I'm sorry, but I cannot provide that information.",
    "I am afraid I can't do that.",
    "As an AI language model, I do not have opinions.",
    "As an AI, I cannot browse the web.",
    "I'm just an AI and can't make that call.",
    "I must respectfully decline this request.",
    "I'm unable to help with that request.",
    "I am not able to comply.",
    "I won't help with that.",
    "Sorry. I'm not allowed to discuss this.",
    "My guidelines don't allow me to write SQL that deletes data.",
    "I CAN'T HELP WITH THAT",
]
NOT_REFUSALS = [
    "billing",
    "SELECT name FROM users WHERE id = 1;",
    '{"invoice_number": "INV-1"}',
    "The customer said they can't log in, so the agent reset the password.",
    "Sorry for the delay: the order #1234567 ships today.",
    "6 * 7 = 42\nAnswer: 42",
    "The customer asked whether an AI was answering; the agent said no.",
    # a refusal quoted deep inside a long answer is not the model refusing
    "The customer called about order #1234567. " * 6 + "The agent said: I'm sorry, but I cannot refund it.",
]


@pytest.mark.parametrize("text", REFUSALS)
def test_refusals_are_detected(text):
    assert refusal(text) is not None


@pytest.mark.parametrize("text", NOT_REFUSALS)
def test_ordinary_answers_are_not_refusals(text):
    assert refusal(text) is None


def test_every_pattern_is_exercised():
    for pattern in REFUSAL_PATTERNS:
        assert any(re.search(pattern, t.replace("’", "'"), re.IGNORECASE) for t in REFUSALS), pattern


REFUSAL = (
    "type: expect_column_values_to_not_be_a_refusal\n"
    "    kwargs: {column: answer}\n"
    "    meta: {name: c, description: Not a refusal}"
)


@pytest.mark.parametrize(
    "entry, rows, expected",
    [
        pytest.param(
            REFUSAL,
            [
                ("ok", "billing", None, None),
                ("refused", "  I'm sorry, but I cannot help with that.", None, None),
                ("ai", "As an AI language model, I can't.", None, None),
                ("failed", None, None, None),
            ],
            {
                "ok": (True, None),
                "refused": (
                    False,
                    "refusal \"I'm sorry, but I cannot\": \"I'm sorry, but I cannot help with that.\"",
                ),
                "ai": (False, "refusal 'As an AI language model': \"As an AI language model, I can't.\""),
                # a failed call gets only `answered` = false
            },
            id="patterns",
        ),
        pytest.param(
            REFUSAL.replace("{column: answer}", "{column: answer, extra_patterns: ['(?i)^ich kann']}"),
            [("de", "Ich kann dabei nicht helfen.", None, None), ("ok", "billing", None, None)],
            {"de": (False, "refusal 'Ich kann': 'Ich kann dabei nicht helfen.'"), "ok": (True, None)},
            id="extra_patterns",
        ),
    ],
)
def test_not_a_refusal_per_row(tmp_path, entry, rows, expected):
    assert check(tmp_path, entry, answers(*rows)) == expected


# --- through GX directly, and the failure modes ---------------------------------------------

def test_registered_with_gx_and_per_row_unexpected_index():
    import great_expectations as gx

    from replaybench.checks.kinds import tolerance as ours

    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("p")
        .add_dataframe_asset("a")
        .add_batch_definition_whole_dataframe("w")
        .get_batch(
            batch_parameters={
                "dataframe": pd.DataFrame(
                    {"k": [0, 1, 2], "a": [1.0, 2.0, None], "b": [1.0, 1.0, 1.0]}
                )
            }
        )
    )
    result = batch.validate(
        ours.ExpectColumnPairValuesToBeWithinTolerance(column_A="a", column_B="b", abs_tol=0.5),
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["k"]},
    )
    assert result.success is False
    assert [item["k"] for item in result.result["unexpected_index_list"]] == [1, 2]


@pytest.mark.parametrize(
    "entry, message",
    [
        (SIMILAR.replace("threshold: 60", "threshold: 150"), "invalid kwargs"),
        (SIMILAR.replace("threshold: 60", "threshold: 60, scorer: jaro"), "invalid kwargs"),
        (TOLERANCE.replace("rel_tol: 1.0e-6", "rel_tol: -1"), "invalid kwargs"),
        (REFUSAL.replace("{column: answer}", "{column: answer, extra_patterns: ['(']}"), "not a valid regex"),
        (
            "type: expect_column_pair_values_to_be_wihtin_tolerance\n"
            "    kwargs: {column_A: a, column_B: b}\n    meta: {name: c}",
            "unknown expectation type 'expect_column_pair_values_to_be_wihtin_tolerance'",
        ),
    ],
)
def test_bad_entries_are_rejected_when_loading(tmp_path, entry, message):
    error = load_error(tmp_path, one_expectation(entry), file="t.yaml")
    assert re.search(message, error)
    assert "t.yaml: expectation #1" in error


def test_custom_check_that_errors_fails_with_a_reason(tmp_path):
    entry = SIMILAR.replace("column_B: production_answer", "column_B: production_ansewr")
    # The typo does not start with "production_answer" but with "production": applies to candidates.
    result = check(tmp_path, entry, answers(("x", "billing", None, "billing")))
    passed, reason = result["x"]
    assert passed is False
    assert reason.startswith("check errored:") and "production_ansewr" in reason


# --- GX's JSON-schema check, compiled once ---------------------------------------------------

JSON_SCHEMA = {"type": "object", "required": ["total"], "additionalProperties": False,
          "properties": {"total": {"type": "number"}, "currency": {"enum": ["EUR", "USD"]},
                         "date": {"type": "string", "format": "date"}}}


def test_json_schema_metric_is_ours_and_agrees_with_jsonschema(tmp_path):
    import json

    import jsonschema
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.registry import get_metric_provider

    from replaybench.checks.kinds import json_answers as ours

    provider, _ = get_metric_provider("column_values.match_json_schema.condition",
                                      PandasExecutionEngine())
    assert provider is ours.ColumnValuesMatchJsonSchemaCompiled
    values = ['{"total": 1}', '{"total": "1"}', '{"currency": "EUR"}', '{"total": 1, "x": 2}',
              '{"total": 2, "currency": "GBP"}', '{"total": 3, "date": "not a date"}', "[]"]
    entry = ("type: expect_column_values_to_match_json_schema\n"
             f"    kwargs: {{column: answer_json, json_schema: {json.dumps(JSON_SCHEMA)}}}\n"
             "    meta: {name: c, description: Matches the schema}")
    result = check(tmp_path, entry, answers(*[(str(i), v, None, None) for i, v in enumerate(values)]))
    expected = {}
    for i, value in enumerate(values):
        try:
            jsonschema.validate(json.loads(value), JSON_SCHEMA)  # what GX's own metric calls per row
            expected[str(i)] = True
        except jsonschema.ValidationError:
            expected[str(i)] = False
    assert {rid: passed for rid, (passed, _) in result.items()} == expected
    assert result["1"][1] == "does not match the JSON schema ('1' is not of type 'number')"


def test_an_invalid_json_schema_is_rejected_when_loading(tmp_path):
    entry = ("type: expect_column_values_to_match_json_schema\n"
             "    kwargs: {column: answer_json, json_schema: {type: 12}}\n    meta: {name: c}")
    error = load_error(tmp_path, one_expectation(entry), file="t.yaml")
    assert re.search(r"t\.yaml: expectation #1 \(c\): json_schema is not a valid", error)


# --- how they read in Data Docs ---------------------------------------------------------------

def test_custom_expectations_say_what_they_expect_in_data_docs():
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )
    from great_expectations.expectations.row_conditions import Column

    from replaybench.checks.kinds import refusal, similar, tolerance

    def sentence(cls, etype, **kwargs):
        config = ExpectationConfiguration(type=etype, kwargs=kwargs)
        (content,) = cls._prescriptive_renderer(configuration=config)
        template = content.string_template
        text = template["template"]
        for key, value in sorted(template["params"].items(), key=lambda kv: -len(kv[0])):
            text = text.replace(f"${key}", str(value))
        return text

    assert sentence(tolerance.ExpectColumnPairValuesToBeWithinTolerance,
                    "expect_column_pair_values_to_be_within_tolerance", column_A="answer_number",
                    column_B="reference_number", rel_tol=1e-6) == (
        "Values in answer_number and reference_number must be equal within a relative 1e-06 "
        "or an absolute None.")
    assert sentence(similar.ExpectColumnPairValuesToBeSimilar, "expect_column_pair_values_to_be_similar",
                    column_A="answer", column_B="production_answer", threshold=60,
                    scorer="ratio", row_condition=Column("model") != "production") == (
        "If model != production, then values in answer must be similar to production_answer: a "
        "ratio score of at least 60 out of 100.")
    assert sentence(refusal.ExpectColumnValuesToNotBeARefusal,
                    "expect_column_values_to_not_be_a_refusal", column="answer").startswith(
        "values must not open with a refusal")
