"""Anthropic's Messages API, natively: POST {base_url}/messages.

Differences from the OpenAI shape, normalised here: system prompts travel outside `messages`;
`max_tokens` is required; the answer is a list of content blocks (`thinking` blocks are the
reasoning); `usage.input_tokens` excludes cache reads and writes, which are added back so that input
tokens include cached ones (OTel GenAI); reasoning tokens are not reported and are estimated.
"""

from __future__ import annotations

import json
import time
from typing import Any

from replaybench.logformats import message_text
from replaybench.providers.base import (
    BAD_RESPONSE,
    SERVER_ERROR,
    SIM_HEADER,
    Completion,
    Failure,
    HTTPProvider,
    broken_body_is_bad_response,
    http_failure,
    sse_data,
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


def apply_usage(out: Completion, usage: dict[str, Any]) -> None:
    if "input_tokens" in usage:
        read = usage.get("cache_read_input_tokens") or 0
        written = usage.get("cache_creation_input_tokens") or 0
        out.input_tokens = usage["input_tokens"] + read + written
        out.cached_tokens = read
    if "output_tokens" in usage:
        out.output_tokens = usage["output_tokens"]


class AnthropicMessages(HTTPProvider):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.url = self.candidate.base_url.rstrip("/") + "/messages"
        self.headers = {"anthropic-version": API_VERSION}
        if self.api_key:
            self.headers["x-api-key"] = self.api_key

    async def _attempt(self, messages: list[dict], params: dict[str, Any]) -> Completion:
        body = request_body(self.model_for(params), messages, params, self.candidate.stream)
        start = time.perf_counter()
        async with self.client.stream("POST", self.url, json=body, headers=self.headers) as resp:
            if resp.status_code >= 400:
                raise http_failure(resp, (await resp.aread()).decode(errors="replace"))
            simulated = resp.headers.get(SIM_HEADER) == "true"
            with broken_body_is_bad_response():
                if self.candidate.stream:
                    out = await self._read_stream(resp, start)
                else:
                    out = self._parse(await resp.aread())
        out.simulated = simulated
        return out

    def _parse(self, raw: bytes) -> Completion:
        try:
            data = json.loads(raw)
            blocks = data["content"]
        except (ValueError, KeyError, TypeError):
            raise Failure(BAD_RESPONSE, f"unreadable response body: {raw[:200]!r}") from None
        out = Completion(
            output_text="".join(b.get("text", "") for b in blocks if b.get("type") == "text"),
            reasoning_text="".join(b.get("thinking", "") for b in blocks
                                   if b.get("type") == "thinking") or None,
            finish_reason=data.get("stop_reason"),
        )
        apply_usage(out, data.get("usage") or {})
        return out

    async def _read_stream(self, resp, start: float) -> Completion:
        out = Completion()
        text: list[str] = []
        thinking: list[str] = []
        async for payload in sse_data(resp):
            try:
                event = json.loads(payload)
            except ValueError:
                raise Failure(BAD_RESPONSE, f"unreadable stream event: {payload[:200]!r}") from None
            kind = event.get("type")
            if kind == "message_start":
                apply_usage(out, event.get("message", {}).get("usage") or {})
            elif kind == "content_block_delta":
                delta = event.get("delta", {})
                if out.ttft_ms is None:
                    out.ttft_ms = (time.perf_counter() - start) * 1000
                if delta.get("type") == "text_delta":
                    text.append(delta.get("text", ""))
                elif delta.get("type") == "thinking_delta":
                    thinking.append(delta.get("thinking", ""))
            elif kind == "message_delta":
                out.finish_reason = event.get("delta", {}).get("stop_reason") or out.finish_reason
                apply_usage(out, event.get("usage") or {})
            elif kind == "error":
                error = event.get("error", {})
                raise Failure(SERVER_ERROR, f"error in stream: {error.get('type')}: "
                                            f"{error.get('message', '')[:200]}")
            elif kind == "message_stop":
                break
        else:
            raise Failure(BAD_RESPONSE, "stream ended before message_stop")
        out.output_text = "".join(text)
        out.reasoning_text = "".join(thinking) or None
        return out
