"""A night validated and scored in pieces gives what all of it at once gives: the same `checks`
rows, the same stored GX validation results (what Data Docs show), the same scores
(replaybench/checks/answers.py, replaybench/checks/run.py, replaybench/checks/gx_project.py,
replaybench/decide/scores.py). A real night: demo logs, the local fleet, a DuckDB file; small
(8 requests per prompt_version), and validated once each way for all the tests."""

from __future__ import annotations

import asyncio
import json
from datetime import date

import polars as pl
import pytest

from replaybench import runs
from replaybench.checks.answers import answer_chunks
from replaybench.checks.docs import project_dir
from replaybench.checks.run import run_checks, validate_run
from replaybench.checks.suites import load_suites
from replaybench.config import load_settings
from replaybench.decide.scores import gather_outcomes, score_outcomes
from replaybench.ingest.load import ingest_paths
from replaybench.replay import replay_candidate
from replaybench.replay.send import together
from replaybench.sample import draw_sample
from replaybench.warehouse import open_warehouse

from .conftest import ANSWER_SCHEMA, write_config
from .test_score import assert_same_scores, reference_scores

SMALL = 7  # answers per chunk: every prompt_version and model is cut into pieces


@pytest.fixture(scope="module")
def night(tmp_path_factory, fleet, demo_slice):
    """A replayed night of 2026-11-27: 8 requests per prompt_version, three candidates (enough
    for every prompt_version and model to be cut into pieces, and for a check to fail more
    often than one chunk holds)."""
    folder = tmp_path_factory.mktemp("batches")
    settings = load_settings(write_config(folder, fleet.base_url,
                                          sample={"per_prompt_version": 8, "seed": 7}))
    ingest_paths(settings.warehouse, [demo_slice])
    with open_warehouse(settings.warehouse) as wh:
        run = runs.begin(wh, settings, date(2026, 11, 28), "test")
        draw_sample(wh, settings, run)

    async def replay():
        return await together(replay_candidate(settings, run, c) for c in settings.candidates)

    asyncio.run(replay())
    return settings, run


@pytest.fixture(scope="module")
def validated(night):
    """The night validated all at once, then SMALL answers at a time: what each returned and
    stored (`checks` rows, GX validation results), by chunk size (None: all at once)."""
    settings, run = night

    def validate(**chunking) -> tuple[int, pl.DataFrame, dict[str, dict]]:
        count = validate_run(settings, run, **chunking)
        return count, stored_checks(settings, run), stored_results(settings, run)

    return {None: validate(), SMALL: validate(chunk_rows=SMALL)}


def stored_checks(settings, run) -> pl.DataFrame:
    with open_warehouse(settings.warehouse) as wh:
        return wh.frame('SELECT request_id, model, prompt_version, "check", passed, reason '
                        'FROM checks WHERE run_id = $r ORDER BY ALL', r=run.run_id)


def stored_results(settings, run) -> dict[str, dict]:
    """The run's stored validation results by suite, without what differs between two
    validations of the same answers (times, ids, the batch's load markers)."""
    found = {}
    base = project_dir(settings) / "uncommitted" / "validations"
    for path in base.glob(f"**/{run.run_id}/*/*.json"):
        doc = json.loads(path.read_text(encoding="utf-8"))
        for key in ("run_id", "validation_time", "batch_markers", "checkpoint_id"):
            doc["meta"].pop(key, None)
        assert doc["suite_name"] not in found  # one validation per suite and run
        found[doc["suite_name"]] = doc
    return found


def test_the_answers_read_in_pieces_are_the_answers_query(night):
    settings, run = night
    with open_warehouse(settings.warehouse) as wh:
        wh.query("answer_macros")
        whole = wh.frame("answers", run_id=run.run_id, with_question=True)
    pieces = list(answer_chunks(settings.warehouse, run.run_id, SMALL))
    assert len(pieces) > len(whole.get_column("prompt_version").unique()) * 4
    assert all(p.height <= SMALL for p in pieces)
    assert pl.concat(pieces).equals(whole)
    assert whole.get_column("user_message").null_count() == 0  # every request's question
    # a night without a judge does not read the logs for it: the same answers, no question
    unasked = pl.concat(answer_chunks(settings.warehouse, run.run_id, SMALL, questions=False))
    assert unasked.get_column("user_message").null_count() == unasked.height
    assert unasked.drop("user_message").equals(whole.drop("user_message"))


def test_a_night_validated_in_chunks_stores_what_one_batch_stores(validated):
    count, checks, results = validated[None]  # every answer in one chunk
    assert count > 0
    chunked_count, chunked_checks, chunked = validated[SMALL]
    assert chunked_count == checks.height
    assert chunked_checks.equals(checks)
    assert sorted(chunked) == sorted(results) and len(results) >= 6
    for suite, doc in results.items():
        assert chunked[suite] == doc, suite
    # the examples Data Docs show come from several chunks, as from one batch
    examples = [r["result"].get("partial_unexpected_list") or []
                for doc in results.values() for r in doc["results"]]
    assert max(len(e) for e in examples) > SMALL
    counts = [r["result"].get("partial_unexpected_counts") or []
              for doc in results.values() for r in doc["results"]]
    assert any(c["count"] > 1 for row in counts for c in row)


OUTCOMES_THROUGH_THE_ANSWERS_VIEW = """
WITH verdicts AS (
    SELECT request_id, model, bool_and(passed) AS passed
    FROM checks
    WHERE run_id = $run_id AND ($prompt_version IS NULL OR prompt_version = $prompt_version)
    GROUP BY request_id, model
)
SELECT a.request_id, a.prompt_version, a.model, a.status, a.output_tokens, a.reasoning_tokens,
       a.cost_usd, a.latency_ms, a.ttft_ms, a.output_tps,
       coalesce(v.passed, false) AND a.status = 'ok' AS passed,
       r.error_kind, r.attempts, l.model_id AS production_model
FROM answers AS a
LEFT JOIN verdicts AS v USING (request_id, model)
LEFT JOIN replays AS r ON r.run_id = a.run_id AND r.request_id = a.request_id AND r.model = a.model
LEFT JOIN logs AS l ON l.request_id = a.request_id
WHERE a.run_id = $run_id AND ($prompt_version IS NULL OR a.prompt_version = $prompt_version)
"""
"""`sql/outcomes.sql` as it was, through the `answers` view: the reference it must equal."""


def test_a_night_s_outcomes_gathered_per_prompt_version_score_as_the_whole_night(
        night, validated):
    """Score gathers a night's outcomes one prompt_version at a time, and counts them in
    DuckDB: the outcomes are those of the whole night at once, and the scores those Polars
    computed from them in memory (`tests.test_score.reference_scores`); and the outcomes are
    those the `answers` view gives."""
    settings, run = night  # validated: the night's checks are stored
    by_answer = ["prompt_version", "model", "request_id"]
    with open_warehouse(settings.warehouse) as wh:
        whole = wh.frame("outcomes", run_id=run.run_id, prompt_version=None).sort(by_answer)
        via_view = wh.frame(OUTCOMES_THROUGH_THE_ANSWERS_VIEW, run_id=run.run_id,
                            prompt_version=None).sort(by_answer)
        gather_outcomes(wh, run, "_gathered")
        gathered = wh.frame("SELECT * FROM _gathered").sort(by_answer)
        scores = score_outcomes(wh, "_gathered", "production")
    assert whole["prompt_version"].n_unique() >= 6 and gathered.equals(whole)
    assert whole.equals(via_view) and whole["passed"].any() and not whole["passed"].all()
    assert_same_scores(scores, reference_scores(whole, "production"))


SCHEMA_ON_ANSWER = (
    "prompt_version: j@v1\n"
    "expectations:\n"
    "  - type: expect_column_values_to_match_json_schema\n"
    "    kwargs: {column: answer, json_schema: {type: object}}\n"
    "    meta: {name: object}\n"
    "  - type: expect_column_values_to_be_in_set\n"
    "    kwargs: {column: answer, value_set: ['{}']}\n"
    "    meta: {name: empty_object}\n"
)


def test_a_check_that_errors_in_one_chunk_fails_in_every_chunk(tmp_path):
    # the schema check parses the answer itself: it errors on the batch that holds "not json"
    (tmp_path / "j.yaml").write_text(SCHEMA_ON_ANSWER)
    suites = load_suites(tmp_path)
    answers = ["{}", "[]", "{}", "{}", "not json", "{}", '{"a": 1}', "{}"]
    frame = pl.DataFrame([(f"r{i}", "glm-5.2", "j@v1", a, None, 5, 10.0, None)
                          for i, a in enumerate(answers)], schema=ANSWER_SCHEMA, orient="row")
    whole = run_checks(frame, suites)
    assert (whole.filter(pl.col("check") == "object").get_column("reason").unique().to_list()
            == ["check errored: Expecting value: line 1 column 1 (char 0)"])
    for rows in (1, 2, 3, 5):
        assert run_checks(frame, suites, chunk_rows=rows).equals(whole), rows


def test_the_stored_results_keep_no_per_row_lists_however_chunked(validated):
    for doc in validated[SMALL][2].values():
        for result in doc["results"]:
            assert "unexpected_list" not in result["result"]
            assert "unexpected_index_list" not in result["result"]


def test_a_judge_is_shown_each_request_s_question_from_the_logs(night, tmp_path):
    """Only a night with a judge reads the logs for the questions (`answer_chunks`' questions);
    its judge is shown each one, as logged."""
    from tests.servers import RecordingFleet

    settings, run = night
    copy = tmp_path / "warehouse.duckdb"
    copy.write_bytes(settings.warehouse.read_bytes())
    with RecordingFleet() as judge:
        judged = load_settings(write_config(
            tmp_path, judge.base_url, sample={"per_prompt_version": 8, "seed": 7},
            judge={"base_url": judge.base_url, "model": "gpt-5", "trusted": True}))
        validate_run(judged, run)
    with open_warehouse(copy) as wh:
        asked = wh.execute(
            "SELECT DISTINCT l.messages->>'$[#-1].content' FROM checks AS c "
            "JOIN logs AS l USING (request_id) WHERE c.run_id = $r AND c.\"check\" = 'judge'",
            {"r": run.run_id}).fetchall()
    bodies = [json.loads(b) for b in judge.bodies]
    shown = json.dumps(bodies)
    assert asked and bodies
    assert all(json.dumps(question)[1:-1] in shown for (question,) in asked)


@pytest.mark.parametrize("entry, reads", [
    ("{type: expect_column_values_to_not_be_null, kwargs: {column: user_message}}", True),
    ("{type: expect_column_values_to_not_be_null, kwargs: {column: output_text, "
     "row_condition: 'user_message.str.len() > 3', condition_parser: pandas}}", True),
    ("{type: expect_column_values_to_not_be_null, kwargs: {column: output_text}}", False),
])
def test_a_night_reads_the_questions_for_a_suite_that_names_them(tmp_path, entry, reads):
    """Without a judge, the questions are read from the logs only when a suite names
    `user_message` (in an argument or a row_condition): its checks never see a NULL instead."""
    from replaybench.checks.run import NightChecks
    from tests.suite_files import one_expectation

    (tmp_path / "t.yaml").write_text(one_expectation(entry))
    suites = load_suites(tmp_path)
    assert suites["t@v1"].reads("user_message") is reads
    assert NightChecks(suites, None, "r").reads_questions is reads
    judged = NightChecks(suites, None, "r", judge=object())
    assert judged.reads_questions


def test_the_report_s_worst_failures_put_regressions_first(night, validated):
    """`sql/failures.sql` on a validated night: a few failing answers per prompt_version and
    candidate, each with every check it failed; a failure production passed (a regression)
    is never left out for one production failed too."""
    settings, run = night
    per_model = 2
    with open_warehouse(settings.warehouse) as wh:
        shown = wh.frame("failures", run_id=run.run_id, per_model=per_model)
        checks = wh.frame('SELECT request_id, model, prompt_version, "check", passed '
                          "FROM checks WHERE run_id = $r", r=run.run_id)
    assert shown.height > 0
    failed = (checks.filter(~pl.col("passed") & (pl.col("model") != "production"))
              .group_by("request_id", "model", "prompt_version")
              .agg(pl.col("check").sort().str.join(", ").alias("failed_checks")))
    regressions = set(checks.filter(pl.col("model") == "production").group_by("request_id")
                      .agg(pl.col("passed").all()).filter("passed")["request_id"])
    got = {(r["request_id"], r["model"]): r["failed_checks"] for r in shown.iter_rows(named=True)}
    want = {(r["request_id"], r["model"]): r["failed_checks"] for r in failed.iter_rows(named=True)}
    assert all(want[key] == checks_failed for key, checks_failed in got.items())
    for (pv, model), group in failed.group_by("prompt_version", "model"):
        picked = [r for r in group["request_id"] if (r, model) in got]
        assert len(picked) == min(per_model, group.height)
        left_out = set(group["request_id"]) - set(picked)
        assert not (left_out & regressions and set(picked) - regressions), (pv, model)
