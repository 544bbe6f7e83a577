"""Production log formats: each turns one source record into one row of the `logs` table.

A format is a function `record (dict) -> dict of logs columns` that raises `Reject` with a reason a
person understands when the record cannot be used. Formats are registered by name; `auto`
recognises a record's format from its content.

`openai` (DESIGN.md): the request and response bodies as sent and received, plus timing and cost.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import polars as pl

MAX_FIELD_CHARS = 1_000_000  # a single text field larger than this is a broken export, not a log

LOG_SCHEMA: dict[str, pl.DataType] = {
    "request_id": pl.String,
    "ts": pl.Datetime("us", "UTC"),
    "endpoint": pl.String,
    "model_id": pl.String,
    "prompt_version": pl.String,
    "messages": pl.String,
    "params": pl.String,
    "output_text": pl.String,
    "reference": pl.String,
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "reasoning_tokens": pl.Int64,
    "cached_tokens": pl.Int64,
    "latency_ms": pl.Float64,
    "ttft_ms": pl.Float64,
    "cost_usd": pl.Float64,
    "status": pl.String,
    "error": pl.String,
    "metadata": pl.String,
    "source_format": pl.String,
}


class Reject(Exception):
    """A record that cannot become a log row; the message is the stored reason."""


Format = Callable[[dict[str, Any]], dict[str, Any]]
FORMATS: dict[str, Format] = {}


def register(name: str) -> Callable[[Format], Format]:
    def wrap(fn: Format) -> Format:
        FORMATS[name] = fn
        return fn

    return wrap


def detect(record: dict[str, Any]) -> str:
    """The name of the format a record is in; Reject if none fits."""
    if "request" in record and ("response" in record or "status" in record):
        return "openai"
    raise Reject("unrecognised record: no known log format has these fields")


def parse(record: Any, fmt: str = "auto") -> dict[str, Any]:
    """One source record as a `logs` row (without source bookkeeping)."""
    if not isinstance(record, dict):
        raise Reject(f"not a JSON object but a {type(record).__name__}")
    name = detect(record) if fmt == "auto" else fmt
    return FORMATS[name](record)


# --- field helpers shared by formats -------------------------------------------------------

def measure(value: Any, field: str) -> float | None:
    """A duration, amount or count: a non-negative finite number, or None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Reject(f"{field} is not a number: {str(value)[:40]!r}")
    if value < 0:
        raise Reject(f"{field} is negative: {value}")
    return float(value)


def count(value: Any, field: str) -> int | None:
    """A token count: a non-negative integer, or None when absent."""
    number = measure(value, field)
    return None if number is None else int(number)


def timestamp(value: Any) -> datetime:
    """An ISO-8601 timestamp (a naive one is taken as UTC) or epoch seconds, as UTC."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str) or not value:
        raise Reject("missing timestamp (ts)")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Reject(f"unparsable timestamp: {value[:40]!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False)
    if len(value) > MAX_FIELD_CHARS:
        raise Reject(f"{field} is over the size limit ({len(value):,} > {MAX_FIELD_CHARS:,} chars)")
    return value


def derived_prompt_version(messages: list[dict]) -> str:
    """A stable stand-in for a missing prompt_version: a hash of the system prompt."""
    system = "\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    return "sys:" + hashlib.sha256(system.encode()).hexdigest()[:10]


def message_text(content: Any) -> str | None:
    """Message content as text (OpenAI content parts are joined)."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


# --- the formats ---------------------------------------------------------------------------

@register("openai")
def openai_record(rec: dict[str, Any]) -> dict[str, Any]:
    """The `openai` request/response log format of DESIGN.md."""
    request_id = rec.get("request_id")
    if not isinstance(request_id, str) or not request_id.strip():
        raise Reject("missing request_id")
    request = rec.get("request")
    if not isinstance(request, dict):
        raise Reject("missing request object")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Reject("missing request.messages")
    if not all(isinstance(m, dict) and "role" in m for m in messages):
        raise Reject("request.messages must be objects with a role")

    response = rec.get("response") or {}
    if not isinstance(response, dict):
        raise Reject("response is not an object")
    choices = response.get("choices") or []
    message = (choices[0] or {}).get("message", {}) if choices else {}
    usage = response.get("usage") or {}
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}

    metadata = dict(rec.get("metadata") or {})
    prompt_version = rec.get("prompt_version")
    if prompt_version is None or prompt_version == "":
        prompt_version = derived_prompt_version(messages)
        metadata["prompt_version_derived"] = True

    params = {k: v for k, v in request.items() if k not in ("messages", "model", "stream")}
    status = rec.get("status") or ("ok" if choices else "error")
    return {
        "request_id": request_id.strip(),
        "ts": timestamp(rec.get("ts")),
        "endpoint": text(rec.get("endpoint"), "endpoint"),
        "model_id": text(rec.get("model_id") or request.get("model"), "model_id"),
        "prompt_version": str(prompt_version),
        "messages": text(messages, "request.messages"),
        "params": json.dumps(params),
        "output_text": text(message_text(message.get("content")), "response content"),
        "reference": text(rec.get("reference"), "reference"),
        "input_tokens": count(usage.get("prompt_tokens"), "prompt_tokens"),
        "output_tokens": count(usage.get("completion_tokens"), "completion_tokens"),
        "reasoning_tokens": count(completion_details.get("reasoning_tokens"), "reasoning_tokens"),
        "cached_tokens": count(prompt_details.get("cached_tokens"), "cached_tokens"),
        "latency_ms": measure(rec.get("latency_ms"), "latency_ms"),
        "ttft_ms": measure(rec.get("ttft_ms"), "ttft_ms"),
        "cost_usd": measure(rec.get("cost_usd"), "cost_usd"),
        "status": str(status),
        "error": text(rec.get("error"), "error"),
        "metadata": json.dumps(metadata),
        "source_format": "openai",
    }
