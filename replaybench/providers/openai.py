"""OpenAI-compatible chat completions: OpenAI, GLM, DeepSeek, MiniMax, vLLM, OpenRouter, the fleet.

Their differences, normalised here:
- reasoning text arrives as `reasoning_content` (GLM, DeepSeek), `reasoning` (vLLM, OpenRouter),
  `reasoning_details` (MiniMax with reasoning_split) or inline `<think>…</think>` (MiniMax default);
  it is moved out of the answer into `reasoning_text`;
- reasoning tokens come from `completion_tokens_details.reasoning_tokens`, or are estimated from the
  reasoning text and marked so (GLM reports none);
- cached input is `prompt_tokens_details.cached_tokens` (OpenAI, GLM) or `prompt_cache_hit_tokens`
  (DeepSeek);
- the output cap is `max_tokens` or `max_completion_tokens` (`max_tokens_field`); an endpoint that
  refuses one name and asks for the other is answered in its own terms from then on.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from replaybench.providers.base import (
    BAD_REQUEST,
    BAD_RESPONSE,
    SIM_HEADER,
    Completion,
    Failure,
    HTTPProvider,
    broken_body_is_bad_response,
    http_failure,
    sse_data,
)

CAP_FIELDS = ("max_tokens", "max_completion_tokens")
_THINK = re.compile(r"^\s*<think>(.*?)(?:</think>\s*|$)", re.DOTALL)


def split_think(content: str | None) -> tuple[str | None, str | None]:
    """(answer, reasoning) from content that may open with an inline <think> block."""
    if not content or "<think>" not in content[:64]:
        return content, None
    m = _THINK.match(content)
    if not m:
        return content, None
    return content[m.end():], m.group(1).strip() or None


def reasoning_of(message: dict[str, Any]) -> str | None:
    """Reasoning text from whichever field this provider uses."""
    text = message.get("reasoning_content") or message.get("reasoning")
    if text:
        return text
    details = message.get("reasoning_details")
    if details:
        return "".join(d.get("text", "") for d in details if isinstance(d, dict)) or None
    return None


def apply_usage(out: Completion, usage: dict[str, Any] | None) -> None:
    """OpenAI-style usage → OTel GenAI semantics (input includes cached, output includes reasoning)."""
    if not usage:
        return
    out.input_tokens = usage.get("prompt_tokens")
    out.output_tokens = usage.get("completion_tokens")
    out.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if out.cached_tokens is None:
        out.cached_tokens = usage.get("prompt_cache_hit_tokens")
    out.reasoning_tokens = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")


class OpenAIChat(HTTPProvider):
    """POST {base_url}/chat/completions, streamed (to measure TTFT) or not."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.url = self.candidate.base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        # the cap field each model wants, learnt from its refusals: per model, since a replay of
        # production (`@logged`) asks several models at once through one provider
        self.cap_fields: dict[str, str] = {}

    def body(self, messages: list[dict], params: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in params.items() if k not in CAP_FIELDS and k != "model"}
        model = self.model_for(params)
        cap = params.get("max_tokens", params.get("max_completion_tokens"))
        if cap is not None:
            body[self.cap_fields.get(model, self.candidate.max_tokens_field)] = cap
        body.update(model=model, messages=messages)
        if self.candidate.stream:
            body.update(stream=True, stream_options={"include_usage": True})
        return body

    async def _attempt(self, messages: list[dict], params: dict[str, Any]) -> Completion:
        body = self.body(messages, params)
        try:
            return await self._exchange(body)
        except Failure as failure:
            sent = next((f for f in CAP_FIELDS if f in body), None)
            other = CAP_FIELDS[1 - CAP_FIELDS.index(sent)] if sent else None
            if failure.kind == BAD_REQUEST and other and other in str(failure) \
                    and sent in str(failure).replace(other, ""):
                # the endpoint named the field it wants for this model: use it from now on
                self.cap_fields[body["model"]] = other
                return await self._exchange(self.body(messages, params))
            raise

    async def _exchange(self, body: dict[str, Any]) -> Completion:
        start = time.perf_counter()
        async with self.client.stream("POST", self.url, json=body, headers=self.headers) as resp:
            if resp.status_code >= 400:
                raise http_failure(resp, (await resp.aread()).decode(errors="replace"))
            with broken_body_is_bad_response():
                if self.candidate.stream:
                    return await self._read_stream(resp, start)
                return self._parse(await resp.aread(), resp.headers.get(SIM_HEADER) == "true")

    def _parse(self, raw: bytes, simulated: bool) -> Completion:
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise Failure(BAD_RESPONSE, f"unreadable response body: {raw[:200]!r}") from None
        content, inline = split_think(message.get("content"))
        out = Completion(output_text=content, reasoning_text=reasoning_of(message) or inline,
                         finish_reason=choice.get("finish_reason"), simulated=simulated)
        apply_usage(out, data.get("usage"))
        return out

    async def _read_stream(self, resp, start: float) -> Completion:
        out = Completion(simulated=resp.headers.get(SIM_HEADER) == "true")
        content: list[str] = []
        reasoning: list[str] = []
        async for payload in sse_data(resp):
            if payload == b"[DONE]":
                break
            try:
                chunk = json.loads(payload)
            except ValueError:
                raise Failure(BAD_RESPONSE, f"unreadable stream chunk: {payload[:200]!r}") from None
            if "error" in chunk:
                raise Failure(BAD_RESPONSE, f"error in stream: {str(chunk['error'])[:200]}")
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                piece, thought = delta.get("content"), reasoning_of(delta)
                if out.ttft_ms is None and (piece or thought):
                    out.ttft_ms = (time.perf_counter() - start) * 1000
                if piece:
                    content.append(piece)
                if thought:
                    reasoning.append(thought)
                if choice.get("finish_reason"):
                    out.finish_reason = choice["finish_reason"]
            if chunk.get("usage"):
                apply_usage(out, chunk["usage"])
        else:
            raise Failure(BAD_RESPONSE, "stream ended before [DONE]")
        out.output_text, inline = split_think("".join(content))
        out.reasoning_text = "".join(reasoning) or inline
        return out
