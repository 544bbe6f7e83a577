"""`langfuse_export`: rows of Langfuse's blob-storage export (S3, GCS, Azure; Parquet, JSONL, JSON or
CSV): the enriched observations of `observations_v2/` and the legacy `observations/` file.

These are the observations of the public API in snake_case (`start_time`, `provided_model_name`,
`usage_details`, …), with timestamps as `YYYY-MM-DD HH:MM:SS.ffffff` UTC and `input`/`output` as
text (JSON when they hold messages). `latency` and `time_to_first_token` are seconds for
integrations created from 2026-04-01 and milliseconds before; they are read only when the row's
own times (`end_time`, `completion_start_time`) are missing, in the unit of
`ingest.langfuse_latency_unit` or, when that is `auto`, the unit this row's `latency` shows against
its `end_time - start_time`. A row whose unit cannot be told that way is rejected, never guessed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from replaybench.ingest.formats.base import (
    DEFAULT_OPTIONS,
    IngestOptions,
    Reject,
    Row,
    SqlReader,
    numeric,
    register,
    timestamp,
)
from replaybench.ingest.formats.langfuse import PerUnit, Spelling, observation_rows

EXPORT = Spelling(
    start="start_time", end="end_time", completion_start="completion_start_time",
    models=("provided_model_name",), params="model_parameters", usage_details="usage_details",
    cost_details="cost_details", costs=("total_cost",), prompt_name="prompt_name",
    prompt_version="prompt_version", latency="latency", ttft="time_to_first_token",
    status_message="status_message",
    context={"trace_id": "trace_id", "observation_name": "name", "environment": "environment",
             "prompt_id": "prompt_id", "project_id": "project_id", "trace_name": "trace_name",
             "user_id": "user_id", "session_id": "session_id", "tags": "tags", "release": "release"},
)
MS_PER_UNIT = {"s": 1000.0, "ms": 1.0}


def latency_unit(rec: dict[str, Any], start: datetime) -> str | None:
    """`s` or `ms`: the unit in which this row's `latency` equals its `end_time - start_time`;
    None when the row cannot tell (no end_time or latency, or a duration of a millisecond or two,
    where both units fit)."""
    end, latency = rec.get("end_time"), numeric(rec.get("latency"))
    if end in (None, "") or isinstance(latency, bool) or not isinstance(latency, int | float):
        return None
    try:
        seconds = (timestamp(end, "end_time") - start).total_seconds()
        latency = float(latency)
    except (Reject, OverflowError):
        return None
    fits_s = abs(latency - seconds) <= 0.002 + 0.01 * abs(seconds)  # Langfuse rounds to the millisecond
    fits_ms = abs(latency - 1000 * seconds) <= 2 + 10 * abs(seconds)
    if fits_s == fits_ms:
        return None
    return "s" if fits_s else "ms"


def _ms_per_unit(opts: IngestOptions) -> PerUnit:
    """Milliseconds per unit of `latency` / `time_to_first_token` as `opts` says, or as the row shows."""
    def per_unit(rec: dict[str, Any], start: datetime, field: str) -> float:
        unit = opts.langfuse_latency_unit
        if unit == "auto":
            unit = latency_unit(rec, start)
        if unit is None:
            raise Reject(f"{field} has no unit to go by: Langfuse exports write seconds (integrations "
                         "created from 2026-04-01) or milliseconds (older ones), and this row's latency "
                         "and end_time do not tell which; set ingest.langfuse_latency_unit to s or ms")
        return MS_PER_UNIT[unit]

    return per_unit


def looks_like_langfuse_export(record: dict[str, Any]) -> bool:
    """`type` and `start_time` plus `trace_id` or `id`"""
    return "type" in record and "start_time" in record and ("trace_id" in record or "id" in record)


def _sql_params(opts: IngestOptions) -> dict[str, Any]:
    """The SQL reader reads `latency` in the configured unit; `auto` it leaves to the parser."""
    return {"export": True, "ms_per_unit": MS_PER_UNIT.get(opts.langfuse_latency_unit)}


@register("langfuse_export", sniff=looks_like_langfuse_export,
          sql=SqlReader("langfuse_log_lines", _sql_params))
def langfuse_export_record(rec: dict[str, Any], opts: IngestOptions = DEFAULT_OPTIONS) -> list[Row]:
    """Langfuse blob-storage export rows, `observations_v2/` or `observations/` (GENERATIONs)."""
    return observation_rows(rec, opts, "langfuse_export", EXPORT, _ms_per_unit(opts))
