"""`litellm_spend`: the LiteLLM proxy's spend logs, one row per call: the `LiteLLM_SpendLogs` table
(exported from Postgres as CSV, JSON or Parquet) or the `/spend/logs` API (a JSON list of rows, or
`{"data": [...]}` from `/spend/logs/v2`).

The proxy keeps a call's request and answer only with `store_prompts_in_spend_logs` on: the request
body is then `proxy_server_request` (the `messages` column of current versions stays `{}`), the
answer `response`. Without them a row cannot be replayed, and its reject says which setting to
turn on. Strings longer than `MAX_STRING_LENGTH_PROMPT_IN_DB` are cut by the proxy, marked
`litellm_truncated`: a cut prompt is not what production sent, so such a row is rejected too.
"""

from __future__ import annotations

import re
from typing import Any

from replaybench.ingest.formats.base import (
    DEFAULT_OPTIONS,
    IngestOptions,
    Reject,
    Row,
    answer_text,
    as_object,
    as_text,
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

# call types that are not a chat or completion call: no messages to replay (embeddings, images,
# audio, files, batches, MCP tools, …); their rows are skipped
_NOT_CHAT = re.compile(r"embedding|image|moderation|transcription|speech|rerank|file|batch|ocr|mcp|"
                       r"vector_store|search|video|fine_tun|realtime|container|skill")
_TRUNCATED = "(litellm_truncated skipped "
_NOT_STORED = ("missing messages: the proxy did not store this request (messages and "
               "proxy_server_request are empty); turn on general_settings.store_prompts_in_spend_logs "
               "(or STORE_PROMPTS_IN_SPEND_LOGS=True) so that spend logs keep it")
_NOT_PARAMS = ("litellm", "mock_", "tags", "guardrails", "instructions")


def looks_like_litellm_spend(record: dict[str, Any]) -> bool:
    """`request_id` and `call_type` plus `spend`, `api_key` or `proxy_server_request`"""
    return ("request_id" in record and "call_type" in record
            and any(k in record for k in ("spend", "api_key", "proxy_server_request")))


def _stored(value: Any) -> Any:
    """A JSON column as stored: parsed when it is JSON text; None when it is empty (`{}`, `[]`, "")."""
    value = maybe_json(value)
    return None if value in (None, "", {}, []) else value


def _whole(value: Any, field: str) -> Any:
    """`value` unless the proxy cut part of it out (its `litellm_truncated` mark)."""
    if _TRUNCATED in as_text(value):
        raise Reject(f"{field} was cut by the LiteLLM proxy (litellm_truncated): raise "
                     "MAX_STRING_LENGTH_PROMPT_IN_DB so that spend logs keep whole requests and answers")
    return value


def _request_messages(body: dict[str, Any]) -> list[dict]:
    """The chat messages of a stored request body: `messages` (with Anthropic's `system` first) or
    the Responses API's `input` (with its `instructions` first)."""
    if body.get("messages") is not None:
        messages = chat_messages(body["messages"], "proxy_server_request.messages")
        system = body.get("system")
    else:
        messages = chat_messages(body.get("input"), "proxy_server_request.messages")
        system = body.get("instructions")
    if isinstance(system, str | list) and system:
        content = system if isinstance(system, str) else "".join(
            as_text(p.get("text")) for p in system if isinstance(p, dict))
        messages = [{"role": "system", "content": content}, *messages]
    return messages


def _usage(rec: dict[str, Any], meta: dict[str, Any], response: Any) -> dict[str, int | None]:
    """The columns' counts (OpenAI semantics, cached tokens included), with the cached and reasoning
    ones from `metadata.additional_usage_values`; the stored response's usage when the columns are
    empty."""
    extra = as_object(meta.get("additional_usage_values"))
    prompt = as_object(extra.get("prompt_tokens_details"))
    completion = as_object(extra.get("completion_tokens_details"))
    stored = openai_usage(response.get("usage")) if isinstance(response, dict) else {}
    return {
        "input_tokens": first(count(numeric(rec.get("prompt_tokens")), "prompt_tokens"),
                              stored.get("input_tokens")),
        "output_tokens": first(count(numeric(rec.get("completion_tokens")), "completion_tokens"),
                               stored.get("output_tokens")),
        "cached_tokens": first(count(numeric(first(prompt.get("cached_tokens"),
                                                   extra.get("cache_read_input_tokens"))), "cached_tokens"),
                               stored.get("cached_tokens")),
        "reasoning_tokens": first(count(numeric(completion.get("reasoning_tokens")), "reasoning_tokens"),
                                  stored.get("reasoning_tokens")),
    }


@register("litellm_spend", sniff=looks_like_litellm_spend)
def litellm_spend_record(rec: dict[str, Any], opts: IngestOptions = DEFAULT_OPTIONS) -> list[Row]:
    """LiteLLM proxy spend logs: `LiteLLM_SpendLogs` rows or the `/spend/logs` API."""
    call_type = rec.get("call_type")
    if isinstance(call_type, str) and _NOT_CHAT.search(call_type):
        return []
    request_id = ident(rec.get("request_id"), "request_id")
    ts = timestamp(rec.get("startTime"), "startTime")
    body = as_object(_stored(rec.get("proxy_server_request")))
    stored = _stored(rec.get("messages"))  # older proxies kept the messages in their own column
    if stored is not None:
        messages = chat_messages(stored, "messages")
    elif body:
        messages = _request_messages(body)
    else:
        raise Reject(_NOT_STORED)
    _whole(messages, "messages")
    response = _whole(_stored(rec.get("response")), "response")
    meta = maybe_json(rec.get("metadata"))
    meta = scrub(meta) if isinstance(meta, dict) else {}
    meta.pop("proxy_server_request", None)  # the request again, as text
    key = opts.prompt_version_key
    carriers = [meta.get("spend_logs_metadata"), body.get("metadata"), body.get("litellm_metadata")]
    latency = millis_between(ts, rec.get("endTime"), "endTime")
    if latency is None:
        latency = measure(numeric(rec.get("request_duration_ms")), "request_duration_ms")
    # a call that is not streamed logs completionStartTime = endTime: only an earlier one is a first token
    first_token = millis_between(ts, rec.get("completionStartTime"), "completionStartTime")
    streamed = body.get("stream") is True or (first_token is not None and latency is not None
                                               and first_token < latency)
    failed = first(rec.get("status"), meta.get("status")) == "failure"
    error_info = as_object(meta.get("error_information"))
    metadata = meta | {
        key: first(*(as_object(c).get(key) for c in carriers)),
        "call_type": call_type, "model_group": first(rec.get("model_group")),
        "model_id": first(rec.get("model_id")), "api_base": first(rec.get("api_base")),
        "custom_llm_provider": first(rec.get("custom_llm_provider")),
        "cache_hit": first(rec.get("cache_hit")),
        "request_tags": maybe_json(rec.get("request_tags")) or None, "end_user": first(rec.get("end_user")),
        "user": first(rec.get("user")), "team_id": first(rec.get("team_id")),
        "session_id": first(rec.get("session_id")),
    }
    return [build_row(
        "litellm_spend", opts,
        request_id=request_id, ts=ts, messages=messages, metadata=metadata,
        model_id=first(rec.get("model"), rec.get("model_group"), body.get("model")),
        params={k: v for k, v in sampling_params(body).items() if not k.startswith(_NOT_PARAMS)},
        output_text=None if failed else answer_text(response),
        latency_ms=latency, ttft_ms=first_token if streamed else None,
        cost_usd=measure(numeric(rec.get("spend")), "spend"),
        status="error" if failed else "ok",
        error=first(error_info.get("error_message"), error_info.get("error_class")) if failed else None,
        **_usage(rec, meta, response),
    )]
