"""The Jinja environment every page and e-mail is rendered with, and its formatting filters.

Everything from logs, models and the config is autoescaped; an undefined name is an error, not an
empty string. Each filter shows a missing number as "—".
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from replaybench.decide.scores import outward


def environment() -> Environment:
    """The Jinja environment of the package's templates, with the filters below."""
    env = Environment(
        loader=PackageLoader("replaybench", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pct=pct, pts=pts, usd=usd, num=num, ms=ms, sgn=sgn, interval=interval)
    return env


def pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x * 100:.{digits}f} %"


def pts(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:+.1f}"


def interval(row: dict[str, Any]) -> str:
    """A row's quality interval in points, rounded outwards ("[-3.1, +0.4]"); "" without one."""
    if row.get("delta_low") is None or row.get("delta_high") is None:
        return ""
    low, high = outward(row["delta_low"], row["delta_high"])
    return f"[{low}, {high}]"


def usd(x: float | None) -> str:
    if x is None:
        return "—"
    return f"${x:.4f}" if x < 1 else f"${x:,.2f}"


def sgn(x: float | None, digits: int = 0) -> str:
    return "—" if x is None else f"{x:+,.{digits}f}"


def num(x: float | None, digits: int = 0) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def ms(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f} ms" if x < 10_000 else f"{x / 1000:,.1f} s"
