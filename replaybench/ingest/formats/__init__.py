"""Production log formats: each turns one source record into rows of the `logs` table.

Formats are a registry (`FORMATS`, filled by `register` in `base`): one module per format, each
with its parser and its sniff, the test that recognises its records. `--format auto` (`detect`)
tries them in the order they are imported below, which is the order of the table in
docs/log-formats.md (`format_table()` renders it; a test holds the two together). Adding a format
is one module imported here, its fixture, and its section in the docs.

Most formats give one row per record (a request/response pair); an OTLP export gives one row per
GenAI span or event, and an empty list when it holds none. A record that cannot be used at all
raises `Reject` with a reason a person understands; inside a multi-row record a bad span is a
`Reject` *in the returned list*, so the good spans beside it are kept and the caller stores the bad
one as a reject. A format whose records need each other has a join (`join_records`): OpenTelemetry
spans and the log events that carry their content.

Token counts follow OpenTelemetry GenAI: input tokens include cached ones, output tokens include
reasoning ones, whatever the source's own convention.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

# isort: off
# The formats register themselves as they are imported, and `--format auto` tries them in this
# order: OpenInference before OTel (an OTLP export with OpenInference spans is OpenInference), and
# LiteLLM's spend logs before its logging payload, whose sniff a spend log row passes too.
from replaybench.ingest.formats import (  # noqa: F401
    openinference,
    otel,
    openai,
    litellm_spend,
    litellm,
    helicone,
    langfuse,
    langfuse_export,
)
# isort: on
from replaybench.ingest.formats.base import (
    DEFAULT_OPTIONS,
    FORMATS,
    ISO_TIMESTAMP,
    LOG_SCHEMA,
    MAX_FIELD_CHARS,
    MAX_TOKENS,
    Format,
    IngestOptions,
    Reject,
    Row,
    build_row,
    count,
    derived_prompt_version,
    measure,
    message_text,
    register,
    text,
    timestamp,
)
from replaybench.ingest.formats.spans import is_span
from replaybench.ingest.readers import MAX_DEPTH


def detect(record: dict[str, Any]) -> str:
    """The name of the format a record is in: the first registered format whose sniff recognises
    it; Reject, saying what the record looks like, when none does."""
    name = _recognise(record)
    if name is None:
        raise Reject(f"unrecognised record: {_looks_like(record)}")
    return name


def _recognise(record: dict[str, Any]) -> str | None:
    return next((f.name for f in FORMATS.values() if f.sniff is not None and f.sniff(record)), None)


def hint_other_format(reason: str, record: Any, fmt: str) -> str:
    """A reason the named format `fmt` rejected a record for, saying so when another format
    recognises the record (the SQL readers' rejects get the same words as the record path's)."""
    other = _recognise(record) if isinstance(record, dict) else None
    if other is None or other == fmt:
        return reason
    return f"{reason} (the record looks like {other}: read it as that format, or auto)"


def _looks_like(record: dict[str, Any]) -> str:
    """A short description of a record no format recognises, to put in the reject reason."""
    if "resourceLogs" in record or "resource_logs" in record:
        return ("an OTLP logs export without GenAI content events (gen_ai.client.inference.operation"
                ".details, gen_ai.user.message, gen_ai.choice, …)")
    if "resourceMetrics" in record or "resource_metrics" in record:
        return "an OTLP metrics export (ingest trace exports: resourceSpans)"
    if is_span(record):
        return "a trace span without gen_ai.* or OpenInference LLM attributes"
    if record.get("object") in ("chat.completion", "response") or "choices" in record:
        return "a model response without its request"
    if "messages" in record and "model" in record:
        return "a chat request without its response or log fields"
    if "data_type" in record and "value" in record and "observation_id" in record:
        return "a Langfuse score, not an observation (ingest observations_v2/ or observations/)"
    if "observations" in record or ("traceId" not in record and "sessionId" in record) or (
            "bookmarked" in record and "timestamp" in record):
        return "a Langfuse trace, not an observation export"
    keys = ", ".join(str(k)[:40] for k in list(record)[:8]) or "none"
    return f"no known log format has these fields (keys: {keys})"


def parse(record: Any, fmt: str = "auto", options: IngestOptions | None = None) -> list[Row | Reject]:
    """One source record as `logs` rows (without source bookkeeping); a bad span is a Reject item.
    When a named format rejects a record that another format recognises, the reason says so."""
    if not isinstance(record, dict):
        raise Reject(f"not a JSON object but a {type(record).__name__}")
    try:
        name = detect(record) if fmt == "auto" else fmt
        if name not in FORMATS:
            raise Reject(f"unknown format {name!r}")
        try:
            return FORMATS[name](record, options or DEFAULT_OPTIONS)
        except Reject as exc:
            hinted = hint_other_format(str(exc), record, name) if fmt != "auto" else str(exc)
            if hinted == str(exc):
                raise
            raise Reject(hinted) from None
    except RecursionError:  # the readers stop JSON at MAX_DEPTH; other sources may go deeper
        raise Reject(f"nested too deeply: more than {MAX_DEPTH} levels of arrays and objects") from None


def join_records(items: Iterable[tuple[Any, Any]], fmt: str = "auto") -> Iterator[tuple[Any, Any]]:
    """The (position, record) pairs of one file after the joins of the formats that need one: every
    such format's for `auto`, the named format's otherwise. Each pair comes out once, with its own
    position, though not always in file order; records of other formats pass through as they are."""
    for f in FORMATS.values():
        if f.join is not None and fmt in ("auto", f.name):
            items = f.join(items)
    return iter(items)


def in_a_join(record: Any, fmt: str = "auto") -> bool:
    """Whether `join_records` (for `fmt`) may change the record or take it with others; the records
    it would not can be parsed apart from the rest of their file."""
    return any(f.joins is not None and fmt in ("auto", f.name) and f.joins(record) for f in FORMATS.values())


def format_table() -> str:
    """The formats as docs/log-formats.md lists them: name, what each reads, and what `--format auto`
    recognises it by, in the order it tries them."""
    lines = ["| format | reads | recognised by (tried in this order) |", "|---|---|---|"]
    lines += [f"| `{f.name}` | {f.reads} | {f.recognised_by} |" for f in FORMATS.values()]
    return "\n".join(lines)


__all__ = ["FORMATS", "ISO_TIMESTAMP", "LOG_SCHEMA", "MAX_FIELD_CHARS", "MAX_TOKENS", "Format",
           "IngestOptions", "Reject", "build_row", "count", "derived_prompt_version", "detect",
           "format_table", "in_a_join", "join_records", "measure", "message_text", "parse", "register",
           "text", "timestamp"]
