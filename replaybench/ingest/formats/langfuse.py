"""`langfuse`: Langfuse observations from the public API (`GET /api/public/observations` and
`/api/public/v2/observations`, `{"data": [...], "meta": {...}}`) or the UI export, camelCase.

The blob-storage export holds the same observations in snake_case (`langfuse_export`); both read
through `observation_rows`, each with its own spelling of the fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from replaybench.ingest.formats.base import (
    DEFAULT_OPTIONS,
    IngestOptions,
    Row,
    SqlReader,
    answer_text,
    build_row,
    chat_messages,
    count,
    first,
    ident,
    maybe_json,
    measure,
    millis_between,
    numeric,
    register,
    sampling_params,
    timestamp,
)


@dataclass(frozen=True)
class Spelling:
    """How one Langfuse shape names the fields of an observation."""

    start: str
    end: str
    completion_start: str
    models: tuple[str, ...]
    params: str
    usage_details: str
    cost_details: str
    costs: tuple[str, ...]  # total cost fields, tried after `cost_details.total`
    prompt_name: str
    prompt_version: str
    latency: str
    ttft: str
    status_message: str
    context: dict[str, str]  # metadata key -> field


API = Spelling(
    start="startTime", end="endTime", completion_start="completionStartTime",
    models=("model", "providedModelName"), params="modelParameters", usage_details="usageDetails",
    cost_details="costDetails", costs=("totalCost", "calculatedTotalCost"), prompt_name="promptName",
    prompt_version="promptVersion", latency="latency", ttft="timeToFirstToken",
    status_message="statusMessage",
    context={"trace_id": "traceId", "observation_name": "name", "environment": "environment",
             "prompt_id": "promptId"},
)

# Ms per unit of `latency` / `time_to_first_token`, for a row whose own times do not give them
PerUnit = Callable[[dict[str, Any], datetime, str], float]

_CACHED = ("input_cached_tokens", "input_cached", "cache_read_input_tokens", "input_cache_read")
_REASONING = ("output_reasoning_tokens", "output_reasoning")


def _usage(rec: dict[str, Any], spell: Spelling) -> dict[str, int | None]:
    """Langfuse usage as OTel counts.

    In usage details the base `input`/`output` exclude their detail keys (Langfuse's OpenAI
    integration subtracts `input_cached_tokens` from `input`; Anthropic's cache counts sit apart), so
    input is the sum of every key naming input and output the sum of every key naming output, as
    Langfuse itself adds them up.
    """
    details = maybe_json(rec.get(spell.usage_details))
    if isinstance(details, dict) and details:
        values = {k: count(numeric(v), f"{spell.usage_details}.{k}") for k, v in details.items()}
        inputs = [v for k, v in values.items() if "input" in k and v is not None]
        outputs = [v for k, v in values.items() if "output" in k and v is not None]
        return {
            "input_tokens": sum(inputs) if inputs else None,
            "output_tokens": sum(outputs) if outputs else None,
            "cached_tokens": first(*(values.get(k) for k in _CACHED)),
            "reasoning_tokens": first(*(values.get(k) for k in _REASONING)),
        }
    usage = maybe_json(rec.get("usage"))  # API v1's older usage object
    if not isinstance(usage, dict):
        return {}
    return {
        "input_tokens": count(numeric(first(usage.get("input"), usage.get("promptTokens"))), "usage.input"),
        "output_tokens": count(numeric(first(usage.get("output"), usage.get("completionTokens"))),
                               "usage.output"),
    }


def _prompt_version(rec: dict[str, Any], spell: Spelling) -> str | None:
    """`name@vN` from the Langfuse prompt the observation used (`vN` or the name when only one is set)."""
    name, version = rec.get(spell.prompt_name), rec.get(spell.prompt_version)
    if name and version not in (None, ""):
        return f"{name}@v{version}"
    if version not in (None, ""):
        return f"v{version}"
    return name or None


def observation_rows(rec: dict[str, Any], opts: IngestOptions, fmt: str, spell: Spelling,
                     ms_per_unit: PerUnit) -> list[Row]:
    """A Langfuse observation as a row when it is a GENERATION; other types (SPAN, EVENT, …) give none.
    Durations come from the row's timestamps; `latency` and `time_to_first_token` only stand in for
    missing ones, converted by `ms_per_unit`."""
    if str(rec.get("type", "")).upper() != "GENERATION":
        return []
    request_id = ident(rec.get("id"), "id (observation id)")
    ts = timestamp(rec.get(spell.start), spell.start)
    messages = chat_messages(rec.get("input"), "input messages")
    latency = millis_between(ts, rec.get(spell.end), spell.end)
    if latency is None:
        latency = _metric(rec, ts, spell.latency, ms_per_unit)
    ttft = millis_between(ts, rec.get(spell.completion_start), spell.completion_start)
    if ttft is None:
        ttft = _metric(rec, ts, spell.ttft, ms_per_unit)
    cost_details = maybe_json(rec.get(spell.cost_details))
    cost = first(cost_details.get("total") if isinstance(cost_details, dict) else None,
                 *(rec.get(k) for k in spell.costs))
    meta = maybe_json(rec.get("metadata"))
    metadata = dict(meta) if isinstance(meta, dict) else {}
    metadata |= {key: first(rec.get(name)) for key, name in spell.context.items()}
    error = rec.get("level") == "ERROR"
    return [build_row(
        fmt, opts,
        request_id=request_id, ts=ts, messages=messages, metadata=metadata,
        prompt_version=_prompt_version(rec, spell),
        model_id=first(*(rec.get(k) for k in spell.models)), params=sampling_params(rec.get(spell.params)),
        output_text=answer_text(first(rec.get("output"))),  # the export writes "" for no output
        latency_ms=latency, ttft_ms=ttft, cost_usd=measure(numeric(cost), "cost"),
        status="error" if error else "ok",
        error=rec.get(spell.status_message) if error else None,
        **_usage(rec, spell),
    )]


def _metric(rec: dict[str, Any], start: datetime, field: str, ms_per_unit: PerUnit) -> float | None:
    """Langfuse's own duration field in milliseconds, for a row without the times to compute it."""
    value = rec.get(field)
    if value is None or value == "":
        return None
    return measure(numeric(value), field) * ms_per_unit(rec, start, field)


def looks_like_langfuse(record: dict[str, Any]) -> bool:
    """`type` and `startTime` plus `traceId` or `id`"""
    return "type" in record and "startTime" in record and ("traceId" in record or "id" in record)


@register("langfuse", sniff=looks_like_langfuse,
          sql=SqlReader("langfuse_log_lines", lambda options: {"export": False, "ms_per_unit": 1000.0}))
def langfuse_record(rec: dict[str, Any], opts: IngestOptions = DEFAULT_OPTIONS) -> list[Row]:
    """Langfuse observations from the public API or the UI export (GENERATIONs)."""
    return observation_rows(rec, opts, "langfuse", API, _api_seconds)


def _api_seconds(rec: dict[str, Any], start: datetime, field: str) -> float:
    """The public API gives `latency` and `timeToFirstToken` in seconds."""
    return 1000.0
