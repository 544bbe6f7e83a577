"""replaybench/checks (suites, run): real Great Expectations suites over small hand-built answer
frames, in memory; the file project and Data Docs are tests/test_gx_project.py's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest

from replaybench.checks.derive import derive_columns
from replaybench.checks.run import run_checks
from replaybench.checks.suites import load_suites

from .conftest import ANSWER_SCHEMA
from .suite_files import load_error

SUITES_DIR = Path(__file__).resolve().parents[1] / "data" / "suites"
COLUMNS = ["request_id", "model", "prompt_version", "output_text", "reference", "output_tokens"]

INVOICE = {
    "invoice_number": "INV-1",
    "vendor": "ACME",
    "date": "2026-11-20",
    "currency": "EUR",
    "total": 12.5,
}
SUMMARY = (
    "The customer called about order #1234567 which arrived damaged. We apologised, explained the "
    "return process, and agreed to send a replacement by express shipping at no cost. The customer "
    "asked for a confirmation email, which we sent during the call, and was satisfied with the "
    "resolution offered today."
)


def frame(*rows: tuple) -> pl.DataFrame:
    """Answers frame from (request_id, prompt_version, output_text, reference[, output_tokens])."""
    full = [(r[0], "glm-5.2", r[1], r[2], r[3], r[4] if len(r) > 4 else 10) for r in rows]
    schema = dict(zip(COLUMNS, [pl.String] * 5 + [pl.Int64], strict=True))
    return pl.DataFrame(full, schema=schema, orient="row").with_columns(latency_ms=pl.lit(120.0))


def outcomes(checks: pl.DataFrame) -> dict[str, dict[str, tuple[bool, str | None]]]:
    """{request_id: {check: (passed, reason)}}"""
    out: dict[str, dict[str, tuple[bool, str | None]]] = {}
    for row in checks.iter_rows(named=True):
        assert row["check"] not in out.get(row["request_id"], {}), "one row per check"
        out.setdefault(row["request_id"], {})[row["check"]] = (row["passed"], row["reason"])
    return out


def checked(suites, *rows: tuple) -> dict[str, dict[str, tuple[bool, str | None]]]:
    """The outcomes of the suites' checks on a `frame` of these rows."""
    return outcomes(run_checks(frame(*rows), suites))


def passes(result: dict[str, tuple[bool, str | None]]) -> dict[str, bool]:
    return {check: passed for check, (passed, _) in result.items()}


@pytest.fixture(scope="module")
def suites():
    return load_suites(SUITES_DIR)


def test_suites_load_with_named_described_checks(suites):
    names = {pv: [c.name for c in s.checks] for pv, s in suites.items()}
    assert names == {
        "call-summary@v1": [
            "not_empty",
            "length_40_120_words",
            "mentions_order_number",
            "no_refusal",
            "agrees_with_production",
            "within_latency_budget",
        ],
        "invoice-extract@v2": ["json_parseable", "matches_schema", "no_refusal"],
        "text-to-sql@v2": ["starts_with_select", "read_only", "single_statement", "no_refusal"],
        "triage@v3": ["not_empty", "label_in_set", "no_refusal", "within_latency_budget"],
        "triage@v4": ["not_empty", "label_in_set", "no_refusal", "within_latency_budget"],
        "tutor-math@v1": [
            "final_answer_line",
            "answer_correct",
            "within_token_budget",
            "no_refusal",
        ],
    }
    for suite in suites.values():
        for check in suite.checks:
            assert check.meta.get("description"), f"{suite.prompt_version}: {check.name}"


def test_triage_labels(suites):
    result = checked(
        suites,
        ("ok", "triage@v4", "billing\n", "billing"),
        ("prefixed", "triage@v4", "Category: billing", "billing"),
        ("capital", "triage@v3", "Billing", None),
        ("empty", "triage@v4", "  ", None),
    )
    every = dict.fromkeys(
        ["answered", "not_empty", "label_in_set", "no_refusal", "within_latency_budget"], True
    )
    assert passes(result["ok"]) == {**every, "reference_match": True}
    assert passes(result["prefixed"]) == {**every, "label_in_set": False, "reference_match": False}
    assert result["prefixed"]["label_in_set"][1] == (
        "not in {billing, technical, account, ...}: 'Category: billing'"
    )
    assert passes(result["capital"]) == {**every, "label_in_set": False}
    assert passes(result["empty"]) == {**every, "not_empty": False, "label_in_set": False}


def test_invoice_json(suites):
    missing_total = {k: v for k, v in INVOICE.items() if k != "total"}
    result = checked(
        suites,
        ("ok", "invoice-extract@v2", json.dumps(INVOICE), None),
        ("fenced", "invoice-extract@v2", f"```json\n{json.dumps(INVOICE)}\n```", None),
        ("missing", "invoice-extract@v2", json.dumps(missing_total), None),
        ("extra", "invoice-extract@v2", json.dumps({**INVOICE, "note": "x"}), None),
        ("baddate", "invoice-extract@v2", json.dumps({**INVOICE, "date": "20/11"}), None),
    )
    every = dict.fromkeys(["answered", "json_parseable", "matches_schema", "no_refusal"], True)
    assert passes(result["ok"]) == every
    assert passes(result["fenced"]) == {**every, "json_parseable": False, "matches_schema": False}
    assert result["fenced"]["json_parseable"][1].startswith("not valid JSON: '```json")
    assert "not valid JSON" in result["fenced"]["matches_schema"][1]
    for rid in ("missing", "extra", "baddate"):
        assert passes(result[rid]) == {**every, "matches_schema": False}, rid
    assert "'total' is a required property" in result["missing"]["matches_schema"][1]


def test_tutor_math(suites):
    result = checked(
        suites,
        ("right", "tutor-math@v1", "6 * 7 = 42\nAnswer: 42", "42"),
        ("wrong", "tutor-math@v1", "6 * 7 = 41\nAnswer: 41", "42"),
        ("nonumber", "tutor-math@v1", "I am not sure how to solve this.", "42"),
        ("long", "tutor-math@v1", "Answer: 42", "42", 9000),
        ("noref", "tutor-math@v1", "Answer: 7", None),
    )
    every = dict.fromkeys(["answered", "final_answer_line", "within_token_budget", "no_refusal"], True)
    assert passes(result["right"]) == {**every, "answer_correct": True, "reference_match": True}
    assert passes(result["wrong"]) == {**every, "answer_correct": False, "reference_match": False}
    assert result["wrong"]["answer_correct"][1] == "41 != 42 (beyond rel_tol 1e-06, abs_tol 1e-09)"
    assert passes(result["nonumber"]) == {
        **every, "final_answer_line": False, "answer_correct": False, "reference_match": False
    }
    assert result["nonumber"]["answer_correct"][1].startswith("no value in answer_number")
    assert result["long"]["within_token_budget"] == (False, "not ≤ 6000: 9000")
    # Checks that read the reference apply only where there is one.
    assert passes(result["noref"]) == every


def test_text_to_sql(suites):
    result = checked(
        suites,
        ("ok", "text-to-sql@v2", "SELECT name FROM users WHERE id = 1;", None),
        ("cte", "text-to-sql@v2", "with x as (select 1) select * from x", None),
        ("prose", "text-to-sql@v2", "Here is the query: SELECT 1", None),
        ("delete", "text-to-sql@v2", "DELETE FROM users", None),
        ("two", "text-to-sql@v2", "SELECT 1; SELECT 2", None),
        ("updated_at", "text-to-sql@v2", "SELECT updated_at FROM t", None),
    )
    every = {"answered", "starts_with_select", "read_only", "single_statement", "no_refusal"}
    for rid in ("ok", "cte", "updated_at"):
        assert passes(result[rid]) == dict.fromkeys(every, True), rid
    assert passes(result["prose"]) == {**dict.fromkeys(every, True), "starts_with_select": False}
    assert passes(result["delete"]) == {
        **dict.fromkeys(every, True),
        "starts_with_select": False,
        "read_only": False,
    }
    assert "at 'DELETE'" in result["delete"]["read_only"][1]
    assert passes(result["two"]) == {**dict.fromkeys(every, True), "single_statement": False}


def test_call_summary(suites):
    result = checked(
        suites,
        ("ok", "call-summary@v1", SUMMARY, None),
        ("short", "call-summary@v1", "Order #1234567 was damaged.", None),
        ("noorder", "call-summary@v1", SUMMARY.replace("#1234567", "one"), None),
    )
    every = {
        "answered",
        "not_empty",
        "length_40_120_words",
        "mentions_order_number",
        "no_refusal",
        "within_latency_budget",
    }
    # No production answer in the frame: agrees_with_production does not apply.
    assert passes(result["ok"]) == dict.fromkeys(every, True)
    assert passes(result["short"]) == {**dict.fromkeys(every, True), "length_40_120_words": False}
    assert result["short"]["length_40_120_words"][1] == "not between 40 and 120: 4"
    assert passes(result["noorder"]) == {
        **dict.fromkeys(every, True),
        "mentions_order_number": False,
    }


def test_call_summary_agreement_and_refusal(suites):
    """Candidates are compared with production's answer to the same request; production is not."""
    reworded = SUMMARY.replace("We apologised, explained", "The agent apologised and explained")
    refusal = "I'm sorry, but I cannot summarise this call. " + SUMMARY
    rows = [
        ("prod", "production", SUMMARY, None),
        ("same", "glm-5.2", reworded, SUMMARY),
        ("other", "glm-5.2", "Order #1234567: " + " ".join(["unrelated words here"] * 15), SUMMARY),
        ("refused", "glm-5.2", refusal, SUMMARY),
        ("prod_failed", "glm-5.2", SUMMARY, None),
    ]
    answers = pl.DataFrame(
        [(r, m, "call-summary@v1", out, None, 10, 120.0, prod) for r, m, out, prod in rows],
        schema=ANSWER_SCHEMA,
        orient="row",
    )
    result = outcomes(run_checks(answers, suites))
    assert "agrees_with_production" not in result["prod"]
    assert "agrees_with_production" not in result["prod_failed"]
    assert result["same"]["agrees_with_production"] == (True, None)
    passed, reason = result["other"]["agrees_with_production"]
    assert passed is False and reason.startswith("token_set_ratio ") and "< 60:" in reason
    assert result["refused"]["no_refusal"] == (
        False,
        "refusal \"I'm sorry, but I cannot\": \"I'm sorry, but I cannot summarise this call. The customer …",
    )
    assert result["same"]["no_refusal"] == (True, None)


def test_latency_budget(suites):
    slow = frame(("slow", "triage@v4", "billing", None)).with_columns(latency_ms=pl.lit(7500.0))
    assert outcomes(run_checks(slow, suites))["slow"]["within_latency_budget"] == (
        False,
        "not ≤ 5000: 7500",
    )


def test_reference_match_normalisation(suites):
    reordered = json.dumps(dict(reversed(list(INVOICE.items()))), indent=2)
    result = checked(
        suites,
        ("json", "invoice-extract@v2", json.dumps(INVOICE), reordered),
        (
            "json_fenced",
            "invoice-extract@v2",
            f"```\n{json.dumps(INVOICE)}\n```",
            reordered,
        ),
        ("number", "no-suite@v1", "Answer: 42.0", "42"),
        ("text", "no-suite@v1", "  The  Eiffel Tower!", "the eiffel tower"),
        ("text_wrong", "no-suite@v1", "Big Ben", "the eiffel tower"),
        ("noref", "no-suite@v1", "anything", None),
        ("blankref", "no-suite@v1", "anything", "  "),
    )
    assert result["json"]["reference_match"] == (True, None)
    assert result["json_fenced"]["reference_match"][0] is False
    assert result["number"] == {"answered": (True, None), "reference_match": (True, None)}
    assert result["text"] == {"answered": (True, None), "reference_match": (True, None)}
    assert result["text_wrong"]["reference_match"] == (False, "'big ben' != 'the eiffel tower'")
    assert result["noref"] == {"answered": (True, None)}
    assert result["blankref"] == {"answered": (True, None)}


def test_failed_call_gets_one_answered_row(suites):
    checks = run_checks(frame(("failed", "triage@v4", None, "billing")), suites)
    assert checks.to_dicts() == [
        {
            "request_id": "failed",
            "model": "glm-5.2",
            "prompt_version": "triage@v4",
            "check": "answered",
            "passed": False,
            "reason": "no answer (call failed)",
        }
    ]


def test_output_frame_shape_and_order(suites):
    checks = run_checks(
        frame(("a", "triage@v4", "billing", None), ("b", "triage@v4", None, None)), suites
    )
    assert checks.schema == pl.Schema(
        {
            "request_id": pl.String,
            "model": pl.String,
            "prompt_version": pl.String,
            "check": pl.String,
            "passed": pl.Boolean,
            "reason": pl.String,
        }
    )
    assert checks.select("request_id", "check").rows() == [
        ("a", "answered"),
        ("a", "not_empty"),
        ("a", "label_in_set"),
        ("a", "no_refusal"),
        ("a", "within_latency_budget"),
        ("b", "answered"),
    ]


def test_erroring_expectation_fails_every_row(tmp_path):
    (tmp_path / "broken.yaml").write_text(
        "prompt_version: broken@v1\n"
        "expectations:\n"
        "  - type: expect_column_values_to_be_in_set\n"
        "    kwargs: {column: no_such_column, value_set: [a]}\n"
        "    meta: {name: typo_column, description: A check on a column that does not exist}\n"
        "  - type: expect_column_values_to_be_in_set\n"
        "    kwargs: {column: answer, value_set: [a]}\n"
        "    meta: {name: fine, description: Answer is a}\n"
    )
    result = outcomes(
        run_checks(
            frame(("x", "broken@v1", "a", None), ("y", "broken@v1", "b", None)),
            load_suites(tmp_path),
        )
    )
    for rid in ("x", "y"):
        passed, reason = result[rid]["typo_column"]
        assert passed is False
        assert reason.startswith("check errored:") and "no_such_column" in reason
    assert result["x"]["fine"] == (True, None)
    assert result["y"]["fine"][0] is False


def test_unknown_expectation_type_is_rejected(tmp_path):
    message = load_error(tmp_path, file="triage@v9.yaml", text=(
        "prompt_version: triage@v9\n"
        "expectations:\n"
        "  - type: expect_column_values_to_be_in_set\n"
        "    kwargs: {column: answer, value_set: [a]}\n"
        "  - type: expect_column_values_to_be_awesome\n"
        "    kwargs: {column: answer}\n"
        "    meta: {name: awesome}\n"
    ))
    assert re.search(r"triage@v9\.yaml: expectation #2 \(awesome\).*"
                     r"unknown expectation type 'expect_column_values_to_be_awesome'", message)


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            "- type: expect_column_mean_to_be_between\n    kwargs: {column: answer_words}",
            "not a row-level expectation",
        ),
        (
            "- type: expect_column_values_to_be_in_set\n    kwargs: {value_set: [a]}",
            "invalid kwargs",
        ),
        ("- type: expect_column_values_to_be_in_set\n    kwarg: {column: answer}", "unknown key"),
        ("- just a string", "must be a mapping"),
        (
            "- type: expect_column_values_to_not_be_null\n    kwargs: {column: answer}\n"
            "    meta: {name: answered}",
            "reserved",
        ),
    ],
)
def test_malformed_entries_are_rejected(tmp_path, entry, message):
    error = load_error(tmp_path, f"prompt_version: bad@v1\nexpectations:\n  {entry}\n")
    assert re.search(message, error)
    assert "bad.yaml: expectation #1" in error


def test_derive_columns():
    derived = derive_columns(
        frame(
            ("a", "p", "  Billing.  ", "billing"),
            ("b", "p", "Step 1: 3 + 4 = 7\nAnswer: 1,234", "1234"),
            ("c", "p", "it is 12 or maybe 13", None),
            ("d", "p", None, '{"b": 1, "a": [1, 2]}'),
            ("e", "p", '{"a":[1,2],"b":1}', '{"b": 1, "a": [1, 2]}'),
        )
    ).rows_by_key("request_id", named=True, unique=True)
    assert derived["a"]["answer"] == "Billing."
    assert derived["a"]["answer_label"] == "billing"
    assert derived["a"]["answer_norm"] == derived["a"]["reference_norm"] == "billing"
    assert derived["b"]["answer_number"] == 1234.0
    assert derived["b"]["reference_number"] == 1234.0
    assert derived["b"]["answer_norm"] == derived["b"]["reference_norm"] == "1234"
    assert derived["c"]["answer_number"] == 13.0
    assert derived["c"]["answer_words"] == 6
    assert derived["d"]["answer"] is None and derived["d"]["answer_norm"] is None
    assert derived["d"]["reference_norm"] == '{"a":[1,2],"b":1}'
    assert derived["e"]["answer_norm"] == derived["e"]["reference_norm"]


# --- row_condition ---------------------------------------------------------------------------

SHORT = (
    "prompt_version: c@v1\n"
    "expectations:\n"
    "  - type: expect_column_value_lengths_to_be_between\n"
    "    kwargs: {{column: answer, max_value: 10, row_condition: {condition}}}\n"
    "    meta: {{name: short, description: Candidates answer in at most 10 characters}}\n"
)


def conditioned(*rows: tuple) -> pl.DataFrame:
    """Answers of c@v1 from (request_id, model, output_text)."""
    return pl.DataFrame(
        [(r, m, "c@v1", out, None, 10, 120.0, None) for r, m, out in rows],
        schema=ANSWER_SCHEMA, orient="row")


@pytest.mark.parametrize(
    "condition",
    [
        "'model != \"production\"', condition_parser: pandas",
        "'model != \"production\"'",  # a string without a parser is a pandas query, as in GX 1.x
        "'col(\"model\")!=\"production\"', condition_parser: great_expectations",
        "{type: comparison, column: {name: model}, operator: '!=', parameter: production}",
    ],
)
def test_row_condition_narrows_a_check_to_the_rows_where_it_holds(tmp_path, condition):
    (tmp_path / "c.yaml").write_text(SHORT.format(condition=condition))
    result = outcomes(run_checks(
        conditioned(("p", "production", "a long production answer"),
                    ("long", "glm-5.2", "a long candidate answer"),
                    ("ok", "glm-5.2", "billing")),
        load_suites(tmp_path)))
    assert "short" not in result["p"]  # outside the condition: no row for the check
    assert result["long"]["short"] == (False, "length 23 not ≤ 10: 'a long candidate answer'")
    assert result["ok"]["short"] == (True, None)


def test_row_condition_joins_the_implied_scopes(tmp_path):
    """A condition on a check that reads the reference: rows with a reference where it holds."""
    (tmp_path / "c.yaml").write_text(
        "prompt_version: c@v1\n"
        "expectations:\n"
        "  - type: expect_column_pair_values_to_be_equal\n"
        "    kwargs: {column_A: answer_label, column_B: reference_norm,\n"
        "             row_condition: 'answer_words < 3 or model == \"x\"'}\n"
        "    meta: {name: label, description: Short answers match the reference}\n")
    frame = conditioned(("short", "glm-5.2", "Billing"), ("wrong", "glm-5.2", "technical"),
                        ("long", "glm-5.2", "it is billing"), ("noref", "glm-5.2", "billing"))
    frame = frame.with_columns(reference=pl.when(pl.col("request_id") == "noref").then(None)
                               .otherwise(pl.lit("billing")))
    suites = load_suites(tmp_path)
    result = outcomes(run_checks(frame, suites))
    assert result["short"]["label"] == (True, None)
    assert result["wrong"]["label"] == (False, "'technical' != 'billing'")
    assert "label" not in result["long"] and "label" not in result["noref"]
    assert suites["c@v1"].checks[0].scope().pass_through_filter == (
        '(has_reference == True) and (answer_words < 3 or model == "x")')


@pytest.mark.parametrize(
    "condition, message",
    [
        ("'modle != \"production\"'", r"name 'modle' is not defined \(answers have: request_id"),
        ("'model !!= 1'", "row_condition 'model !!= 1' is not valid"),
        ("'  '", "is not valid: it is empty"),
        ("'model == 1', condition_parser: sql", "condition_parser must be one of pandas, "),
        ("'col(\"model\") ~ 3', condition_parser: great_expectations", "is not valid"),
        ("{type: comparison, column: {name: model}, operator: '~', parameter: p}", "is not valid"),
        ("[model]", "write it as a pandas query string or a GX Condition mapping"),
    ],
)
def test_a_bad_row_condition_is_an_error_at_load_naming_suite_and_expectation(
        tmp_path, condition, message):
    error = load_error(tmp_path, SHORT.format(condition=condition))
    assert re.search(message, error)
    assert "bad.yaml: expectation #1 (short):" in error
