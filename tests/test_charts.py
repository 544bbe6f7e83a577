"""Charts: inline SVG for the page (well-formed, self-contained, hostile names escaped), small PNGs
for the e-mail, the frontier they draw, and the word diff of failing answers."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from replaybench.decide import extras
from replaybench.report import charts
from replaybench.report.diff import word_diff

HOSTILE = "<b>x</b><script>alert(1)</script>"


def row(model, pass_rate, cost, tokens=100.0, p50=400.0, p95=900.0, trend=None):
    return {"model": model, "pass_rate": pass_rate, "cost_per_task_usd": cost,
            "output_tokens_per_task": tokens, "latency_p50_ms": p50, "latency_p95_ms": p95,
            "on_frontier": None, "trend": trend}


ROWS = [
    row("prod", 0.80, 0.0040, trend={"pass_rates": [0.78, 0.81, 0.80]}),
    row(HOSTILE, 0.85, 0.0020, tokens=250, trend={"pass_rates": [0.9, 0.85]}),
    row("cheap", 0.60, 0.0005, tokens=60, p50=200, p95=300),
    row("dominated", 0.70, 0.0030),
    row("best", 0.92, 0.0090, tokens=400, p50=900, p95=2500),
    row("unscored", None, None, tokens=None, p50=None, p95=None),
]
SECTION = {"anchor": "pv-triage-v4", "prompt_version": "triage@v4", "rows": ROWS}


def test_frontier_picks_the_undominated_points_cheapest_first():
    assert [r["model"] for r in charts.frontier(ROWS)] == ["cheap", HOSTILE, "best"]
    assert charts.frontier([]) == []
    assert [r["model"] for r in charts.frontier([row("a", 0.5, 0.01), row("b", 0.5, 0.02)])] == ["a"]


def test_a_tie_is_no_domination():
    """Production and its own replay, at the same pass rate and a cost that differs only in the
    last bits of a float (numbers of the demo's call-summary@v1): both on the frontier."""
    tie = [row("production", 0.9385964912280702, 0.002331742105263158),
           row("production-replay", 0.9385964912280702, 0.0023317421052631575)]
    assert extras.pareto_frontier(tie) == {"production", "production-replay"}
    assert extras.pareto_frontier([row("a", 0.8, 0.002), row("b", 0.8, 0.002)]) == {"a", "b"}
    # a lead on one axis and a tie on the other still dominates
    assert extras.pareto_frontier([row("a", 0.8, 0.002), row("b", 0.8, 0.001)]) == {"b"}
    assert extras.pareto_frontier([row("a", 0.8, 0.002), row("b", 0.9, 0.002)]) == {"b"}
    # a row without a cost is not placed at all: neither on the frontier nor dominated
    assert extras.pareto_frontier([row("a", 0.8, 0.002), row("b", 0.9, None)]) == {"a"}
    assert not extras.plottable(row("b", 0.9, None))


def test_section_svgs_are_self_contained_responsive_xml():
    svgs = charts.section_svgs(SECTION)
    assert list(svgs) == ["quality_cost", "tokens", "latency", "trend"]
    for name, svg in svgs.items():
        root = ET.fromstring(svg)  # well-formed: parses as XML
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert svg.startswith("<svg") and "<?xml" not in svg and "<!DOCTYPE" not in svg
        assert root.get("width") == "100%" and root.get("height") is None and root.get("viewBox")
        assert "<script" not in svg.lower()
        assert set(re.findall(r"https?://[^\"'\s<>)]*", svg)) == {"http://www.w3.org/2000/svg"}, name
        assert "<style" not in svg and "<metadata" not in svg
        assert all(i.startswith(f"pv-triage-v4-{name}-") for i in re.findall(r'\sid="([^"]+)"', svg))


def test_hostile_model_names_are_escaped_text():
    svgs = charts.section_svgs(SECTION)
    for name in ("quality_cost", "tokens", "latency", "trend"):
        svg = svgs[name]
        assert "<b>" not in svg and "<script>" not in svg
        texts = ["".join(t.itertext()) for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]
        assert HOSTILE in texts, name  # shown as the literal name


def test_svgs_are_deterministic_and_ids_differ_between_charts():
    one, two = charts.section_svgs(SECTION), charts.section_svgs(SECTION)
    assert one == two
    ids = [set(re.findall(r'\sid="([^"]+)"', svg)) for svg in one.values()]
    assert not set.intersection(*ids)


def test_trend_needs_two_points_and_empty_rows_draw_nothing():
    flat = {"anchor": "pv-x", "rows": [row("a", 0.5, 0.01)]}
    assert "trend" not in charts.section_svgs(flat)
    assert charts.section_svgs({"anchor": "pv-y", "rows": []}) == {}


def test_png_charts_are_small_pngs_keyed_by_content_id():
    sections = [SECTION, {"anchor": "pv-ünï@v1", "prompt_version": "ünï@v1", "rows": ROWS},
                {"anchor": "pv-empty", "prompt_version": "empty", "rows": []}]
    pngs = charts.png_charts({"sections": sections})
    assert list(pngs) == ["chart-pv-triage-v4", "chart-pv--n--v1"]
    for key, data in pngs.items():
        assert re.fullmatch(r"chart-[A-Za-z0-9-]+", key)
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert 1_000 < len(data) < 40_000


def test_word_diff_marks_exactly_the_changed_words():
    cand, prod = word_diff("the cat sat on the mat", "the dog sat on a mat")
    assert cand == "the <mark>cat</mark> sat on <mark>the</mark> mat"
    assert prod == "the <mark>dog</mark> sat on <mark>a</mark> mat"
    same = word_diff("a  b\nc", "a  b\nc")
    assert same == ("a  b\nc", "a  b\nc")  # whitespace kept, nothing marked
    cand, prod = word_diff("yes", "yes, because the order shipped")
    assert cand == "<mark>yes</mark>" and prod == "<mark>yes, because the order shipped</mark>"
    assert word_diff(None, "x") is None


def test_word_diff_escapes_markup_on_either_side():
    cand, prod = word_diff("ok <script>alert(1)</script> done", "ok <img src=x onerror=y> done")
    for side in (cand, prod):
        assert "<script" not in side and "<img" not in side
        assert re.sub(r"</?mark>", "", str(side)).count("<") == 0  # only <mark> is markup
    assert "<mark>&lt;script&gt;alert(1)&lt;/script&gt;</mark>" in cand
    assert "<mark>&lt;img src=x onerror=y&gt;</mark>" in prod
    same, _ = word_diff("<b>same</b>", "<b>same</b>")
    assert same == "&lt;b&gt;same&lt;/b&gt;"
