"""Charts for the report (inline SVG) and the e-mail (small PNG), drawn with matplotlib.

Per prompt_version: quality (pass rate) against cost per task with the Pareto frontier as a step
line, output tokens per task, latency p50/p95, and the pass rate over the last runs. Everything is
drawn offline and deterministically (fixed hash salt, no date in the metadata); the SVG is made
responsive and self-contained (no prolog, no metadata, no external references, ids unique per chart)
so it can be inlined in the page. Model names are user-controlled text: matplotlib escapes them.
"""

from __future__ import annotations

import io
import re
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot; we draw on Figure objects, never pyplot

from matplotlib.figure import Figure  # noqa: E402

from replaybench.decide import extras  # noqa: E402

SVG_SIZE = (4.8, 3.0)            # inches; the page scales the SVG to its grid cell
PNG_SIZE, PNG_DPI = (6.0, 3.75), 80  # 480 × 300 px for the e-mail
RC = {"svg.hashsalt": "replaybench", "svg.fonttype": "none", "font.size": 8,
      "axes.spines.top": False, "axes.spines.right": False}
FRONTIER, DOMINATED, P50, P95 = "#0969da", "#8c959f", "#54aeff", "#0550ae"
TITLES = {"quality_cost": "Quality vs cost per task", "tokens": "Output tokens per task",
          "latency": "Latency p50 / p95", "trend": "Pass rate, last runs"}


def frontier(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows on the quality–cost Pareto frontier (same rule as `extras.pareto_frontier`),
    cheapest first: along it, pass rate rises with cost."""
    on = extras.pareto_frontier(rows)
    return sorted((r for r in rows if r["model"] in on),
                  key=lambda r: (r["cost_per_task_usd"], r["pass_rate"], r["model"]))


def _plotted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if extras.plottable(r)]


def _quality_cost(rows: list[dict[str, Any]], size: tuple[float, float]) -> Figure | None:
    points = _plotted(rows)
    if not points:
        return None
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    front = frontier(points)
    on = {r["model"] for r in front}
    for r in points:
        x, y = r["cost_per_task_usd"], r["pass_rate"] * 100
        ax.scatter([x], [y], s=28, zorder=3, color=FRONTIER if r["model"] in on else DOMINATED)
        ax.annotate(str(r["model"]), (x, y), xytext=(4, 3), textcoords="offset points", fontsize=7)
    if len(front) >= 2:
        xs = [r["cost_per_task_usd"] for r in front]
        ys = [r["pass_rate"] * 100 for r in front]
        ax.step(xs, ys, where="post", color=FRONTIER, linewidth=1.2, zorder=2, label="frontier")
        ax.legend(loc="lower right", fontsize=7, frameon=False)
    ax.set_xlabel("cost per task (USD)")
    ax.set_ylabel("pass rate (%)")
    ax.margins(x=0.15, y=0.12)
    ax.grid(alpha=0.3)
    return fig


def _tokens(rows: list[dict[str, Any]], size: tuple[float, float]) -> Figure | None:
    points = [r for r in rows if r.get("output_tokens_per_task") is not None]
    if not points:
        return None
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    names = [str(r["model"]) for r in points]
    ax.barh(names, [r["output_tokens_per_task"] for r in points], color=FRONTIER, height=0.6)
    ax.invert_yaxis()
    ax.set_xlabel("output tokens per task")
    ax.grid(axis="x", alpha=0.3)
    return fig


def _latency(rows: list[dict[str, Any]], size: tuple[float, float]) -> Figure | None:
    points = [r for r in rows if r.get("latency_p50_ms") is not None
              or r.get("latency_p95_ms") is not None]
    if not points:
        return None
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ys = range(len(points))
    ax.barh([y - 0.18 for y in ys], [r.get("latency_p50_ms") or 0 for r in points], height=0.36,
            color=P50, label="p50")
    ax.barh([y + 0.18 for y in ys], [r.get("latency_p95_ms") or 0 for r in points], height=0.36,
            color=P95, label="p95")
    ax.set_yticks(list(ys), [str(r["model"]) for r in points])
    ax.invert_yaxis()
    ax.set_xlabel("latency (ms)")
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _trend(rows: list[dict[str, Any]], size: tuple[float, float]) -> Figure | None:
    series = [r for r in rows if r.get("trend") and len(r["trend"]["pass_rates"]) >= 2]
    if not series:
        return None
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    longest = max(len(r["trend"]["pass_rates"]) for r in series)
    for r in series:
        rates = r["trend"]["pass_rates"]
        xs = list(range(longest - len(rates) + 1, longest + 1))  # tonight is the last run
        ax.plot(xs, [p * 100 for p in rates], marker="o", markersize=3, linewidth=1.2,
                label=str(r["model"]))
    ax.set_xticks(range(1, longest + 1),
                  [f"-{longest - i}" if i < longest else "tonight" for i in range(1, longest + 1)])
    ax.set_ylabel("pass rate (%)")
    ax.set_xlabel("run")
    ax.legend(fontsize=6, frameon=False, loc="best")
    ax.grid(alpha=0.3)
    return fig


CHARTS = {"quality_cost": _quality_cost, "tokens": _tokens, "latency": _latency, "trend": _trend}


def _svg(fig: Figure, prefix: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return _inline(buf.getvalue(), prefix)


def _inline(svg: str, prefix: str) -> str:
    """An SVG document as a responsive, self-contained element for an HTML page."""
    svg = svg[svg.index("<svg"):]                                        # no prolog, no doctype
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.S)   # RDF, creator URL
    svg = re.sub(r'\s*<style type="text/css">.*?</style>', "", svg, flags=re.S)  # a page-wide `*{}`
    svg = svg.replace('xmlns:xlink="http://www.w3.org/1999/xlink" ', "").replace("xlink:href=", "href=")
    # ids (figure_1, axes_1, marker and clip hashes) must not collide between charts on one page
    ids = set(re.findall(r'\sid="([^"]+)"', svg))
    svg = re.sub(r'(\sid="|href="#|url\(#)([^")]+)',
                 lambda m: m.group(1) + (f"{prefix}-{m.group(2)}" if m.group(2) in ids else m.group(2)),
                 svg)
    root = re.match(r"<svg[^>]*>", svg).group(0)
    new_root = re.sub(r'\s(width|height)="[^"]*"', "", root).replace(
        "<svg", '<svg width="100%" class="chart" stroke-linejoin="round" stroke-linecap="butt" '
                'preserveAspectRatio="xMidYMid meet" role="img"', 1)
    return new_root + svg[len(root):]


def section_svgs(section: dict[str, Any]) -> dict[str, str]:
    """Inline SVG strings for one prompt_version section (keys in `CHARTS` order; a chart with
    nothing to draw, e.g. the trend on a first run, is left out)."""
    out = {}
    anchor = section.get("anchor") or "pv"
    with matplotlib.rc_context(RC):  # drawing and saving both read the settings
        for name, draw in CHARTS.items():
            fig = draw(section["rows"], SVG_SIZE)
            if fig is not None:
                fig.suptitle(TITLES[name], fontsize=9)
                out[name] = _svg(fig, f"{anchor}-{name}")
    return out


def _cid(anchor: str) -> str:
    return "chart-" + (re.sub(r"[^A-Za-z0-9-]", "-", anchor) or "pv")


def png_charts(context: dict[str, Any]) -> dict[str, bytes]:
    """For the e-mail: one small PNG (480 × 300 px) of the quality–cost chart per prompt_version,
    keyed by a Content-ID-safe name `chart-<anchor>`; prompt_versions with nothing to plot are
    left out."""
    out: dict[str, bytes] = {}
    for section in context["sections"]:
        with matplotlib.rc_context(RC):
            fig = _quality_cost(section["rows"], PNG_SIZE)
            if fig is None:
                continue
            fig.suptitle(str(section.get("prompt_version", "")), fontsize=9)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=PNG_DPI, metadata={"Software": None})
        base = key = _cid(section.get("anchor") or "pv")
        i = 2
        while key in out:  # two prompt_versions whose anchors differ only in punctuation
            key, i = f"{base}-{i}", i + 1
        out[key] = buf.getvalue()
    return out
