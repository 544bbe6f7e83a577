"""`otel`: OpenTelemetry GenAI spans (OTLP/JSON), with their content wherever the instrumentation put
it: span attributes, span events, or log events in an OTLP logs export.

When content capture is event-only, the span carries the model, tokens and times, and the prompts
and answers travel as log records of the same trace and span: the current
`gen_ai.client.inference.operation.details` event (`gen_ai.input.messages`,
`gen_ai.output.messages`, `gen_ai.system_instructions` as structured attributes), or the older
per-message events (`gen_ai.system.message`, `gen_ai.user.message`, `gen_ai.assistant.message`,
`gen_ai.tool.message`, `gen_ai.choice`, the message in the record's body). `join_events` moves
those log records onto their span (by traceId and spanId) before the records are parsed; a GenAI
log event whose span is not found becomes a row of its own (it has no duration).
"""

from __future__ import annotations

import itertools
import json
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from replaybench.fastjson import loads
from replaybench.ingest.formats.base import (
    DEFAULT_OPTIONS,
    IngestOptions,
    Reject,
    Row,
    answer_text,
    as_object,
    as_text,
    build_row,
    count,
    first,
    get_any,
    maybe_json,
    measure,
    message_text,
    numeric,
    register,
)
from replaybench.ingest.formats.spans import (
    LOGS,
    SpanView,
    attr_prompt_version,
    indexed,
    is_span,
    is_trace_export,
    nanos,
    nanos_time,
    otlp_attributes,
    otlp_items,
    otlp_value,
    span_request_id,
    span_rows,
    span_views,
)
from replaybench.ingest.readers import too_deep

DETAILS_EVENT = "gen_ai.client.inference.operation.details"
MESSAGE_EVENTS = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                  "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}
CHOICE_EVENT = "gen_ai.choice"
CONTENT_EVENTS = {DETAILS_EVENT, CHOICE_EVENT, *MESSAGE_EVENTS}  # log events with a call's content
FINAL_EVENTS = {DETAILS_EVENT, CHOICE_EVENT}  # a span that has had one of these has all its content
PROMPT_EVENTS = {"gen_ai.content.prompt", DETAILS_EVENT, *MESSAGE_EVENTS}  # span events with the input
JOINED = "replaybench.joined_events"  # set by the join on a logs export: how many records it moved
JOIN_WINDOW = 1_000  # records held at most while their spans or events are still to come

_GEN_AI_PARAMS = {"gen_ai.request.stop_sequences": "stop", "gen_ai.request.choice.count": "n"}
_GEN_AI_NOT_PARAMS = {"gen_ai.request.model", "gen_ai.request.encoding_formats", "gen_ai.request.stream"}


def is_gen_ai(view: SpanView) -> bool:
    """A span with `gen_ai.*` attributes (told by their names: the values are not decoded)."""
    return view.has_attribute_prefix("gen_ai.")


def is_logs_export(record: dict[str, Any]) -> bool:
    """An OTLP logs export (`resourceLogs`)."""
    return get_any(record, *LOGS[0]) is not None


def event_name(log_record: dict[str, Any]) -> str | None:
    """A log record's event name: the `eventName` field (OTLP 1.5), else the `event.name` attribute."""
    name = first(log_record.get("eventName"), log_record.get("event_name"),
                 otlp_attributes(log_record.get("attributes")).get("event.name"))
    return name if isinstance(name, str) else None


def _content_records(record: dict[str, Any]) -> Iterator[tuple[dict, dict, list]]:
    """(resource, log record, the list holding it) for each GenAI content event of a logs export."""
    for item in otlp_items(record, LOGS):
        if not isinstance(item, Reject) and event_name(item[1]) in CONTENT_EVENTS:
            yield item


def looks_like_otel(record: dict[str, Any]) -> bool:
    """an OTLP trace export (`resourceSpans`); an OTLP logs export (`resourceLogs`) with GenAI content
    events; or a single span with `gen_ai.*` attributes"""
    if is_trace_export(record):
        return True
    if is_logs_export(record):
        return JOINED in record or any(True for _ in _content_records(record))
    return is_span(record) and is_gen_ai(SpanView(record))


# --- log events as spans -------------------------------------------------------------------

def as_span_event(log_record: dict[str, Any]) -> dict[str, Any]:
    """A GenAI log record in the shape of a span event (name, time, attributes, body)."""
    return {"name": event_name(log_record), "timeUnixNano": log_record.get("timeUnixNano"),
            "attributes": log_record.get("attributes"), "body": log_record.get("body")}


class LogView(SpanView):
    """GenAI log records of one span read as a span: one `…operation.details` event (its attributes
    are the span's), or the older per-message events (the span's events)."""

    def __init__(self, records: list[dict[str, Any]], resource: dict[str, Any]):
        head = records[0]
        details = event_name(head) == DETAILS_EVENT
        super().__init__({
            "traceId": get_any(head, "traceId", "trace_id"), "spanId": get_any(head, "spanId", "span_id"),
            "name": event_name(head),
            "attributes": head.get("attributes") if details else None,
            "events": [] if details else [as_span_event(r) for r in records],
        }, resource)
        self.record = head

    def times(self) -> tuple[datetime, float | None]:
        """When the event was recorded (else observed); a log event has no duration."""
        for key, name in (("timeUnixNano", "timeUnixNano"), ("time_unix_nano", "timeUnixNano"),
                          ("observedTimeUnixNano", "observedTimeUnixNano"),
                          ("observed_time_unix_nano", "observedTimeUnixNano")):
            value = self.record.get(key)
            if value not in (None, 0, "0", ""):  # OTLP writes 0 for a time it does not know
                return nanos_time(nanos(value, name), name), None
        raise Reject("missing timestamp (timeUnixNano / observedTimeUnixNano)")

    def is_error(self) -> bool:
        """The event names an `error.type` (the conventions' mark of a failed call)."""
        return bool(self.attrs.get("error.type"))


def log_views(record: dict[str, Any]) -> list[SpanView | Reject]:
    """The GenAI content events of a logs export as spans: each details event alone, the older
    per-message events grouped by their span."""
    views: list[SpanView | Reject] = []
    groups: dict[Any, tuple[dict, list[dict]]] = {}
    for item in otlp_items(record, LOGS):
        if isinstance(item, Reject):
            views.append(item)
            continue
        resource, log_record, _ = item
        name = event_name(log_record)
        if name == DETAILS_EVENT:
            views.append(LogView([log_record], resource))
        elif name in CONTENT_EVENTS:
            key = _span_key(log_record) or id(log_record)  # without a span, an event stands alone
            groups.setdefault(key, (resource, []))[1].append(log_record)
    return views + [LogView(group, resource) for resource, group in groups.values()]


def _span_key(item: dict[str, Any]) -> tuple[str, str] | None:
    """(traceId, spanId) of a span or log record, as lower-case hex; None without both."""
    trace_id, span_id = get_any(item, "traceId", "trace_id"), get_any(item, "spanId", "span_id")
    if trace_id in (None, "") or span_id in (None, ""):
        return None
    return str(trace_id).lower(), str(span_id).lower()


# --- the join ------------------------------------------------------------------------------

def _has_messages(view: SpanView) -> bool:
    """The span carries its own input messages (attributes or message events)."""
    if view.has_attribute("gen_ai.input.messages"):  # the usual case, told without decoding
        return True
    a = view.attrs
    if "gen_ai.input.messages" in a or "gen_ai.prompt" in a or indexed(a, "gen_ai.prompt"):
        return True
    return any(isinstance(e.get("name"), str) and e["name"] in PROMPT_EVENTS for e in view.events)


@dataclass
class _Held:
    """A record held by the join until its spans have their events, or its events their spans."""

    key: Any
    record: dict[str, Any]
    spans: dict[tuple[str, str], list[dict]] = field(default_factory=dict)  # still waiting for events
    events: list[tuple[tuple[str, str], dict, list]] = field(default_factory=list)  # not yet placed
    moved: list[tuple[dict, list]] = field(default_factory=list)  # placed on a span: taken out

    @property
    def done(self) -> bool:
        """Nothing of the record waits any more: it can go on."""
        return not self.spans and not self.events


def _needs(record: Any) -> _Held | None:
    """What of a record the join must wait for: its GenAI spans without content, and its GenAI
    content log events; None when it has neither (it passes straight through)."""
    if not isinstance(record, dict):
        return None
    entry = _Held(None, record)
    if is_trace_export(record):
        for item in otlp_items(record):
            if isinstance(item, Reject):
                continue
            view = SpanView(item[1], item[0])
            if is_gen_ai(view) and not _has_messages(view) and (key := _span_key(item[1])):
                entry.spans.setdefault(key, []).append(item[1])
    if is_logs_export(record):
        for _, log_record, holder in _content_records(record):
            key = _span_key(log_record)
            if key:
                entry.events.append((key, log_record, holder))
    return None if entry.done else entry


def join_events(items: Iterable[tuple[Any, Any]], window: int = JOIN_WINDOW) -> Iterator[tuple[Any, Any]]:
    """The (position, record) pairs of one file, with each GenAI log event that carries a span's
    content moved onto that span (matched by traceId and spanId), in whatever order the two come.

    Records that take no part pass straight through. A trace record waits (is held) until each of
    its content-less GenAI spans has had a details or `gen_ai.choice` event; a logs record until
    each of its content events has found its span. At most `window` records are held: the oldest
    goes on as it is when more come, and all go at the end of the file. A logs record whose events
    were moved keeps its other log records and is marked `replaybench.joined_events` (how many
    moved), so that it still reads as `otel`. Every pair comes out once, with its own position.
    """
    held: OrderedDict[int, _Held] = OrderedDict()
    spans: dict[tuple[str, str], list[tuple[int, dict]]] = {}  # span key -> held spans waiting
    events: dict[tuple[str, str], list[tuple[int, dict]]] = {}  # span key -> held events unplaced
    serial = itertools.count()

    def place(key: tuple[str, str]) -> set[int]:
        """Move the events waiting for `key` onto its spans; the seqs of the records touched."""
        if key not in spans or key not in events:
            return set()
        found = events.pop(key)
        for seq, log_record in found:
            entry = held[seq]
            for e in entry.events:
                if e[1] is log_record:
                    entry.moved.append((log_record, e[2]))
            entry.events = [e for e in entry.events if e[1] is not log_record]
        complete = any(event_name(r) in FINAL_EVENTS for _, r in found)
        for seq, span in spans[key]:
            old = span.get("events")
            span["events"] = [*(old if isinstance(old, list) else []), *(as_span_event(r) for _, r in found)]
            if complete:
                held[seq].spans.pop(key, None)
        touched = {seq for seq, _ in found} | {seq for seq, _ in spans[key]}
        if complete:
            del spans[key]
        return touched

    def release(seq: int) -> tuple[Any, Any]:
        """Let a held record go on: what of it still waits is forgotten, moved events taken out."""
        entry = held.pop(seq)
        for key in entry.spans:
            spans[key] = [s for s in spans.get(key, []) if s[0] != seq]
            if not spans[key]:
                del spans[key]
        for key, log_record, _ in entry.events:
            events[key] = [e for e in events.get(key, []) if e[1] is not log_record]
            if not events[key]:
                del events[key]
        if entry.moved:
            gone = {id(r) for r, _ in entry.moved}
            for holder in {id(h): h for _, h in entry.moved}.values():
                holder[:] = [r for r in holder if id(r) not in gone]
            entry.record[JOINED] = len(entry.moved)
        return entry.key, entry.record

    for key, record in items:
        try:
            entry = _needs(record)
        except RecursionError:  # nested deeper than Python reads: the parser rejects it
            entry = None
        if entry is None:
            yield key, record
            continue
        entry.key = key
        seq = next(serial)
        held[seq] = entry
        for span_key, span_list in entry.spans.items():
            spans.setdefault(span_key, []).extend((seq, s) for s in span_list)
        for span_key, log_record, _ in entry.events:
            events.setdefault(span_key, []).append((seq, log_record))
        touched = {seq}
        for span_key in {*entry.spans, *(e[0] for e in entry.events)}:
            touched |= place(span_key)
        for done in sorted(s for s in touched if s in held and held[s].done):
            yield release(done)
        while len(held) > window:
            yield release(next(iter(held)))
    while held:
        yield release(next(iter(held)))


# --- reading the content -------------------------------------------------------------------

def _json_attribute(value: Any) -> Any:
    """`maybe_json` at orjson's speed, for the JSON text attributes of every GenAI span
    (`gen_ai.input.messages`, …); what `loads` cannot read as bytes (a lone surrogate) goes to
    maybe_json, which reads the text as it is."""
    if isinstance(value, str) and value[:1] in ("{", "[") and not too_deep(value):
        try:
            return loads(value.encode("utf-8", "surrogatepass"))
        except ValueError:
            pass
    return maybe_json(value)


def _attribute(attrs: dict[str, Any], *keys: str) -> Any:
    """The first of these attributes that is set (neither None nor empty text, as `first` reads
    them): the spellings of one attribute across versions of the conventions."""
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return value
    return None


def _parts_text(parts: Any) -> str | None:
    """The text of OTel GenAI message parts (`[{"type": "text", "content": …}]`)."""
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        return None
    texts = [as_text(p.get("content", p.get("text", ""))) for p in parts
             if isinstance(p, dict) and p.get("type") in ("text", None)]
    if texts:
        return "".join(texts)
    return json.dumps(parts, ensure_ascii=False) if parts else None


def _otel_message(m: Any) -> dict[str, Any] | None:
    if not isinstance(m, dict):
        return None
    content = _parts_text(m["parts"]) if "parts" in m else message_text(m.get("content"))
    return {"role": m.get("role") or "user", "content": content}


def _otel_messages(view: SpanView) -> list[dict[str, Any]]:
    a = view.attrs
    messages: list[dict[str, Any]] = []
    system = _json_attribute(a.get("gen_ai.system_instructions"))
    if system:
        messages.append({"role": "system", "content": _parts_text(system) if isinstance(system, list)
                         else str(system)})
    current = _json_attribute(a.get("gen_ai.input.messages"))
    if isinstance(current, list):
        messages += [m for m in map(_otel_message, current) if m]
        return messages
    flat = indexed(a, "gen_ai.prompt")  # older flattened attributes (OpenLLMetry)
    if flat:
        return messages + [{"role": m.get("role") or "user", "content": m.get("content")} for m in flat]
    old = _json_attribute(a.get("gen_ai.prompt"))  # semconv <= 1.27: one JSON attribute
    if isinstance(old, list):
        return messages + [m for m in map(_otel_message, old) if m]
    for event in view.events_named("gen_ai.content.prompt"):
        prompt = maybe_json(event.get("gen_ai.prompt"))
        if isinstance(prompt, list):
            messages += [m for m in map(_otel_message, prompt) if m]
    for event in view.events:
        role = MESSAGE_EVENTS.get(event["name"]) if isinstance(event.get("name"), str) else None
        if role:
            attrs = otlp_attributes(event.get("attributes"))
            body = maybe_json(first(attrs.get("gen_ai.event.content"), attrs.get("content"),
                                    otlp_value(event.get("body"))))
            content = body.get("content") if isinstance(body, dict) else body
            role = first(attrs.get("role"), as_object(body).get("role"), role)
            messages.append({"role": role, "content": message_text(content)})
    return messages


def _otel_output(view: SpanView) -> str | None:
    a = view.attrs
    current = _json_attribute(a.get("gen_ai.output.messages"))
    if isinstance(current, list) and current:
        return _parts_text(as_object(current[0]).get("parts"))
    flat = indexed(a, "gen_ai.completion")
    if flat:
        return flat[0].get("content")
    old = _json_attribute(a.get("gen_ai.completion"))
    if old is not None:
        return answer_text(old)
    for event in view.events_named("gen_ai.content.completion"):
        return answer_text(event.get("gen_ai.completion"))
    for event in view.events_named(CHOICE_EVENT):
        body = maybe_json(first(event.get("gen_ai.event.content"), event.get("message"),
                                otlp_value(event.get("__body"))))
        if isinstance(body, dict) and "message" in body:
            body = body["message"]
        return answer_text(body)
    return None


def _millis(attrs: dict[str, Any], key: str) -> float | None:
    """A duration attribute, which the conventions give in seconds, in milliseconds."""
    seconds = measure(numeric(attrs.get(key)), key)
    return None if seconds is None else seconds * 1000


# --- the format ----------------------------------------------------------------------------

def in_the_join(record: Any) -> bool:
    """The record holds a GenAI span without its content, or a GenAI content log event: the join
    may move events between it and other records."""
    try:
        return _needs(record) is not None
    except RecursionError:  # join_events passes it through, and the parser rejects it
        return False


@register("otel", sniff=looks_like_otel, join=join_events, joins=in_the_join)
def otel_record(rec: dict[str, Any], opts: IngestOptions = DEFAULT_OPTIONS) -> list[Row | Reject]:
    """OpenTelemetry GenAI spans (OTLP/JSON), their content on the span or in OTLP log events."""
    views: list[SpanView | Reject] = []
    if is_trace_export(rec) or not is_logs_export(rec):
        views += span_views(rec)
    if is_logs_export(rec):
        views += log_views(rec)
    return span_rows(views, opts, lambda v: isinstance(v, LogView) or is_gen_ai(v), _otel_span)


def _otel_span(view: SpanView, opts: IngestOptions) -> Row:
    # a details event recorded on the span (or moved there by the join) holds the content
    for event in view.events_named(DETAILS_EVENT):
        view.attrs = {k: v for k, v in event.items() if k != "__body"} | view.attrs
    a = view.attrs
    ts, latency = view.times()
    messages = _otel_messages(view)
    if not messages:
        raise Reject("missing messages: no gen_ai.input.messages, gen_ai.prompt.* or message events "
                     "(content recorded as log events must be in the same file as its span)")
    params = {_GEN_AI_PARAMS.get(k, k.removeprefix("gen_ai.request.")): v for k, v in a.items()
              if k.startswith("gen_ai.request.") and k not in _GEN_AI_NOT_PARAMS}
    metadata = {
        "trace_id": view.trace_id, "span_id": view.span_id, "span_name": view.name,
        "provider": _attribute(a, "gen_ai.provider.name", "gen_ai.system"),
        "operation": a.get("gen_ai.operation.name"),
        "response_model": a.get("gen_ai.response.model"),
        "finish_reasons": a.get("gen_ai.response.finish_reasons"),
        "prompt_name": a.get("gen_ai.prompt.name"),
        "service_name": view.resource.get("service.name"),
        opts.prompt_version_key: attr_prompt_version(view, opts.prompt_version_key),
    }
    if isinstance(view, LogView):
        metadata["from_log_event"] = True
    failed = view.is_error()
    return build_row(
        "otel", opts,
        request_id=span_request_id(view, a.get("gen_ai.response.id")),
        ts=ts, messages=messages, metadata=metadata,
        model_id=_attribute(a, "gen_ai.request.model", "gen_ai.response.model"),
        params=params, output_text=_otel_output(view),
        input_tokens=count(_attribute(a, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
                           "gen_ai.usage.input_tokens"),
        output_tokens=count(_attribute(a, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
                            "gen_ai.usage.output_tokens"),
        cached_tokens=count(_attribute(a, "gen_ai.usage.cache_read.input_tokens",
                                       "gen_ai.usage.cache_read_input_tokens",
                                       "gen_ai.usage.input_tokens.cached"),
                            "gen_ai.usage.cache_read.input_tokens"),
        reasoning_tokens=count(_attribute(a, "gen_ai.usage.reasoning.output_tokens",
                                          "gen_ai.usage.output_tokens.reasoning",
                                          "gen_ai.usage.reasoning_tokens"),
                               "gen_ai.usage.reasoning.output_tokens"),
        latency_ms=latency,
        ttft_ms=_millis(a, "gen_ai.response.time_to_first_chunk"),
        status="error" if failed else "ok",
        error=first(view.status_message, a.get("error.type")) if failed else None,
    )
