"""What every provider returns, the registry of providers, and the exchange and retry loop every
provider shares.

A provider is a subclass of `HTTPProvider` registered by name (`@register("openai")`) in a module
of that name in this package: it says where it posts (`path`, `auth_headers`), what it sends
(`body`) and how it reads the answer (`parse`, `read_stream`); `exchange` posts and reads.
`_attempt(messages, params)` (by default one exchange) returns a `Completion` or raises `Failure`;
`complete()` wraps it in the endpoint's limits, a per-attempt timeout, retries
with exponential backoff and jitter (honouring Retry-After and the providers' reset headers, but
never past `max_backoff_s` nor the request's deadline), a total deadline, and the final
bookkeeping (latency, output speed, estimated reasoning tokens). Providers speak aiohttp directly
(an `aiohttp.ClientSession`, see `replaybench.replay.send.http_client`): each layer between the socket and the
answer costs CPU on every request and, when streaming, on every token.

Whatever an endpoint sends, and whatever a log holds, ends as a Completion: a body of the wrong
shape is read through the typed accessors of `read` (`object_at`, `text_at`, `token_count`, ...), a body
or stream past the candidate's caps (`max_response_bytes`, `max_stream_s`) is stopped while it is
read, and a request JSON cannot carry (`temperature: inf`) is never sent.

Error classes stored with a failed replay, and what to do about each:
    rate_limited   429: lower max_concurrency / requests_per_minute, or ask for a higher quota
    timeout        no answer in time (408 too): raise timeout_s, or the endpoint is overloaded
    server_error   5xx, 409, connection refused or reset: the endpoint is down or struggling
    bad_response   truncated or invalid JSON, a body of the wrong shape, a stream cut short, an
                   answer past max_response_bytes / max_stream_s: the endpoint or a proxy broke it
    auth           401/403: the key in api_key_env is wrong, expired, or lacks this model
    bad_request    other 4xx, or a request that cannot be sent (a parameter JSON cannot carry):
                   the request is wrong for this endpoint (model name, parameters)
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import aiohttp

from replaybench.config import Candidate
from replaybench.errors import scrub
from replaybench.limits import Limiter
from replaybench.tokens import estimate_tokens

RATE_LIMITED, TIMEOUT, SERVER_ERROR = "rate_limited", "timeout", "server_error"
BAD_RESPONSE, AUTH, BAD_REQUEST = "bad_response", "auth", "bad_request"
RETRYABLE = {RATE_LIMITED, TIMEOUT, SERVER_ERROR, BAD_RESPONSE}

SIM_HEADER = "x-replaybench-simulated"
ERROR_BODY_BYTES = 64 * 1024  # of a failed status's body: enough for the provider's message


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
    output_tps: float | None = None    # output tokens/s, first piece to last (None: at once)
    error: str | None = None
    error_kind: str | None = None
    attempts: int = 0
    simulated: bool = False

    def as_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COMPLETION_FIELDS}

    def reused(self) -> Completion:
        """A copy for another row that takes this answer without asking (attempts 0)."""
        copy = Completion.__new__(Completion)
        copy.__dict__.update(self.__dict__)
        copy.attempts = 0
        return copy

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Completion:
        """The answer held by a stored row (a cache row, a journal line): its fields, the rest
        of the row ignored."""
        return cls(**{k: v for k, v in row.items() if k in cls.__dataclass_fields__})


COMPLETION_FIELDS = tuple(f.name for f in fields(Completion))


class Failure(Exception):
    """One failed attempt: its error class, message, and any wait the endpoint asked for."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


def request_estimate(messages: list[Any], params: dict[str, Any]) -> int:
    """The tokens a request may use, for the rate budget: its input, roughly, and its output cap
    (a cap that is no finite number counts as none: the request will fail as bad_request)."""
    text = sum(estimate_tokens(str(m.get("content", "")) if isinstance(m, dict) else str(m))
               for m in messages)
    cap = params.get("max_tokens") or params.get("max_completion_tokens") or 0
    return text + (int(cap) if isinstance(cap, int | float) and math.isfinite(cap) and cap > 0
                   else 0)


def too_large(limit: int, declared: str = "") -> Failure:
    return Failure(BAD_RESPONSE, f"response larger than {limit} bytes{declared}: stopped reading "
                                 "(raise the candidate's max_response_bytes if such answers are "
                                 "expected)")


async def read_capped(response: aiohttp.ClientResponse, limit: int, strict: bool = True) -> bytes:
    """The (decoded) body, read until `limit` bytes: past it a bad response, or with
    strict=False the first `limit` bytes."""
    declared = response.headers.get("content-length", "")
    if strict and declared.isdigit() and int(declared) > limit:
        raise too_large(limit, f" (Content-Length: {declared})")
    chunks: list[bytes] = []
    size = 0
    content = response.content
    while chunk := await content.readany():  # whatever has arrived, at once
        size += len(chunk)
        if size > limit:
            if strict:
                raise too_large(limit)
            chunks.append(chunk[:limit - size])
            break
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def is_decoding_error(exc: BaseException) -> bool:
    """A body that is not the encoding (gzip, ...) it claims: aiohttp reports it as a payload
    error caused by a ContentEncodingError."""
    return isinstance(exc, aiohttp.ClientPayloadError) and isinstance(
        exc.__cause__, aiohttp.http_exceptions.ContentEncodingError)


# --- sending what a log holds ------------------------------------------------------------------

def unencodable(value: Any, where: str = "") -> str | None:
    """Where in a request the first value JSON cannot carry is, and what it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where or 'a value'} is {value} (JSON has no Infinity or NaN)"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int | float | bool) and key is not None:
                return f"{where or 'the body'} has a key {key!r}"
            if found := unencodable(item, f"{where}.{key}" if where else str(key)):
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            if found := unencodable(item, f"{where}[{i}]"):
                return found
    elif not isinstance(value, str | int | float | bool) and value is not None:
        return f"{where or 'a value'} is a {type(value).__name__}"
    return None


_REQUEST_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_body(body: dict[str, Any]) -> bytes:
    """The request as JSON, as httpx would encode it; a request JSON cannot carry (a logged
    `temperature: inf`, a date in the candidate's params) is a bad request, never sent."""
    try:
        return _REQUEST_JSON.encode(body).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        try:
            where = unencodable(body)
        except RecursionError:
            where = None
        raise Failure(BAD_REQUEST, f"request cannot be sent as JSON: {where or exc}: fix or "
                                   "drop it in the logged request or the candidate's params"
                      ) from None


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
    or an ISO-8601 time (Anthropic's resets). A negative or NaN number is no wait; a huge one
    (or inf) is returned as it is and clamped by the retry loop."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else None  # NaN fails the comparison too
    parts = _DURATION.findall(value)
    if parts and "".join(n + u for n, u in parts) == value:
        scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
        return sum(float(n) * scale[u] for n, u in parts)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


RESET_HEADERS = ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens",
                 "anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-reset",
                 "anthropic-ratelimit-input-tokens-reset", "anthropic-ratelimit-output-tokens-reset")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """How long the endpoint asked us to wait: Retry-After, else the providers' reset headers
    (`headers` looked up case-insensitively: aiohttp's or httpx's)."""
    if "retry-after-ms" in headers:
        ms = _seconds(headers["retry-after-ms"])
        return ms / 1000 if ms is not None else None
    if "retry-after" in headers:
        return _seconds(headers["retry-after"])
    waits = [w for h in RESET_HEADERS if h in headers and (w := _seconds(headers[h])) is not None]
    return max(waits) if waits else None


def http_failure(status: int, headers: Mapping[str, str], body: str) -> Failure:
    """A failed status as a Failure, keeping the provider's own message."""
    message = body.strip()[:300]
    try:
        data = json.loads(body)
        error = data.get("error", data)
        message = error.get("message") or message if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError, RecursionError):
        pass
    return Failure(kind_for_status(status), f"HTTP {status}: {str(message)[:300]}",
                   retry_after(headers))


# what failed in aiohttp, as the classes above: a timeout of aiohttp's own (connecting) is a
# timeout; any other connection error (refused, reset, closed, a body cut short) a server error,
# or, once the status line has arrived, a bad response (`broken_body_is_bad_response`)
TRANSPORT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
                    aiohttp.ClientResponseError)


def is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, aiohttp.ServerTimeoutError | aiohttp.SocketTimeoutError)


def transport_failure(exc: BaseException, timeout_s: float) -> Failure:
    if is_timeout(exc):
        return Failure(TIMEOUT, f"no answer within {timeout_s:g} s")
    return Failure(SERVER_ERROR, f"connection failed: {type(exc).__name__}: {exc}")


def body_reader(response: Any) -> Callable[[], Awaitable[bytes]]:
    """`read()`: the next piece of a response's body as it arrives (b"" at its end): aiohttp's
    whatever each read brought; an httpx response's raw bytes (tests hand one in)."""
    if isinstance(response, aiohttp.ClientResponse):
        return response.content.readany
    chunks = response.aiter_raw()
    return lambda: anext(chunks, b"")


class SSEData:
    """The `data:` payloads of a server-sent event stream as they arrive (`async for arrived,
    payload in ...`), each with the perf_counter() time of the read that brought it (payloads
    read together share it). Raw bytes are split by hand, which costs less than any line reader;
    an iterator class, not an async generator: one left at [DONE] needs no finalizer, which would
    wake the event loop from another thread to close it. Stopped as a bad response past
    `max_bytes` in all, or once perf_counter() passes `stop_at`."""

    def __init__(self, response: Any, max_bytes: int, stop_at: float, max_s: float):
        self.read = body_reader(response)
        self.max_bytes, self.stop_at, self.max_s = max_bytes, stop_at, max_s
        self.ready: deque[tuple[float, bytes]] = deque()
        self.pending = b""
        self.size = 0
        self.arrived = time.perf_counter()
        self.ended = False

    def __aiter__(self) -> SSEData:
        return self

    async def __anext__(self) -> tuple[float, bytes]:
        ready = self.ready
        while not ready:
            if self.ended:
                raise StopAsyncIteration
            chunk = await self.read()
            if not chunk:
                self.ended = True
                if self.pending[:5] == b"data:":  # the last line, unended: as its read brought it
                    ready.append((self.arrived, self.pending[5:].strip()))
                break
            self.arrived = arrived = time.perf_counter()
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise too_large(self.max_bytes)
            if arrived > self.stop_at:
                raise Failure(BAD_RESPONSE, f"stream longer than {self.max_s:g} s: stopped "
                                            "reading (raise the candidate's max_stream_s if such "
                                            "answers are expected)")
            if b"\n" not in chunk:
                self.pending += chunk
                continue
            *lines, self.pending = (self.pending + chunk if self.pending else chunk).split(b"\n")
            for line in lines:
                if line[:5] == b"data:":
                    ready.append((arrived, line[5:].strip()))
        if not ready:
            raise StopAsyncIteration
        return ready.popleft()


@contextmanager
def broken_body_is_bad_response() -> Iterator[None]:
    """A connection that breaks after the status line arrived broke the body, not the endpoint;
    so does a body that is not the encoding (gzip, ...) it claims."""
    try:
        yield
    except TRANSPORT_ERRORS as exc:
        if is_decoding_error(exc):
            raise Failure(BAD_RESPONSE, "response body could not be decoded: "
                                        f"{exc.__cause__.message}") from None
        if is_timeout(exc):
            raise
        raise Failure(BAD_RESPONSE, f"response cut off: {type(exc).__name__}: {exc}") from None


class HTTPProvider:
    """The exchange, retry loop, limits and bookkeeping shared by every HTTP provider."""

    path = ""  # posted to, after the candidate's base_url

    def __init__(self, candidate: Candidate, api_key: str | None,
                 client: aiohttp.ClientSession, limiter: Limiter):
        self.candidate = candidate
        self.api_key = api_key
        self.client = client
        self.limiter = limiter
        self.retry = candidate.retry
        self.url = candidate.base_url.rstrip("/") + self.path
        self.headers = {"Content-Type": "application/json"} | self.auth_headers(api_key)

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        """The headers that carry the key (and the API's version, where it asks for one)."""
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def body(self, messages: list[dict], params: dict[str, Any]) -> dict[str, Any]:
        """The request body for these messages and sampling parameters."""
        raise NotImplementedError

    def parse(self, raw: bytes) -> Completion:
        """A whole (non-streamed) response body as a Completion."""
        raise NotImplementedError

    async def read_stream(self, response: Any, start: float) -> Completion:
        """A streamed response as a Completion, its first piece timed from `start`."""
        raise NotImplementedError

    async def exchange(self, body: dict[str, Any]) -> Completion:
        """Post `body` once and read the answer, whole or streamed as the candidate says."""
        start = time.perf_counter()
        async with self.post(self.url, body, self.headers) as resp:
            await self.checked(resp)
            with broken_body_is_bad_response():
                if self.candidate.stream:
                    out = await self.read_stream(resp, start)
                else:
                    out = self.parse(await self.read_body(resp))
            out.simulated = resp.headers.get(SIM_HEADER) == "true"
        return out

    def model_for(self, params: dict[str, Any]) -> str:
        """The model to ask: the candidate's, or for a production replay the request's own."""
        if not self.candidate.replays_production:
            return self.candidate.model
        model = params.get("model")
        if not isinstance(model, str) or not model:
            raise Failure(BAD_REQUEST, f"no model logged with this request (model: {model!r}): "
                                       f"a replay of production (@logged) cannot send it")
        return model

    def post(self, url: str, body: dict[str, Any],
             headers: dict[str, str]) -> aiohttp.client._RequestContextManager:
        """POST `body` as JSON: `async with` it to hold the response (`headers` must carry
        the Content-Type). Check it with `checked` first."""
        return self.client.post(url, data=json_body(body), headers=headers,
                                allow_redirects=False)

    async def checked(self, response: aiohttp.ClientResponse) -> None:
        """A failed status as a Failure with the provider's own message (from the first
        ERROR_BODY_BYTES of its body)."""
        if response.status >= 400:
            try:
                raw = await read_capped(response, ERROR_BODY_BYTES, strict=False)
            except aiohttp.ClientPayloadError as exc:
                if not is_decoding_error(exc):
                    raise
                raw = b"(a body that could not be decoded)"  # the status says enough
            raise http_failure(response.status, response.headers, raw.decode(errors="replace"))

    async def read_body(self, response: aiohttp.ClientResponse) -> bytes:
        """A whole (non-streamed) body, stopped past the candidate's max_response_bytes."""
        return await read_capped(response, self.candidate.max_response_bytes)

    def events(self, response: Any, start: float) -> SSEData:
        """The stream's `data:` payloads with the time each arrived, stopped past
        max_response_bytes or max_stream_s after `start` (a perf_counter time)."""
        max_s = self.candidate.max_stream_s or self.candidate.timeout_s
        return SSEData(response, self.candidate.max_response_bytes, start + max_s, max_s)

    async def _attempt(self, messages: list[dict], params: dict[str, Any]) -> Completion:
        return await self.exchange(self.body(messages, params))

    async def complete(self, messages: list[dict], params: dict[str, Any]) -> Completion:
        """Ask until an answer arrives, a non-retryable error, the last attempt or the deadline."""
        deadline = time.monotonic() + self.retry.deadline_s
        # the tokens it may use, for a token budget: without one nothing reads them
        estimate = request_estimate(messages, params) if self.limiter.tpm else 0
        failure = Failure(TIMEOUT, "no attempt made before the deadline")
        attempts = 0
        while attempts < self.retry.max_attempts:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                # waiting for the endpoint's limits (a 429's pause included) counts against the
                # deadline; once in the slot, the attempt's own timeout takes over
                async with self.limiter.slot(estimate, deadline):
                    attempts += 1
                    start = time.perf_counter()
                    answer = await self._timed_attempt(messages, params, deadline)
                    self.limiter.settle(estimate, (answer.input_tokens or 0)
                                        + (answer.output_tokens or 0))
                    return self._finish(answer, start, attempts)
            except Failure as exc:
                failure = exc
            except TimeoutError:  # from the wait for a slot: the attempt's own timeouts are Failures
                waited = (f"the request's deadline (retry.deadline_s = {self.retry.deadline_s:g} "
                          "s) passed while it waited for the endpoint's limits (a pause after a "
                          "429, the rate budget, a slot)")
                failure = Failure(RATE_LIMITED, f"{waited}; last attempt: {failure}" if attempts
                                  else waited)
                break
            if failure.kind == RATE_LIMITED and failure.retry_after is not None:
                # the endpoint's pause holds every request to it, but never past max_backoff_s
                self.limiter.cool_down(min(failure.retry_after, self.retry.max_backoff_s))
            if failure.kind not in RETRYABLE or attempts >= self.retry.max_attempts:
                break
            wait = self._backoff(attempts, failure)
            left = deadline - time.monotonic()
            if wait >= left:
                if failure.retry_after is not None:  # say why a retryable failure was not retried
                    failure = Failure(failure.kind, f"{failure}; the endpoint asked for a wait of "
                                      f"{failure.retry_after:g} s, past this request's deadline "
                                      f"({max(left, 0):.1f} s left of retry.deadline_s = "
                                      f"{self.retry.deadline_s:g} s): not retried")
                break
            await asyncio.sleep(wait)
        return Completion(status="error", error_kind=failure.kind, attempts=attempts,
                          error=scrub(str(failure))[:500])

    async def _timed_attempt(self, messages: list[dict], params: dict[str, Any],
                             deadline: float) -> Completion:
        """One attempt within the per-attempt timeout and the request's deadline; whatever goes
        wrong is a Failure."""
        limit = max(0.0, min(self.candidate.timeout_s, deadline - time.monotonic()))
        try:
            async with asyncio.timeout(limit):
                return await self._attempt(messages, params)
        except TimeoutError:
            raise Failure(TIMEOUT, f"no answer within {limit:g} s" + (
                "" if limit == self.candidate.timeout_s else " (the rest of the request's "
                f"deadline, retry.deadline_s = {self.retry.deadline_s:g} s)")) from None
        except TRANSPORT_ERRORS as exc:
            raise transport_failure(exc, self.candidate.timeout_s) from None

    def _backoff(self, attempt: int, failure: Failure) -> float:
        """The endpoint's own wait if it gave one (at most max_backoff_s), else exponential
        backoff with jitter."""
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
        return answer


PROVIDERS: dict[str, type[HTTPProvider]] = {}


def register(name: str) -> Callable[[type[HTTPProvider]], type[HTTPProvider]]:
    """Register the decorated class as the provider `name` (the candidates' `provider:`); its module
    is `replaybench/providers/<name>.py`, imported when a candidate names it."""
    def wrap(cls: type[HTTPProvider]) -> type[HTTPProvider]:
        PROVIDERS[name] = cls
        return cls

    return wrap
