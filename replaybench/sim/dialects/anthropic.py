"""The Anthropic Messages API shapes of the simulated fleet: request conversion, answer, SSE, errors.

Pure functions: the handler (replaybench.sim.app.anthropic_messages) does the I/O. Usage follows
Anthropic's semantics: `input_tokens` counts the uncached input only, the cached part is
`cache_read_input_tokens`; `output_tokens` includes the thinking.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from replaybench.sim.dialects import MARK, FaultError, Shape, cut, split, sse_event
from replaybench.sim.faults import ABSURD_RETRY_AFTER_S, CompiledFaults, anthropic_rate_limit_headers
from replaybench.sim.profiles import Completion
from replaybench.sim.tokens import message_text

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
THINKING_CHUNKS = 3
TEXT_CHUNKS = 6


def error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error object; its `type` follows from the status."""
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
    """Anthropic's usage object: the cached input apart, thinking counted in the output."""
    return {"input_tokens": c.prompt_tokens - c.cached_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": c.cached_tokens,
            "output_tokens": c.completion_tokens if output_tokens is None else output_tokens}


def ident(profile_name: str, seed: int, c: Completion) -> str:
    """The message id: stable for the same profile, seed and answer."""
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


def stream_events(c: Completion, model: str, ident_: str
                  ) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(head, deltas, tail) of the SSE answer; a delta may carry block start/stop events too."""
    start = {"id": ident_, "type": "message", "role": "assistant", "model": model, "content": [],
             "stop_reason": None, "stop_sequence": None, "usage": usage(c, output_tokens=1)}
    head = [sse_event("message_start", {"type": "message_start", "message": start}),
            sse_event("ping", {"type": "ping"})]
    deltas: list[bytes] = []
    blocks = []
    if c.reasoning_content:
        blocks.append(("thinking", split(c.reasoning_content, THINKING_CHUNKS)))
    blocks.append(("text", split(c.content, TEXT_CHUNKS) or [""]))
    for index, (kind, pieces) in enumerate(blocks):
        opening = sse_event("content_block_start", {
            "type": "content_block_start", "index": index,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""}
            if kind == "thinking" else {"type": "text", "text": ""}})
        for i, piece in enumerate(pieces):
            delta = {"type": "thinking_delta", "thinking": piece} if kind == "thinking" else \
                {"type": "text_delta", "text": piece}
            data = sse_event("content_block_delta",
                          {"type": "content_block_delta", "index": index, "delta": delta})
            if i == 0:
                data = opening + data
            if i == len(pieces) - 1:
                if kind == "thinking":
                    data += sse_event("content_block_delta", {
                        "type": "content_block_delta", "index": index,
                        "delta": {"type": "signature_delta", "signature": _signature(ident_)}})
                data += sse_event("content_block_stop", {"type": "content_block_stop", "index": index})
            deltas.append(data)
    tail = [sse_event("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                     "usage": {"output_tokens": c.completion_tokens}}),
            sse_event("message_stop", {"type": "message_stop"})]
    return head, deltas, tail


def fault_error(fault: str, faults: CompiledFaults) -> FaultError | None:
    """The error a fault is answered with on this endpoint; None for a fault that is not one."""
    if fault == "rate_limited":
        return 429, error_body(429, "Number of requests has exceeded your rate limit (simulated)."), \
            anthropic_rate_limit_headers(faults)
    if fault == "absurd_retry_after":
        return 429, error_body(429, "Number of requests has exceeded your rate limit (simulated): "
                                    "try again tomorrow."), \
            anthropic_rate_limit_headers(faults, ABSURD_RETRY_AFTER_S)
    if fault == "server_error":
        return 500, error_body(500, "Internal server error (simulated)."), {}
    if fault == "unavailable":
        return 529, error_body(529, "Overloaded (simulated)."), {}
    return None


def shape(c: Completion, model: str, ident_: str) -> Shape:
    """The answer cut open around its text (no thinking), for the hostile faults."""
    head, _, tail = stream_events(c, model, ident_)
    body_head, body_tail = cut(message(replace(c, content=MARK, reasoning_content=""), model, ident_))
    return Shape(
        stream_head=b"".join(head) + sse_event("content_block_start", {
            "type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        stream_delta=lambda text: sse_event("content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": text}}),
        stream_tail=sse_event("content_block_stop", {"type": "content_block_stop", "index": 0})
        + b"".join(tail),
        body_head=body_head, body_tail=body_tail,
        garbage_bodies=(
            b'{"type":"message","role":"assistant","content":"str"}',
            b'{"type":"message","content":[{"type":"text","text":5}]}',
            b'[1,2]',
            b'{"type":"message","content":[],"usage":{"input_tokens":-1}}'),
        garbage_events=(
            b"event: content_block_delta\ndata: [1,2]\n\n",
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":"str"}\n\n',
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":5}}\n\n',
            b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":7}}\n\n'))
