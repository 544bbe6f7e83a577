"""The wire dialects of the fleet: how an answer looks on the OpenAI and on the Anthropic endpoint.

Pure functions from a Completion to bytes and dicts; the app (replaybench.sim.app) does the I/O.
What both share lives here: text cut into deltas, SSE events, and an answer cut open around its
text (`Shape`) for the faults that fill the text otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def split(text: str, parts: int) -> list[str]:
    """`text` in up to `parts` pieces whose concatenation is exactly `text`."""
    if not text:
        return []
    size = max(1, -(-len(text) // parts))
    return [text[i:i + size] for i in range(0, len(text), size)]


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    """One server-sent event with an `event:` line (Anthropic's streams)."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@dataclass(frozen=True)
class Shape:
    """One endpoint's answer cut open around its text, for the faults that fill it otherwise."""

    stream_head: bytes                   # SSE up to the first text delta
    stream_delta: Callable[[str], bytes]  # one text delta as SSE
    stream_tail: bytes                   # SSE after the last text delta, the end marker included
    body_head: bytes                     # the JSON answer up to its text's opening quote
    body_tail: bytes                     # from its text's closing quote on
    garbage_bodies: tuple[bytes, ...]    # 200 bodies of the wrong shape
    garbage_events: tuple[bytes, ...]    # SSE events of the wrong shape


# (status, body, headers) of the error a fault is answered with
FaultError = tuple[int, dict[str, Any], dict[str, str]]
MARK = "@@replaybench-fill@@"  # stands for the text in an answer that cut() opens


def cut(payload: dict[str, Any]) -> tuple[bytes, bytes]:
    """A JSON answer whose text is MARK, as the bytes before and after that text."""
    head, tail = json.dumps(payload, separators=(",", ":")).encode().split(MARK.encode())
    return head, tail
