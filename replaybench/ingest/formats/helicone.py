"""`helicone`: Helicone request exports, the `HeliconeRequest` objects of
`POST /v1/request/query-clickhouse` and of the `@helicone/export` tool (JSON, JSONL or CSV, exported
with `--include-body`)."""

from __future__ import annotations

from typing import Any

from replaybench.ingest.formats.base import (
    DEFAULT_OPTIONS,
    IngestOptions,
    Reject,
    Row,
    answer_text,
    build_row,
    chat_messages,
    count,
    first,
    ident,
    maybe_json,
    measure,
    message_text,
    millis_between,
    numeric,
    openai_usage,
    register,
    sampling_params,
    scrub,
    timestamp,
)
from replaybench.tokens import with_cache


def _property(properties: dict[str, Any], key: str) -> Any:
    """A Helicone property by name, ignoring case and `-`/`_` (`Helicone-Property-Prompt-Version`)."""
    def norm(k: str) -> str:
        return k.lower().replace("-", "_").removeprefix("helicone_property_")

    wanted = norm(key)
    return next((v for k, v in properties.items() if norm(str(k)) == wanted), None)


def looks_like_helicone(record: dict[str, Any]) -> bool:
    """`request_id` plus `request_body` or `request_created_at`"""
    return "request_id" in record and ("request_body" in record or "request_created_at" in record)


@register("helicone", sniff=looks_like_helicone)
def helicone_record(rec: dict[str, Any], opts: IngestOptions = DEFAULT_OPTIONS) -> list[Row]:
    """Helicone request exports (`@helicone/export`, REST query API)."""
    request_id = ident(rec.get("request_id"), "request_id")
    ts = timestamp(rec.get("request_created_at"), "request_created_at")
    body = maybe_json(rec.get("request_body"))
    if not isinstance(body, dict):
        raise Reject("missing request_body (export with --include-body)")
    messages = chat_messages(body.get("messages"), "request_body.messages")
    if isinstance(body.get("system"), str | list):  # Anthropic keeps the system prompt apart
        messages = [{"role": "system", "content": message_text(body["system"])}, *messages]
    response = maybe_json(rec.get("response_body"))
    usage = openai_usage(response.get("usage")) if isinstance(response, dict) else {}
    if usage.get("input_tokens") is None:
        # Helicone's columns count cache reads and writes apart from prompt_tokens
        fresh = count(numeric(rec.get("prompt_tokens")), "prompt_tokens")
        read = count(numeric(rec.get("prompt_cache_read_tokens")), "prompt_cache_read_tokens")
        written = count(numeric(rec.get("prompt_cache_write_tokens")), "prompt_cache_write_tokens")
        usage = {
            "input_tokens": with_cache(fresh, read, written),
            "output_tokens": count(numeric(rec.get("completion_tokens")), "completion_tokens"),
            "cached_tokens": read,
            "reasoning_tokens": count(numeric(rec.get("reasoning_tokens")), "reasoning_tokens"),
        }
    latency = measure(numeric(first(rec.get("delay_ms"), rec.get("latency"))), "delay_ms")
    if latency is None:
        latency = millis_between(ts, rec.get("response_created_at"), "response_created_at")
    props = maybe_json(first(rec.get("request_properties"), rec.get("properties")))
    props = scrub(props) if isinstance(props, dict) else {}
    prompt_id, version = rec.get("prompt_id"), rec.get("prompt_version")
    own = f"{prompt_id}@{version}" if prompt_id and version else first(version)
    status = numeric(first(rec.get("response_status"), rec.get("status")))
    failed = isinstance(status, int) and not 200 <= status < 300 or status in ("error", "failure")
    error = response.get("error") if isinstance(response, dict) else None
    metadata = props | {
        opts.prompt_version_key: _property(props, opts.prompt_version_key),
        "provider": rec.get("provider"), "user_id": first(rec.get("request_user_id"), rec.get("user_id")),
        "path": rec.get("request_path"), "prompt_id": prompt_id, "http_status": status,
    }
    return [build_row(
        "helicone", opts,
        request_id=request_id, ts=ts, messages=messages, metadata=metadata, prompt_version=own,
        model_id=first(rec.get("model"), rec.get("request_model"), body.get("model"),
                       rec.get("response_model")),
        params=sampling_params(body),
        output_text=None if failed else answer_text(response),
        latency_ms=latency,
        ttft_ms=measure(numeric(rec.get("time_to_first_token")), "time_to_first_token"),
        cost_usd=measure(numeric(first(rec.get("costUSD"), rec.get("cost"), rec.get("cost_usd"))), "cost"),
        status="error" if failed else "ok",
        error=(error.get("message") if isinstance(error, dict) else error) if failed else None,
        **usage,
    )]
