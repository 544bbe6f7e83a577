"""The response cache: an answer is keyed by everything that can change it, and nothing else.

In the key: provider, base URL, model, the messages, and the sampling parameters (the output cap
under one name, whichever the endpoint calls it). Not in it: streaming, timeouts, retries, limits —
settings that change how an answer arrives, not what it says.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

from replaybench.config import Candidate

NOT_IN_KEY = {"stream", "stream_options", "timeout", "user", "metadata", "store", "service_tier"}

# what orjson writes as json does whatever the value (a str, an int, a bool, None; see _plain)
_LEAVES = frozenset({str, int, bool, type(None)})
# Deeper than this `_plain` gives up and json writes the key: orjson refuses nesting past 254
# anyway, and a list that holds itself must not be walked for ever.
_MAX_DEPTH = 250
# float -> whether orjson writes it as its repr; requests mostly repeat a few values (0.2, 0.9)
_FLOATS: dict[float, bool] = {}


def cache_key(candidate: Candidate, messages: list[dict], params: dict[str, Any]) -> str:
    """A stable sha256 for (endpoint, model, messages, answer-changing parameters)."""
    semantic = {k: v for k, v in params.items() if k not in NOT_IN_KEY}
    cap = semantic.pop("max_tokens", None)
    cap = semantic.pop("max_completion_tokens", cap)
    if cap is not None:
        semantic["max_output_tokens"] = cap
    keyed = [candidate.provider, candidate.base_url.rstrip("/"), candidate.model, messages, semantic]
    # The key is the sha256 of json.dumps(keyed, sort_keys=True, separators=(",", ":"),
    # ensure_ascii=False) in UTF-8, as the warehouses' response_cache holds it. orjson writes those
    # very bytes at a fraction of the CPU when `_plain` admits the value (why: its docstring);
    # otherwise, or when orjson refuses it (an integer past 64 bits, a lone surrogate, nesting past
    # 254), json writes them as it always did, exceptions included.
    if _plain(keyed):
        try:
            blob = orjson.dumps(keyed, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass
        else:
            return hashlib.sha256(blob).hexdigest()
    text = json.dumps(keyed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether orjson (OPT_SORT_KEYS) writes `value` byte for byte as `cache_key`'s json call does
    (or refuses it). True only of exactly dict with exactly-str keys, list, tuple, str, int, bool,
    None, and a float orjson writes as json does. For those two writers agree:
    - compact JSON, tuples as arrays, true/false/null, integers in decimal (orjson refuses those
      past 64 bits);
    - strings in UTF-8 as they are but for `"`, `\\` and U+0000-U+001F, escaped alike (`\\n`,
      `\\u001f`; neither escapes `/`, U+007F, U+2028 or characters past the BMP):
      tests/test_cache_key.py checks every code point;
    - keys sorted by code point (json compares the str, orjson their UTF-8 bytes: the same order);
    - json writes a finite float as its repr, and each float is checked to be written so by orjson
      too, which writes most floats so but not all (1e-05 as 0.00001, 1e-07 as 1e-7, NaN and the
      infinities as null); the repr of NaN and the infinities (`nan`, `inf`) never matches.
    Not admitted: non-str keys (json makes them strings, orjson refuses them), subclasses (json
    reads a dict subclass through its items() and sorts str-subclass keys by their own `<`,
    orjson reads the dict itself; what it makes of other subclasses is its own choice), and what
    orjson writes but json refuses (Enum, UUID, date, dataclass, orjson.Fragment, ...)."""
    kind = type(value)
    if kind is dict:
        if depth > _MAX_DEPTH:
            return False
        for key in value:
            if type(key) is not str:
                return False
        for item in value.values():  # noqa: SIM110 - a loop: all() of a generator is slower
            if type(item) not in _LEAVES and not _plain(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        if depth > _MAX_DEPTH:
            return False
        for item in value:  # noqa: SIM110 - as above
            if type(item) not in _LEAVES and not _plain(item, depth + 1):
                return False
        return True
    if kind is float:
        # A dict finds an equal float, and the only distinct floats that are equal are 0.0 and
        # -0.0 (written differently), so zeros are not remembered. A NaN never equals another.
        same = _FLOATS.get(value)
        if same is None:
            same = orjson.dumps(value) == repr(value).encode()
            if value and len(_FLOATS) < 4096:
                _FLOATS[value] = same
        return same
    return kind in _LEAVES
