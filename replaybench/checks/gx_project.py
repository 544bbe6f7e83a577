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
means one frame, so `run` does what it does (each definition's `run` with the Checkpoint's id,
result format and run id, then the Checkpoint's actions on the result) with a frame for each.
One frame and a prompt_version row condition on every expectation was the alternative: it made
GX's validation 1.6-2× slower (a pandas query per metric; see bench/gx.py). A person can do what
a run does:

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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
ROW_KEY = "_row"
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
        with _turn(self.root):
            return self._run(frames, run_name)

    def _run(self, frames: dict[str, Any], run_name: str) -> dict[str, dict[str, Any]]:
        import great_expectations as gx
        from great_expectations.checkpoint.checkpoint import CheckpointResult
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        from replaybench.checks.gx_plugins import UpdateRunDataDocsAction

        actions = [UpdateRunDataDocsAction(name="update_data_docs", site_names=[SITE])
                   ] if self.docs_dir is not None else []
        checkpoint = self.context.checkpoints.add_or_update(gx.Checkpoint(
            name=run_name, validation_definitions=[
                self.context.validation_definitions.get(name) for name in frames],
            actions=actions, result_format=RESULT_FORMAT))
        self._forget(run_name)
        run_id = RunIdentifier(run_name=run_name, run_time=dt.datetime.now(dt.UTC))
        results = {}
        for definition in checkpoint.validation_definitions:  # Checkpoint.run, a frame each
            result = definition.run(
                checkpoint_id=checkpoint.id, batch_parameters={"dataframe": frames[definition.name]},
                result_format=checkpoint.result_format, run_id=run_id)
            result.meta["checkpoint_id"] = checkpoint.id
            results[ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=definition.suite.name),
                run_id=run_id, batch_identifier=result.batch_id)] = result
        outcome = CheckpointResult(run_id=run_id, run_results=results, checkpoint_config=checkpoint)
        for action in checkpoint.actions:
            action._data_context = self.context  # noqa: SLF001 - as Checkpoint.run sets it
            action.run(checkpoint_result=outcome)
        if self.docs_dir is not None:  # the build dropped the pages of the results forgotten
            _prune(self.docs_dir / "validations", run_name)
        return {
            result.suite_name: {r.expectation_config.meta.get("name"): r for r in result.results}
            for result in results.values()
        }

    def _forget(self, run_name: str) -> None:
        """Remove stored results of an earlier validation of the same run (the next Data Docs
        build drops their pages). By their folders, <suite>/<run name>/: listing the store's keys
        would read the whole history."""
        if self.root is None:
            return
        for folder in (self.root / "uncommitted" / "validations").glob(
                f"**/{glob.escape(run_name)}"):
            shutil.rmtree(folder)


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
