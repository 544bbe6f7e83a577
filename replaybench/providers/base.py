"""What every provider returns, and the retry loop every provider shares.

A provider implements `_attempt(messages, params)`: one HTTP exchange that returns a `Completion` or
raises `Failure`. `complete()` wraps it in the endpoint's limits, a per-attempt timeout, retries
with exponential backoff and jitter (honouring Retry-After and the providers' reset headers), a
total deadline, and the final bookkeeping (latency, output speed, estimated reasoning tokens).

Error classes stored with a failed replay, and what to do about each:
    rate_limited   429: lower max_concurrency / requests_per_minute, or ask for a higher quota
    timeout        no answer in time (408 too): raise timeout_s, or the endpoint is overloaded
    server_error   5xx, 409, connection refused or reset: the endpoint is down or struggling
    bad_response   truncated or invalid JSON, a stream cut short: the endpoint or a proxy broke it
    auth           401/403: the key in api_key_env is wrong, expired, or lacks this model
    bad_request    other 4xx: the request is wrong for this endpoint (model name, parameters)
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx

from replaybench.config import Candidate
from replaybench.errors import scrub
from replaybench.limits import Limiter

RATE_LIMITED, TIMEOUT, SERVER_ERROR = "rate_limited", "timeout", "server_error"
BAD_RESPONSE, AUTH, BAD_REQUEST = "bad_response", "auth", "bad_request"
RETRYABLE = {RATE_LIMITED, TIMEOUT, SERVER_ERROR, BAD_RESPONSE}

SIM_HEADER = "x-replaybench-simulated"


@dataclass
class Completion:
    """One answer (or final failure) from an endpoint, with usage and timing."""

    status: str = "ok"                 # ok | error
    output_text: str | None = None
    reasoning_text: str | None = None
    finish_reason: str | None = None
    input_tokens: int | None = None    # includes cached tokens (OTel GenAI)
    output_tokens: int | None = None   # includes reasoning tokens
    reasoning_tokens: int | None = None
    reasoning_estimated: bool = False  # the provider reported no count: estimated from the text
    cached_tokens: int | None = None
    latency_ms: float | None = None    # of the successful attempt
    ttft_ms: float | None = None
    output_tps: float | None = None    # output tokens per second after the first token
    error: str | None = None
    error_kind: str | None = None
    attempts: int = 0
    simulated: bool = False

    def as_row(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Completion:
        """The answer held by a stored row (a cache row, a journal line): its fields, the rest
        of the row ignored."""
        return cls(**{k: v for k, v in row.items() if k in cls.__dataclass_fields__})


class Failure(Exception):
    """One failed attempt: its error class, message, and any wait the endpoint asked for."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


def estimate_tokens(text: str | None) -> int:
    """Roughly four characters a token: for rate budgets and for providers that report no count."""
    return math.ceil(len(text) / 4) if text else 0


def kind_for_status(code: int) -> str:
    if code in (401, 403):
        return AUTH
    if code == 429:
        return RATE_LIMITED
    if code == 408:
        return TIMEOUT
    if code == 409 or code >= 500:
        return SERVER_ERROR
    return BAD_REQUEST


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def _seconds(value: str) -> float | None:
    """A wait from a header: seconds ('2', '0.5'), a Go duration ('6m0s', '20ms'), an HTTP date
    or an ISO-8601 time (Anthropic's resets)."""
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if parts and "".join(n + u for n, u in parts) == value:
        scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
        return sum(float(n) * scale[u] for n, u in parts)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


RESET_HEADERS = ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens",
                 "anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-reset",
                 "anthropic-ratelimit-input-tokens-reset", "anthropic-ratelimit-output-tokens-reset")


def retry_after(headers: httpx.Headers) -> float | None:
    """How long the endpoint asked us to wait: Retry-After, else the providers' reset headers."""
    if "retry-after-ms" in headers:
        ms = _seconds(headers["retry-after-ms"])
        return ms / 1000 if ms is not None else None
    if "retry-after" in headers:
        return _seconds(headers["retry-after"])
    waits = [w for h in RESET_HEADERS if h in headers and (w := _seconds(headers[h])) is not None]
    return max(waits) if waits else None


def http_failure(response: httpx.Response, body: str) -> Failure:
    """A failed status as a Failure, keeping the provider's own message."""
    message = body.strip()[:300]
    try:
        data = json.loads(body)
        error = data.get("error", data)
        message = error.get("message") or message if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        pass
    return Failure(kind_for_status(response.status_code), f"HTTP {response.status_code}: {message}",
                   retry_after(response.headers))


def is_timeout(exc: httpx.TransportError) -> bool:
    """A real timeout (the aiohttp transport reports a refused connection as ConnectTimeout)."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(
            cause, aiohttp.ServerTimeoutError | aiohttp.SocketTimeoutError):
        return False
    return isinstance(exc, httpx.TimeoutException)


def transport_failure(exc: httpx.TransportError, timeout_s: float) -> Failure:
    if is_timeout(exc):
        return Failure(TIMEOUT, f"no answer within {timeout_s:g} s")
    cause = exc.__cause__ or exc
    return Failure(SERVER_ERROR, f"connection failed: {type(cause).__name__}: {cause}")


async def sse_data(response: httpx.Response) -> AsyncIterator[bytes]:
    """The `data:` payloads of a server-sent event stream, as they arrive (raw bytes are split by
    hand: httpx's text and line decoders cost more CPU than the rest of a request together)."""
    pending = b""
    async for chunk in response.aiter_raw():
        pending += chunk
        if b"\n" not in chunk:
            continue
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.startswith(b"data:"):
                yield line[5:].strip()
    if pending.startswith(b"data:"):
        yield pending[5:].strip()


@contextmanager
def broken_body_is_bad_response() -> Iterator[None]:
    """A connection that breaks after the status line arrived broke the body, not the endpoint."""
    try:
        yield
    except httpx.TransportError as exc:
        if is_timeout(exc):
            raise
        cause = exc.__cause__ or exc
        raise Failure(BAD_RESPONSE, f"response cut off: {type(cause).__name__}: {cause}") from None


class HTTPProvider:
    """The retry loop, limits and bookkeeping shared by every HTTP provider."""

    def __init__(self, candidate: Candidate, api_key: str | None, client: httpx.AsyncClient,
                 limiter: Limiter):
        self.candidate = candidate
        self.api_key = api_key
        self.client = client
        self.limiter = limiter
        self.retry = candidate.retry

    def model_for(self, params: dict[str, Any]) -> str:
        """The model to ask: the candidate's, or for a production replay the request's own."""
        return params["model"] if self.candidate.replays_production else self.candidate.model

    async def _attempt(self, messages: list[dict], params: dict[str, Any]) -> Completion:
        raise NotImplementedError

    async def complete(self, messages: list[dict], params: dict[str, Any]) -> Completion:
        """Ask until an answer arrives, a non-retryable error, the last attempt or the deadline."""
        deadline = time.monotonic() + self.retry.deadline_s
        estimate = sum(estimate_tokens(str(m.get("content", ""))) for m in messages) + int(
            params.get("max_tokens") or params.get("max_completion_tokens") or 0)
        failure = Failure(TIMEOUT, "no attempt made before the deadline")
        attempts = 0
        while attempts < self.retry.max_attempts:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            attempts += 1
            async with self.limiter.slot(estimate):
                start = time.perf_counter()
                try:
                    async with asyncio.timeout(min(self.candidate.timeout_s, remaining)):
                        answer = await self._attempt(messages, params)
                except Failure as exc:
                    failure = exc
                except TimeoutError:
                    failure = Failure(TIMEOUT, f"no answer within {self.candidate.timeout_s:g} s")
                except httpx.TransportError as exc:
                    failure = transport_failure(exc, self.candidate.timeout_s)
                else:
                    self.limiter.settle(estimate, (answer.input_tokens or 0) + (answer.output_tokens or 0))
                    return self._finish(answer, start, attempts)
            if failure.kind not in RETRYABLE:
                break
            wait = self._backoff(attempts, failure)
            if failure.kind == RATE_LIMITED and failure.retry_after is not None:
                self.limiter.cool_down(failure.retry_after)
            if attempts >= self.retry.max_attempts or time.monotonic() + wait >= deadline:
                break
            await asyncio.sleep(wait)
        return Completion(status="error", error_kind=failure.kind, attempts=attempts,
                          error=scrub(str(failure))[:500])

    def _backoff(self, attempt: int, failure: Failure) -> float:
        """The endpoint's own wait if it gave one, else exponential backoff with jitter."""
        if failure.retry_after is not None:
            return min(failure.retry_after, self.retry.max_backoff_s) + random.uniform(0, 0.1)
        ceiling = min(self.retry.max_backoff_s, self.retry.backoff_s * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _finish(self, answer: Completion, start: float, attempts: int) -> Completion:
        answer.attempts = attempts
        answer.latency_ms = (time.perf_counter() - start) * 1000
        if answer.reasoning_tokens is None and answer.reasoning_text:
            answer.reasoning_tokens = estimate_tokens(answer.reasoning_text)
            answer.reasoning_estimated = True
        if answer.ttft_ms is not None and answer.output_tokens:
            generating = (answer.latency_ms - answer.ttft_ms) / 1000
            if generating > 0:
                answer.output_tps = answer.output_tokens / generating
        return answer
