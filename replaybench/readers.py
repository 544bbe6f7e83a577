"""Log files as records: JSONL (a line at a time, so memory stays flat) and JSON documents, gzip
or not. A record that cannot be decoded comes back as `Unreadable` with its reason and raw text,
so that the caller can reject it and go on."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replaybench.errors import IngestError


@dataclass
class Unreadable:
    """A record that could not be decoded."""

    reason: str
    raw: str


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(position, record) for each record of a file; position is the 1-based line or element."""
    name = path.name.removesuffix(".gz")
    if name.endswith(".json"):
        try:
            with _open(path) as fh:
                data = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IngestError(f"{path} is not a JSON document: {exc}") from None
        records = data if isinstance(data, list) else [data]
        yield from enumerate(records, 1)
        return
    with _open(path) as fh:
        for i, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield i, Unreadable(f"invalid UTF-8 at byte {exc.start}",
                                    raw.decode("utf-8", "replace"))
                continue
            try:
                yield i, json.loads(line)
            except json.JSONDecodeError as exc:
                yield i, Unreadable(f"invalid JSON: {exc.msg} at column {exc.colno}", line)
