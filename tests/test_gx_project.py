"""replaybench/checks/gx_project.py: the file GX project beside the config, its suites generated
from the YAML ones, a Checkpoint per run, redacted results, and Data Docs that open offline
(rendered in headless Chromium; screenshots in test-artifacts/)."""

from __future__ import annotations

import json
import shutil
import socket

import polars as pl
import pytest

from replaybench.checks.docs import data_docs_index, data_docs_pages, docs_dir, project_dir
from replaybench.checks.gx_project import CONFIG_VARIABLES_YML, PROJECT_YML, GxProject
from replaybench.checks.run import check_answers, run_checks
from replaybench.checks.suites import load_suites
from replaybench.config import load_settings

from .browser import Browser, chromium_path
from .conftest import ANSWER_SCHEMA, ROOT, write_config

SUITES = ROOT / "data" / "suites"
ARTIFACTS = ROOT / "test-artifacts"
RUN_ID = "20261127-abc123"
EMAIL = "jane.doe@example.com"
HOSTILE = '<img src=x onerror="document.title=1">'


def answers() -> pl.DataFrame:
    rows = [
        ("t1", "production", "triage@v4", "billing", "billing", 3, 300.0, None),
        ("t1", "glm-5.2", "triage@v4", "Billing", "billing", 3, 300.0, "billing"),
        ("t2", "glm-5.2", "triage@v4", f"Please write to {EMAIL}", None, 9, 7000.0, "technical"),
        ("t3", "glm-5.2", "triage@v4", None, None, None, 100.0, "account"),
        ("t4", "glm-5.2", "triage@v4", HOSTILE, None, 9, 100.0, "account"),
        ("m1", "glm-5.2", "tutor-math@v1", "6 * 7 = 42\nAnswer: 42", "42", 20, 900.0, None),
        ("m2", "glm-5.2", "tutor-math@v1", "Answer: 41", "42", 20, 900.0, None),
        ("x1", "glm-5.2", "no-suite@v1", "anything", None, 5, 10.0, None),
    ]
    return pl.DataFrame(rows, schema=ANSWER_SCHEMA, orient="row")


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """One night's checks through the configuration's file project, with every connection
    that is not to this machine refused and recorded."""
    folder = tmp_path_factory.mktemp("night")
    settings = load_settings(write_config(folder))
    attempts: list = []
    connect = socket.socket.connect

    def local_only(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1",
                                                                               "localhost"):
            attempts.append(address)
            raise OSError("no network in this test")
        return connect(sock, address)

    socket.socket.connect = local_only
    try:
        checks = check_answers(settings, answers(), RUN_ID)
    finally:
        socket.socket.connect = connect
    return settings, checks, attempts


def test_the_project_sits_beside_the_config_and_opens_in_plain_gx(night):
    import great_expectations as gx

    settings, _, _ = night
    root = project_dir(settings)
    assert root == settings.source.parent / "gx"
    assert {p.name for p in (root / "expectations").iterdir()} == {
        f"{pv}.json" for pv in load_suites(SUITES)} | {"reference_match.json"}
    context = gx.get_context(mode="file", context_root_dir=str(root))
    suite = context.suites.get("triage@v4")
    assert [e.meta["name"] for e in suite.expectations] == [
        "not_empty", "label_in_set", "no_refusal", "within_latency_budget"]
    assert suite.expectations[0].row_condition is None  # its definition gets triage@v4's rows
    tutor = context.suites.get("tutor-math@v1")
    assert repr(tutor.expectations[1].row_condition) == "has_reference == True"  # reads it
    definition = context.validation_definitions.get("tutor-math@v1")
    assert definition.suite.name == "tutor-math@v1" and definition.data.name == "night"
    checkpoint = context.checkpoints.get(RUN_ID)
    assert sorted(v.name for v in checkpoint.validation_definitions) == [
        "reference_match", "triage@v4", "tutor-math@v1"]  # no-suite@v1 has no suite


def test_the_file_project_checks_what_the_in_memory_one_does(night):
    _, checks, _ = night
    in_memory = run_checks(answers(), load_suites(SUITES))
    assert checks.select("request_id", "model", "check", "passed").rows() == in_memory.select(
        "request_id", "model", "check", "passed").rows()
    reasons = {(r["request_id"], r["model"], r["check"]): r["reason"]
               for r in checks.iter_rows(named=True)}
    assert reasons[("t1", "glm-5.2", "label_in_set")] == (
        "not in {billing, technical, account, ...}: 'Billing'")
    assert reasons[("t2", "glm-5.2", "label_in_set")] == (  # redacted as it is stored
        "not in {billing, technical, account, ...}: 'Please write to <EMAIL_1>'")


def test_sync_is_deterministic_and_the_committed_project_is_in_sync(tmp_path):
    suites = load_suites(SUITES)
    first, second = GxProject.open(tmp_path / "a", tmp_path / "docs"), GxProject.open(
        tmp_path / "b", tmp_path / "docs")
    assert first.sync(suites) and second.sync(suites)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.json"))
    assert files and all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
                         for f in files)
    stamps = {f: (tmp_path / "a" / f).stat().st_mtime_ns for f in files}
    assert first.sync(suites) == []
    assert {f: (tmp_path / "a" / f).stat().st_mtime_ns for f in files} == stamps
    # the committed gx/ is what data/suites generate: a run on it writes nothing
    committed = tmp_path / "committed"
    shutil.copytree(ROOT / "gx", committed, ignore=shutil.ignore_patterns("uncommitted"))
    assert GxProject.open(committed, tmp_path / "docs").sync(suites) == []
    assert (ROOT / "gx" / "great_expectations.yml").read_text(encoding="utf-8") == PROJECT_YML
    assert (ROOT / "gx" / "config_variables.yml").read_text(encoding="utf-8") == (
        CONFIG_VARIABLES_YML)


def test_a_suite_whose_yaml_is_gone_leaves_the_project_and_a_hand_made_one_stays(tmp_path):
    import great_expectations as gx

    folder = tmp_path / "suites"
    folder.mkdir()
    for name in ("triage@v4.yaml", "triage@v3.yaml"):
        shutil.copy(SUITES / name, folder / name)
    project = GxProject.open(tmp_path / "gx", tmp_path / "docs")
    project.sync(load_suites(folder))
    project.context.suites.add(gx.ExpectationSuite(name="mine"))
    (folder / "triage@v3.yaml").unlink()
    assert project.sync(load_suites(folder)) == ["triage@v3"]
    assert sorted(s.name for s in project.context.suites.all()) == [
        "mine", "reference_match", "triage@v4"]
    assert sorted(v.name for v in project.context.validation_definitions.all()) == [
        "reference_match", "triage@v4"]


def test_results_are_stored_redacted_and_without_per_row_lists(night):
    settings, _, _ = night
    stored = list((project_dir(settings) / "uncommitted" / "validations").rglob("*.json"))
    assert len(stored) == 3
    texts = [p.read_text(encoding="utf-8") for p in stored]
    assert not any(EMAIL in t for t in texts)
    assert any("<EMAIL_1>" in t for t in texts)  # the example is kept, redacted
    for text in texts:
        for result in json.loads(text)["results"]:
            assert "unexpected_list" not in result["result"]
            assert "unexpected_index_list" not in result["result"]
    pages = list(docs_dir(settings).rglob("*.html"))
    assert pages and not any(EMAIL in p.read_text(encoding="utf-8") for p in pages)


def test_each_prompt_version_has_a_data_docs_page_for_the_run(night):
    settings, _, _ = night
    pages = data_docs_pages(settings, RUN_ID)
    assert sorted(pages) == ["triage@v4", "tutor-math@v1"]
    for href in pages.values():
        assert href.startswith("data-docs/validations/") and "%40" in href
        assert (settings.reports_dir / href.replace("%40", "@")).is_file()
    assert data_docs_index(settings) == "data-docs/index.html"
    assert data_docs_pages(settings, "20260101-000000") == {}


def test_validating_a_run_again_replaces_its_results_and_pages(night, tmp_path):
    settings, _, _ = night
    before = data_docs_pages(settings, RUN_ID)
    check_answers(settings, answers(), RUN_ID)
    after = data_docs_pages(settings, RUN_ID)
    assert sorted(after) == sorted(before) and after != before  # a new run time
    run_folders = list((project_dir(settings) / "uncommitted" / "validations").glob(
        f"*/{RUN_ID}/*"))
    assert len(run_folders) == 3
    assert len(list(docs_dir(settings).glob(f"validations/*/{RUN_ID}/*/*.html"))) == 3


def test_nothing_leaves_the_machine(night):
    _, _, attempts = night
    assert attempts == []


@pytest.mark.skipif(chromium_path() is None, reason="no chromium: .ci/run installs it")
def test_data_docs_render_offline_in_chromium(night):
    settings, _, _ = night
    page = settings.reports_dir / data_docs_pages(settings, RUN_ID)["triage@v4"].replace("%40", "@")
    index = docs_dir(settings) / "index.html"
    expressions = {
        "text": "document.body.innerText",
        "scripts": "document.scripts.length",
        "remote": "[...document.querySelectorAll('[src], link[href]')]"
                  ".map(e => e.getAttribute('src') || e.getAttribute('href'))"
                  ".filter(u => /^(https?:)?\\/\\//.test(u))",
        "fetched": "performance.getEntriesByType('resource').map(r => r.name)"
                   ".filter(u => !u.startsWith('file:'))",
        "links": "[...document.querySelectorAll('a')].map(a => a.getAttribute('href'))",
        "images": "[...document.images].map(i => i.getAttribute('src'))",
        "overflow": "document.documentElement.scrollWidth > window.innerWidth + 1",
    }
    browser = Browser()
    try:
        seen_index = browser.render(index.as_uri(), 1280, 900, expressions,
                                    ARTIFACTS / "gx-docs-index.png")
        seen_page = browser.render(page.as_uri(), 1280, 900, expressions,
                                   ARTIFACTS / "gx-docs-triage.png")
        seen_phone = browser.render(page.as_uri(), 390, 844, expressions,
                                    ARTIFACTS / "gx-docs-triage-phone.png")
    finally:
        browser.close()
    for seen in (seen_index, seen_page, seen_phone):
        assert seen["scripts"] == 0 and seen["remote"] == [] and seen["fetched"] == []
    # the index: the run's validations, linked, and the suites
    assert "triage@v4" in seen_index["text"] and "tutor-math@v1" in seen_index["text"]
    assert RUN_ID in seen_index["text"] and "Failed" in seen_index["text"]
    assert any(f"/{RUN_ID}/" in (href or "") for href in seen_index["links"])
    # the prompt_version's page: its expectations, scoped to it, and what failed
    text = seen_page["text"]
    assert "values must belong to this set: billing technical account" in text
    assert "values must not open with a refusal" in text  # replaybench's own, rendered
    assert "Evaluated Expectations" in text and RUN_ID in text
    assert "unexpected" in text and "<EMAIL_1>" in text and EMAIL not in text
    assert HOSTILE in text  # an answer's HTML is shown as text, never run
    assert seen_page["images"] == ["../../../../static/images/logo-long.png"]
    assert seen_phone["text"] == text and not seen_phone["overflow"]  # readable on a phone
