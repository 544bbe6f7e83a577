"""JSON read at orjson's speed with exactly `json.loads`'s result, for the hot paths that read JSON
per line or per streamed chunk (ingest's record path, replay's answers and journal).

orjson reads JSON as json.loads does but for integers past 64 bits, which it makes floats, and what
it refuses (NaN, Infinity, 1e999, a lone surrogate, a BOM, nesting past its limit): text that may
hold such an integer goes to json.loads at once, and so does what orjson refuses.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# digits become 0, and what may come before a number (`[`, `:`, `,`, white space) a comma
_NUMBER_MARKS = bytes.maketrans(b"123456789[: \t\n\r", b"000000000,,,,,,")


def big_integer(data: bytes) -> bool:
    """Whether JSON text may hold an integer beyond 64 bits: a number of 20 digits, or of 19 after
    a minus sign. At C speed, as every line and chunk asks."""
    marks = b"," + data.translate(_NUMBER_MARKS)
    return b",00000000000000000000" in marks or b",-0000000000000000000" in marks


def loads(raw: bytes) -> Any:
    """`json.loads(raw)`: the same result, or the same exception."""
    if not big_integer(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)
