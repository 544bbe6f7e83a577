"""Anthropic's Messages API, natively: POST {base_url}/messages.

Differences from the OpenAI shape, normalised here: system prompts travel outside `messages`;
`max_tokens` is required; the answer is a list of content blocks (`thinking` blocks are the
reasoning); `usage.input_tokens` excludes cache reads and writes, which are added back so that input
tokens include cached ones (OTel GenAI); reasoning tokens are not reported and are estimated.
Every field is read through base's typed accessors: a body or event of the wrong shape is a bad
response that names the field, never an exception.
"""

from __future__ import annotations

import time
from typing import Any

from replaybench.ingest.formats import message_text
from replaybench.providers.base import (
    BAD_REQUEST,
    BAD_RESPONSE,
    SERVER_ERROR,
    SIM_HEADER,
    Completion,
    Failure,
    HTTPProvider,
    as_object,
    broken_body_is_bad_response,
    count_at,
    list_at,
    load_json,
    object_at,
    output_speed,
    text_at,
)

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
PASSED = ("temperature", "top_p", "top_k", "metadata", "thinking")


def request_body(model: str, messages: list[dict], params: dict[str, Any],
                 stream: bool) -> dict[str, Any]:
    """An OpenAI-style request as a Messages API body."""
    system = "\n\n".join(message_text(m.get("content")) or "" for m in messages
                         if m.get("role") == "system")
    turns = [{"role": m["role"], "content": message_text(m.get("content")) or ""}
             for m in messages if m.get("role") in ("user", "assistant")]
    body: dict[str, Any] = {
        "model": model,
        "messages": turns,
        "max_tokens": params.get("max_tokens") or params.get("max_completion_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        body["system"] = system
    if params.get("stop"):
        stop = params["stop"]
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    body.update({k: params[k] for k in PASSED if k in params})
    if stream:
        body["stream"] = True
    return body


def apply_usage(out: Completion, usage: Any, where: str) -> None:
    """Anthropic usage → OTel GenAI semantics (input includes cache reads and writes)."""
    usage = as_object(usage, where)
    fresh = count_at(usage, "input_tokens", where)
    if fresh is not None:
        read = count_at(usage, "cache_read_input_tokens", where) or 0
        written = count_at(usage, "cache_creation_input_tokens", where) or 0
        out.input_tokens = fresh + read + written
        out.cached_tokens = read
    if "output_tokens" in usage:
        out.output_tokens = count_at(usage, "output_tokens", where)


class AnthropicMessages(HTTPProvider):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.url = self.candidate.base_url.rstrip("/") + "/messages"
        self.headers = {"anthropic-version": API_VERSION, "Content-Type": "application/json"}
        if self.api_key:
            self.headers["x-api-key"] = self.api_key

    async def _attempt(self, messages: list[dict], params: dict[str, Any]) -> Completion:
        model = self.model_for(params)
        try:
            body = request_body(model, messages, params, self.candidate.stream)
        except (TypeError, KeyError, AttributeError, ValueError) as exc:  # a malformed log entry
            raise Failure(BAD_REQUEST, f"request cannot be built for the Messages API: "
                                       f"{type(exc).__name__}: {exc}") from None
        start = time.perf_counter()
        async with self.post(self.url, body, self.headers) as resp:
            await self.checked(resp)
            simulated = resp.headers.get(SIM_HEADER) == "true"
            with broken_body_is_bad_response():
                if self.candidate.stream:
                    out = await self._read_stream(resp, start)
                else:
                    out = self._parse(await self.read_body(resp))
        out.simulated = simulated
        return out

    def _parse(self, raw: bytes) -> Completion:
        data = as_object(load_json(raw, "response body"), "the response body", required=True)
        text: list[str] = []
        thinking: list[str] = []
        for block in list_at(data, "content", "response", required=True):
            block = as_object(block, "response.content[]", required=True)
            if block.get("type") == "text":
                text.append(text_at(block, "text", "response.content[]") or "")
            elif block.get("type") == "thinking":
                thinking.append(text_at(block, "thinking", "response.content[]") or "")
        out = Completion(output_text="".join(text), reasoning_text="".join(thinking) or None,
                         finish_reason=text_at(data, "stop_reason", "response"))
        apply_usage(out, data.get("usage"), "response.usage")
        return out

    async def _read_stream(self, resp, start: float) -> Completion:
        out = Completion()
        text: list[str] = []
        thinking: list[str] = []
        first = last = None  # when the first and the last piece of the answer arrived
        async for arrived, payload in self.events(resp, start):
            event = as_object(load_json(payload, "stream event"), "a stream event", required=True)
            kind = event.get("type")
            if kind == "message_start":
                message = object_at(event, "message", "message_start")
                apply_usage(out, message.get("usage"), "message_start.message.usage")
            elif kind == "content_block_delta":
                delta = object_at(event, "delta", "content_block_delta")
                first, last = arrived if first is None else first, arrived
                if out.ttft_ms is None:
                    out.ttft_ms = (time.perf_counter() - start) * 1000
                if delta.get("type") == "text_delta":
                    text.append(text_at(delta, "text", "content_block_delta.delta") or "")
                elif delta.get("type") == "thinking_delta":
                    thinking.append(text_at(delta, "thinking", "content_block_delta.delta") or "")
            elif kind == "message_delta":
                delta = object_at(event, "delta", "message_delta")
                out.finish_reason = (text_at(delta, "stop_reason", "message_delta.delta")
                                     or out.finish_reason)
                apply_usage(out, event.get("usage"), "message_delta.usage")
            elif kind == "error":  # the endpoint's own error, reported whatever its shape
                error = event.get("error")
                detail = (f"{error.get('type')}: {str(error.get('message', ''))[:200]}"
                          if isinstance(error, dict) else str(error)[:200])
                raise Failure(SERVER_ERROR, f"error in stream: {detail}")
            elif kind == "message_stop":
                break
        else:
            raise Failure(BAD_RESPONSE, "stream ended before message_stop")
        out.output_text = "".join(text)
        out.reasoning_text = "".join(thinking) or None
        out.output_tps = output_speed(out.output_tokens, first, last)
        return out
