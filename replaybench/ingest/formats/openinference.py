"""`openinference`: Arize Phoenix / OpenInference LLM spans, from an OTLP export, Phoenix's REST API
(`GET /v1/projects/{id}/spans`) or a saved `get_spans_dataframe()`."""

from __future__ import annotations

from typing import Any

from replaybench.ingest.formats.base import (
    DEFAULT_OPTIONS,
    IngestOptions,
    Reject,
    Row,
    answer_text,
    as_text,
    build_row,
    count,
    first,
    maybe_json,
    measure,
    numeric,
    register,
    sampling_params,
)
from replaybench.ingest.formats.spans import (
    SpanView,
    attr_prompt_version,
    indexed,
    is_span,
    is_trace_export,
    otlp_items,
    span_request_id,
    span_rows,
    span_views,
)


def oi_kind(view: SpanView) -> str | None:
    """The OpenInference span kind (`LLM`, `CHAIN`, …), from the attribute or Phoenix's `span_kind`."""
    return first(view.attrs.get("openinference.span.kind"), view.kind)


def looks_like_openinference(record: dict[str, Any]) -> bool:
    """an OTLP trace export (`resourceSpans`) with a span that has `openinference.span.kind`; or a
    single span (Phoenix REST span, OTLP span, spans-dataframe row) with a span kind or `llm.*`
    attributes"""
    if is_trace_export(record):
        return any(oi_kind(SpanView(s[1], s[0])) for s in otlp_items(record) if not isinstance(s, Reject))
    if is_span(record):
        view = SpanView(record)
        return bool(oi_kind(view)) or any(k.startswith("llm.") for k in view.attrs)
    return False


def _oi_message(m: dict[str, Any]) -> dict[str, Any]:
    content = m.get("message.content")
    if content is None:
        parts = indexed(m, "message.contents")
        texts = [as_text(p.get("message_content.text")) for p in parts
                 if p.get("message_content.type", "text") == "text" and p.get("message_content.text")]
        content = "".join(texts) if texts else None
    return {"role": m.get("message.role") or "user", "content": content}


def _oi_messages(view: SpanView) -> list[dict[str, Any]]:
    a = view.attrs
    flat = indexed(a, "llm.input_messages")
    if flat:
        return [_oi_message(m) for m in flat]
    prompts = indexed(a, "llm.prompts")
    if prompts:
        return [{"role": "user", "content": p.get("prompt.text")} for p in prompts]
    value = maybe_json(a.get("input.value"))
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        return [m for m in value["messages"] if isinstance(m, dict) and m.get("role")]
    return []


def _oi_output(view: SpanView) -> str | None:
    flat = indexed(view.attrs, "llm.output_messages")
    if flat:
        return _oi_message(flat[0])["content"]
    choices = indexed(view.attrs, "llm.choices")
    if choices:
        return choices[0].get("completion.text")
    return answer_text(view.attrs.get("output.value"))


@register("openinference", sniff=looks_like_openinference)
def openinference_record(rec: dict[str, Any], opts: IngestOptions = DEFAULT_OPTIONS) -> list[Row | Reject]:
    """Arize Phoenix / OpenInference LLM spans (OTLP export, Phoenix span JSON or dataframe rows)."""
    return span_rows(span_views(rec), opts, lambda v: str(oi_kind(v) or "").upper() == "LLM", _oi_span)


def _oi_span(view: SpanView, opts: IngestOptions) -> Row:
    a = view.attrs
    ts, latency = view.times()
    messages = _oi_messages(view)
    if not messages:
        raise Reject("missing messages: no llm.input_messages")
    meta = maybe_json(a.get("metadata"))
    metadata = dict(meta) if isinstance(meta, dict) else {}
    metadata.setdefault(opts.prompt_version_key, attr_prompt_version(view, opts.prompt_version_key))
    metadata |= {
        "trace_id": view.trace_id, "span_id": view.span_id, "span_name": view.name,
        "provider": first(a.get("llm.provider"), a.get("llm.system")),
        "session_id": a.get("session.id"), "user_id": a.get("user.id"),
        "prompt_template": a.get("llm.prompt_template.template"),
    }
    return build_row(
        "openinference", opts,
        request_id=span_request_id(view), ts=ts, messages=messages, metadata=metadata,
        prompt_version=a.get("llm.prompt_template.version"),
        model_id=first(a.get("llm.model_name"), a.get("llm.request.model_name")),
        params=sampling_params(a.get("llm.invocation_parameters")),
        output_text=_oi_output(view),
        input_tokens=count(numeric(a.get("llm.token_count.prompt")), "llm.token_count.prompt"),
        output_tokens=count(numeric(a.get("llm.token_count.completion")), "llm.token_count.completion"),
        cached_tokens=count(numeric(a.get("llm.token_count.prompt_details.cache_read")),
                            "llm.token_count.prompt_details.cache_read"),
        reasoning_tokens=count(numeric(a.get("llm.token_count.completion_details.reasoning")),
                               "llm.token_count.completion_details.reasoning"),
        cost_usd=measure(numeric(a.get("llm.cost.total")), "llm.cost.total"),
        latency_ms=latency,
        status="error" if view.is_error() else "ok",
        error=first(view.status_message, a.get("exception.message")) if view.is_error() else None,
    )

