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

Every field is read through base's typed accessors: a body or chunk of the wrong shape is a bad
response that names the field, never an exception.
"""

from __future__ import annotations

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
    as_object,
    broken_body_is_bad_response,
    count_at,
    list_at,
    load_json,
    object_at,
    output_speed,
    text_at,
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


def reasoning_of(message: dict[str, Any], where: str) -> str | None:
    """Reasoning text from whichever field this provider uses (`where` names the message)."""
    text = text_at(message, "reasoning_content", where) or text_at(message, "reasoning", where)
    if text:
        return text
    details = list_at(message, "reasoning_details", where)
    if details:
        return "".join(text_at(d, "text", f"{where}.reasoning_details[]") or ""
                       for d in details if isinstance(d, dict)) or None
    return None


def apply_usage(out: Completion, usage: Any, where: str = "usage") -> None:
    """OpenAI-style usage → OTel GenAI semantics (input includes cached, output includes reasoning)."""
    usage = as_object(usage, where)
    if not usage:
        return
    out.input_tokens = count_at(usage, "prompt_tokens", where)
    out.output_tokens = count_at(usage, "completion_tokens", where)
    out.cached_tokens = count_at(object_at(usage, "prompt_tokens_details", where),
                                 "cached_tokens", f"{where}.prompt_tokens_details")
    if out.cached_tokens is None:
        out.cached_tokens = count_at(usage, "prompt_cache_hit_tokens", where)
    out.reasoning_tokens = count_at(object_at(usage, "completion_tokens_details", where),
                                    "reasoning_tokens", f"{where}.completion_tokens_details")


class OpenAIChat(HTTPProvider):
    """POST {base_url}/chat/completions, streamed (to measure TTFT) or not."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.url = self.candidate.base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Content-Type": "application/json"}
        if self.api_key:
            self.headers["Authorization"] = f"Bearer {self.api_key}"
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
        async with self.post(self.url, body, self.headers) as resp:
            await self.checked(resp)
            with broken_body_is_bad_response():
                if self.candidate.stream:
                    return await self._read_stream(resp, start)
                return self._parse(await self.read_body(resp),
                                   resp.headers.get(SIM_HEADER) == "true")

    def _parse(self, raw: bytes, simulated: bool) -> Completion:
        data = as_object(load_json(raw, "response body"), "the response body", required=True)
        choices = list_at(data, "choices", "response", required=True)
        if not choices:
            raise Failure(BAD_RESPONSE, f"no choices in the response body: {raw[:200]!r}")
        choice = as_object(choices[0], "response.choices[0]", required=True)
        message = object_at(choice, "message", "response.choices[0]", required=True)
        where = "response.choices[0].message"
        content, inline = split_think(text_at(message, "content", where))
        out = Completion(output_text=content, reasoning_text=reasoning_of(message, where) or inline,
                         finish_reason=text_at(choice, "finish_reason", "response.choices[0]"),
                         simulated=simulated)
        apply_usage(out, data.get("usage"), "response.usage")
        return out

    async def _read_stream(self, resp, start: float) -> Completion:
        out = Completion(simulated=resp.headers.get(SIM_HEADER) == "true")
        content: list[str] = []
        reasoning: list[str] = []
        first = last = None  # when the first and the last piece of the answer arrived
        # once a token: each field is taken as it is when it has the usual type, and read
        # through its typed accessor (which names what is wrong) when it has not
        where = "stream chunk.choices[].delta"
        async for arrived, payload in self.events(resp, start):
            if payload == b"[DONE]":
                break
            chunk = load_json(payload, "stream chunk")
            if chunk.__class__ is not dict:
                chunk = as_object(chunk, "a stream chunk", required=True)
            if "error" in chunk:
                raise Failure(BAD_RESPONSE, f"error in stream: {str(chunk['error'])[:200]}")
            choices = chunk.get("choices")
            if choices.__class__ is not list:
                choices = list_at(chunk, "choices", "stream chunk")
            for choice in choices:
                if choice.__class__ is not dict:
                    choice = as_object(choice, "stream chunk.choices[]", required=True)
                delta = choice.get("delta")
                if delta.__class__ is not dict:
                    delta = object_at(choice, "delta", "stream chunk.choices[]")
                piece = delta.get("content")
                if piece is not None and piece.__class__ is not str:
                    piece = text_at(delta, "content", where)
                thought = (reasoning_of(delta, where) if "reasoning_content" in delta
                           or "reasoning" in delta or "reasoning_details" in delta else None)
                if piece or thought:
                    first, last = arrived if first is None else first, arrived
                    if out.ttft_ms is None:
                        out.ttft_ms = (time.perf_counter() - start) * 1000
                if piece:
                    content.append(piece)
                if thought:
                    reasoning.append(thought)
                finish = choice.get("finish_reason")
                if finish is not None and finish.__class__ is not str:
                    finish = text_at(choice, "finish_reason", "stream chunk.choices[]")
                if finish:
                    out.finish_reason = finish
            if chunk.get("usage"):
                apply_usage(out, chunk["usage"], "stream chunk.usage")
        else:
            raise Failure(BAD_RESPONSE, "stream ended before [DONE]")
        out.output_text, inline = split_think("".join(content))
        out.reasoning_text = "".join(reasoning) or inline
        out.output_tps = output_speed(out.output_tokens, first, last)
        return out
