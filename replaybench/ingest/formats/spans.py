"""Trace spans as the span formats (`otel`, `openinference`) read them: OTLP/JSON exports (and the
log records of OTLP logs exports), Phoenix REST spans, and rows of Phoenix span dataframes."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from replaybench.ingest.formats.base import (
    IngestOptions,
    Reject,
    Row,
    as_object,
    first,
    get_any,
    millis_between,
    timestamp,
)


def otlp_value(value: Any) -> Any:
    """An OTLP/JSON AnyValue (`{"stringValue": …}`, `{"intValue": "42"}`, arrays, kvlists) as Python."""
    if not isinstance(value, dict):
        return value
    for key in ("stringValue", "string_value"):
        if key in value:
            return value[key]
    for key in ("intValue", "int_value"):
        if key in value:
            try:
                return int(value[key])
            except (TypeError, ValueError, OverflowError):  # text, a list, inf
                return value[key]
    for key in ("doubleValue", "double_value"):
        if key in value:
            try:
                return float(value[key])
            except (TypeError, ValueError, OverflowError):  # text, a list, an integer past 1e308
                return value[key]
    for key in ("boolValue", "bool_value", "bytesValue", "bytes_value"):
        if key in value:
            return value[key]
    for key in ("arrayValue", "array_value"):
        if key in value:
            values = as_object(value[key]).get("values")
            return [otlp_value(v) for v in values] if isinstance(values, list) else []
    for key in ("kvlistValue", "kvlist_value"):
        if key in value:
            return otlp_attributes(as_object(value[key]).get("values"))
    return None


def otlp_attributes(attributes: Any) -> dict[str, Any]:
    """Span attributes as a flat `{key: value}` map, from an OTLP list or an already-decoded map."""
    if isinstance(attributes, list):
        return {a["key"]: otlp_value(a.get("value")) for a in attributes
                if isinstance(a, dict) and isinstance(a.get("key"), str)}
    if isinstance(attributes, dict):
        return dict(flatten(attributes))
    return {}


def flatten(value: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """Nested maps and lists as dotted keys (`llm.input_messages.0.message.role`), as Phoenix flattens."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from flatten(v, f"{prefix}{k}.")
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            yield from flatten(v, f"{prefix}{i}.")
    else:
        yield prefix[:-1], value


def indexed(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """`prefix.N.field` attributes as a list of `{field: value}` in index order."""
    found: dict[int, dict[str, Any]] = {}
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d{{1,9}})\.(.+)$")
    for key, value in attrs.items():
        m = pattern.match(key)
        if m:
            found.setdefault(int(m.group(1)), {})[m.group(2)] = value
    return [found[i] for i in sorted(found)]


# how each OTLP signal spells its three levels (JSON camelCase, protobuf snake_case, and the
# instrumentationLibrary* names of OTLP before 1.0)
SPANS = (("resourceSpans", "resource_spans"), ("scopeSpans", "scope_spans", "instrumentationLibrarySpans"),
         ("spans",))
LOGS = (("resourceLogs", "resource_logs"), ("scopeLogs", "scope_logs", "instrumentationLibraryLogs"),
        ("logRecords", "log_records"))


# the fields of an OTLP span, in OTLP/JSON's and protobuf's spelling: none is a Phoenix
# `attributes.*` column
_OTLP_SPAN_FIELDS = frozenset({
    "traceId", "spanId", "traceState", "parentSpanId", "flags", "name", "kind", "startTimeUnixNano",
    "endTimeUnixNano", "attributes", "droppedAttributesCount", "events", "droppedEventsCount", "links",
    "droppedLinksCount", "status",
    "trace_id", "span_id", "trace_state", "parent_span_id", "start_time_unix_nano", "end_time_unix_nano",
    "dropped_attributes_count", "dropped_events_count", "dropped_links_count",
})


def otlp_items(record: dict[str, Any], signal: tuple = SPANS) -> Iterator[tuple[dict, dict, list] | Reject]:
    """(resource attributes, item, the list holding it) for every span (or log record) of an OTLP
    export; a part of the export that is not of the shape OTLP gives it is a Reject naming where."""
    (top, *_), (middle, *_), (leaf, *_) = signal
    resources = get_any(record, *signal[0])
    if not isinstance(resources, list):
        yield Reject(f"{top} is not a list")
        return
    for i, rs in enumerate(resources):
        where = f"{top}[{i}]"
        if not isinstance(rs, dict):
            yield Reject(f"{where} is not an object")
            continue
        if not isinstance(rs.get("resource"), dict | None):
            yield Reject(f"{where}.resource is not an object")
            continue
        resource = otlp_attributes(as_object(rs.get("resource")).get("attributes"))
        scopes = get_any(rs, *signal[1]) or []
        if not isinstance(scopes, list):
            yield Reject(f"{where}.{middle} is not a list")
            continue
        for j, scope in enumerate(scopes):
            items = get_any(as_object(scope), *signal[2]) or []
            if not isinstance(scope, dict | None) or not isinstance(items, list):
                yield Reject(f"{where}.{middle}[{j}] is not an object with a list of {leaf}")
                continue
            for k, item in enumerate(items):
                if isinstance(item, dict):
                    yield resource, item, items
                else:
                    yield Reject(f"{where}.{middle}[{j}].{leaf}[{k}] is not an object")


def is_trace_export(record: dict[str, Any]) -> bool:
    """An OTLP trace export (`resourceSpans`)."""
    return get_any(record, *SPANS[0]) is not None


def is_span(record: dict[str, Any]) -> bool:
    """A single span: an OTLP span, a Phoenix REST span, or a Phoenix spans-dataframe row."""
    if "attributes" in record and any(k in record for k in ("traceId", "trace_id", "spanId", "span_id",
                                                            "context", "span_kind")):
        return True
    return "context.span_id" in record or any(k.startswith("attributes.") for k in record)


class SpanView:
    """The parts of a span the span formats read, whichever shape it came in.

    Each part is read from the span when it is asked for, and the attributes are decoded only
    then (once): most spans of a trace export are not LLM calls (an HTTP server span beside each
    GenAI one), and the formats tell them apart by their attributes' names alone."""

    def __init__(self, span: dict[str, Any], resource: dict[str, Any] | None = None):
        self.span = span
        self.resource = resource or {}
        self._attrs: dict[str, Any] | None = None  # decoded when first asked for

    @property
    def attrs(self) -> dict[str, Any]:
        """The attributes as a flat `{key: value}` map; a Phoenix dataframe row's from its
        `attributes.llm.model_name` columns too."""
        if self._attrs is None:
            self._attrs = otlp_attributes(self.span.get("attributes"))
            for key in self._attribute_columns():
                self._attrs.update(flatten(self.span[key], key.removeprefix("attributes.") + "."))
        return self._attrs

    @attrs.setter
    def attrs(self, attrs: dict[str, Any]) -> None:
        self._attrs = attrs

    def _attribute_columns(self) -> list[str]:
        """The span's `attributes.*` keys (Phoenix dataframe columns): none when all its fields are
        OTLP's, as is seen without looking at each."""
        if self.span.keys() <= _OTLP_SPAN_FIELDS:
            return []
        return [key for key in self.span if key.startswith("attributes.")]

    def _undecoded_list(self) -> list[Any] | None:
        """The span's OTLP attribute list, while `attrs` is not decoded yet: every name in it is a
        name of `attrs`, found there without decoding a value."""
        listed = self.span.get("attributes")
        return listed if self._attrs is None and isinstance(listed, list) else None

    def has_attribute(self, name: str) -> bool:
        """Whether `name` is a key of `attrs`; told from the names alone when it can be."""
        listed = self._undecoded_list()
        if listed is not None:
            if any(isinstance(item, dict) and item.get("key") == name for item in listed):
                return True
            if not self._attribute_columns():  # the list holds every name
                return False
        return name in self.attrs

    def has_attribute_prefix(self, prefix: str) -> bool:
        """Whether a key of `attrs` starts with `prefix` (`gen_ai.`); told from the names alone when
        it can be."""
        listed = self._undecoded_list()
        if listed is not None:
            for item in listed:
                key = item.get("key") if isinstance(item, dict) else None
                if isinstance(key, str) and key.startswith(prefix):
                    return True
            if not self._attribute_columns():  # the list holds every name
                return False
        return any(name.startswith(prefix) for name in self.attrs)

    @property
    def trace_id(self) -> Any:
        context = as_object(self.span.get("context"))
        return first(self.span.get("traceId"), self.span.get("trace_id"), context.get("trace_id"),
                     self.span.get("context.trace_id"))

    @property
    def span_id(self) -> Any:
        context = as_object(self.span.get("context"))
        return first(self.span.get("spanId"), self.span.get("span_id"), context.get("span_id"),
                     self.span.get("context.span_id"))

    @property
    def name(self) -> Any:
        return self.span.get("name")

    @property
    def kind(self) -> Any:
        """Phoenix's span kind (`LLM`, `CHAIN`, …)."""
        return self.span.get("span_kind")

    @property
    def status_code(self) -> Any:
        return first(as_object(self.span.get("status")).get("code"), self.span.get("status_code"))

    @property
    def status_message(self) -> Any:
        return first(as_object(self.span.get("status")).get("message"), self.span.get("status_message"))

    @property
    def events(self) -> list[dict[str, Any]]:
        """The span's events that are objects."""
        events = self.span.get("events")
        return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []

    def times(self) -> tuple[datetime, float | None]:
        """Start (UTC) and duration in ms, from unix nanos (OTLP) or ISO strings (Phoenix)."""
        start_ns = get_any(self.span, "startTimeUnixNano", "start_time_unix_nano")
        end_ns = get_any(self.span, "endTimeUnixNano", "end_time_unix_nano")
        if start_ns is not None:
            start = nanos(start_ns, "startTimeUnixNano")
            end = None if end_ns is None else nanos(end_ns, "endTimeUnixNano")
            ts = nanos_time(start, "startTimeUnixNano")
            if end is None:
                return ts, None
            nanos_time(end, "endTimeUnixNano")
            if end < start:
                raise Reject("span ends before it starts (endTimeUnixNano < startTimeUnixNano)")
            return ts, (end - start) / 1e6
        start_iso = self.span.get("start_time")
        if start_iso is None:
            raise Reject("missing timestamp (startTimeUnixNano / start_time)")
        ts = timestamp(start_iso, "start_time")
        return ts, millis_between(ts, self.span.get("end_time"), "end_time")

    def is_error(self) -> bool:
        """The span's status is ERROR."""
        return self.status_code in (2, "2", "ERROR", "STATUS_CODE_ERROR")

    def events_named(self, *names: str) -> list[dict[str, Any]]:
        """The attributes of the events of these names, each with its body as `__body`."""
        return [otlp_attributes(e.get("attributes")) | {"__body": e.get("body")}
                for e in self.events if e.get("name") in names]


def nanos(value: Any, field: str) -> int:
    """Unix nanoseconds (an integer or its decimal text, as OTLP/JSON writes them); Reject otherwise."""
    if isinstance(value, bool):
        raise Reject(f"unparsable timestamp ({field}): {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # text, a digit string over 4,300 long, inf
        raise Reject(f"unparsable timestamp ({field}): {str(value)[:40]!r}") from None
    if number <= 0:
        raise Reject(f"unparsable timestamp ({field}): {str(value)[:40]!r}")
    return number


def nanos_time(value: int, field: str) -> datetime:
    """Unix nanoseconds as a UTC time; Reject past the year 9999 (a 30-digit value, say)."""
    try:
        return datetime.fromtimestamp(value / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        raise Reject(f"unparsable timestamp ({field}): {str(value)[:40]} ns is out of range") from None


def span_views(record: dict[str, Any]) -> list[SpanView | Reject]:
    """The spans of an OTLP trace export, or the record itself when it is a single span."""
    if is_trace_export(record):
        return [s if isinstance(s, Reject) else SpanView(s[1], s[0]) for s in otlp_items(record)]
    if is_span(record):
        return [SpanView(record)]
    raise Reject("not a trace export: no resourceSpans and no span fields")


def span_rows(views: Iterable[SpanView | Reject], opts: IngestOptions, wanted: Callable[[SpanView], bool],
              to_row: Callable[[SpanView, IngestOptions], Row]) -> list[Row | Reject]:
    """One row per wanted span; a span that fails becomes a Reject in the list, naming the span."""
    rows: list[Row | Reject] = []
    for view in views:
        if isinstance(view, Reject):  # a broken part of the export
            rows.append(view)
            continue
        if not wanted(view):
            continue
        try:
            rows.append(to_row(view, opts))
        except Reject as exc:
            rows.append(Reject(f"{exc} (span {view.span_id or '?'})"))
    return rows


def span_request_id(view: SpanView, response_id: Any = None) -> str:
    """The response id when there is one, else `traceId:spanId`."""
    if response_id not in (None, ""):
        return str(response_id)
    if not view.trace_id or not view.span_id:
        raise Reject("missing request id: no gen_ai.response.id and no traceId/spanId")
    return f"{view.trace_id}:{view.span_id}"


def attr_prompt_version(view: SpanView, key: str) -> Any:
    """The span's attribute `key`, else the resource's."""
    return first(view.attrs.get(key), view.resource.get(key))
