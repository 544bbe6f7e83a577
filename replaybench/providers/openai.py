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

Every field is read through `read`, which names a field of the wrong shape.
"""

from __future__ import annotations

import re
from typing import Any

from replaybench import tokens
from replaybench.providers import read
from replaybench.providers.base import BAD_REQUEST, BAD_RESPONSE, Completion, Failure, HTTPProvider, register

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
    text = read.text_at(message, "reasoning_content", where) or read.text_at(message, "reasoning", where)
    if text:
        return text
    details = read.list_at(message, "reasoning_details", where)
    if details:
        return "".join(read.text_at(d, "text", f"{where}.reasoning_details[]") or ""
                       for d in details if isinstance(d, dict)) or None
    return None


def apply_usage(out: Completion, usage: Any, where: str = "usage") -> None:
    """OpenAI-style usage → OTel GenAI semantics (input includes cached, output includes reasoning)."""
    usage = read.as_object(usage, where)
    if not usage:
        return
    # DeepSeek counts its cache hits in a field of its own
    for name, value in tokens.chat_completions(usage, read.token_count, where, read.as_object,
                                               cache_hit="prompt_cache_hit_tokens").items():
        setattr(out, name, value)


@register("openai")
class OpenAIChat(HTTPProvider):
    """POST {base_url}/chat/completions, streamed (to measure TTFT) or not."""

    path = "/chat/completions"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
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
            return await self.exchange(body)
        except Failure as failure:
            sent = next((f for f in CAP_FIELDS if f in body), None)
            other = CAP_FIELDS[1 - CAP_FIELDS.index(sent)] if sent else None
            if failure.kind == BAD_REQUEST and other and other in str(failure) \
                    and sent in str(failure).replace(other, ""):
                # the endpoint named the field it wants for this model: use it from now on
                self.cap_fields[body["model"]] = other
                return await self.exchange(self.body(messages, params))
            raise

    def parse(self, raw: bytes) -> Completion:
        data = read.as_object(read.load_json(raw, "response body"), "the response body", required=True)
        choices = read.list_at(data, "choices", "response", required=True)
        if not choices:
            raise Failure(BAD_RESPONSE, f"no choices in the response body: {raw[:200]!r}")
        choice = read.as_object(choices[0], "response.choices[0]", required=True)
        message = read.object_at(choice, "message", "response.choices[0]", required=True)
        where = "response.choices[0].message"
        content, inline = split_think(read.text_at(message, "content", where))
        out = Completion(output_text=content, reasoning_text=reasoning_of(message, where) or inline,
                         finish_reason=read.text_at(choice, "finish_reason", "response.choices[0]"))
        apply_usage(out, data.get("usage"), "response.usage")
        return out

    async def read_stream(self, resp, start: float) -> Completion:
        out = Completion()
        pieces = read.Pieces(out, start)
        # once a token: each field is taken as it is when it has the usual type, and read
        # through its typed accessor (which names what is wrong) when it has not
        where = "stream chunk.choices[].delta"
        async for arrived, payload in self.events(resp, start):
            if payload == b"[DONE]":
                break
            chunk = read.load_json(payload, "stream chunk")
            if chunk.__class__ is not dict:
                chunk = read.as_object(chunk, "a stream chunk", required=True)
            if "error" in chunk:
                raise Failure(BAD_RESPONSE, f"error in stream: {str(chunk['error'])[:200]}")
            choices = chunk.get("choices")
            if choices.__class__ is not list:
                choices = read.list_at(chunk, "choices", "stream chunk")
            for choice in choices:
                if choice.__class__ is not dict:
                    choice = read.as_object(choice, "stream chunk.choices[]", required=True)
                delta = choice.get("delta")
                if delta.__class__ is not dict:
                    delta = read.object_at(choice, "delta", "stream chunk.choices[]")
                piece = delta.get("content")
                if piece is not None and piece.__class__ is not str:
                    piece = read.text_at(delta, "content", where)
                thought = (reasoning_of(delta, where) if "reasoning_content" in delta
                           or "reasoning" in delta or "reasoning_details" in delta else None)
                if piece or thought:
                    pieces.arrived(arrived)
                if piece:
                    pieces.text.append(piece)
                if thought:
                    pieces.reasoning.append(thought)
                finish = choice.get("finish_reason")
                if finish is not None and finish.__class__ is not str:
                    finish = read.text_at(choice, "finish_reason", "stream chunk.choices[]")
                if finish:
                    out.finish_reason = finish
            if chunk.get("usage"):
                apply_usage(out, chunk["usage"], "stream chunk.usage")
        else:
            raise Failure(BAD_RESPONSE, "stream ended before [DONE]")
        out.output_text, inline = split_think("".join(pieces.text))
        out.reasoning_text = "".join(pieces.reasoning) or inline
        out.output_tps = pieces.speed()
        return out
