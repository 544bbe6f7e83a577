"""The OpenAI chat-completions shapes of the simulated fleet, in each profile's dialect.

Pure functions: the handler (replaybench.sim.app.chat_completions) does the I/O. A profile's
`dialect` decides where reasoning text and cache counts go and which parameters are refused:

    dialect    reasoning text                      usage                          refuses
    generic    message.reasoning_content           cached_tokens, reasoning_tokens  -
    openai     none (hidden)                       cached_tokens, reasoning_tokens  max_tokens
    glm        message.reasoning_content           cached_tokens only               max_completion_tokens
    deepseek   message.reasoning_content           prompt_cache_hit/miss_tokens,    -
                                                   reasoning_tokens
    minimax    inline "<think>..</think>\n" before  cached_tokens, reasoning_tokens  -
               content; with reasoning_split: true
               message.reasoning_details
    vllm       message.reasoning                   cached_tokens only               -
    anthropic  as generic on this endpoint
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from replaybench.sim.dialects import MARK, FaultError, Shape, cut, split
from replaybench.sim.faults import (
    ABSURD_RETRY_AFTER_S,
    CompiledFaults,
    go_duration,
    openai_rate_limit_headers,
)
from replaybench.sim.profiles import Completion

CONTENT_CHUNKS = 6  # content deltas per streamed answer (fewer for very short answers)
REASONING_CHUNKS = 3
FINGERPRINT = "replaybench-sim"
_FAULT_ERRORS: dict[str, tuple[int, str, str, str | None]] = {  # status, message, type, code
    "rate_limited": (429, "Rate limit reached for requests (simulated). Please try again later.",
                     "requests", "rate_limit_exceeded"),
    "absurd_retry_after": (429, "Rate limit reached for requests (simulated). Please try again in "
                                f"{go_duration(ABSURD_RETRY_AFTER_S)}.", "requests",
                           "rate_limit_exceeded"),
    "server_error": (500, "The server had an error while processing your request (simulated).",
                     "server_error", None),
    "unavailable": (503, "The engine is currently overloaded, please try again later (simulated).",
                    "server_error", "service_unavailable"),
}


def error_body(message: str, type_: str, code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def fault_error(fault: str, faults: CompiledFaults) -> FaultError | None:
    """The error a fault is answered with on this endpoint; None for a fault that is not one."""
    if fault not in _FAULT_ERRORS:
        return None
    status, message, type_, code = _FAULT_ERRORS[fault]
    headers = {}
    if status == 429:
        wait = ABSURD_RETRY_AFTER_S if fault == "absurd_retry_after" else None
        headers = openai_rate_limit_headers(faults, wait)
    return status, error_body(message, type_, code), headers


def refusal(dialect: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The 400 error body of a parameter this dialect refuses, or None."""
    if dialect == "openai" and body.get("max_tokens") is not None:
        return error_body("Unsupported parameter: 'max_tokens' is not supported with this model. "
                          "Use 'max_completion_tokens' instead.", "invalid_request_error",
                          "unsupported_parameter", "max_tokens")
    if dialect == "glm" and body.get("max_completion_tokens") is not None:
        return error_body("Unsupported parameter: 'max_completion_tokens' is not supported by "
                          "this model. Use 'max_tokens' instead.", "invalid_request_error",
                          "unsupported_parameter", "max_completion_tokens")
    return None


def ident(profile_name: str, seed: int, c: Completion) -> str:
    """The completion id: stable for the same profile, seed and answer."""
    return "chatcmpl-" + hashlib.sha256(
        f"{profile_name}\x00{seed}\x00{c.content}".encode()).hexdigest()[:24]


def reasoning_field(dialect: str, text: str, split_: bool) -> dict[str, Any]:
    """Where a dialect puts reasoning text, in a message or a delta ({} for none)."""
    if not text or dialect == "openai":
        return {}
    if dialect == "vllm":
        return {"reasoning": text}
    if dialect == "minimax":  # inline unless split (the caller puts the inline form in content)
        return {"reasoning_details": [{"type": "reasoning.text", "text": text}]} if split_ else {}
    return {"reasoning_content": text}


def usage(dialect: str, c: Completion) -> dict[str, Any]:
    """The `usage` object as this dialect counts."""
    if dialect == "glm" or dialect == "vllm":
        return {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                "total_tokens": c.prompt_tokens + c.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": c.cached_tokens}}
    if dialect == "deepseek":
        return {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                "total_tokens": c.prompt_tokens + c.completion_tokens,
                "prompt_cache_hit_tokens": c.cached_tokens,
                "prompt_cache_miss_tokens": c.prompt_tokens - c.cached_tokens,
                "completion_tokens_details": {"reasoning_tokens": c.reasoning_tokens}}
    return c.usage()


def _completion(ident_: str, created: int, model: str, message: dict[str, Any],
                usage_: dict[str, Any]) -> dict[str, Any]:
    return {"id": ident_, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": usage_, "system_fingerprint": FINGERPRINT}


def completion(dialect: str, split_: bool, c: Completion, model: str, ident_: str,
               created: int) -> bytes:
    """The non-streamed answer, as JSON bytes."""
    content = c.content
    if dialect == "minimax" and not split_ and c.reasoning_content:
        content = f"<think>{c.reasoning_content}</think>\n{content}"
    message: dict[str, Any] = {"role": "assistant", "content": content,
                               **reasoning_field(dialect, c.reasoning_content, split_)}
    return json.dumps(_completion(ident_, created, model, message, usage(dialect, c))).encode()


def judge_completion(content: str, model: str, created: int) -> dict[str, Any]:
    """The fleet's answer as an LLM judge: `content` at no token cost."""
    return _completion("chatcmpl-judge-" + hashlib.sha256(content.encode()).hexdigest()[:16],
                       created, model, {"role": "assistant", "content": content},
                       {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})


def chunk_maker(model: str, ident_: str, created: int
                ) -> Callable[[dict[str, Any], str | None], bytes]:
    """chunk(delta, finish_reason=None): one chat.completion.chunk as an SSE event."""
    prefix = f'data: {{"id":"{ident_}","object":"chat.completion.chunk","created":{created},' \
             f'"model":{json.dumps(model)},"choices":[{{"index":0,"delta":'

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return (prefix + json.dumps(delta, separators=(",", ":")) +
                f',"finish_reason":{json.dumps(finish)}}}]}}\n\n').encode()

    return chunk


def chunks(dialect: str, split_: bool, c: Completion, model: str, ident_: str, created: int,
           include_usage: bool, content_chunks: int = CONTENT_CHUNKS
           ) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(head, deltas, tail) of the SSE answer."""
    chunk = chunk_maker(model, ident_, created)

    deltas: list[dict[str, Any]] = []
    pieces = split(c.reasoning_content, REASONING_CHUNKS) if dialect != "openai" else []
    if dialect == "minimax" and not split_ and pieces:
        pieces[0] = "<think>" + pieces[0]
        pieces[-1] += "</think>\n"
        deltas += [{"content": piece} for piece in pieces]
    else:
        deltas += [reasoning_field(dialect, piece, split_) for piece in pieces]
    deltas += [{"content": piece} for piece in split(c.content, content_chunks)]
    tail = [chunk({}, "stop")]
    if include_usage:
        usage_ = json.dumps({"id": ident_, "object": "chat.completion.chunk", "created": created,
                             "model": model, "choices": [], "usage": usage(dialect, c)},
                            separators=(",", ":"))
        tail.append(f"data: {usage_}\n\n".encode())
    tail.append(b"data: [DONE]\n\n")
    return [chunk({"role": "assistant", "content": ""})], [chunk(d) for d in deltas], tail


def shape(dialect: str, c: Completion, model: str, ident_: str, created: int) -> Shape:
    """The answer cut open around its text, for the hostile faults."""
    chunk = chunk_maker(model, ident_, created)
    head, tail = cut(_completion(ident_, created, model, {"role": "assistant", "content": MARK},
                                 usage(dialect, c)))
    return Shape(
        stream_head=chunk({"role": "assistant", "content": ""}, None),
        stream_delta=lambda text: chunk({"content": text}, None),
        stream_tail=chunk({}, "stop") + b"data: [DONE]\n\n",
        body_head=head, body_tail=tail,
        garbage_bodies=(
            b'{"choices":[{"message":"str"}]}',
            b'{"id":"x","object":"chat.completion","choices":"none"}',
            b'[1,2]',
            b'{"choices":[{"index":0,"message":{"role":"assistant","content":{"text":"hi"}}}]}',
            b'{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},'
            b'"finish_reason":"stop"}],"usage":{"prompt_tokens":-3,"completion_tokens":"many"}}'),
        garbage_events=(
            b"data: [1,2]\n\n",
            b'data: {"choices":[{"delta":"str"}]}\n\n',
            b'data: {"choices":[{"index":0,"delta":{"content":5}}]}\n\n',
            b'data: "text"\n\n'))
