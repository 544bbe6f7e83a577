"""The optional LLM-as-judge check: the local fleet as judge, failures that never pass."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import httpx
import polars as pl
import pytest

from replaybench.checks.run import run_checks
from replaybench.checks.suites import SuiteError, load_suite, load_suites
from replaybench.config import Judge, load_settings
from replaybench.judge import JudgeError, JudgeItem, parse_verdict, score_items
from replaybench.sim import workloads
from tests.conftest import ANSWER_SCHEMA, ROOT, write_config

PV = "tutor-math@v1"
SCHEMA = {**ANSWER_SCHEMA, "user_message": pl.String}


@pytest.fixture(scope="module")
def suites():
    return load_suites(ROOT / "data" / "suites")


@pytest.fixture(scope="module")
def task():
    return workloads.generate("math", PV, random.Random(3))


def _question(task) -> str:
    return task.messages[-1]["content"]


def _answers(task) -> pl.DataFrame:
    right = workloads.solve(task.messages)
    wrong = workloads.wrong(task.messages, random.Random(1))
    rows = [
        ("r1", "production", right, None),
        ("r1", "glm-5.2", right, right),
        ("r1", "minimax-m3", wrong, right),
        ("r1", "deepseek-v4-pro", None, right),
    ]
    return pl.DataFrame(
        [(rid, model, PV, out, task.truth, 50, 100.0, prod, _question(task))
         for rid, model, out, prod in rows],
        schema=SCHEMA,
        orient="row",
    )


def _judge_rows(checks: pl.DataFrame) -> dict[str, tuple[bool, str]]:
    rows = checks.filter(pl.col("check") == "judge")
    return {m: (p, r) for m, p, r in rows.select("model", "passed", "reason").iter_rows()}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_math_suite_declares_a_judge(suites):
    spec = suites[PV].judge
    assert spec is not None and spec.threshold == 4 and spec.name == "judge"
    assert "correct" in spec.rubric and not spec.include_production


def test_fleet_as_judge_passes_a_right_answer_and_fails_a_wrong_one(fleet, suites, task):
    judge = Judge(base_url=fleet.base_url, model="gpt-5")
    judged = _judge_rows(run_checks(_answers(task), suites, judge))
    # production is not judged by default; an unanswered row gets only `answered`
    assert set(judged) == {"glm-5.2", "minimax-m3"}
    passed, reason = judged["glm-5.2"]
    assert passed and reason.startswith("score 5/5")
    passed, reason = judged["minimax-m3"]
    assert not passed
    assert reason.startswith("score 1/5 < 4") and f"expected {task.truth}" in reason


def test_include_production_judges_production_too(fleet, suites, task):
    spec = suites[PV].judge
    with_prod = {**suites, PV: suites[PV].__class__(
        prompt_version=PV, checks=suites[PV].checks,
        judge=spec.__class__(rubric=spec.rubric, include_production=True))}
    judged = _judge_rows(run_checks(_answers(task), with_prod, Judge(base_url=fleet.base_url,
                                                                     model="gpt-5")))
    assert judged["production"][0] is True


def test_fleet_judge_scores_an_unknown_question_3(fleet):
    item = JudgeItem("What is the capital of France?", "Paris", None, "be right")
    [(score, why)] = score_items([item], Judge(base_url=fleet.base_url, model="gpt-5"))
    assert score == 3 and "can verify" in why


def test_a_dead_judge_fails_the_checks_with_a_reason(suites, task):
    judge = Judge(base_url=f"http://127.0.0.1:{_closed_port()}/v1", model="gpt-5", timeout_s=5)
    judged = _judge_rows(run_checks(_answers(task), suites, judge))
    assert set(judged) == {"glm-5.2", "minimax-m3"}
    for passed, reason in judged.values():
        assert passed is False
        assert reason.startswith("judge unreachable")


def test_without_a_judge_there_are_no_judge_rows(suites, task):
    checks = run_checks(_answers(task), suites)
    assert checks.filter(pl.col("check") == "judge").is_empty()
    assert not checks.is_empty()


def _stub(content: str, status: int = 200) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"choices": [{"message": {"content": content}}]})

    return httpx.MockTransport(handler)


def test_a_judge_reply_that_is_not_json_fails_with_the_reason():
    item = JudgeItem("q", "a", None, "r")
    judge = Judge(base_url="http://judge.invalid/v1", model="m")
    [(score, why)] = score_items([item], judge, transport=_stub("Looks great to me, 5 stars!"))
    assert score is None and why.startswith("judge answer is not JSON")
    [(score, why)] = score_items([item], judge, transport=_stub("x", status=500))
    assert score is None and why.startswith("judge HTTP 500")


def test_not_json_reply_is_a_failed_check(suites, task, monkeypatch):
    import replaybench.judge as judge_module

    real = judge_module.score_items

    def stubbed(items, judge, api_key=None, transport=None):
        return real(items, judge, api_key, transport=_stub("I cannot grade this."))

    monkeypatch.setattr(judge_module, "score_items", stubbed)
    judge = Judge(base_url="http://judge.invalid/v1", model="m")
    judged = _judge_rows(run_checks(_answers(task), suites, judge))
    assert judged and all(not p and r.startswith("judge answer is not JSON") for p, r in judged.values())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"score": 4, "why": "fine"}', (4, "fine")),
        ('```json\n{"score": 5, "why": "ok"}\n```', (5, "ok")),
        ('<think>{"score": 1}</think> Verdict: {"score": "2", "why": "slip"} done', (2, "slip")),
        ('{"score": 4.0}', (4, "")),
    ],
)
def test_parse_verdict_is_robust(text, expected):
    assert parse_verdict(text) == expected


@pytest.mark.parametrize("text", ["", "five", '{"score": 9}', '{"score": true}', '{"why": "x"}', "[5]"])
def test_parse_verdict_refuses_what_is_not_a_verdict(text):
    with pytest.raises(JudgeError):
        parse_verdict(text)


@pytest.mark.parametrize("block, message", [("{rubric: ok, threshold: 7}", "threshold"),
                                            ("{rubrik: ok}", "unknown key")])
def test_judge_block_is_validated(tmp_path: Path, block, message):
    path = tmp_path / "s.yaml"
    path.write_text(f"prompt_version: x@v1\nexpectations: []\njudge: {block}\n")
    with pytest.raises(SuiteError, match=message):
        load_suite(path)


def test_config_accepts_a_judge(tmp_path: Path):
    path = write_config(tmp_path, judge={"base_url": "http://127.0.0.1:8400/v1", "model": "gpt-5"})
    judge = load_settings(path).judge
    assert judge is not None and judge.max_concurrency == 8 and judge.timeout_s == 60
    assert judge.is_loopback
    assert load_settings(write_config(tmp_path)).judge is None
