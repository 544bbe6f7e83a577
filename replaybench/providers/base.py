"""What every provider returns, and the error classes stored with failed replays."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import httpx

from replaybench.config import Candidate

# error_kind values: what a person should do differs for each
RATE_LIMITED, TIMEOUT, SERVER_ERROR = "rate_limited", "timeout", "server_error"
BAD_RESPONSE, AUTH, BAD_REQUEST = "bad_response", "auth", "bad_request"


@dataclass
class Completion:
    """One answer (or failure) from an endpoint, with usage and timing."""

    status: str = "ok"                 # ok | error
    output_text: str | None = None
    reasoning_text: str | None = None
    finish_reason: str | None = None
    input_tokens: int | None = None    # includes cached tokens
    output_tokens: int | None = None   # includes reasoning tokens
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    error: str | None = None
    error_kind: str | None = None
    attempts: int = 1
    simulated: bool = False

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def error_kind_for_status(code: int) -> str:
    """The error class of an HTTP status."""
    if code in (401, 403):
        return AUTH
    if code == 429:
        return RATE_LIMITED
    if code in (408,):
        return TIMEOUT
    if code >= 500:
        return SERVER_ERROR
    return BAD_REQUEST


class Provider(Protocol):
    def __init__(self, candidate: Candidate, api_key: str | None, client: httpx.AsyncClient): ...

    async def complete(self, messages: list[dict], params: dict[str, Any]) -> Completion: ...
