"""Running the checks: every answer against its prompt_version's suite, the reference match and
the judge, as rows of the `checks` table (request_id, model, prompt_version, check, passed,
reason).

Rules that decide a row's outcome, beyond what GX itself says:

- A row whose `output_text` is null gets one check, `answered` = false, and nothing else. Every
  answered row gets `answered` = true, so each (request_id, model) appears in the checks table even
  when its prompt_version has no suite and no reference.
- A check judges the rows in its scope (`CheckSpec.scope`) and writes a row for each of them
  only: checks that read a reference column (`reference`, `reference_number`, `reference_norm`,
  ...) apply only to rows that have a reference, as the automatic `reference_match` does; checks
  that read production's answer (`production_answer`, `production_number`) only to candidates'
  rows whose request production answered; a check with a `row_condition` only to rows where it
  holds.
- A null never passes. GX column-map expectations skip null values; here a row GX skipped because a
  column it needs is null (e.g. `answer_number` when the answer has no number) is a failed check,
  "no value in answer_number". Only the kinds that judge nulls themselves
  (`CheckKind.judges_nulls`: `expect_column_values_to_(not_)be_null`) are exempt, and a
  pair/multicolumn expectation's own `ignore_row_if` is honoured as "needs both/any".
- An expectation that errors (GX reports success=False with `exception_info`, it does not raise)
  fails every row it applies to, with the exception message as the reason.

`validate_run` does a night: its answers read from the warehouse in chunks
(`replaybench.checks.answers`), checked (`replaybench.checks.chunk`, each row's outcome from
GX's result by `replaybench.checks.outcomes`), and stored in `checks`.

The GX side is one Checkpoint per call, each suite over its prompt_version's answers (see
`replaybench.checks.gx_project`): in the configuration's file project for a night
(`check_answers`, `NightChecks`), with its Data Docs; in memory otherwise. The answers may come
in chunks (`NightChecks.checks`, `run_checks(chunk_rows=...)`), with the outcome all of them at
once gives: a row's place in the night (`rows.ROW_KEY`) is kept across chunks, and a check that
errors in one chunk fails on every row it applies to (`NightChecks.finished`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import polars as pl

from replaybench.checks.answers import answer_chunks
from replaybench.checks.chunk import chunk_checks
from replaybench.checks.docs import docs_dir, project_dir
from replaybench.checks.gx_project import GxProject
from replaybench.checks.suites import SuiteSpec, load_suites
from replaybench.config import Judge, Settings
from replaybench.errors import scrub
from replaybench.redact import Redactor
from replaybench.runs import Run
from replaybench.warehouse import open_warehouse


def check_answers(settings: Settings, answers: pl.DataFrame, run_id: str) -> pl.DataFrame:
    """A night's checks: the config's suites run as the run's Checkpoint in its GX project
    (created and synced from the YAML suites as needed; Data Docs updated), the judge when the
    config has one; reasons redacted as they will be stored."""
    night = NightChecks.open(settings, run_id)
    parts = list(night.checks(chunked(answers, CHUNK_ROWS)))
    return pl.concat([night.finished(p) for p in parts])


CHUNK_ROWS = 20_000
"""Answers validated at a time: a night's memory follows this, not the night's size."""


def validate_run(settings: Settings, run: Run, chunk_rows: int = CHUNK_ROWS) -> int:
    """Check every answer of the run (production's and the candidates'); store one row per
    answer and check, replacing any from an earlier attempt. Returns the number of check rows.

    The warehouse is held only to read the answers and to write the checks: the checks
    themselves (and a judge's HTTP calls) run without it, so another run is not kept waiting.
    Memory does not follow the night's size: the answers are read, checked and stored
    `chunk_rows` at a time (`answer_chunks`), each chunk's checks committed on their own (a
    validation that dies part-way leaves some of the run's checks; the run's next attempt
    validates it afresh)."""
    night = NightChecks.open(settings, run.run_id)
    with open_warehouse(settings.warehouse) as wh:
        wh.execute("DELETE FROM checks WHERE run_id = $r", {"r": run.run_id})
    stored = 0
    answers = answer_chunks(settings.warehouse, run.run_id, chunk_rows,
                            questions=night.reads_questions)
    for part in night.checks(answers):
        part = night.finished(part)
        with open_warehouse(settings.warehouse) as wh:
            wh.atomic(lambda part=part: wh.insert("checks",
                                                   part.with_columns(run_id=pl.lit(run.run_id))))
        stored += part.height
    if night.errors:  # a check that errored in a later chunk fails in the earlier ones too
        with open_warehouse(settings.warehouse) as wh, wh.transaction():
            for (prompt_version, check), why in night.errors.items():
                wh.execute(
                    'UPDATE checks SET passed = false, reason = $why WHERE run_id = $r AND '
                    '"check" = $check AND ($pv IS NULL OR prompt_version = $pv)',
                    {"why": night.stored_reason(why), "r": run.run_id, "check": check,
                     "pv": prompt_version})
    return stored


class NightChecks:
    """A night's checks, chunk by chunk: `checks` yields each chunk's rows as they come, and
    `finished` makes a part what is stored (a check that errored in any chunk fails on every
    row it applies to; reasons redacted)."""

    def __init__(self, suites: dict[str, SuiteSpec], project: GxProject | None, run_name: str,
                 judge: Judge | None = None, judge_api_key: str | None = None,
                 judge_redactor: Any = None, redactor: Redactor | None = None) -> None:
        self.suites, self.project, self.run_name = suites, project, run_name
        self.judge, self.judge_api_key, self.judge_redactor = judge, judge_api_key, judge_redactor
        self.redactor = redactor
        self.errors: dict[tuple[str | None, str], str] = {}
        """(prompt_version, check) -> the reason of a check that errored; prompt_version None
        for reference_match, which spans them."""

    @classmethod
    def open(cls, settings: Settings, run_id: str) -> NightChecks:
        """The configuration's suites, in its GX project (created and synced as needed)."""
        suites = load_suites(settings.suites)
        redactor = Redactor(settings.redact.patterns)
        project = GxProject.open(project_dir(settings), docs_dir(settings), redactor)
        project.sync(suites)
        judge, api_key, judge_redactor = settings.judge, None, None
        if judge is not None:
            api_key = settings.api_key(judge)
            if settings.needs_redaction(judge):
                judge_redactor = redactor
        return cls(suites, project, run_id, judge, api_key, judge_redactor, redactor)

    def checks(self, chunks: Iterable[pl.DataFrame]) -> Iterator[pl.DataFrame]:
        """Each chunk's checks (see `run_checks`), as one Checkpoint run over all of them: its
        results are stored, and Data Docs built, once the last chunk is done."""
        project = self.project
        if project is None:
            project = GxProject.ephemeral()
            project.sync(self.suites)
        offset = 0
        with project.night(self.run_name) as night:
            for chunk in chunks:
                yield chunk_checks(chunk, offset, self.suites, night, self.errors, self.judge,
                                   self.judge_api_key, self.judge_redactor)
                offset += chunk.height

    @property
    def reads_questions(self) -> bool:
        """Whether the night needs each request's question (`user_message`, from the logs): for
        a judge, which is shown it, or a suite that names it."""
        return self.judge is not None or any(s.reads("user_message") for s in self.suites.values())

    def stored_reason(self, text: str) -> str:
        """A reason as it is stored (see `redact_reasons`)."""
        return scrub(self.redactor.redact_text(text)[0]) if self.redactor is not None else text

    def finished(self, part: pl.DataFrame, redact: bool = True) -> pl.DataFrame:
        """A part as it is stored: the checks that errored anywhere failed with their reason,
        reasons redacted (when the night has a redactor)."""
        for (prompt_version, name), why in self.errors.items():
            hit = pl.col("check") == name
            if prompt_version is not None:
                hit &= pl.col("prompt_version") == prompt_version
            part = part.with_columns(passed=pl.when(hit).then(False).otherwise("passed"),
                                     reason=pl.when(hit).then(pl.lit(why)).otherwise("reason"))
        if redact and self.redactor is not None:
            part = redact_reasons(part, self.redactor)
        return part


def chunked(frame: pl.DataFrame, rows: int) -> Iterator[pl.DataFrame]:
    """A frame in slices of `rows` rows (one empty slice for an empty frame)."""
    yield from (frame.slice(i, rows) for i in range(0, max(frame.height, 1), rows))


def run_checks(
    frame: pl.DataFrame,
    suites: dict[str, SuiteSpec],
    judge: Judge | None = None,
    *,
    judge_api_key: str | None = None,
    redactor: Any = None,
    project: GxProject | None = None,
    run_name: str = "replaybench",
    chunk_rows: int = CHUNK_ROWS,
) -> pl.DataFrame:
    """Validate every answer against its prompt_version's suite plus reference_match, and, when a
    `judge` endpoint is given, the suites' judge blocks (see the module docstring).

    Returns one row per (answer, check): request_id, model, prompt_version, check, passed, reason.
    `redactor` (a `replaybench.redact.Redactor`) redacts what is sent to the judge. `project`:
    the GX project to run in (its suites synced), as Checkpoint `run_name`; an in-memory one
    when None. The answers are validated `chunk_rows` at a time, with the same outcome as all at
    once.
    """
    if project is None:
        present = set(frame.get_column("prompt_version").unique().to_list())
        suites_run = {pv: s for pv, s in suites.items() if pv in present}
        project = GxProject.ephemeral()
        project.sync(suites_run)
    night = NightChecks(suites, project, run_name, judge, judge_api_key, redactor)
    parts = list(night.checks(chunked(frame, chunk_rows)))
    return pl.concat([night.finished(p, redact=False) for p in parts])


def redact_reasons(checks: pl.DataFrame, redactor: Redactor) -> pl.DataFrame:
    """A failed check's reason quotes the answer or the reference ("expected 'jane@…'"): the
    stored reason has personal data replaced, as the report and the e-mail show it (and a
    judge's reason is scrubbed of its key), so `checks` holds none."""
    texts = checks.get_column("reason").drop_nulls().unique().to_list()
    if not texts:
        return checks
    redacted = [scrub(redactor.redact_text(text)[0]) for text in texts]  # each distinct one once
    return checks.with_columns(reason=pl.col("reason").replace(texts, redacted))
