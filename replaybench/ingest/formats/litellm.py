"""`litellm`: LiteLLM's StandardLoggingPayload, one call per record: what its custom loggers and
its S3/GCS/… logging callbacks write. (The proxy's spend logs are `litellm_spend`.)"""

from __future__ import annotations

from typing import Any

from replaybench.ingest.formats.base import (
    DEFAULT_OPTIONS,
    IngestOptions,
    Row,
    SqlReader,
    answer_text,
    as_object,
    build_row,
    chat_messages,
    count,
    first,
    ident,
    maybe_json,
    measure,
    millis_between,
    numeric,
    openai_usage,
    register,
    sampling_params,
    scrub,
    timestamp,
)


def looks_like_litellm(record: dict[str, Any]) -> bool:
    """`call_type` plus `messages`, `response` or `model_parameters`"""
    return "call_type" in record and any(k in record for k in ("messages", "response", "model_parameters"))


@register("litellm", sniff=looks_like_litellm,
          sql=SqlReader("litellm_log_lines", lambda options: {"pv_key": options.prompt_version_key}))
def litellm_record(rec: dict[str, Any], opts: IngestOptions = DEFAULT_OPTIONS) -> list[Row]:
    """LiteLLM's StandardLoggingPayload (custom loggers, S3/GCS/… callbacks)."""
    request_id = ident(rec.get("id"), "id (litellm call id)")
    ts = timestamp(rec.get("startTime"), "startTime")
    messages = chat_messages(rec.get("messages"), "messages")
    response = maybe_json(rec.get("response"))
    usage = openai_usage(response.get("usage")) if isinstance(response, dict) else {}
    input_tokens = count(numeric(rec.get("prompt_tokens")), "prompt_tokens")
    output_tokens = count(numeric(rec.get("completion_tokens")), "completion_tokens")
    stream = str(rec.get("stream")).lower() == "true"
    meta = maybe_json(rec.get("metadata"))
    meta = scrub(meta) if isinstance(meta, dict) else {}
    key = opts.prompt_version_key
    nested = [meta.get("requester_metadata"), meta.get("spend_logs_metadata")]
    prompt_version = first(meta.get(key), *(m.get(key) for m in nested if isinstance(m, dict)))
    metadata = meta | {
        "trace_id": rec.get("trace_id"), "call_type": rec.get("call_type"),
        "model_id": rec.get("model_id"), "model_group": rec.get("model_group"),
        "api_base": rec.get("api_base"), "cache_hit": rec.get("cache_hit"),
        "request_tags": rec.get("request_tags") or None, "end_user": rec.get("end_user") or None,
        key: prompt_version,
    }
    failed = rec.get("status") == "failure"
    error_info = as_object(rec.get("error_information"))
    return [build_row(
        "litellm", opts,
        request_id=request_id, ts=ts, messages=messages, metadata=metadata,
        model_id=rec.get("model"),
        params=sampling_params(rec.get("model_parameters")),
        output_text=None if failed else answer_text(response),
        input_tokens=first(input_tokens, usage.get("input_tokens")),
        output_tokens=first(output_tokens, usage.get("output_tokens")),
        cached_tokens=usage.get("cached_tokens"), reasoning_tokens=usage.get("reasoning_tokens"),
        latency_ms=millis_between(ts, rec.get("endTime"), "endTime"),
        # non-streaming calls log completionStartTime = endTime: only a stream has a first token
        ttft_ms=millis_between(ts, rec.get("completionStartTime"), "completionStartTime") if stream else None,
        cost_usd=measure(numeric(rec.get("response_cost")), "response_cost"),
        status="error" if failed else "ok",
        error=first(rec.get("error_str"), error_info.get("error_class")) if failed else None,
    )]
