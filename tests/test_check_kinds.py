"""replaybench/checks/kinds: the registry of check kinds and the reason a failing row gets."""

from __future__ import annotations

from replaybench.checks.kinds import CheckKind, kind_of, load_kinds, reason
from replaybench.checks.suites import CheckSpec, _is_row_level, expectation_class


def test_every_kind_names_a_row_level_gx_expectation():
    kinds = load_kinds()
    assert {"expect_column_values_to_be_in_set", "expect_column_pair_values_to_be_similar",
            "expect_column_values_to_not_be_a_refusal"} <= set(kinds)
    for etype in kinds:
        cls = expectation_class(etype)
        assert cls is not None and _is_row_level(cls), etype


def test_a_kind_is_registered_where_it_is_defined():
    class Shouting(CheckKind):
        types = ("expect_test_only_shouting",)

        def explain(self, check, values):
            return f"too loud: {values[0]}"

    check = CheckSpec(name="c", type="expect_test_only_shouting", kwargs={"column": "answer"})
    assert isinstance(kind_of("expect_test_only_shouting"), Shouting)
    assert reason(check, ["HEY"]) == "too loud: HEY"


def test_a_type_without_a_kind_reads_generically():
    check = CheckSpec(name="c", type="expect_column_values_to_be_unique", kwargs={"column": "answer"})
    assert reason(check, ["billing"]) == "failed expect_column_values_to_be_unique: answer='billing'"


def test_a_pair_with_a_missing_value_says_which():
    check = CheckSpec(name="c", type="expect_column_pair_values_to_be_equal",
                      kwargs={"column_A": "answer_norm", "column_B": "reference_norm"})
    assert reason(check, [None, "x"]) == "no value in answer_norm (nothing to compare)"
    assert reason(check, ["y", "x"]) == "'y' != 'x'"
