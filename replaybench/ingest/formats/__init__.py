"""Production log formats: each turns one source record into rows of the `logs` table.

A format is a function `(record, IngestOptions) -> list of rows` registered by name. Most formats
give one row per record (a request/response pair); an OTLP trace export gives one row per GenAI span
and an empty list when it holds none. A record that cannot be used at all raises `Reject` with a
reason a person understands; inside a multi-row record a bad span is a `Reject` *in the returned
list*, so the good spans beside it are kept and the caller stores the bad one as a reject.

Formats (docs/log-formats.md has the field-by-field mapping):
    openai         the request/response log of DESIGN.md
    otel           OTLP/JSON trace exports with OpenTelemetry GenAI spans (`gen_ai.*`)
    openinference  Arize Phoenix / OpenInference LLM spans (OTLP export or Phoenix span JSON)
    langfuse       Langfuse observations (public API `{"data": [...]}` or UI export), GENERATIONs
    litellm        LiteLLM's StandardLoggingPayload (custom loggers, S3/GCS callbacks)
    helicone       Helicone request exports (`@helicone/export`, REST query API)

Token counts follow OpenTelemetry GenAI: input tokens include cached ones, output tokens include
reasoning ones, whatever the source's own convention.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from replaybench.ingest.readers import MAX_DEPTH, MAX_LINE_BYTES, too_deep

MAX_FIELD_CHARS = 1_000_000  # default: a single text field larger than this is a broken export
MAX_TOKENS = 2**31 - 1  # the logs table keeps token counts as INTEGER

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


@dataclass(frozen=True)
class IngestOptions:
    """How records are read; filled from the config's `ingest:` section."""

    prompt_version_key: str = "prompt_version"  # metadata key holding the prompt version
    max_field_chars: int = MAX_FIELD_CHARS  # a longer text field rejects its record

    @property
    def max_line_bytes(self) -> int:
        """A longer line is rejected unread: room for a record of many fields at the field limit
        (a character escaped as \\uXXXX takes 6 bytes), and at least 64 MiB, so that DuckDB's
        read_json (given half as its object size) fails on every line the record path rejects."""
        return max(MAX_LINE_BYTES, 64 * self.max_field_chars)

    @classmethod
    def from_settings(cls, ingest: Any) -> IngestOptions:
        """From `Settings.ingest` (or anything with the same two attributes)."""
        return cls(prompt_version_key=ingest.prompt_version_key, max_field_chars=ingest.max_field_chars)


DEFAULT_OPTIONS = IngestOptions()


class Reject(Exception):
    """A record (or span) that cannot become a log row; the message is the stored reason."""


Row = dict[str, Any]
Format = Callable[[dict[str, Any], IngestOptions], list[Row | Reject]]
FORMATS: dict[str, Format] = {}


def register(name: str) -> Callable[[Format], Format]:
    def wrap(fn: Format) -> Format:
        FORMATS[name] = fn
        return fn

    return wrap


# --- detection -----------------------------------------------------------------------------

def detect(record: dict[str, Any]) -> str:
    """The name of the format a record is in, from its content; Reject if none fits.

    The rule, first match wins:
    1. `resourceSpans` (an OTLP trace export): `openinference` if any span carries
       `openinference.span.kind`, else `otel`.
    2. a single span (Phoenix span JSON, an OTLP span, a Phoenix dataframe row): `openinference` if it
       has a span kind or `llm.*` attributes, `otel` if it has `gen_ai.*` attributes.
    3. `request` plus `response` or `status`: `openai`.
    4. `call_type` plus `messages`, `response` or `model_parameters`: `litellm`.
    5. `request_id` plus `request_body` or `request_created_at`: `helicone`.
    6. `type` and `startTime` plus `traceId` or `id`: `langfuse`.
    """
    if _get(record, "resourceSpans", "resource_spans") is not None:
        spans = [s[1] for s in _otlp_spans(record) if not isinstance(s, Reject)]
        return "openinference" if any(_oi_kind(_SpanView(s)) for s in spans) else "otel"
    if _is_span(record):
        view = _SpanView(record)
        if _oi_kind(view) or any(k.startswith("llm.") for k in view.attrs):
            return "openinference"
        if any(k.startswith("gen_ai.") for k in view.attrs):
            return "otel"
    if "request" in record and ("response" in record or "status" in record):
        return "openai"
    if "call_type" in record and any(k in record for k in ("messages", "response", "model_parameters")):
        return "litellm"
    if "request_id" in record and ("request_body" in record or "request_created_at" in record):
        return "helicone"
    if "type" in record and "startTime" in record and ("traceId" in record or "id" in record):
        return "langfuse"
    raise Reject(f"unrecognised record: {_looks_like(record)}")


def _looks_like(record: dict[str, Any]) -> str:
    """A short description of a record no format recognises, to put in the reject reason."""
    if "resourceLogs" in record or "resource_logs" in record:
        return "an OTLP logs export (ingest trace exports: resourceSpans)"
    if "resourceMetrics" in record or "resource_metrics" in record:
        return "an OTLP metrics export (ingest trace exports: resourceSpans)"
    if _is_span(record):
        return "a trace span without gen_ai.* or OpenInference LLM attributes"
    if record.get("object") in ("chat.completion", "response") or "choices" in record:
        return "a model response without its request"
    if "messages" in record and "model" in record:
        return "a chat request without its response or log fields"
    if "observations" in record or ("traceId" not in record and "sessionId" in record):
        return "a Langfuse trace, not an observation export"
    keys = ", ".join(str(k)[:40] for k in list(record)[:8]) or "none"
    return f"no known log format has these fields (keys: {keys})"


def parse(record: Any, fmt: str = "auto", options: IngestOptions | None = None) -> list[Row | Reject]:
    """One source record as `logs` rows (without source bookkeeping); a bad span is a Reject item."""
    if not isinstance(record, dict):
        raise Reject(f"not a JSON object but a {type(record).__name__}")
    try:
        name = detect(record) if fmt == "auto" else fmt
        if name not in FORMATS:
            raise Reject(f"unknown format {name!r}")
        return FORMATS[name](record, options or DEFAULT_OPTIONS)
    except RecursionError:  # the readers stop JSON at MAX_DEPTH; other sources may go deeper
        raise Reject(f"nested too deeply: more than {MAX_DEPTH} levels of arrays and objects") from None


# --- field helpers shared by formats -------------------------------------------------------

def measure(value: Any, field: str) -> float | None:
    """A duration, amount or count: a non-negative finite number, or None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = str(value) if isinstance(value, str | bool) else _as_text(value)  # JSON, as SQL shows it
        raise Reject(f"{field} is not a number: {shown[:40]!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits: infinite as a float, as in DuckDB
        number = math.inf if value > 0 else -math.inf
    if not math.isfinite(number):  # 1e999 and NaN parse; neither is an amount
        raise Reject(f"{field} is not a number: {str(number)!r}")
    if number < 0:
        raise Reject(f"{field} is negative: {value}")
    return number


def count(value: Any, field: str) -> int | None:
    """A token count: a non-negative integer (truncated), or None when absent."""
    number = measure(value, field)
    if number is None:
        return None
    if number > MAX_TOKENS:
        raise Reject(f"{field} is too large: over {MAX_TOKENS:,}")
    return int(number)


# The ISO-8601 timestamps both ingest paths read alike: Python's fromisoformat also takes the
# basic format (20261120T140311Z), week dates and a bare hour, DuckDB's cast also takes time zone
# names, 24:00, one-digit months and spaces around; those are unparsable in both.
ISO_TIMESTAMP = (r"(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-[0-9]{2}-[0-9]{2}"
                 r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]*)?)?)?"
                 r"(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?")
_ISO_TIMESTAMP = re.compile(ISO_TIMESTAMP)


def timestamp(value: Any, field: str = "ts") -> datetime:
    """An ISO-8601 timestamp (`ISO_TIMESTAMP`; a naive one is taken as UTC), epoch seconds or a
    datetime, as UTC."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):  # before year 1 or after 9999
            raise Reject(f"unparsable timestamp ({field}): {_float_text(value)}") from None
    if not isinstance(value, str) or not value:
        raise Reject(f"missing timestamp ({field})")
    if not _ISO_TIMESTAMP.fullmatch(value):
        raise Reject(f"unparsable timestamp: {value[:40]!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Reject(f"unparsable timestamp: {value[:40]!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _float_text(value: int | float) -> str:
    """A number as Python (and DuckDB) print it as a float: `1e+300`, `inf`, `nan`."""
    try:
        return str(float(value))
    except OverflowError:
        return "inf" if value > 0 else "-inf"


def text(value: Any, field: str, limit: int = MAX_FIELD_CHARS) -> str | None:
    """A text column: strings as they are, anything else as JSON; over `limit` chars rejects."""
    if value is None:
        return None
    if not isinstance(value, str):
        value = json_text(value, field)
    if len(value) > limit:
        raise Reject(f"{field} is over the size limit ({len(value):,} > {limit:,} chars)")
    return storable(value, field)


def json_text(value: Any, field: str) -> str:
    """A value as compact JSON text for a JSON column: not nested deeper than the readers read
    (MAX_DEPTH), and no half surrogate pairs (JSON text can escape one; UTF-8 cannot hold it)."""
    value = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    if too_deep(value):
        raise Reject(f"{field} is nested too deeply: more than {MAX_DEPTH} levels of arrays and objects")
    return storable(value, field)


def storable(value: str, field: str) -> str:
    """`value` if it can be stored as UTF-8; Reject when it holds half of a UTF-16 surrogate pair."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Reject(f"{field} is not valid Unicode: it holds half of a UTF-16 surrogate pair") from None
    return value


def derived_prompt_version(messages: list[dict]) -> str:
    """A stable stand-in for a missing prompt_version: a hash of the system prompt (content that
    is not a string counts as its JSON text, as the SQL path reads it)."""
    system = "\n".join(_as_text(m.get("content")) for m in messages if m.get("role") == "system")
    return "sys:" + hashlib.sha256(system.encode("utf-8", "surrogatepass")).hexdigest()[:10]


def message_text(content: Any) -> str | None:
    """Message content as text (the `text` of OpenAI content parts joined); other values as JSON."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_as_text(p.get("text")) for p in content if isinstance(p, dict))
    return _as_text(content)


def _as_text(value: Any) -> str:
    """A string as it is, None as nothing, anything else as its JSON text (as DuckDB gives it)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def _obj(value: Any) -> dict[str, Any]:
    """A value that should be an object, or {} when it is not one (lenient formats)."""
    return value if isinstance(value, dict) else {}


def _get(d: dict[str, Any], *keys: str) -> Any:
    """The first of several spellings of a field that is present and not None."""
    for k in keys:
        v = d.get(k)
        if v is not None:
            return v
    return None


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None and v != ""), None)


def _ident(value: Any, field: str) -> str:
    """A required identifier: a non-empty string (or integer)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise Reject(f"missing {field}")
    return value.strip()


def _json_value(value: Any) -> Any:
    """A value that may be JSON text (attributes and CSV cells often are): parsed when it is
    (and not nested deeper than the readers read)."""
    if isinstance(value, str) and value[:1] in ("{", "[") and not too_deep(value):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _number(value: Any) -> Any:
    """A numeric string as a number (attributes and exports sometimes quote them); else as is."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return value
    return value


def _millis(start: datetime | None, end: Any, field: str) -> float | None:
    """Milliseconds from `start` to the timestamp `end` (None when either is absent)."""
    if start is None or end is None or end == "":
        return None
    delta = (timestamp(end, field) - start).total_seconds() * 1000
    if delta < 0:
        raise Reject(f"{field} is before the start time")
    return delta


def _chat_messages(value: Any, field: str) -> list[dict]:
    """Chat messages as sent: a list of objects with a role; a bare string is one user turn."""
    value = _json_value(value)
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        value = value["messages"]
    elif isinstance(value, dict) and "role" in value:
        value = [value]
    elif isinstance(value, str) and value.strip():
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise Reject(f"missing {field}")
    if not all(isinstance(m, dict) and m.get("role") for m in value):
        raise Reject(f"{field} must be objects with a role")
    return value


def _answer_text(value: Any) -> str | None:
    """The answer in a response-like value: a string, an OpenAI or Anthropic response, a message."""
    value = _json_value(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        choices = value.get("choices")
        if isinstance(choices, list) and choices:
            first = _obj(choices[0])
            message = _obj(first.get("message") or first.get("delta"))
            return message_text(message.get("content")) if message else message_text(first.get("text"))
        if value.get("type") == "message" and isinstance(value.get("content"), list):  # Anthropic
            return "".join(_as_text(p.get("text")) for p in value["content"]
                           if isinstance(p, dict) and p.get("type") == "text")
        if "content" in value:
            return message_text(value.get("content"))
        if "text" in value:
            return str(value["text"])
        return None
    if isinstance(value, list):  # a list of messages: the last assistant turn
        turns = [m for m in value if isinstance(m, dict)]
        assistant = [m for m in turns if m.get("role") == "assistant"] or turns
        return message_text(assistant[-1].get("content")) if assistant else None
    return str(value)


def _openai_usage(usage: Any) -> dict[str, int | None]:
    """OpenAI (or Anthropic, or Responses API) usage as OTel counts: cached in input, reasoning in output."""
    if not isinstance(usage, dict):
        return {}
    if "prompt_tokens" in usage or "completion_tokens" in usage:  # chat completions: already OTel
        prompt = _obj(usage.get("prompt_tokens_details"))
        completion = _obj(usage.get("completion_tokens_details"))
        return {
            "input_tokens": count(usage.get("prompt_tokens"), "prompt_tokens"),
            "output_tokens": count(usage.get("completion_tokens"), "completion_tokens"),
            "cached_tokens": count(_first(prompt.get("cached_tokens"), usage.get("cache_read_input_tokens")),
                                   "cached_tokens"),
            "reasoning_tokens": count(completion.get("reasoning_tokens"), "reasoning_tokens"),
        }
    if "input_tokens" in usage and "input_tokens_details" not in usage:  # Anthropic: cache apart
        fresh = count(usage.get("input_tokens"), "input_tokens")
        read = count(usage.get("cache_read_input_tokens"), "cache_read_input_tokens")
        written = count(usage.get("cache_creation_input_tokens"), "cache_creation_input_tokens")
        return {
            "input_tokens": None if fresh is None else fresh + (read or 0) + (written or 0),
            "output_tokens": count(usage.get("output_tokens"), "output_tokens"),
            "cached_tokens": read,
            "reasoning_tokens": None,
        }
    prompt = _obj(usage.get("input_tokens_details"))  # OpenAI Responses API
    completion = _obj(usage.get("output_tokens_details"))
    return {
        "input_tokens": count(usage.get("input_tokens"), "input_tokens"),
        "output_tokens": count(usage.get("output_tokens"), "output_tokens"),
        "cached_tokens": count(prompt.get("cached_tokens"), "cached_tokens"),
        "reasoning_tokens": count(completion.get("reasoning_tokens"), "reasoning_tokens"),
    }


_REQUEST_ONLY = {"messages", "model", "stream", "stream_options", "input", "prompt", "system", "metadata",
                 "user", "tools", "tool_choice", "functions"}


def _sampling(params: Any) -> dict[str, Any]:
    """The sampling parameters of a request body or parameter map (no messages, model or tools)."""
    params = _json_value(params)
    if not isinstance(params, dict):
        return {}
    return {k: _number(v) for k, v in params.items() if k not in _REQUEST_ONLY and v is not None}


_SECRET = re.compile(r"(^|_)(api_key|key_hash|hash|secret|password|authorization|token)$|^user_api_key$",
                     re.IGNORECASE)


def _scrub(value: Any) -> Any:
    """Metadata without credentials: keys, hashed keys, secrets and auth headers are dropped."""
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()
                if not _SECRET.search(str(k)) and str(k).lower() not in ("headers", "api_key")}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def build_row(fmt: str, opts: IngestOptions, *, request_id: str, ts: datetime, messages: list[dict],
              metadata: dict[str, Any], prompt_version: Any = None, endpoint: Any = None,
              model_id: Any = None, params: dict[str, Any] | None = None, output_text: Any = None,
              reference: Any = None, input_tokens: int | None = None, output_tokens: int | None = None,
              reasoning_tokens: int | None = None, cached_tokens: int | None = None,
              latency_ms: float | None = None, ttft_ms: float | None = None, cost_usd: float | None = None,
              status: str = "ok", error: Any = None) -> Row:
    """A `logs` row with the shared rules: size limits, JSON columns, the prompt_version fallbacks.

    prompt_version: the format's own field; else `metadata[prompt_version_key]`; else a hash of the
    system prompt, marked `metadata.prompt_version_derived = true`.
    """
    limit = opts.max_field_chars
    metadata = {k: v for k, v in metadata.items() if v is not None}
    if prompt_version is None or prompt_version == "":
        prompt_version = metadata.get(opts.prompt_version_key)
    if prompt_version is None or prompt_version == "":
        prompt_version = derived_prompt_version(messages)
        metadata["prompt_version_derived"] = True
    return {
        "request_id": text(request_id, "request_id", limit),
        "ts": ts,
        "endpoint": text(endpoint, "endpoint", limit),
        "model_id": text(model_id, "model_id", limit),
        "prompt_version": text(_as_text(prompt_version), "prompt_version", limit),
        "messages": text(messages, "messages", limit),
        "params": json_text(params or {}, "params"),
        "output_text": text(output_text, "output_text", limit),
        "reference": text(reference, "reference", limit),
        "input_tokens": _tokens(input_tokens, "input_tokens"),
        "output_tokens": _tokens(output_tokens, "output_tokens"),
        "reasoning_tokens": _tokens(reasoning_tokens, "reasoning_tokens"),
        "cached_tokens": _tokens(cached_tokens, "cached_tokens"),
        "latency_ms": latency_ms,
        "ttft_ms": ttft_ms,
        "cost_usd": cost_usd,
        "status": status,
        "error": text(error, "error", limit),
        "metadata": text(metadata, "metadata", limit),
        "source_format": fmt,
    }


def _tokens(value: int | None, field: str) -> int | None:
    """A token count as stored: sums of counts (cache reads added in) can outgrow the column."""
    if value is not None and value > MAX_TOKENS:
        raise Reject(f"{field} is too large: over {MAX_TOKENS:,}")
    return value


# --- openai --------------------------------------------------------------------------------

@register("openai")
def openai_record(rec: dict[str, Any], opts: IngestOptions = DEFAULT_OPTIONS) -> list[Row]:
    """The `openai` request/response log format of DESIGN.md."""
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
    prompt_details = _shaped(usage.get("prompt_tokens_details"), dict,
                             "response.usage.prompt_tokens_details is not an object")
    completion_details = _shaped(usage.get("completion_tokens_details"), dict,
                                 "response.usage.completion_tokens_details is not an object")

    metadata = dict(_obj(rec.get("metadata")))
    prompt_version = rec.get("prompt_version")
    if prompt_version is None or prompt_version == "":
        prompt_version = metadata.get(opts.prompt_version_key)
    if prompt_version is None or prompt_version == "":
        prompt_version = derived_prompt_version(messages)
        metadata["prompt_version_derived"] = True
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
        "prompt_version": storable(_as_text(prompt_version), "prompt_version"),
        "messages": text(messages, "request.messages", limit),
        "params": json_text(params, "params"),
        "output_text": text(message_text(message.get("content")), "response content", limit),
        "reference": text(rec.get("reference"), "reference", limit),
        "input_tokens": count(usage.get("prompt_tokens"), "prompt_tokens"),
        "output_tokens": count(usage.get("completion_tokens"), "completion_tokens"),
        "reasoning_tokens": count(completion_details.get("reasoning_tokens"), "reasoning_tokens"),
        "cached_tokens": count(prompt_details.get("cached_tokens"), "cached_tokens"),
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


# --- spans: OTLP/JSON and Phoenix ----------------------------------------------------------

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
            values = _obj(value[key]).get("values")
            return [otlp_value(v) for v in values] if isinstance(values, list) else []
    for key in ("kvlistValue", "kvlist_value"):
        if key in value:
            return otlp_attributes(_obj(value[key]).get("values"))
    return None


def otlp_attributes(attributes: Any) -> dict[str, Any]:
    """Span attributes as a flat `{key: value}` map, from an OTLP list or an already-decoded map."""
    if isinstance(attributes, list):
        return {a["key"]: otlp_value(a.get("value")) for a in attributes
                if isinstance(a, dict) and isinstance(a.get("key"), str)}
    if isinstance(attributes, dict):
        return dict(_flatten(attributes))
    return {}


def _flatten(value: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """Nested maps and lists as dotted keys (`llm.input_messages.0.message.role`), as Phoenix flattens."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}{k}.")
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            yield from _flatten(v, f"{prefix}{i}.")
    else:
        yield prefix[:-1], value


def _otlp_spans(record: dict[str, Any]) -> Iterable[tuple[dict, dict] | Reject]:
    """(resource attributes, span) for every span of an OTLP trace export; a part of the export
    that is not of the shape OTLP gives it is a Reject naming where it is."""
    resource_spans = _get(record, "resourceSpans", "resource_spans")
    if not isinstance(resource_spans, list):
        yield Reject("resourceSpans is not a list")
        return
    for i, rs in enumerate(resource_spans):
        where = f"resourceSpans[{i}]"
        if not isinstance(rs, dict):
            yield Reject(f"{where} is not an object")
            continue
        if not isinstance(rs.get("resource"), dict | None):
            yield Reject(f"{where}.resource is not an object")
            continue
        resource = otlp_attributes(_obj(rs.get("resource")).get("attributes"))
        scope_spans = _get(rs, "scopeSpans", "scope_spans", "instrumentationLibrarySpans") or []
        if not isinstance(scope_spans, list):
            yield Reject(f"{where}.scopeSpans is not a list")
            continue
        for j, ss in enumerate(scope_spans):
            spans = _obj(ss).get("spans") or []
            if not isinstance(ss, dict | None) or not isinstance(spans, list):
                yield Reject(f"{where}.scopeSpans[{j}] is not an object with a list of spans")
                continue
            for k, span in enumerate(spans):
                if isinstance(span, dict):
                    yield resource, span
                else:
                    yield Reject(f"{where}.scopeSpans[{j}].spans[{k}] is not an object")


def _is_span(record: dict[str, Any]) -> bool:
    """A single span: an OTLP span, a Phoenix REST span, or a Phoenix spans-dataframe row."""
    if "attributes" in record and any(k in record for k in ("traceId", "trace_id", "spanId", "span_id",
                                                            "context", "span_kind")):
        return True
    return "context.span_id" in record or any(k.startswith("attributes.") for k in record)


class _SpanView:
    """The parts of a span the span formats read, whichever shape it came in."""

    def __init__(self, span: dict[str, Any], resource: dict[str, Any] | None = None):
        self.span = span
        self.resource = resource or {}
        attrs = otlp_attributes(span.get("attributes"))
        for key, value in span.items():  # Phoenix dataframe rows: `attributes.llm.model_name` columns
            if key.startswith("attributes."):
                attrs.update(_flatten(value, key.removeprefix("attributes.") + "."))
        self.attrs = attrs
        context = span.get("context") if isinstance(span.get("context"), dict) else {}
        self.trace_id = _first(span.get("traceId"), span.get("trace_id"), context.get("trace_id"),
                               span.get("context.trace_id"))
        self.span_id = _first(span.get("spanId"), span.get("span_id"), context.get("span_id"),
                              span.get("context.span_id"))
        self.name = span.get("name")
        self.kind = span.get("span_kind")
        status = span.get("status") if isinstance(span.get("status"), dict) else {}
        self.status_code = _first(status.get("code"), span.get("status_code"))
        self.status_message = _first(status.get("message"), span.get("status_message"))
        events = span.get("events")
        self.events = [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []

    def times(self) -> tuple[datetime, float | None]:
        """Start (UTC) and duration in ms, from unix nanos (OTLP) or ISO strings (Phoenix)."""
        start_ns = _get(self.span, "startTimeUnixNano", "start_time_unix_nano")
        end_ns = _get(self.span, "endTimeUnixNano", "end_time_unix_nano")
        if start_ns is not None:
            start = _nanos(start_ns, "startTimeUnixNano")
            end = None if end_ns is None else _nanos(end_ns, "endTimeUnixNano")
            ts = _nanos_time(start, "startTimeUnixNano")
            if end is None:
                return ts, None
            _nanos_time(end, "endTimeUnixNano")
            if end < start:
                raise Reject("span ends before it starts (endTimeUnixNano < startTimeUnixNano)")
            return ts, (end - start) / 1e6
        start_iso = self.span.get("start_time")
        if start_iso is None:
            raise Reject("missing timestamp (startTimeUnixNano / start_time)")
        ts = timestamp(start_iso, "start_time")
        return ts, _millis(ts, self.span.get("end_time"), "end_time")

    def is_error(self) -> bool:
        return self.status_code in (2, "2", "ERROR", "STATUS_CODE_ERROR")

    def events_named(self, *names: str) -> list[dict[str, Any]]:
        return [otlp_attributes(e.get("attributes")) | {"__body": e.get("body")}
                for e in self.events if e.get("name") in names]


def _nanos(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise Reject(f"unparsable timestamp ({field}): {value!r}")
    try:
        nanos = int(value)
    except (TypeError, ValueError, OverflowError):  # text, a digit string over 4,300 long, inf
        raise Reject(f"unparsable timestamp ({field}): {str(value)[:40]!r}") from None
    if nanos <= 0:
        raise Reject(f"unparsable timestamp ({field}): {str(value)[:40]!r}")
    return nanos


def _nanos_time(nanos: int, field: str) -> datetime:
    """Unix nanoseconds as a UTC time; Reject past the year 9999 (a 30-digit value, say)."""
    try:
        return datetime.fromtimestamp(nanos / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        raise Reject(f"unparsable timestamp ({field}): {str(nanos)[:40]} ns is out of range") from None


def _spans(record: dict[str, Any]) -> list[_SpanView | Reject]:
    if _get(record, "resourceSpans", "resource_spans") is not None:
        return [s if isinstance(s, Reject) else _SpanView(s[1], s[0]) for s in _otlp_spans(record)]
    if _is_span(record):
        return [_SpanView(record)]
    raise Reject("not a trace export: no resourceSpans and no span fields")


def _span_rows(record: dict[str, Any], opts: IngestOptions, wanted: Callable[[_SpanView], bool],
               to_row: Callable[[_SpanView, IngestOptions], Row]) -> list[Row | Reject]:
    """One row per wanted span; a span that fails becomes a Reject in the list, naming the span."""
    rows: list[Row | Reject] = []
    for view in _spans(record):
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


def _span_request_id(view: _SpanView, response_id: Any = None) -> str:
    if response_id not in (None, ""):
        return str(response_id)
    if not view.trace_id or not view.span_id:
        raise Reject("missing request id: no gen_ai.response.id and no traceId/spanId")
    return f"{view.trace_id}:{view.span_id}"


def _attr_prompt_version(view: _SpanView, key: str) -> Any:
    return _first(view.attrs.get(key), view.resource.get(key))


# --- otel: OpenTelemetry GenAI semantic conventions ----------------------------------------

_GEN_AI_PARAMS = {"gen_ai.request.stop_sequences": "stop", "gen_ai.request.choice.count": "n"}
_GEN_AI_NOT_PARAMS = {"gen_ai.request.model", "gen_ai.request.encoding_formats"}


def _parts_text(parts: Any) -> str | None:
    """The text of OTel GenAI message parts (`[{"type": "text", "content": …}]`)."""
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        return None
    texts = [_as_text(p.get("content", p.get("text", ""))) for p in parts
             if isinstance(p, dict) and p.get("type") in ("text", None)]
    if texts:
        return "".join(texts)
    return json.dumps(parts, ensure_ascii=False) if parts else None


def _otel_message(m: Any) -> dict[str, Any] | None:
    if not isinstance(m, dict):
        return None
    content = _parts_text(m["parts"]) if "parts" in m else message_text(m.get("content"))
    return {"role": m.get("role") or "user", "content": content}


def _indexed(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """`prefix.N.field` attributes as a list of `{field: value}` in index order."""
    found: dict[int, dict[str, Any]] = {}
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d{{1,9}})\.(.+)$")
    for key, value in attrs.items():
        m = pattern.match(key)
        if m:
            found.setdefault(int(m.group(1)), {})[m.group(2)] = value
    return [found[i] for i in sorted(found)]


def _otel_messages(view: _SpanView) -> list[dict[str, Any]]:
    a = view.attrs
    messages: list[dict[str, Any]] = []
    system = _json_value(a.get("gen_ai.system_instructions"))
    if system:
        messages.append({"role": "system", "content": _parts_text(system) if isinstance(system, list)
                         else str(system)})
    current = _json_value(a.get("gen_ai.input.messages"))
    if isinstance(current, list):
        messages += [m for m in map(_otel_message, current) if m]
        return messages
    flat = _indexed(a, "gen_ai.prompt")  # older flattened attributes (OpenLLMetry)
    if flat:
        return messages + [{"role": m.get("role") or "user", "content": m.get("content")} for m in flat]
    old = _json_value(a.get("gen_ai.prompt"))  # semconv <= 1.27: one JSON attribute
    if isinstance(old, list):
        return messages + [m for m in map(_otel_message, old) if m]
    for event in view.events_named("gen_ai.content.prompt"):
        prompt = _json_value(event.get("gen_ai.prompt"))
        if isinstance(prompt, list):
            messages += [m for m in map(_otel_message, prompt) if m]
    roles = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
             "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}
    for event in view.events:
        role = roles.get(event["name"]) if isinstance(event.get("name"), str) else None
        if role:
            attrs = otlp_attributes(event.get("attributes"))
            body = _json_value(_first(attrs.get("gen_ai.event.content"), attrs.get("content"),
                                      otlp_value(event.get("body"))))
            content = body.get("content") if isinstance(body, dict) else body
            messages.append({"role": attrs.get("role") or role, "content": message_text(content)})
    return messages


def _otel_output(view: _SpanView) -> str | None:
    a = view.attrs
    current = _json_value(a.get("gen_ai.output.messages"))
    if isinstance(current, list) and current:
        return _parts_text(_obj(current[0]).get("parts"))
    flat = _indexed(a, "gen_ai.completion")
    if flat:
        return flat[0].get("content")
    old = _json_value(a.get("gen_ai.completion"))
    if old is not None:
        return _answer_text(old)
    for event in view.events_named("gen_ai.content.completion"):
        return _answer_text(event.get("gen_ai.completion"))
    for event in view.events_named("gen_ai.choice"):
        body = _json_value(_first(event.get("gen_ai.event.content"), event.get("message"),
                                  otlp_value(event.get("__body"))))
        if isinstance(body, dict) and "message" in body:
            body = body["message"]
        return _answer_text(body)
    return None


def _is_gen_ai(view: _SpanView) -> bool:
    return any(k.startswith("gen_ai.") for k in view.attrs)


@register("otel")
def otel_record(rec: dict[str, Any], opts: IngestOptions = DEFAULT_OPTIONS) -> list[Row | Reject]:
    """OTLP/JSON trace exports: one row per span with `gen_ai.*` attributes; other spans are skipped."""
    return _span_rows(rec, opts, _is_gen_ai, _otel_span)


def _otel_span(view: _SpanView, opts: IngestOptions) -> Row:
    a = view.attrs
    ts, latency = view.times()
    messages = _otel_messages(view)
    if not messages:
        raise Reject("missing messages: no gen_ai.input.messages, gen_ai.prompt.* or message events")
    params = {_GEN_AI_PARAMS.get(k, k.removeprefix("gen_ai.request.")): v for k, v in a.items()
              if k.startswith("gen_ai.request.") and k not in _GEN_AI_NOT_PARAMS}
    metadata = {
        "trace_id": view.trace_id, "span_id": view.span_id, "span_name": view.name,
        "provider": _first(a.get("gen_ai.provider.name"), a.get("gen_ai.system")),
        "operation": a.get("gen_ai.operation.name"),
        "response_model": a.get("gen_ai.response.model"),
        "finish_reasons": a.get("gen_ai.response.finish_reasons"),
        "prompt_name": a.get("gen_ai.prompt.name"),
        "service_name": view.resource.get("service.name"),
        opts.prompt_version_key: _attr_prompt_version(view, opts.prompt_version_key),
    }
    return build_row(
        "otel", opts,
        request_id=_span_request_id(view, a.get("gen_ai.response.id")),
        ts=ts, messages=messages, metadata=metadata,
        model_id=_first(a.get("gen_ai.request.model"), a.get("gen_ai.response.model")),
        params=params, output_text=_otel_output(view),
        input_tokens=count(_first(a.get("gen_ai.usage.input_tokens"), a.get("gen_ai.usage.prompt_tokens")),
                           "gen_ai.usage.input_tokens"),
        output_tokens=count(_first(a.get("gen_ai.usage.output_tokens"),
                                   a.get("gen_ai.usage.completion_tokens")), "gen_ai.usage.output_tokens"),
        cached_tokens=count(_first(a.get("gen_ai.usage.cache_read.input_tokens"),
                                   a.get("gen_ai.usage.cache_read_input_tokens"),
                                   a.get("gen_ai.usage.input_tokens.cached")),
                            "gen_ai.usage.cache_read.input_tokens"),
        reasoning_tokens=count(_first(a.get("gen_ai.usage.reasoning.output_tokens"),
                                      a.get("gen_ai.usage.output_tokens.reasoning"),
                                      a.get("gen_ai.usage.reasoning_tokens")),
                               "gen_ai.usage.reasoning.output_tokens"),
        latency_ms=latency,
        status="error" if view.is_error() else "ok",
        error=_first(view.status_message, a.get("error.type")) if view.is_error() else None,
    )


# --- openinference: Arize Phoenix / OpenInference ------------------------------------------

def _oi_kind(view: _SpanView) -> str | None:
    return _first(view.attrs.get("openinference.span.kind"), view.kind)


def _oi_message(m: dict[str, Any]) -> dict[str, Any]:
    content = m.get("message.content")
    if content is None:
        parts = _indexed(m, "message.contents")
        texts = [_as_text(p.get("message_content.text")) for p in parts
                 if p.get("message_content.type", "text") == "text" and p.get("message_content.text")]
        content = "".join(texts) if texts else None
    return {"role": m.get("message.role") or "user", "content": content}


def _oi_messages(view: _SpanView) -> list[dict[str, Any]]:
    a = view.attrs
    flat = _indexed(a, "llm.input_messages")
    if flat:
        return [_oi_message(m) for m in flat]
    prompts = _indexed(a, "llm.prompts")
    if prompts:
        return [{"role": "user", "content": p.get("prompt.text")} for p in prompts]
    value = _json_value(a.get("input.value"))
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        return [m for m in value["messages"] if isinstance(m, dict) and m.get("role")]
    return []


def _oi_output(view: _SpanView) -> str | None:
    flat = _indexed(view.attrs, "llm.output_messages")
    if flat:
        return _oi_message(flat[0])["content"]
    choices = _indexed(view.attrs, "llm.choices")
    if choices:
        return choices[0].get("completion.text")
    return _answer_text(view.attrs.get("output.value"))


@register("openinference")
def openinference_record(rec: dict[str, Any], opts: IngestOptions = DEFAULT_OPTIONS) -> list[Row | Reject]:
    """OpenInference LLM spans (OTLP export, Phoenix span JSON or dataframe rows); other kinds skipped."""
    return _span_rows(rec, opts, lambda v: str(_oi_kind(v) or "").upper() == "LLM", _oi_span)


def _oi_span(view: _SpanView, opts: IngestOptions) -> Row:
    a = view.attrs
    ts, latency = view.times()
    messages = _oi_messages(view)
    if not messages:
        raise Reject("missing messages: no llm.input_messages")
    meta = _json_value(a.get("metadata"))
    metadata = dict(meta) if isinstance(meta, dict) else {}
    metadata.setdefault(opts.prompt_version_key, _attr_prompt_version(view, opts.prompt_version_key))
    metadata |= {
        "trace_id": view.trace_id, "span_id": view.span_id, "span_name": view.name,
        "provider": _first(a.get("llm.provider"), a.get("llm.system")),
        "session_id": a.get("session.id"), "user_id": a.get("user.id"),
        "prompt_template": a.get("llm.prompt_template.template"),
    }
    return build_row(
        "openinference", opts,
        request_id=_span_request_id(view), ts=ts, messages=messages, metadata=metadata,
        prompt_version=a.get("llm.prompt_template.version"),
        model_id=_first(a.get("llm.model_name"), a.get("llm.request.model_name")),
        params=_sampling(a.get("llm.invocation_parameters")),
        output_text=_oi_output(view),
        input_tokens=count(_number(a.get("llm.token_count.prompt")), "llm.token_count.prompt"),
        output_tokens=count(_number(a.get("llm.token_count.completion")), "llm.token_count.completion"),
        cached_tokens=count(_number(a.get("llm.token_count.prompt_details.cache_read")),
                            "llm.token_count.prompt_details.cache_read"),
        reasoning_tokens=count(_number(a.get("llm.token_count.completion_details.reasoning")),
                               "llm.token_count.completion_details.reasoning"),
        cost_usd=measure(_number(a.get("llm.cost.total")), "llm.cost.total"),
        latency_ms=latency,
        status="error" if view.is_error() else "ok",
        error=_first(view.status_message, a.get("exception.message")) if view.is_error() else None,
    )


# --- langfuse ------------------------------------------------------------------------------

_LF_CACHED = ("input_cached_tokens", "input_cached", "cache_read_input_tokens", "input_cache_read")
_LF_REASONING = ("output_reasoning_tokens", "output_reasoning")


def _langfuse_usage(rec: dict[str, Any]) -> dict[str, int | None]:
    """Langfuse usage as OTel counts.

    In `usageDetails` the base `input`/`output` exclude their detail keys (Langfuse's OpenAI
    integration subtracts `input_cached_tokens` from `input`; Anthropic's cache counts sit apart), so
    input is the sum of every key naming input and output the sum of every key naming output, as
    Langfuse itself adds them up.
    """
    details = _json_value(rec.get("usageDetails"))
    if isinstance(details, dict) and details:
        values = {k: count(_number(v), f"usageDetails.{k}") for k, v in details.items()}
        inputs = [v for k, v in values.items() if "input" in k and v is not None]
        outputs = [v for k, v in values.items() if "output" in k and v is not None]
        return {
            "input_tokens": sum(inputs) if inputs else None,
            "output_tokens": sum(outputs) if outputs else None,
            "cached_tokens": _first(*(values.get(k) for k in _LF_CACHED)),
            "reasoning_tokens": _first(*(values.get(k) for k in _LF_REASONING)),
        }
    usage = _json_value(rec.get("usage"))
    if not isinstance(usage, dict):
        return {}
    return {
        "input_tokens": count(_number(_first(usage.get("input"), usage.get("promptTokens"))), "usage.input"),
        "output_tokens": count(_number(_first(usage.get("output"), usage.get("completionTokens"))),
                               "usage.output"),
    }


def _langfuse_prompt_version(rec: dict[str, Any]) -> str | None:
    name, version = rec.get("promptName"), rec.get("promptVersion")
    if name and version not in (None, ""):
        return f"{name}@v{version}"
    if version not in (None, ""):
        return f"v{version}"
    return name or None


@register("langfuse")
def langfuse_record(rec: dict[str, Any], opts: IngestOptions = DEFAULT_OPTIONS) -> list[Row]:
    """A Langfuse observation; GENERATIONs become rows, other types (SPAN, EVENT, …) are skipped."""
    if str(rec.get("type", "")).upper() != "GENERATION":
        return []
    request_id = _ident(rec.get("id"), "id (observation id)")
    ts = timestamp(rec.get("startTime"), "startTime")
    messages = _chat_messages(rec.get("input"), "input messages")
    latency = _millis(ts, rec.get("endTime"), "endTime")
    if latency is None and rec.get("latency") is not None:  # API views give seconds
        latency = measure(_number(rec.get("latency")), "latency") * 1000
    ttft = _millis(ts, rec.get("completionStartTime"), "completionStartTime")
    if ttft is None and rec.get("timeToFirstToken") is not None:
        ttft = measure(_number(rec.get("timeToFirstToken")), "timeToFirstToken") * 1000
    cost_details = _json_value(rec.get("costDetails"))
    cost = _first(cost_details.get("total") if isinstance(cost_details, dict) else None,
                  rec.get("calculatedTotalCost"), rec.get("totalPrice"))
    meta = _json_value(rec.get("metadata"))
    metadata = dict(meta) if isinstance(meta, dict) else {}
    metadata |= {"trace_id": rec.get("traceId"), "observation_name": rec.get("name"),
                 "environment": rec.get("environment"), "prompt_id": rec.get("promptId")}
    error = rec.get("level") == "ERROR"
    return [build_row(
        "langfuse", opts,
        request_id=request_id, ts=ts, messages=messages, metadata=metadata,
        prompt_version=_langfuse_prompt_version(rec),
        model_id=rec.get("model"), params=_sampling(rec.get("modelParameters")),
        output_text=_answer_text(rec.get("output")),
        latency_ms=latency, ttft_ms=ttft, cost_usd=measure(_number(cost), "cost"),
        status="error" if error else "ok",
        error=rec.get("statusMessage") if error else None,
        **_langfuse_usage(rec),
    )]


# --- litellm -------------------------------------------------------------------------------

@register("litellm")
def litellm_record(rec: dict[str, Any], opts: IngestOptions = DEFAULT_OPTIONS) -> list[Row]:
    """LiteLLM's StandardLoggingPayload, one call per record."""
    request_id = _ident(rec.get("id"), "id (litellm call id)")
    ts = timestamp(rec.get("startTime"), "startTime")
    messages = _chat_messages(rec.get("messages"), "messages")
    response = _json_value(rec.get("response"))
    usage = _openai_usage(response.get("usage")) if isinstance(response, dict) else {}
    input_tokens = count(_number(rec.get("prompt_tokens")), "prompt_tokens")
    output_tokens = count(_number(rec.get("completion_tokens")), "completion_tokens")
    stream = str(rec.get("stream")).lower() == "true"
    meta = _json_value(rec.get("metadata"))
    meta = _scrub(meta) if isinstance(meta, dict) else {}
    key = opts.prompt_version_key
    nested = [meta.get("requester_metadata"), meta.get("spend_logs_metadata")]
    prompt_version = _first(meta.get(key), *(m.get(key) for m in nested if isinstance(m, dict)))
    metadata = meta | {
        "trace_id": rec.get("trace_id"), "call_type": rec.get("call_type"),
        "model_id": rec.get("model_id"), "model_group": rec.get("model_group"),
        "api_base": rec.get("api_base"), "cache_hit": rec.get("cache_hit"),
        "request_tags": rec.get("request_tags") or None, "end_user": rec.get("end_user") or None,
        key: prompt_version,
    }
    failed = rec.get("status") == "failure"
    error_info = rec.get("error_information") if isinstance(rec.get("error_information"), dict) else {}
    return [build_row(
        "litellm", opts,
        request_id=request_id, ts=ts, messages=messages, metadata=metadata,
        model_id=rec.get("model"),
        params=_sampling(rec.get("model_parameters")),
        output_text=None if failed else _answer_text(response),
        input_tokens=_first(input_tokens, usage.get("input_tokens")),
        output_tokens=_first(output_tokens, usage.get("output_tokens")),
        cached_tokens=usage.get("cached_tokens"), reasoning_tokens=usage.get("reasoning_tokens"),
        latency_ms=_millis(ts, rec.get("endTime"), "endTime"),
        # non-streaming calls log completionStartTime = endTime: only a stream has a first token
        ttft_ms=_millis(ts, rec.get("completionStartTime"), "completionStartTime") if stream else None,
        cost_usd=measure(_number(rec.get("response_cost")), "response_cost"),
        status="error" if failed else "ok",
        error=_first(rec.get("error_str"), error_info.get("error_class")) if failed else None,
    )]


# --- helicone ------------------------------------------------------------------------------

def _property(properties: dict[str, Any], key: str) -> Any:
    """A Helicone property by name, ignoring case and `-`/`_` (`Helicone-Property-Prompt-Version`)."""
    def norm(k: str) -> str:
        return k.lower().replace("-", "_").removeprefix("helicone_property_")

    wanted = norm(key)
    return next((v for k, v in properties.items() if norm(str(k)) == wanted), None)


@register("helicone")
def helicone_record(rec: dict[str, Any], opts: IngestOptions = DEFAULT_OPTIONS) -> list[Row]:
    """A Helicone request export (HeliconeRequest of the REST query API / `@helicone/export`)."""
    request_id = _ident(rec.get("request_id"), "request_id")
    ts = timestamp(rec.get("request_created_at"), "request_created_at")
    body = _json_value(rec.get("request_body"))
    if not isinstance(body, dict):
        raise Reject("missing request_body (export with --include-body)")
    messages = _chat_messages(body.get("messages"), "request_body.messages")
    if isinstance(body.get("system"), str | list):  # Anthropic keeps the system prompt apart
        messages = [{"role": "system", "content": message_text(body["system"])}, *messages]
    response = _json_value(rec.get("response_body"))
    usage = _openai_usage(response.get("usage")) if isinstance(response, dict) else {}
    if usage.get("input_tokens") is None:
        # Helicone's columns count cache reads and writes apart from prompt_tokens
        fresh = count(_number(rec.get("prompt_tokens")), "prompt_tokens")
        read = count(_number(rec.get("prompt_cache_read_tokens")), "prompt_cache_read_tokens")
        written = count(_number(rec.get("prompt_cache_write_tokens")), "prompt_cache_write_tokens")
        usage = {
            "input_tokens": None if fresh is None else fresh + (read or 0) + (written or 0),
            "output_tokens": count(_number(rec.get("completion_tokens")), "completion_tokens"),
            "cached_tokens": read,
            "reasoning_tokens": count(_number(rec.get("reasoning_tokens")), "reasoning_tokens"),
        }
    latency = measure(_number(_first(rec.get("delay_ms"), rec.get("latency"))), "delay_ms")
    if latency is None:
        latency = _millis(ts, rec.get("response_created_at"), "response_created_at")
    props = _json_value(_first(rec.get("request_properties"), rec.get("properties")))
    props = _scrub(props) if isinstance(props, dict) else {}
    prompt_id, version = rec.get("prompt_id"), rec.get("prompt_version")
    own = f"{prompt_id}@{version}" if prompt_id and version else _first(version)
    status = _number(_first(rec.get("response_status"), rec.get("status")))
    failed = isinstance(status, int) and not 200 <= status < 300 or status in ("error", "failure")
    error = response.get("error") if isinstance(response, dict) else None
    metadata = props | {
        opts.prompt_version_key: _property(props, opts.prompt_version_key),
        "provider": rec.get("provider"), "user_id": _first(rec.get("request_user_id"), rec.get("user_id")),
        "path": rec.get("request_path"), "prompt_id": prompt_id, "http_status": status,
    }
    return [build_row(
        "helicone", opts,
        request_id=request_id, ts=ts, messages=messages, metadata=metadata, prompt_version=own,
        model_id=_first(rec.get("model"), rec.get("request_model"), body.get("model"),
                        rec.get("response_model")),
        params=_sampling(body),
        output_text=None if failed else _answer_text(response),
        latency_ms=latency,
        ttft_ms=measure(_number(rec.get("time_to_first_token")), "time_to_first_token"),
        cost_usd=measure(_number(_first(rec.get("costUSD"), rec.get("cost"), rec.get("cost_usd"))), "cost"),
        status="error" if failed else "ok",
        error=(error.get("message") if isinstance(error, dict) else error) if failed else None,
        **usage,
    )]


__all__ = ["FORMATS", "LOG_SCHEMA", "MAX_FIELD_CHARS", "Format", "IngestOptions", "Reject", "build_row",
           "count", "derived_prompt_version", "detect", "measure", "message_text", "parse", "text",
           "timestamp"]
