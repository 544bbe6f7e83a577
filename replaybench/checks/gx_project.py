"""The Great Expectations project the answers are validated in: a file Data Context, its suites
generated from the YAML suites, a Checkpoint per run whose action updates Data Docs.

```
gx/                                   beside the config file (`project_dir`)
  great_expectations.yml              written once from PROJECT_YML: stores, the `replaybench`
                                      pandas data source, the Data Docs site
  config_variables.yml                `replaybench_data_docs`, the site's folder for a person
                                      opening the project in GX; a run passes its own
  expectations/<prompt_version>.json  one suite per data/suites/<prompt_version>.yaml (generated)
  expectations/reference_match.json   the automatic reference match, across prompt_versions
  validation_definitions/<name>.json   each suite on the `answers` asset (generated)
  uncommitted/checkpoints/<run_id>.json   the Checkpoint of each run
  uncommitted/validations/...         validation results, redacted: what Data Docs are built from
<reports_dir>/data-docs/              the Data Docs site (`docs.docs_dir`)
```

The YAML suites stay the source (they carry comments, the judge block, and the evidence keys
hash them); `sync` regenerates the GX suites and validation definitions from them on every run,
with ids derived from their names, and writes a file only when its content changed: a diff of
`gx/` shows real changes only. Suites and definitions it did not generate are left alone.

One run is one Checkpoint, stored under the run's id: a validation definition per
prompt_version with answers and a suite, plus `reference_match` when an answer has a reference,
and the action that updates Data Docs. Each definition validates its own rows (its
prompt_version's answers; every answer with a reference for `reference_match`): GX's
`Checkpoint.run` hands every definition the same batch parameters, which for a dataframe asset
means one frame, so a night (`GxProject.night`, `NightValidation`) does what it does with a
frame for each: GX's Validator runs each definition's suite on its frame, as the definition's
`run` does, then each result is stored with the Checkpoint's id, result format and run id, and
the Checkpoint's actions run on them. A night may come in chunks (a few tens of thousands of
answers at a time, so that memory does not follow the night's size): each chunk's frames are
validated as they come, and a suite validated on several is stored as one result, its counts
added up and formatted by GX's own `_format_map_output` (the same result one frame gives:
tests/test_validate_batches.py). One frame and a prompt_version row condition on every
expectation was the alternative to a frame per definition: it made GX's validation 1.6-2×
slower (a pandas query per metric; see bench/gx.py). A person can do what a run does:

```python
import great_expectations as gx
context = gx.get_context(mode="file", context_root_dir="gx")
context.suites.get("triage@v4")
triage = answers[answers.prompt_version == "triage@v4"]
context.validation_definitions.get("triage@v4").run(batch_parameters={"dataframe": triage})
```

where `answers` has the columns of `replaybench.checks.derive.COLUMNS` (`derive_columns` adds
the derived ones). Runs of one project take turns (a lock file in `uncommitted/`): GX rewrites
the site's index and static files on every build.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import glob
import json
import logging
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from replaybench.checks.rows import ROW_KEY
from replaybench.checks.suites import (
    REFERENCE_MATCH,
    REFERENCE_SUITE,
    CheckSpec,
    SuiteSpec,
    gx_configuration,
)

DATASOURCE = "replaybench"
ASSET = "answers"
BATCH_DEFINITION = "night"
SITE = "replaybench"
DOCS_VARIABLE = "replaybench_data_docs"
VALIDATION_RESULTS_LIMIT = 100
"""How many of the latest validations the Data Docs index lists (it reads each one it lists)."""
RESULT_FORMAT = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": [ROW_KEY],
    "return_unexpected_index_query": False,
}

REFERENCE_MATCH_CHECK = CheckSpec(
    name=REFERENCE_MATCH,
    type="expect_column_pair_values_to_be_equal",
    kwargs={"column_A": "answer_norm", "column_B": "reference_norm"},
    meta={"description": "Answer matches the reference answer (normalised)"},
)

_NAMESPACE = uuid.UUID("4f0c5d7e-3b1a-5e29-9a57-8d2a1f0b6c31")


def _id(*parts: str) -> str:
    """A stable id for a generated GX object: the same suite gets the same ids on every sync."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


PROJECT_YML = f"""\
# The Great Expectations project of replaybench (see replaybench/checks/gx_project.py).
# Suites and validation definitions are generated from the YAML suites (`suites:` in the
# replaybench config) on every run: edit those, not expectations/*.json.
config_version: 4.0
config_variables_file_path: config_variables.yml
plugins_directory:
analytics_enabled: false
progress_bars:
  globally: false
  metric_calculations: false

stores:
  expectations_store:
    class_name: ExpectationsStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: expectations/
      suppress_store_backend_id: true
  validation_definition_store:
    class_name: ValidationDefinitionStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: validation_definitions/
      suppress_store_backend_id: true
  checkpoint_store:                   # a Checkpoint per run: run records, not configuration
    class_name: CheckpointStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: uncommitted/checkpoints/
      suppress_store_backend_id: true
  replaybench_validation_results:     # results redacted, without per-row lists
    class_name: RedactedValidationResultsStore
    module_name: replaybench.checks.gx_plugins
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: uncommitted/validations/
      suppress_store_backend_id: true
expectations_store_name: expectations_store
validation_results_store_name: replaybench_validation_results
checkpoint_store_name: checkpoint_store

data_docs_sites:
  {SITE}:                        # static pages that open offline (no CDN, no scripts)
    class_name: SiteBuilder
    show_how_to_buttons: false
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: ${{{DOCS_VARIABLE}}}
    site_index_builder:
      class_name: DefaultSiteIndexBuilder
      validation_results_limit: {VALIDATION_RESULTS_LIMIT}
      view:
        module_name: replaybench.checks.gx_plugins
        class_name: OfflineIndexPageView
    site_section_builders:
      expectations:
        view:
          module_name: replaybench.checks.gx_plugins
          class_name: OfflinePageView
      validations:
        view:
          module_name: replaybench.checks.gx_plugins
          class_name: OfflinePageView
      profiling: "false"                # no profiling here: one listing of the results less

fluent_datasources:
  {DATASOURCE}:                     # a night's answers, one row per (request, model)
    type: pandas
    id: {_id("datasource", DATASOURCE)}
    assets:
      {ASSET}:
        type: dataframe
        id: {_id("asset", ASSET)}
        batch_metadata: {{}}
        batch_definitions:
          {BATCH_DEFINITION}:
            id: {_id("batch_definition", BATCH_DEFINITION)}
            partitioner:
"""

CONFIG_VARIABLES_YML = f"""\
# Where the Data Docs site is built when the project is opened by hand (relative to this folder).
# replaybench passes its own (`<reports_dir>/data-docs`) when it runs.
{DOCS_VARIABLE}: ../reports/data-docs/
"""


class GxProject:
    """A Data Context holding the suites, and the means to run them as one Checkpoint."""

    def __init__(self, context: Any, root: Path | None = None,
                 docs_dir: Path | None = None) -> None:
        self.context = context
        self.root = root
        """The project folder; None in memory."""
        self.docs_dir = docs_dir
        """The Data Docs site a run updates; None for none."""

    @classmethod
    def open(cls, root: Path, docs_dir: Path, redactor: Any = None) -> GxProject:
        """The file project at `root` (created when missing), its Data Docs site at `docs_dir`,
        results redacted with `redactor` (a `replaybench.redact.Redactor`)."""
        import great_expectations as gx

        root = Path(root)
        with _turn(root):
            if not (root / "great_expectations.yml").is_file():
                create(root)
        context = gx.get_context(mode="file", context_root_dir=str(root),
                                 runtime_environment={DOCS_VARIABLE: str(Path(docs_dir).resolve())})
        store = context.validation_results_store
        if redactor is not None and hasattr(store, "redactor"):
            store.redactor = redactor
        return cls(context, root=root, docs_dir=Path(docs_dir))

    @classmethod
    def ephemeral(cls) -> GxProject:
        """An in-memory project: no files, no Data Docs (for checks run outside a night)."""
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        # GX announces its temporary docs folder at INFO on every ephemeral context
        logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False,
                                                             metric_calculations=False)
        asset = context.data_sources.add_pandas(DATASOURCE).add_dataframe_asset(ASSET)
        asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
        return cls(context)

    @property
    def batch_definition(self):
        asset = self.context.data_sources.get(DATASOURCE).get_asset(ASSET)
        return asset.get_batch_definition(BATCH_DEFINITION)

    # --- suites ----------------------------------------------------------------------------

    def sync(self, suites: dict[str, SuiteSpec]) -> list[str]:
        """Make the project's suites and validation definitions those of `suites` (plus
        reference_match); return the names of the ones written or removed."""
        with _turn(self.root):
            return self._sync(suites)

    def _sync(self, suites: dict[str, SuiteSpec]) -> list[str]:
        import great_expectations as gx
        from great_expectations.core.data_context_key import StringKey
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
        )

        wanted = {REFERENCE_SUITE: reference_suite(),
                  **{pv: gx_suite(suite) for pv, suite in suites.items()}}
        changed: list[str] = []
        if self.root is None:  # in memory: add them, ids as GX gives them
            for name, suite in wanted.items():
                suite = self.context.suites.add(suite)
                self.context.validation_definitions.add(
                    gx.ValidationDefinition(name=name, data=self.batch_definition, suite=suite))
            return list(wanted)

        store = self.context.expectations_store
        backend = store.store_backend
        for name, suite in wanted.items():
            if _write(backend, ExpectationSuiteIdentifier(name=name).to_tuple(),
                      store.serialize(suite)):
                changed.append(name)
        for key in backend.list_keys():
            if ".ge_store_backend_id" in key[-1]:
                continue
            name = ExpectationSuiteIdentifier.from_tuple(key).name
            if name not in wanted and _generated(backend.get(key)):
                backend.remove_key(key)
                changed.append(name)

        vd_store = self.context.validation_definition_store
        vd_backend = vd_store.store_backend
        batch_definition = self.batch_definition
        for name in wanted:
            definition = gx.ValidationDefinition(
                name=name, data=batch_definition, suite=self.context.suites.get(name),
                id=_id("validation_definition", name))
            if _write(vd_backend, StringKey(key=name).to_tuple(), vd_store.serialize(definition)):
                changed.append(name)
        for key in vd_backend.list_keys():
            name = key[0]
            if name not in wanted and json.loads(vd_backend.get(key)).get("id") == _id(
                    "validation_definition", name):
                vd_backend.remove_key(key)
        return sorted(set(changed))

    # --- a run -----------------------------------------------------------------------------

    def run(self, frames: dict[str, Any], run_name: str) -> dict[str, dict[str, Any]]:
        """Validate each suite's pandas frame of answers (with `_row`), as one Checkpoint named
        `run_name`: {suite: {check name: ExpectationValidationResult}}. Results the project
        stored earlier for the same run name are replaced."""
        with self.night(run_name) as night:
            return night.validate(frames)

    @contextlib.contextmanager
    def night(self, run_name: str) -> Iterator[NightValidation]:
        """A Checkpoint run fed chunk by chunk (`NightValidation.validate`); on a clean exit each
        suite's results over all its chunks are stored as one validation, and the Checkpoint's
        actions (Data Docs) run. The project is held for the whole night."""
        with _turn(self.root):
            night = NightValidation(self, run_name)
            yield night
            night.finish()

    def _forget(self, run_name: str) -> None:
        """Remove stored results of an earlier validation of the same run (the next Data Docs
        build drops their pages). By their folders, <suite>/<run name>/: listing the store's keys
        would read the whole history."""
        if self.root is None:
            return
        for folder in (self.root / "uncommitted" / "validations").glob(
                f"**/{glob.escape(run_name)}"):
            shutil.rmtree(folder)


class NightValidation:
    """One Checkpoint run over a night's answers, given chunk by chunk.

    GX's `Checkpoint.run` hands every validation definition the same batch parameters (for a
    dataframe asset: one frame), so this does what it does with a frame per definition: each
    chunk's frames are validated by GX (`Validator.validate_expectation_suite`, as
    `ValidationDefinition.run` does), and `finish` stores one result per suite, with the
    Checkpoint's id, result format and run id, then runs the Checkpoint's actions. A suite seen
    in one chunk is stored as GX returned it; one seen in several gets its results added up
    (`_SuiteTally`): GX's own `_format_map_output` over the summed counts, the first examples
    and the counts of every unexpected value, so the stored result is the one a single frame
    would have given (its `batch_markers`, the first chunk's, aside).
    """

    def __init__(self, project: GxProject, run_name: str) -> None:
        from great_expectations.core.run_identifier import RunIdentifier

        self.project = project
        self.run_name = run_name
        self.run_id = RunIdentifier(run_name=run_name, run_time=dt.datetime.now(dt.UTC))
        self._definitions: dict[str, Any] = {}
        self._tallies: dict[str, _SuiteTally] = {}  # in the order the suites were first seen
        project._forget(run_name)  # noqa: SLF001 - the project's own night

    def validate(self, frames: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Validate one chunk: each suite's pandas frame of answers (with `_row`). Returns this
        chunk's {suite: {check name: ExpectationValidationResult}} (per-row lists included)."""
        from great_expectations.validator.v1_validator import Validator

        out: dict[str, dict[str, Any]] = {}
        for name, frame in frames.items():
            definition = self._definitions.get(name)
            if definition is None:
                definition = self.project.context.validation_definitions.get(name)
                self._definitions[name] = definition
            result = Validator(batch_definition=definition.batch_definition,
                               batch_parameters={"dataframe": frame},
                               result_format=RESULT_FORMAT).validate_expectation_suite(
                definition.suite)
            tally = self._tallies.get(name)
            if tally is None:
                self._tallies[name] = _SuiteTally(result)
            else:
                tally.add(result)
            out[name] = {r.expectation_config.meta.get("name"): r for r in result.results}
        return out

    def finish(self) -> None:
        """Store each suite's result of the night and run the Checkpoint's actions."""
        if not self._tallies:
            return
        import great_expectations as gx
        from great_expectations.checkpoint.checkpoint import CheckpointResult
        from great_expectations.constants import DATAFRAME_REPLACEMENT_STR
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        from replaybench.checks.gx_plugins import UpdateRunDataDocsAction

        project, context = self.project, self.project.context
        actions = [UpdateRunDataDocsAction(name="update_data_docs", site_names=[SITE])
                   ] if project.docs_dir is not None else []
        checkpoint = context.checkpoints.add_or_update(gx.Checkpoint(
            name=self.run_name, validation_definitions=[
                self._definitions[name] for name in self._tallies],
            actions=actions, result_format=RESULT_FORMAT))
        store = context.validation_results_store
        results = {}
        for name, tally in self._tallies.items():  # as ValidationDefinition.run stores them
            result = tally.result()
            result.meta.update({
                "validation_id": self._definitions[name].id, "checkpoint_id": checkpoint.id,
                "run_id": self.run_id, "validation_time": self.run_id.run_time,
                "batch_parameters": {"dataframe": DATAFRAME_REPLACEMENT_STR}})
            suite_key = ExpectationSuiteIdentifier(name=result.suite_name)
            key = ValidationResultIdentifier(expectation_suite_identifier=suite_key,
                                             run_id=self.run_id, batch_identifier=result.batch_id)
            store.store_validation_results(suite_validation_result=result,
                                           suite_validation_result_identifier=key,
                                           expectation_suite_identifier=suite_key)
            results[key] = result
        outcome = CheckpointResult(run_id=self.run_id, run_results=results,
                                   checkpoint_config=checkpoint)
        for action in checkpoint.actions:
            action._data_context = context  # noqa: SLF001 - as Checkpoint.run sets it
            action.run(checkpoint_result=outcome)
        if project.docs_dir is not None:  # the build dropped the pages of the results forgotten
            _prune(project.docs_dir / "validations", self.run_name)


class _SuiteTally:
    """A suite's validation results over the chunks seen so far: the first chunk's result, and
    per expectation what the chunks add up to, held in a bounded form (counts, the first
    `partial_unexpected_count` examples, the count of each unexpected value)."""

    def __init__(self, first) -> None:
        self.first = first
        self.chunks = 1
        self.expectations = [_ExpectationTally(r) for r in first.results]

    def add(self, result) -> None:
        self.chunks += 1
        for tally, r in zip(self.expectations, result.results, strict=True):
            tally.add(r)

    def result(self):
        """The suite's result over every chunk: GX's own when there was only one."""
        if self.chunks == 1:
            return self.first
        from great_expectations.core.expectation_validation_result import (
            ExpectationSuiteValidationResult,
        )
        from great_expectations.validator.validation_statistics import calc_validation_statistics

        results = [t.result() for t in self.expectations]
        statistics = calc_validation_statistics(results)
        first = self.first
        return ExpectationSuiteValidationResult(
            results=results, success=statistics.success, suite_name=first.suite_name,
            suite_parameters=first.suite_parameters,
            statistics={"evaluated_expectations": statistics.evaluated_expectations,
                        "successful_expectations": statistics.successful_expectations,
                        "unsuccessful_expectations": statistics.unsuccessful_expectations,
                        "success_percent": statistics.success_percent},
            meta=dict(first.meta), batch_id=first.batch_id)


class _ExpectationTally:
    """One expectation's results added up over chunks (see `_SuiteTally`)."""

    def __init__(self, first) -> None:
        from great_expectations.expectations.expectation_configuration import (
            parse_result_format,
        )

        self.format = parse_result_format(RESULT_FORMAT)
        self.first = first
        self.errored = first if _errored(first) else None
        self.counted = _is_map(first.result)
        self.element_count = self.nonnull_count = self.unexpected_count = 0
        self.examples: list = []
        self.example_rows: list = []
        self.values: Counter | None = Counter()
        if self.errored is None and self.counted:
            self._count(first.result)
            self.first = without_row_lists(first)  # its examples are kept; the lists may go

    def add(self, r) -> None:
        if self.errored is not None:
            return
        if _errored(r):
            self.errored = r
        elif self.counted:
            self._count(r.result)

    def _count(self, result: dict) -> None:
        element_count = result.get("element_count") or 0
        self.element_count += element_count
        self.nonnull_count += element_count - (result.get("missing_count") or 0)
        self.unexpected_count += result.get("unexpected_count") or 0
        limit = self.format["partial_unexpected_count"]
        unexpected = result.get("unexpected_list") or []
        self.examples += unexpected[:max(0, limit - len(self.examples))]
        self.example_rows += (result.get("unexpected_index_list") or [])[
            :max(0, limit - len(self.example_rows))]
        if self.values is not None and unexpected:
            hashable = ([tuple(v.values()) for v in unexpected]
                        if isinstance(unexpected[0], dict) else unexpected)
            try:
                self.values.update(hashable)
            except TypeError:  # as GX: no counts of values it cannot hash
                self.values = None

    def result(self):
        """The expectation's result over every chunk, formatted by GX."""
        if self.errored is not None:
            return self.errored
        if not self.counted:
            return self.first
        from great_expectations.core.expectation_validation_result import (
            ExpectationValidationResult,
        )
        from great_expectations.expectations.expectation import (
            _format_map_output,
            _mostly_success,
        )

        first = self.first
        if self.element_count == 0 or self.nonnull_count == 0:
            success = True  # vacuously, as GX says
        else:
            success = _mostly_success(self.nonnull_count, self.unexpected_count,
                                      first.expectation_config.kwargs.get("mostly", 1.0))
        formatted = _format_map_output(
            result_format=self.format, success=success, element_count=self.element_count,
            nonnull_count=self.nonnull_count, unexpected_count=self.unexpected_count,
            unexpected_list=self.examples, unexpected_index_list=self.example_rows,
            unexpected_index_column_names=first.result.get("unexpected_index_column_names"))
        outcome = formatted["result"]
        for key in PER_ROW_LISTS:  # the stored results never hold them
            outcome.pop(key, None)
        limit = self.format["partial_unexpected_count"]
        if self.values is None:
            outcome.pop("partial_unexpected_counts", None)
        elif "partial_unexpected_counts" in outcome:
            outcome["partial_unexpected_counts"] = [
                {"value": key, "count": value} for key, value in
                sorted(self.values.most_common(limit), key=lambda x: (-x[1], x[0]))]
        return ExpectationValidationResult(
            success=formatted["success"], expectation_config=first.expectation_config,
            result=outcome, meta=first.meta, exception_info=first.exception_info)


PER_ROW_LISTS = ("unexpected_list", "unexpected_index_list", "unexpected_index_query",
                  "unexpected_rows")


def _is_map(result: dict) -> bool:
    return isinstance(result, dict) and "element_count" in result and "unexpected_count" in result


def _errored(result) -> bool:
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return True
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())


def without_row_lists(result):
    """A copy of an expectation's result without its per-row lists (the caller's keeps them),
    sharing the rest."""
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )

    return ExpectationValidationResult(
        success=result.success, expectation_config=result.expectation_config,
        result={k: v for k, v in (result.result or {}).items() if k not in PER_ROW_LISTS},
        meta=result.meta, exception_info=result.exception_info,
        rendered_content=result.rendered_content)


@contextlib.contextmanager
def _turn(root: Path | None) -> Iterator[None]:
    """Hold the project alone (other runs of it wait, in this process or another): GX's stores
    and Data Docs site are files that a run rewrites. Nothing to hold for an in-memory one."""
    if root is None:
        yield
        return
    path = Path(root) / "uncommitted" / "replaybench.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _prune(base: Path, run_name: str) -> None:
    """Remove the empty folders GX leaves behind a removed result: <suite>/<run>/<run time>/."""
    for folder in sorted(base.glob(f"**/{glob.escape(run_name)}/*"), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()
            folder.parent.rmdir()


def create(root: Path) -> None:
    """A new project folder: great_expectations.yml, config_variables.yml, .gitignore."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config_variables.yml").write_text(CONFIG_VARIABLES_YML, encoding="utf-8")
    (root / ".gitignore").write_text("uncommitted/\n", encoding="utf-8")
    # last: its presence is what says the project exists
    (root / "great_expectations.yml").write_text(PROJECT_YML, encoding="utf-8")


def gx_suite(suite: SuiteSpec):
    """The GX suite of a YAML suite: each expectation with its implied and declared row
    condition, ids derived from the names."""
    import great_expectations as gx

    name = suite.prompt_version
    return gx.ExpectationSuite(
        name=name, id=_id("suite", name), notes=suite.description or None,
        meta={"replaybench": {"generated_from": Path(suite.source).name or f"{name}.yaml"}},
        expectations=[gx_configuration(check, _id("expectation", name, check.name))
                      for check in suite.checks])


def reference_suite():
    """The automatic reference match, as a suite of its own over every prompt_version."""
    import great_expectations as gx

    return gx.ExpectationSuite(
        name=REFERENCE_SUITE, id=_id("suite", REFERENCE_SUITE),
        notes="Every answer with a reference (from human review or a golden set), whatever its "
              "prompt_version, matches it once both are normalised.",
        meta={"replaybench": {"generated_from": "replaybench.checks.gx_project"}},
        expectations=[gx_configuration(REFERENCE_MATCH_CHECK,
                                       _id("expectation", REFERENCE_SUITE, REFERENCE_MATCH))])


def _write(backend, key: tuple, text: str) -> bool:
    """Store `text` under `key` unless it is there already; True when written."""
    if backend.has_key(key) and backend.get(key) == text:
        return False
    backend.set(key, text)
    return True


def _generated(text: str) -> bool:
    try:
        return "replaybench" in (json.loads(text).get("meta") or {})
    except ValueError:
        return False
