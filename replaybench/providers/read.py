"""Reading what an endpoint sent: typed accessors that turn a body or chunk of the wrong shape into
a bad response naming the field (`response.choices[0].message.content is a number 3, not text`),
never an exception of Python's; and the speed at which a streamed answer arrived."""

from __future__ import annotations

import time
from typing import Any

from replaybench.fastjson import loads
from replaybench.providers.base import BAD_RESPONSE, Completion, Failure


def _shown(value: Any) -> str:
    """A JSON value as a reason shows it: its kind, and the start of it."""
    if value is None:
        return "null"
    kind = ("a boolean" if isinstance(value, bool) else "a number" if isinstance(value, int | float)
            else "a string" if isinstance(value, str) else "a list" if isinstance(value, list)
            else "an object" if isinstance(value, dict) else f"a {type(value).__name__}")
    text = repr(value)
    return f"{kind} {text[:60]}{'...' if len(text) > 60 else ''}"


def malformed(where: str, value: Any, wanted: str) -> Failure:
    return Failure(BAD_RESPONSE, f"malformed response: {where} is {_shown(value)}, not {wanted}")


def load_json(raw: bytes, what: str) -> Any:
    """Parsed JSON, or a bad response naming `what` could not be read."""
    try:
        return loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python recurses
        raise Failure(BAD_RESPONSE, f"unreadable {what}: {raw[:200]!r}") from None


def as_object(value: Any, where: str, required: bool = False) -> dict[str, Any]:
    """`value` if it is a JSON object; {} if it is absent and may be."""
    if isinstance(value, dict):
        return value
    if value is None and not required:
        return {}
    raise malformed(where, value, "an object")


def object_at(parent: dict[str, Any], key: str, where: str,
              required: bool = False) -> dict[str, Any]:
    """parent[key] as an object ({} if absent and it may be); `where` names the parent."""
    value = parent.get(key)
    if isinstance(value, dict):
        return value
    if value is None and not required:
        return {}
    raise malformed(f"{where}.{key}", value, "an object")


def list_at(parent: dict[str, Any], key: str, where: str, required: bool = False) -> list[Any]:
    """parent[key] as a list ([] if absent and it may be)."""
    value = parent.get(key)
    if isinstance(value, list):
        return value
    if value is None and not required:
        return []
    raise malformed(f"{where}.{key}", value, "a list")


def text_at(parent: dict[str, Any], key: str, where: str) -> str | None:
    """parent[key] as text, or None if absent."""
    value = parent.get(key)
    if value is None or isinstance(value, str):
        return value
    raise malformed(f"{where}.{key}", value, "text")


def token_count(value: Any, where: str) -> int | None:
    """A token count (a whole number >= 0; 12.0 is 12), or None if absent; `where` names it."""
    if value is None or (type(value) is int and value >= 0):
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:  # not NaN, not inf
        return int(value)
    raise malformed(where, value, "a token count")


def output_speed(tokens: int | None, first: float | None, last: float | None) -> float | None:
    """Output tokens per second while the answer arrived, from the read that brought its first
    piece to the read that brought its last (perf_counter() times). An answer that arrived at
    once, in one piece or in one read, has no measurable speed: None, never tokens / ~0 s."""
    if not tokens or first is None or last is None or last <= first:
        return None
    return tokens / (last - first)


class Pieces:
    """A streamed answer as its pieces arrive: the text, the reasoning, and the reads that brought
    the first and the last piece (the answer's TTFT and output speed)."""

    def __init__(self, out: Completion, start: float):
        self.out, self.start = out, start
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.first: float | None = None
        self.last: float | None = None

    def arrived(self, at: float) -> None:
        """A piece of the answer came in the read at `at` (a perf_counter() time)."""
        self.first, self.last = at if self.first is None else self.first, at
        if self.out.ttft_ms is None:
            self.out.ttft_ms = (time.perf_counter() - self.start) * 1000

    def speed(self) -> float | None:
        """Output tokens per second, first piece to last (`output_speed`)."""
        return output_speed(self.out.output_tokens, self.first, self.last)
