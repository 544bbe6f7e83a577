"""The Anthropic Messages API shapes of the simulated fleet: request conversion, answer, SSE, errors.

Pure functions: the handler (replaybench.sim.server.anthropic_messages) does the I/O. Usage follows
Anthropic's semantics: `input_tokens` counts the uncached input only, the cached part is
`cache_read_input_tokens`; `output_tokens` includes the thinking.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from replaybench.sim.profiles import Completion
from replaybench.sim.tokens import message_text

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
THINKING_CHUNKS = 3
TEXT_CHUNKS = 6


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"),
                                       "message": message}}


def to_chat_messages(body: dict[str, Any]) -> list[dict[str, Any]] | str:
    """The request's system + messages as chat messages (text only), or why they are invalid."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and m.get("role") in ("user", "assistant") for m in messages):
        return "messages: a non-empty list of {role: user|assistant, content} objects is required"
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        out.append({"role": "system", "content": message_text(system)})
    out += [{"role": m["role"], "content": message_text(m.get("content"))} for m in messages]
    return out


def usage(c: Completion, output_tokens: int | None = None) -> dict[str, int]:
    return {"input_tokens": c.prompt_tokens - c.cached_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": c.cached_tokens,
            "output_tokens": c.completion_tokens if output_tokens is None else output_tokens}


def ident(profile_name: str, seed: int, c: Completion) -> str:
    digest = hashlib.sha256(f"{profile_name}\x00{seed}\x00{c.content}".encode()).hexdigest()
    return "msg_sim" + digest[:24]


def _signature(ident_: str) -> str:
    return hashlib.sha256(("sig" + ident_).encode()).hexdigest()


def message(c: Completion, model: str, ident_: str) -> dict[str, Any]:
    """The non-streamed answer."""
    content: list[dict[str, Any]] = []
    if c.reasoning_content:
        content.append({"type": "thinking", "thinking": c.reasoning_content,
                        "signature": _signature(ident_)})
    content.append({"type": "text", "text": c.content})
    return {"id": ident_, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": "end_turn", "stop_sequence": None,
            "usage": usage(c)}


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _split(text: str, parts: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // parts))
    return [text[i:i + size] for i in range(0, len(text), size)]


def stream_events(c: Completion, model: str, ident_: str
                  ) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(head, deltas, tail) of the SSE answer; a delta may carry block start/stop events too."""
    start = {"id": ident_, "type": "message", "role": "assistant", "model": model, "content": [],
             "stop_reason": None, "stop_sequence": None, "usage": usage(c, output_tokens=1)}
    head = [_event("message_start", {"type": "message_start", "message": start}),
            _event("ping", {"type": "ping"})]
    deltas: list[bytes] = []
    blocks = []
    if c.reasoning_content:
        blocks.append(("thinking", _split(c.reasoning_content, THINKING_CHUNKS)))
    blocks.append(("text", _split(c.content, TEXT_CHUNKS) or [""]))
    for index, (kind, pieces) in enumerate(blocks):
        opening = _event("content_block_start", {
            "type": "content_block_start", "index": index,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""}
            if kind == "thinking" else {"type": "text", "text": ""}})
        for i, piece in enumerate(pieces):
            delta = {"type": "thinking_delta", "thinking": piece} if kind == "thinking" else \
                {"type": "text_delta", "text": piece}
            data = _event("content_block_delta",
                          {"type": "content_block_delta", "index": index, "delta": delta})
            if i == 0:
                data = opening + data
            if i == len(pieces) - 1:
                if kind == "thinking":
                    data += _event("content_block_delta", {
                        "type": "content_block_delta", "index": index,
                        "delta": {"type": "signature_delta", "signature": _signature(ident_)}})
                data += _event("content_block_stop", {"type": "content_block_stop", "index": index})
            deltas.append(data)
    tail = [_event("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                     "usage": {"output_tokens": c.completion_tokens}}),
            _event("message_stop", {"type": "message_stop"})]
    return head, deltas, tail
