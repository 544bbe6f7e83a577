"""Expectation suites: one YAML file per prompt_version (`data/suites/*.yaml`), read and checked.

A suite file is Great Expectations' own `{type, kwargs, meta}` shape, plus a description and an
optional LLM-as-judge block:

```yaml
prompt_version: triage@v4
description: Support ticket triage; the answer is one lowercase label.
expectations:
  - type: expect_column_values_to_be_in_set
    kwargs: {column: answer, value_set: [billing, technical]}
    meta: {name: label_in_set, description: Answer is one of the allowed labels}
  - type: expect_column_value_lengths_to_be_between          # only where the condition holds
    kwargs: {column: answer, max_value: 20, row_condition: 'model != "production"',
             condition_parser: pandas}
    meta: {name: short_label}
judge: {rubric: "The label fits the ticket.", threshold: 4}
```

The file's shape is checked by pydantic; each expectation by GX itself (its type must be
registered, its kwargs valid) and by the rules of a per-row check: only row-level expectations
(column map, column pair map, multicolumn map) are accepted, since an aggregate one cannot say
which answer failed. `row_condition` narrows an expectation to the rows where it holds (rows
outside it get no row for that check); it is written as in GX 1.x: a pandas query string
(`condition_parser: pandas`, the default for a string), GX's own string grammar
(`condition_parser: great_expectations`, e.g. `col("model")!="production"`), or a Condition
mapping (`{type: comparison, column: {name: model}, operator: "!=", parameter: production}`). A
condition that does not parse, or names a column answers do not have, is an error here, at
load, naming the file and the expectation.

Two scopes are implied rather than written: a check that reads a reference column applies only
to rows with a reference, and one that reads production's answer only to candidates' rows whose
request production answered. `CheckSpec.scope` spells them out as GX conditions (joined with the
declared one), so the suites in the GX project say exactly which rows each expectation judged.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from replaybench.checks.derive import COLUMNS
from replaybench.checks.reasons import truncate
from replaybench.errors import ConfigError

REFERENCE_MATCH = "reference_match"
ANSWERED = "answered"
RESERVED_NAMES = {REFERENCE_MATCH, ANSWERED}
REFERENCE_SUITE = REFERENCE_MATCH
"""The GX suite that holds the automatic reference match, across prompt_versions."""
PRODUCTION_MODEL = "production"
"""The model name of production's logged answers among a night's answers (`sql/answer_macros.sql`
writes it). Not `settings.baseline`: checks compare with what production answered, whatever the
scores are measured against."""
CONDITION_PARSERS = ("pandas", "great_expectations")


class SuiteError(ConfigError, ValueError):
    """A suite file is malformed: the message names the file and the entry."""


class CheckSpec(BaseModel):
    """One expectation of a suite, as declared: GX's own `{type, kwargs, meta}` shape."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    """The check's name in the `checks` table (meta.name, default `type:column`)."""
    type: str
    """The GX expectation type, e.g. `expect_column_values_to_be_in_set`."""
    kwargs: dict[str, Any]
    """The expectation's arguments, passed to GX unchanged (`row_condition` apart)."""
    meta: dict[str, Any] = Field(default_factory=dict)
    """Free-form metadata; `name` and a one-line `description` for stakeholders."""
    condition: Any = None
    """The declared `row_condition`, as a GX Condition; None when the check applies to every row."""

    @property
    def columns(self) -> list[str]:
        """The columns the expectation reads."""
        kw = self.kwargs
        if "column" in kw:
            return [kw["column"]]
        if "column_A" in kw:
            return [kw["column_A"], kw["column_B"]]
        return list(kw.get("column_list", []))

    @property
    def needs_reference(self) -> bool:
        """True when the check reads a reference column: it applies only to rows with one."""
        return any(str(c).startswith("reference") for c in self.columns)

    @property
    def needs_production(self) -> bool:
        """True when the check reads production's answer: it applies only to candidates' rows."""
        return any(str(c).startswith("production") for c in self.columns)

    def scope(self):
        """The GX row condition of the rows this check judges among its prompt_version's: the
        implied reference and production scopes and the declared condition; None for all."""
        from great_expectations.expectations.row_conditions import (
            AndCondition,
            Column,
            ComparisonCondition,
            Operator,
            OrCondition,
            PassThroughCondition,
        )

        parts = []
        if self.needs_reference:
            parts.append(ComparisonCondition(column=Column("has_reference"),
                                             operator=Operator.EQUAL, parameter=True))
        if self.needs_production:
            parts += [Column("production_answer").is_not_null(),
                      Column("model") != PRODUCTION_MODEL]
        if self.condition is not None:
            parts.append(self.condition)
        if len(parts) <= 1:
            return parts[0] if parts else None
        if any(isinstance(p, PassThroughCondition | OrCondition) or _has_or(p) for p in parts):
            # GX's AND groups hold neither pandas strings nor ORs: one pandas query instead
            return PassThroughCondition(
                pass_through_filter=" and ".join(f"({query_text(p)})" for p in parts))
        flat = []
        for part in parts:
            flat += part.conditions if isinstance(part, AndCondition) else [part]
        return AndCondition(conditions=flat)


def _has_or(condition) -> bool:
    from great_expectations.expectations.row_conditions import AndCondition, OrCondition

    if isinstance(condition, OrCondition):
        return True
    return isinstance(condition, AndCondition) and any(_has_or(c) for c in condition.conditions)


def query_text(condition) -> str:
    """A GX condition as the pandas query GX's pandas engine runs for it."""
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.row_conditions import PassThroughCondition

    if isinstance(condition, PassThroughCondition):
        return condition.pass_through_filter
    return PandasExecutionEngine().condition_to_filter_clause(condition)


class JudgeSpec(BaseModel):
    """A suite's `judge:` block: score each answer with the LLM judge (`settings.judge`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rubric: str = Field(min_length=1)
    """What the judge grades against, e.g. "the final answer is correct and the steps are sound"."""
    threshold: float = Field(4, ge=1, le=5)
    """The least score (1-5) that passes."""
    name: str = Field("judge", min_length=1)
    """The check's name in the `checks` table."""
    include_production: bool = Field(False, strict=True)
    """Judge production's logged answers too (by default only the candidates')."""

    @field_validator("rubric")
    @classmethod
    def _rubric_text(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("missing `rubric` (what the judge grades against)")
        return v.strip()

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold_number(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError("`threshold` must be a number from 1 to 5")
        return v


class SuiteSpec(BaseModel):
    """An expectation suite for one prompt_version, loaded from `data/suites/*.yaml`."""

    model_config = ConfigDict(frozen=True)

    prompt_version: str
    checks: tuple[CheckSpec, ...]
    description: str = ""
    source: str = ""
    """The file it was read from, for error messages."""
    judge: JudgeSpec | None = None
    """The suite's `judge:` block, if any."""

    def reads(self, column: str) -> bool:
        """Whether a check names `column`, as an argument or in its row_condition."""
        return any(column in check.columns
                   or (check.condition is not None and column in query_text(check.condition))
                   for check in self.checks)


# --- the file's shape ------------------------------------------------------------------------


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kwargs", "meta", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return {} if v is None else v


class _SuiteFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt_version: str = Field(min_length=1)
    description: str = ""
    expectations: list[_Entry]
    judge: JudgeSpec | None = None

    @field_validator("description", mode="before")
    @classmethod
    def _description_text(cls, v: Any) -> Any:
        return "" if v is None else v


def load_suite(path: str | Path) -> SuiteSpec:
    """Read one suite file and check every entry; raise SuiteError naming the file and entry."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {truncate(str(exc), 200)}") from exc
    if not isinstance(doc, dict):
        raise SuiteError(f"{path}: expected a mapping with prompt_version and expectations")
    try:
        parsed = _SuiteFile.model_validate(doc)
    except ValidationError as exc:
        raise SuiteError(_describe(path, doc, exc)) from None
    if parsed.prompt_version == REFERENCE_SUITE:
        raise SuiteError(f"{path}: prompt_version {REFERENCE_SUITE!r} is reserved (the automatic "
                         "reference match's own GX suite)")
    checks: list[CheckSpec] = []
    for i, entry in enumerate(parsed.expectations):
        label = entry.meta.get("name")
        where = f"{path}: expectation #{i + 1}" + (f" ({label})" if isinstance(label, str) else "")
        check = _check(entry, where)
        if check.name in RESERVED_NAMES:
            raise SuiteError(f"{where}: the name {check.name!r} is reserved")
        if any(c.name == check.name for c in checks):
            raise SuiteError(f"{where}: duplicate check name {check.name!r}")
        checks.append(check)
    judge = parsed.judge
    if judge is not None and (judge.name in RESERVED_NAMES or any(c.name == judge.name
                                                                  for c in checks)):
        raise SuiteError(f"{path}: judge: the name {judge.name!r} is reserved or already a check")
    return SuiteSpec(prompt_version=parsed.prompt_version, checks=tuple(checks),
                     description=parsed.description, source=str(path), judge=judge)


def load_suites(directory: str | Path) -> dict[str, SuiteSpec]:
    """Read every `*.yaml` suite in a directory, keyed by prompt_version."""
    suites: dict[str, SuiteSpec] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        suite = load_suite(path)
        if suite.prompt_version in suites:
            other = suites[suite.prompt_version].source
            raise SuiteError(f"{path}: prompt_version {suite.prompt_version!r} also in {other}")
        suites[suite.prompt_version] = suite
    return suites


def _describe(path: Path, doc: dict, exc: ValidationError) -> str:
    """The first problem pydantic found, said the way a suite's author reads the file."""
    # an unknown key first: a misspelt key is also why the right one is "missing"
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    error = errors[0]
    loc, kind = list(error["loc"]), error["type"]
    where = str(path)
    if loc[:1] == ["expectations"] and len(loc) > 1 and isinstance(loc[1], int):
        entry = doc["expectations"][loc[1]]
        meta = entry.get("meta") if isinstance(entry, dict) else None
        label = meta.get("name") if isinstance(meta, dict) else None
        where += f": expectation #{loc[1] + 1}" + (f" ({label})" if isinstance(label, str) else "")
        loc = loc[2:]
        if not loc and kind == "model_type":
            return f"{where}: an expectation must be a mapping with type, kwargs, meta"
        allowed = "type, kwargs, meta"
    elif loc[:1] == ["judge"]:
        where += ": judge"
        loc = loc[1:]
        if not loc and kind == "model_type":
            return f"{where}: must be a mapping with rubric, threshold, name"
        allowed = "rubric, threshold, name, include_production"
    else:
        allowed = "prompt_version, description, expectations, judge"
    if kind == "extra_forbidden":
        extra = [e for e in errors if e["type"] == "extra_forbidden" and e["loc"][:-1] == error["loc"][:-1]]
        errors = [e for e in errors if e not in extra[1:]]
        text = f"unknown key(s) {sorted(str(e['loc'][-1]) for e in extra)}; allowed: {allowed}"
    elif kind == "missing":
        text = f"missing `{loc[-1]}`"
    else:
        message = error["msg"].removeprefix("Value error, ")
        field = ".".join(str(p) for p in loc)
        text = message if not field or f"`{field}`" in message else f"`{field}`: {message}"
    more = len(errors) - 1
    return f"{where}: {text}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


# --- one expectation, checked by GX ----------------------------------------------------------


def _check(entry: _Entry, where: str) -> CheckSpec:
    from replaybench.checks.kinds import kind_of

    cls = expectation_class(entry.type)
    if cls is None:
        raise SuiteError(f"{where}: unknown expectation type {entry.type!r}")
    if not _is_row_level(cls):
        raise SuiteError(
            f"{where}: {entry.type} is not a row-level expectation (column map, column pair map "
            "or multicolumn map), so it cannot say which answer failed"
        )
    kwargs = dict(entry.kwargs)
    raw_condition = kwargs.pop("row_condition", None)
    parser = kwargs.pop("condition_parser", None)
    column = kwargs.get("column") or kwargs.get("column_A") or "?"
    name = entry.meta.get("name") or f"{entry.type}:{column}"
    if not isinstance(name, str):
        raise SuiteError(f"{where}: meta.name must be a string")
    check = CheckSpec(name=name, type=entry.type, kwargs=kwargs, meta=entry.meta)
    try:
        to_gx(check)  # GX validates the kwargs (pydantic): missing column, bad value_set, ...
    except Exception as exc:  # noqa: BLE001 - any GX complaint is a malformed entry
        # pydantic puts the field and the problem on the lines after the first
        detail = truncate(" ".join(str(exc).split()), 300)
        raise SuiteError(f"{where}: invalid kwargs for {entry.type}: {detail}") from exc
    try:
        kind_of(entry.type).vet(check)
    except ValueError as exc:
        raise SuiteError(f"{where}: {exc}") from None
    if raw_condition is None:
        if parser is not None:
            raise SuiteError(f"{where}: condition_parser without a row_condition")
        return check
    condition = parse_condition(cls, kwargs, raw_condition, parser, where)
    return check.model_copy(update={"condition": condition})


def parse_condition(cls: type, kwargs: dict, raw: Any, parser: Any, where: str):
    """A suite's `row_condition` as a GX Condition, checked against the answers' columns."""
    from great_expectations.expectations.row_conditions import (
        PassThroughCondition,
        deserialize_row_condition,
        validate_row_condition,
    )

    if parser is not None and parser not in CONDITION_PARSERS:
        raise SuiteError(f"{where}: condition_parser must be one of {', '.join(CONDITION_PARSERS)}"
                         f", not {parser!r}")
    try:
        if isinstance(raw, str) and not raw.strip():
            raise ValueError("it is empty")
        if isinstance(raw, str) and parser == "great_expectations":
            with warnings.catch_warnings():  # GX's string grammar is deprecated, and parsed
                warnings.simplefilter("ignore", DeprecationWarning)
                condition = cls(**kwargs, row_condition=raw,
                                condition_parser="great_expectations").row_condition
        elif isinstance(raw, str):
            condition = PassThroughCondition(pass_through_filter=raw)
        elif isinstance(raw, dict):
            if parser is not None:
                raise ValueError("a Condition mapping takes no condition_parser")
            condition = deserialize_row_condition(raw)
        else:
            raise ValueError("write it as a pandas query string or a GX Condition mapping")
        condition = validate_row_condition(condition)
        _try_on_answers(query_text(condition))
    except Exception as exc:  # noqa: BLE001 - every way a condition fails is the author's to fix
        shown = raw if isinstance(raw, str) else truncate(str(raw), 80)
        detail = " ".join(str(exc).split()) or type(exc).__name__  # pydantic: the field below
        raise SuiteError(f"{where}: row_condition {shown!r} is not valid: "
                         f"{truncate(detail, 400)}") from None
    return condition


def _try_on_answers(query: str) -> None:
    """Run a pandas query over no answers with every column a suite can name: what does not
    parse, or names a column answers do not have, fails here and not in the night."""
    import pandas as pd
    import polars as pl

    dtypes = {pl.String: object, pl.Float64: "float64", pl.Int64: "float64",
              pl.Boolean: bool}
    empty = pd.DataFrame({c: pd.Series(dtype=dtypes[t]) for c, t in COLUMNS.items()})
    try:
        empty.query(query)
    except pd.errors.UndefinedVariableError as exc:
        raise ValueError(f"{exc} (answers have: {', '.join(COLUMNS)})") from None


def expectation_class(etype: str) -> type | None:
    """The registered GX expectation class for a type name, None if there is none."""
    import great_expectations  # noqa: F401 - registers the core expectations
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    from replaybench.checks.kinds import load_kinds

    load_kinds()  # registers ours

    try:
        return get_expectation_impl(etype)
    except ExpectationNotFoundError:
        return None


def _is_row_level(cls: type) -> bool:
    """True for expectations that produce per-row results (column map, pair map, multicolumn)."""
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    return issubclass(
        cls, ColumnMapExpectation | ColumnPairMapExpectation | MulticolumnMapExpectation
    )


def gx_configuration(check: CheckSpec, expectation_id: str | None = None):
    """The GX ExpectationConfiguration of a check, its row condition the rows it judges
    (`CheckSpec.scope`)."""
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    kwargs = dict(check.kwargs)
    scope = check.scope()
    if scope is not None:
        kwargs["row_condition"] = scope
    meta = {**check.meta, "name": check.name}
    return ExpectationConfiguration(type=check.type, kwargs=kwargs, meta=meta, id=expectation_id)


def to_gx(check: CheckSpec):
    """The GX 1.x Expectation object for a check (see `gx_configuration`)."""
    return gx_configuration(check).to_domain_obj()

