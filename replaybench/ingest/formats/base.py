"""What every log format shares: the `logs` row schema, the ingest options, `Reject`, the registry,
and the field helpers that give every format the same rules (numbers, timestamps, size limits, the
prompt_version fallbacks, token semantics).

A format is one module that registers its parser with `register(name, sniff=..., join=...)`:

- the parser turns one source record into `logs` rows (`(record, IngestOptions) -> list`);
- `sniff(record)` says whether a record looks like this format (`--format auto` tries the
  registered formats in order; the package's `__init__` imports them in that order);
- `join` (optional) is a pass over the (position, record) pairs of one file, for a format whose
  records need each other (OpenTelemetry spans and the log events that carry their content), and
  `joins(record)` says whether a record takes part in it (the others pass it untouched, so they
  can be parsed anywhere, in any order).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from replaybench import tokens
from replaybench.config import Ingest
from replaybench.ingest.readers import MAX_DEPTH, MAX_LINE_BYTES, too_deep
from replaybench.tokens import as_text, message_text

MAX_FIELD_CHARS = Ingest.model_fields["max_field_chars"].default  # a longer text field is a broken export
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


class IngestOptions(Ingest):
    """The config's `ingest:` block (`Settings.ingest`) as the readers take it, with what they
    derive from it."""

    @property
    def max_line_bytes(self) -> int:
        """A longer line is rejected unread: room for a record of many fields at the field limit
        (a character escaped as \\uXXXX takes 6 bytes), and at least 64 MiB, so that DuckDB's
        read_json (given half as its object size) fails on every line the record path rejects."""
        return max(MAX_LINE_BYTES, 64 * self.max_field_chars)

    @classmethod
    def from_settings(cls, ingest: Any) -> IngestOptions:
        """From `Settings.ingest` (or anything with its fields)."""
        return cls(**{name: getattr(ingest, name) for name in Ingest.model_fields})


DEFAULT_OPTIONS = IngestOptions()


class Reject(Exception):
    """A record (or span) that cannot become a log row; the message is the stored reason."""


# --- the registry --------------------------------------------------------------------------

Row = dict[str, Any]
Parser = Callable[[dict[str, Any], IngestOptions], list[Row | Reject]]
Sniff = Callable[[dict[str, Any]], bool]
Join = Callable[[Iterable[tuple[Any, Any]]], Iterator[tuple[Any, Any]]]


@dataclass(frozen=True)
class SqlReader:
    """A format's reader in SQL, for JSON Lines files: the table macro of the same name in
    `replaybench/warehouse/sql/<macro>.sql`, called as `macro(path, pv_path, max_chars, max_line,
    fast, *params)`. It gives every line the `logs` columns and a `lane`: `store` (a row it reads
    exactly as the parser does), `skip` (a record that gives no row) or `python` (a line it leaves
    to the parser: an unusual shape, or a bad value the parser rejects with its reason).
    `params(options)` names the macro's own parameters, in order."""

    macro: str
    params: Callable[[IngestOptions], dict[str, Any]] = lambda options: {}


@dataclass(frozen=True)
class Format:
    """A registered log format: its parser, the test that recognises its records, the pass over
    a whole file its records may need (a join across records), and its SQL reader, when it has one
    (DuckDB then reads its JSON Lines files, and the parser only the lines the SQL leaves to it).
    Calling it parses one record."""

    name: str
    parse: Parser
    sniff: Sniff | None = None
    join: Join | None = None
    sql: SqlReader | None = None
    joins: Sniff | None = None

    def __call__(self, record: dict[str, Any],
                 options: IngestOptions = DEFAULT_OPTIONS) -> list[Row | Reject]:
        return self.parse(record, options)

    @property
    def reads(self) -> str:
        """What the format reads: the first line of its parser's docstring."""
        return (self.parse.__doc__ or self.name).strip().splitlines()[0]

    @property
    def recognised_by(self) -> str:
        """What `--format auto` looks for: its sniff's docstring, on one line."""
        if self.sniff is None:
            return "never detected: name it"
        return " ".join((self.sniff.__doc__ or "").split())


FORMATS: dict[str, Format] = {}


def register(name: str, *, sniff: Sniff | None = None, join: Join | None = None,
             joins: Sniff | None = None, sql: SqlReader | None = None) -> Callable[[Parser], Parser]:
    """Register the decorated parser as the format `name`, with the sniff that recognises its records
    (formats registered first are tried first), its join and what takes part in it, if it needs
    one, and its SQL reader."""
    if (join is None) != (joins is None):
        raise ValueError(f"format {name}: a join needs `joins`, the test of the records it takes")

    def wrap(fn: Parser) -> Parser:
        FORMATS[name] = Format(name, fn, sniff, join, sql, joins)
        return fn

    return wrap


# --- numbers, timestamps and text ----------------------------------------------------------

def measure(value: Any, field: str) -> float | None:
    """A duration, amount or count: a non-negative finite number, or None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = str(value) if isinstance(value, str | bool) else as_text(value)  # JSON, as SQL shows it
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


def millis_between(start: datetime | None, end: Any, field: str) -> float | None:
    """Milliseconds from `start` to the timestamp `end` (None when either is absent)."""
    if start is None or end is None or end == "":
        return None
    delta = (timestamp(end, field) - start).total_seconds() * 1000
    if delta < 0:
        raise Reject(f"{field} is before the start time")
    return delta


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
    system = "\n".join(as_text(m.get("content")) for m in messages if m.get("role") == "system")
    return "sys:" + hashlib.sha256(system.encode("utf-8", "surrogatepass")).hexdigest()[:10]


def fill_prompt_version(prompt_version: Any, metadata: dict[str, Any], opts: IngestOptions,
                        messages: list[dict]) -> Any:
    """The row's prompt_version: the format's own field; else `metadata[prompt_version_key]`; else a
    hash of the system prompt, marked in `metadata` (changed in place) `prompt_version_derived`."""
    if prompt_version is None or prompt_version == "":
        prompt_version = metadata.get(opts.prompt_version_key)
    if prompt_version is None or prompt_version == "":
        prompt_version = derived_prompt_version(messages)
        metadata["prompt_version_derived"] = True
    return prompt_version


# --- reading lenient exports ---------------------------------------------------------------

def as_object(value: Any) -> dict[str, Any]:
    """A value that should be an object, or {} when it is not one (lenient formats)."""
    return value if isinstance(value, dict) else {}


def get_any(d: dict[str, Any], *keys: str) -> Any:
    """The first of several spellings of a field that is present and not None."""
    for k in keys:
        v = d.get(k)
        if v is not None:
            return v
    return None


def first(*values: Any) -> Any:
    """The first value that is neither None nor empty text."""
    return next((v for v in values if v is not None and v != ""), None)


def ident(value: Any, field: str) -> str:
    """A required identifier: a non-empty string (or integer)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise Reject(f"missing {field}")
    return value.strip()


def maybe_json(value: Any) -> Any:
    """A value that may be JSON text (attributes and CSV cells often are): parsed when it is
    (and not nested deeper than the readers read)."""
    if isinstance(value, str) and value[:1] in ("{", "[") and not too_deep(value):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def numeric(value: Any) -> Any:
    """A numeric string as a number (attributes and exports sometimes quote them); else as is."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return value
    return value


def chat_messages(value: Any, field: str) -> list[dict]:
    """Chat messages as sent: a list of objects with a role; a bare string is one user turn."""
    value = maybe_json(value)
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


def answer_text(value: Any) -> str | None:
    """The answer in a response-like value: a string, an OpenAI or Anthropic response, a message."""
    value = maybe_json(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        choices = value.get("choices")
        if isinstance(choices, list) and choices:
            choice = as_object(choices[0])
            message = as_object(choice.get("message") or choice.get("delta"))
            return message_text(message.get("content")) if message else message_text(choice.get("text"))
        if value.get("type") == "message" and isinstance(value.get("content"), list):  # Anthropic
            return "".join(as_text(p.get("text")) for p in value["content"]
                           if isinstance(p, dict) and p.get("type") == "text")
        if value.get("object") == "response" and isinstance(value.get("output"), list):  # Responses API
            messages = [m for m in value["output"] if isinstance(m, dict) and m.get("type") == "message"]
            return "".join(as_text(p.get("text")) for m in messages
                           for p in (m.get("content") if isinstance(m.get("content"), list) else [])
                           if isinstance(p, dict) and p.get("type") == "output_text")
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


def openai_usage(usage: Any) -> dict[str, int | None]:
    """OpenAI (or Anthropic, or Responses API) usage as OTel counts: cached in input, reasoning in output."""
    return tokens.any_usage(usage, usage_count)


def usage_count(value: Any, where: str) -> int | None:
    """A count of a usage block, its reject naming the count by its own name (`cached_tokens`)."""
    return count(value, where.rpartition(".")[2])


_REQUEST_ONLY = {"messages", "model", "stream", "stream_options", "input", "prompt", "system", "metadata",
                 "user", "tools", "tool_choice", "functions"}


def sampling_params(params: Any) -> dict[str, Any]:
    """The sampling parameters of a request body or parameter map (no messages, model or tools)."""
    params = maybe_json(params)
    if not isinstance(params, dict):
        return {}
    return {k: numeric(v) for k, v in params.items() if k not in _REQUEST_ONLY and v is not None}


_SECRET = re.compile(r"(^|_)(api_key|key_hash|hash|secret|password|authorization|token)$|^user_api_key$",
                     re.IGNORECASE)


def scrub(value: Any) -> Any:
    """Metadata without credentials: keys, hashed keys, secrets and auth headers are dropped."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()
                if not _SECRET.search(str(k)) and str(k).lower() not in ("headers", "api_key")}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


# --- the row -------------------------------------------------------------------------------

def build_row(fmt: str, opts: IngestOptions, *, request_id: str, ts: datetime, messages: list[dict],
              metadata: dict[str, Any], prompt_version: Any = None, endpoint: Any = None,
              model_id: Any = None, params: dict[str, Any] | None = None, output_text: Any = None,
              reference: Any = None, input_tokens: int | None = None, output_tokens: int | None = None,
              reasoning_tokens: int | None = None, cached_tokens: int | None = None,
              latency_ms: float | None = None, ttft_ms: float | None = None, cost_usd: float | None = None,
              status: str = "ok", error: Any = None) -> Row:
    """A `logs` row with the shared rules: size limits, JSON columns, the prompt_version fallbacks.

    prompt_version: as `fill_prompt_version` finds it.
    """
    limit = opts.max_field_chars
    metadata = {k: v for k, v in metadata.items() if v is not None}
    prompt_version = fill_prompt_version(prompt_version, metadata, opts, messages)
    return {
        "request_id": text(request_id, "request_id", limit),
        "ts": ts,
        "endpoint": text(endpoint, "endpoint", limit),
        "model_id": text(model_id, "model_id", limit),
        "prompt_version": text(as_text(prompt_version), "prompt_version", limit),
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
