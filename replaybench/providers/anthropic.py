"""Anthropic's Messages API, natively: POST {base_url}/messages.

Differences from the OpenAI shape, normalised here: system prompts travel outside `messages`;
`max_tokens` is required; the answer is a list of content blocks (`thinking` blocks are the
reasoning); `usage.input_tokens` excludes cache reads and writes, which are added back so that input
tokens include cached ones (OTel GenAI); reasoning tokens are not reported and are estimated.
Every field is read through `read`, which names a field of the wrong shape.
"""

from __future__ import annotations

from typing import Any

from replaybench import tokens
from replaybench.providers import read
from replaybench.providers.base import (
    BAD_REQUEST,
    BAD_RESPONSE,
    SERVER_ERROR,
    Completion,
    Failure,
    HTTPProvider,
    register,
)
from replaybench.tokens import message_text

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
    usage = read.as_object(usage, where)
    counts = tokens.anthropic(usage, read.token_count, where)
    # a stream's usage comes in parts (message_start, message_delta): each sets what it holds
    if counts["input_tokens"] is not None:
        out.input_tokens = counts["input_tokens"]
        out.cached_tokens = counts["cached_tokens"] or 0  # no cache read is a count of 0 here
    if "output_tokens" in usage:
        out.output_tokens = counts["output_tokens"]


@register("anthropic")
class AnthropicMessages(HTTPProvider):
    """POST {base_url}/messages, streamed (to measure TTFT) or not."""

    path = "/messages"

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"anthropic-version": API_VERSION} | ({"x-api-key": api_key} if api_key else {})

    def body(self, messages: list[dict], params: dict[str, Any]) -> dict[str, Any]:
        try:
            return request_body(self.model_for(params), messages, params, self.candidate.stream)
        except (TypeError, KeyError, AttributeError, ValueError) as exc:  # a malformed log entry
            raise Failure(BAD_REQUEST, f"request cannot be built for the Messages API: "
                                       f"{type(exc).__name__}: {exc}") from None

    def parse(self, raw: bytes) -> Completion:
        data = read.as_object(read.load_json(raw, "response body"), "the response body", required=True)
        text: list[str] = []
        thinking: list[str] = []
        for block in read.list_at(data, "content", "response", required=True):
            block = read.as_object(block, "response.content[]", required=True)
            if block.get("type") == "text":
                text.append(read.text_at(block, "text", "response.content[]") or "")
            elif block.get("type") == "thinking":
                thinking.append(read.text_at(block, "thinking", "response.content[]") or "")
        out = Completion(output_text="".join(text), reasoning_text="".join(thinking) or None,
                         finish_reason=read.text_at(data, "stop_reason", "response"))
        apply_usage(out, data.get("usage"), "response.usage")
        return out

    async def read_stream(self, resp, start: float) -> Completion:
        out = Completion()
        pieces = read.Pieces(out, start)
        async for arrived, payload in self.events(resp, start):
            event = read.as_object(read.load_json(payload, "stream event"), "a stream event", required=True)
            kind = event.get("type")
            if kind == "message_start":
                message = read.object_at(event, "message", "message_start")
                apply_usage(out, message.get("usage"), "message_start.message.usage")
            elif kind == "content_block_delta":
                delta = read.object_at(event, "delta", "content_block_delta")
                pieces.arrived(arrived)
                where = "content_block_delta.delta"
                if delta.get("type") == "text_delta":
                    pieces.text.append(read.text_at(delta, "text", where) or "")
                elif delta.get("type") == "thinking_delta":
                    pieces.reasoning.append(read.text_at(delta, "thinking", where) or "")
            elif kind == "message_delta":
                delta = read.object_at(event, "delta", "message_delta")
                out.finish_reason = (read.text_at(delta, "stop_reason", "message_delta.delta")
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
        out.output_text = "".join(pieces.text)
        out.reasoning_text = "".join(pieces.reasoning) or None
        out.output_tps = pieces.speed()
        return out
