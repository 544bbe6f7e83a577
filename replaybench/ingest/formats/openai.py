"""`openai`: the request and response bodies as sent and received, one JSON object per call (the
format of the bundled demo logs, drawn in ../shared/DESIGN.md, "Log format openai").

The SQL fast path (`replaybench/warehouse/sql/openai_log_lines.sql`) mirrors this parser check for
check: a change here is a change there.
"""

from __future__ import annotations

from typing import Any

from replaybench.ingest.formats.base import (
    DEFAULT_OPTIONS,
    IngestOptions,
    Reject,
    Row,
    as_object,
    as_text,
    fill_prompt_version,
    json_text,
    measure,
    message_text,
    register,
    storable,
    text,
    timestamp,
    usage_count,
)
from replaybench.tokens import chat_completions


def looks_like_openai(record: dict[str, Any]) -> bool:
    """`request` plus `response` or `status`"""
    return "request" in record and ("response" in record or "status" in record)


@register("openai", sniff=looks_like_openai)
def openai_record(rec: dict[str, Any], opts: IngestOptions = DEFAULT_OPTIONS) -> list[Row]:
    """The request and response bodies as sent and received (the bundled demo logs)."""
    limit = opts.max_field_chars
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

    response = _shaped(rec.get("response"), dict, "response is not an object")
    choices = _shaped(response.get("choices"), list, "response.choices is not a list")
    choice = _shaped(choices[0] if choices else None, dict, "response.choices[0] is not an object")
    message = _shaped(choice.get("message"), dict, "response.choices[0].message is not an object")
    usage = _shaped(response.get("usage"), dict, "response.usage is not an object")
    for details in ("prompt_tokens_details", "completion_tokens_details"):
        _shaped(usage.get(details), dict, f"response.usage.{details} is not an object")

    metadata = dict(as_object(rec.get("metadata")))
    prompt_version = fill_prompt_version(rec.get("prompt_version"), metadata, opts, messages)
    model_id = rec.get("model_id")
    if model_id is None or model_id == "":
        model_id = request.get("model")

    params = {k: v for k, v in request.items() if k not in ("messages", "model", "stream")}
    status = rec.get("status")
    if not isinstance(status, str) or not status:
        status = "ok" if choices else "error"
    return [{
        "request_id": storable(request_id.strip(), "request_id"),
        "ts": timestamp(rec.get("ts")),
        "endpoint": text(rec.get("endpoint"), "endpoint", limit),
        "model_id": text(model_id, "model_id", limit),
        "prompt_version": storable(as_text(prompt_version), "prompt_version"),
        "messages": text(messages, "request.messages", limit),
        "params": json_text(params, "params"),
        "output_text": text(message_text(message.get("content")), "response content", limit),
        "reference": text(rec.get("reference"), "reference", limit),
        # the log is OpenAI's own: its cached tokens are in prompt_tokens_details alone
        **chat_completions(usage, usage_count, cache_hit=None),
        "latency_ms": measure(rec.get("latency_ms"), "latency_ms"),
        "ttft_ms": measure(rec.get("ttft_ms"), "ttft_ms"),
        "cost_usd": measure(rec.get("cost_usd"), "cost_usd"),
        "status": storable(status, "status"),
        "error": text(rec.get("error"), "error", limit),
        "metadata": json_text(metadata, "metadata"),
        "source_format": "openai",
    }]


def _shaped(value: Any, kind: type, reason: str) -> Any:
    """`value` when it is of `kind`, an empty one when it is absent (None); else Reject(reason)."""
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise Reject(reason)
    return value
