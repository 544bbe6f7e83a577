"""OpenAI-compatible chat completions (OpenAI, GLM, DeepSeek, MiniMax, vLLM, the local fleet)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from replaybench.config import Candidate
from replaybench.errors import scrub
from replaybench.providers.base import (
    BAD_RESPONSE,
    SERVER_ERROR,
    TIMEOUT,
    Completion,
    error_kind_for_status,
)

SIM_HEADER = "x-replaybench-simulated"


class OpenAIChat:
    """POST {base_url}/chat/completions, streamed (to measure TTFT) or not."""

    def __init__(self, candidate: Candidate, api_key: str | None, client: httpx.AsyncClient):
        self.candidate = candidate
        self.url = candidate.base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client

    def body(self, messages: list[dict], params: dict[str, Any]) -> dict[str, Any]:
        body = {"model": self.candidate.model, "messages": messages, **params}
        if self.candidate.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def complete(self, messages: list[dict], params: dict[str, Any]) -> Completion:
        start = time.perf_counter()
        body = self.body(messages, params)
        try:
            if self.candidate.stream:
                result = await self._stream(body, start)
            else:
                result = await self._plain(body)
        except httpx.TimeoutException:
            result = Completion(status="error", error_kind=TIMEOUT,
                                error=f"no answer within {self.candidate.timeout_s:g} s")
        except httpx.TransportError as exc:
            result = Completion(status="error", error_kind=SERVER_ERROR,
                                error=f"connection failed: {type(exc).__name__}: {exc}")
        except _BadResponse as exc:
            result = Completion(status="error", error_kind=BAD_RESPONSE, error=str(exc))
        result.latency_ms = (time.perf_counter() - start) * 1000
        if result.error:
            result.error = scrub(result.error)[:500]
        return result

    async def _plain(self, body: dict[str, Any]) -> Completion:
        resp = await self.client.post(self.url, json=body, headers=self.headers)
        if resp.status_code >= 400:
            return _http_error(resp.status_code, resp.text)
        try:
            data = resp.json()
            message = data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _BadResponse(f"unreadable response body: {resp.text[:200]!r}") from None
        out = Completion(
            output_text=message.get("content"),
            reasoning_text=_reasoning(message),
            finish_reason=data["choices"][0].get("finish_reason"),
            simulated=resp.headers.get(SIM_HEADER) == "true",
        )
        _apply_usage(out, data.get("usage"))
        return out

    async def _stream(self, body: dict[str, Any], start: float) -> Completion:
        content: list[str] = []
        reasoning: list[str] = []
        out = Completion()
        done = False
        async with self.client.stream("POST", self.url, json=body, headers=self.headers) as resp:
            if resp.status_code >= 400:
                return _http_error(resp.status_code, (await resp.aread()).decode(errors="replace"))
            out.simulated = resp.headers.get(SIM_HEADER) == "true"
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    done = True
                    break
                try:
                    chunk = json.loads(payload)
                except json.JSONDecodeError:
                    raise _BadResponse(f"unreadable stream chunk: {payload[:200]!r}") from None
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    piece, thought = delta.get("content"), _reasoning(delta)
                    if (piece or thought) and out.ttft_ms is None:
                        out.ttft_ms = (time.perf_counter() - start) * 1000
                    if piece:
                        content.append(piece)
                    if thought:
                        reasoning.append(thought)
                    if choice.get("finish_reason"):
                        out.finish_reason = choice["finish_reason"]
                if chunk.get("usage"):
                    _apply_usage(out, chunk["usage"])
        if not done:
            raise _BadResponse("stream ended before [DONE]")
        out.output_text = "".join(content)
        out.reasoning_text = "".join(reasoning) or None
        return out


class _BadResponse(Exception):
    pass


def _http_error(code: int, text: str) -> Completion:
    """A failed call, keeping the provider's own message."""
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = text.strip()[:200]
    return Completion(status="error", error_kind=error_kind_for_status(code),
                      error=f"HTTP {code}: {message}")


def _reasoning(message: dict[str, Any]) -> str | None:
    return message.get("reasoning_content") or message.get("reasoning")


def _apply_usage(out: Completion, usage: dict[str, Any] | None) -> None:
    """OpenAI usage → OTel GenAI semantics (input includes cached, output includes reasoning)."""
    if not usage:
        return
    out.input_tokens = usage.get("prompt_tokens")
    out.output_tokens = usage.get("completion_tokens")
    out.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    out.reasoning_tokens = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
