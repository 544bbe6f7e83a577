"""`cache_key` writes its JSON with orjson when that gives the very bytes `json.dumps` gave, and
with json otherwise: every key must be the one the json formula made, as the warehouses'
`response_cache` holds answers under those keys (a new key would pay for an answer again).

- a property test: generated messages and parameters, JSON-like with the awkward values (floats
  orjson writes otherwise, NaN, the infinities, integers past 64 bits, lone surrogates, non-str
  keys, keys of every plane, escapes, tuples, subclasses, what json refuses) give the old formula's
  key, or the same exception. A quick run in the default suite; the `fuzz` one checks FUZZ_RECORDS
  examples, derandomized as the other fuzz tests.
- each known difference between the two writers, by hand, and every code point in a string and
  as a key;
- a realistic request takes the fast path (it never reaches json).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
import hashlib
import json
import sys
import uuid
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replaybench import cache
from replaybench.cache import NOT_IN_KEY, cache_key
from replaybench.config import Candidate
from tests.conftest import FUZZ_RECORDS


def old_key(candidate: Candidate, messages: list[dict], params: dict[str, Any]) -> str:
    """The formula the warehouses' keys were made with, as it was."""
    semantic = {k: v for k, v in params.items() if k not in NOT_IN_KEY}
    cap = semantic.pop("max_tokens", None)
    cap = semantic.pop("max_completion_tokens", cap)
    if cap is not None:
        semantic["max_output_tokens"] = cap
    blob = json.dumps([candidate.provider, candidate.base_url.rstrip("/"), candidate.model,
                       messages, semantic], sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def outcome(fn, *args) -> tuple:
    """What a key function returns, or the type and text of what it raises."""
    try:
        return ("key", fn(*args))
    except Exception as exc:  # the same exception is part of "the same result"
        return ("raises", type(exc), str(exc))


def same_key(candidate: Candidate, messages: Any, params: dict[str, Any]) -> None:
    # the old formula first: it is what the new one must give, whatever the new one remembers
    expected = outcome(old_key, candidate, messages, params)
    assert outcome(cache_key, candidate, messages, params) == expected


CANDIDATE = Candidate(name="c", base_url="http://127.0.0.1:9/v1/", model="glm-5.2")


# --- awkward values --------------------------------------------------------------------------

class Str(str):
    pass


class Int(int):
    pass


class Float(float):
    pass


class Dict(dict):
    pass


class List(list):
    pass


class Masked(dict):
    """A dict whose items() leave out its secret: json writes what items() gives, orjson reads
    the dict itself."""

    def items(self):
        return [(k, v) for k, v in super().items() if k != "secret"]


class Reversed(str):
    """A str whose order is the reverse of str's: json sorts such keys by it."""

    def __lt__(self, other):
        return str.__gt__(self, other)


class Level(enum.IntEnum):
    LOW = 1


class Colour(enum.Enum):
    RED = "red"


Pair = collections.namedtuple("Pair", "a b")


@dataclasses.dataclass
class Point:
    x: int = 1


# floats orjson writes otherwise than repr (1e-05, 1e-07, NaN, inf), or alike, and their edges
AWKWARD_FLOATS = [1e16, 1e15, 1.5e16, 9999999999999998.0, 1e-7, 1e-5, 1e-4, 0.0001, 0.00012,
                  1.2e-5, 1e22, 1e100, 1e-100, 5e-324, 2.2250738585072014e-308,
                  1.7976931348623157e308, -0.0, 0.0, 0.1, 0.2, 0.7, 0.9, 1.0, 2.0, 123456789.125,
                  float("nan"), float("inf"), float("-inf")]
# integers around orjson's 64-bit limits
AWKWARD_INTS = [0, -1, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -2**63, -2**63 - 1, 10**30,
                -10**30]
# escapes and characters either writer might treat apart
AWKWARD_STRINGS = ["", "/", "\\", '"', "\x00", "\x1f", "\x7f", "\x80", "\u2028", "\u2029",
                   "\ufeff", "\uffff", "\ue000", "\U00010000", "\U0001f600", "\U0010ffff", "é",
                   "\n\r\t\b\f", "</script>", "\u00e9\u0301", "\ud800", "\udfff", "a\udc00b"]
# values of types json writes by their base type, sorts by their own order, or refuses
ODD_VALUES = [Str("s"), Int(3), Float(0.5), Float(1e-7), Dict(a=1), List([1]),
              Masked(a=1, secret=2), Level.LOW,
              Colour.RED, Pair(1, 2), Point(), uuid.UUID(int=7), datetime.date(2026, 11, 26),
              orjson.Fragment(b"[1]"), b"bytes", (1, "x"), True, False, None]

SURROGATES = ["\ud800", "\udfff", "a\udc00b"]
CHARS = st.one_of(st.characters(codec="utf-8"),  # every plane, no surrogates
                  st.characters(max_codepoint=0x7f),
                  st.sampled_from([s for s in AWKWARD_STRINGS if s not in SURROGATES]))
TEXT = st.lists(CHARS, max_size=12).map("".join)
KEYS = st.one_of(TEXT, st.sampled_from(["role", "content", "type", "text", "a", "b", "A", "aa",
                                        "é", "\uffff", "\U00010000", "\ue000"]))
# floats and integers orjson writes as json does, and ones it writes otherwise or refuses
USUAL_FLOATS = st.one_of(st.sampled_from([0.0, 0.1, 0.2, 0.5, 0.7, 0.9, 1.0, 1.5, 2.0, -0.5]),
                         st.floats(min_value=-2, max_value=2), st.floats(allow_nan=False))
FLOATS = st.one_of(st.floats(), st.sampled_from(AWKWARD_FLOATS),
                   st.floats(min_value=1e-8, max_value=1e-3),
                   st.floats(min_value=1e14, max_value=1e17))
USUAL_INTS = st.integers(min_value=-2**63, max_value=2**64 - 1)
INTS = st.one_of(USUAL_INTS, st.integers(), st.sampled_from(AWKWARD_INTS),
                 st.integers(min_value=2**63 - 3, max_value=2**64 + 3),
                 st.integers(min_value=-2**63 - 3, max_value=-2**63 + 3))
# keys json writes as strings (or cannot sort among others), or sorts by their own order
ODD_KEYS = st.one_of(st.integers(), FLOATS, st.booleans(), st.none(), st.builds(Str, TEXT),
                     st.builds(Reversed, TEXT))


def requests(text, floats, ints, keys, odd_values=None):
    """(candidate, messages, params) strategies of one flavour: from these leaves and keys, with
    now and then a value of `odd_values` or a dict subclass when it is given."""
    leaves = st.one_of(st.none(), st.booleans(), ints, floats, text)
    values = st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(keys, inner, max_size=3),
        st.lists(inner, max_size=2).map(tuple)), max_leaves=6)
    if odd_values is not None:
        values = st.one_of(values, values, values, odd_values,
                           st.dictionaries(keys, values, max_size=2).map(Dict))
    part = st.one_of(st.fixed_dictionaries({"type": st.just("text"), "text": text}),
                     st.dictionaries(keys, values, max_size=2))
    message = st.one_of(
        st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant", "tool"]),
                               "content": st.one_of(text, st.lists(part, max_size=2))},
                              optional={"name": text, "tool_calls": values}),
        st.dictionaries(keys, values, max_size=2))
    messages = st.one_of(st.lists(message, max_size=3), st.lists(message, max_size=2).map(tuple))
    params = st.tuples(
        st.fixed_dictionaries({}, optional={
            "temperature": floats, "top_p": floats, "max_tokens": ints,
            "max_completion_tokens": ints, "model": text, "seed": ints,
            "stop": st.lists(text, max_size=2), "stream": st.booleans(), "metadata": values,
            "timeout": floats, "response_format": values}),
        st.dictionaries(keys, values, max_size=2),
    ).map(lambda both: {**both[1], **both[0]})
    candidates = st.builds(lambda provider, url, model: Candidate(name="c", provider=provider,
                                                                  base_url=url, model=model),
                           st.sampled_from(["openai", "anthropic"]),
                           st.one_of(st.just("http://127.0.0.1:9/v1/"), text), text)
    return st.tuples(candidates, messages, params)


# usual: what orjson writes (JSON of any text, floats and integers it writes as json does)
USUAL = requests(TEXT, USUAL_FLOATS, USUAL_INTS, KEYS)
# floats orjson writes otherwise than json; integers past 64 bits, which orjson refuses
ODD_FLOATS = requests(TEXT, FLOATS, USUAL_INTS, KEYS)
BIG_INTS = requests(TEXT, USUAL_FLOATS, INTS, KEYS)
# non-str keys, now and then (a dict of str and int keys: json cannot sort it, and raises)
NON_STR_KEYS = requests(TEXT, USUAL_FLOATS, USUAL_INTS,
                        st.one_of(KEYS, KEYS, KEYS, KEYS, KEYS, KEYS, KEYS, ODD_KEYS))
# subclasses and what json refuses, among usual values
ODD_TYPES = requests(TEXT, USUAL_FLOATS, USUAL_INTS, KEYS, odd_values=st.sampled_from(ODD_VALUES))
# hostile: all of the above, and lone surrogates
HOSTILE = requests(st.one_of(TEXT, TEXT, st.lists(st.characters(categories=["Cs"]) | CHARS,
                                                  max_size=4).map("".join)),
                   FLOATS, INTS, st.one_of(KEYS, KEYS, KEYS, KEYS, ODD_KEYS),
                   odd_values=st.sampled_from(ODD_VALUES))
FLAVOURS = [USUAL, USUAL, USUAL, ODD_FLOATS, BIG_INTS, NON_STR_KEYS, ODD_TYPES, HOSTILE]
REQUESTS = st.integers(0, len(FLAVOURS) - 1).flatmap(FLAVOURS.__getitem__)

QUICK = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                 suppress_health_check=list(HealthCheck))
FUZZ = settings(max_examples=FUZZ_RECORDS, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


@QUICK
@given(request=REQUESTS)
def test_the_key_is_the_json_formulas(request):
    same_key(*request)


@pytest.mark.fuzz  # FUZZ_RECORDS examples: 10,000 in `make test-e2e`, 1,000 in `make test`
@FUZZ
@given(request=REQUESTS)
def test_the_key_is_the_json_formulas_fuzz(request):
    same_key(*request)


# --- each known difference by hand -----------------------------------------------------------

def user(content: Any) -> list[dict]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": content}]


def circular() -> list:
    loop: list = []
    loop.append(loop)
    return loop


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


CASES = {
    # floats: json writes repr (1e-05, 1e-07, NaN, Infinity), orjson does not always
    **{f"float {x!r}": (user("hi"), {"temperature": x, "max_tokens": 10}) for x in AWKWARD_FLOATS},
    "float in messages": (user([{"type": "text", "text": "x", "weight": 1e-07}]), {}),
    "NaN as a key's value and a cap": (user("hi"), {"max_tokens": float("nan")}),
    # integers past 64 bits: orjson refuses them
    **{f"int {x}": (user("hi"), {"max_tokens": x, "seed": x}) for x in AWKWARD_INTS},
    "big int in messages": (user([{"type": "text", "text": "x", "n": 2**64}]), {}),
    # lone surrogates: orjson refuses them, json writes them and the key's encode() raises
    "lone surrogate in content": (user("a\ud800b"), {}),
    "lone surrogate in a key": (user([{"\udc00": "x"}]), {}),
    "lone surrogate in a param": (user("hi"), {"stop": ["\udfff"]}),
    "lone surrogate in a left-out param": (user("hi"), {"user": "\ud800"}),
    # non-str keys: json writes them as strings (and cannot sort a mix), orjson refuses them
    "int key": (user([{1: "a", 2: "b"}]), {}),
    "float key": (user([{1e-07: "a", float("nan"): "b"}]), {}),
    "bool and None keys": (user([{True: "a", None: "b"}]), {}),
    "mixed keys": (user([{1: "a", "b": "c"}]), {}),
    "int param name": (user("hi"), {7: "x", "temperature": 0.2}),
    # key order: by code point, BMP private use after é, non-BMP after U+FFFF, prefixes first
    "key order": (user([{"b": 1, "a": 2, "A": 3, "aa": 4, "": 5, "é": 6, "\uffff": 7,
                         "\U00010000": 8, "\ue000": 9, "a\x00": 10, "\U0001f600": 11}]),
                  {"top_p": 0.9, "model": "m", "max_completion_tokens": 5}),
    "key order by a str subclass's own order": (user([{Reversed("a"): 1, Reversed("b"): 2}]), {}),
    # escapes and raw characters
    **{f"string {s!r}": (user(s), {"stop": [s]}) for s in AWKWARD_STRINGS},
    "control characters": (user("".join(map(chr, range(0x20))) + "\x7f"), {}),
    # tuples and lists
    "tuple": (user(("a", ("b", 1))), {"stop": ("x", "y")}),
    "messages as a tuple": (tuple(user("hi")), {}),
    # subclasses and what json refuses or writes by the base type
    **{f"odd {type(v).__name__}": (user([{"type": "text", "text": "x", "v": v}]), {"v": v})
       for v in ODD_VALUES},
    "str subclass content": (user(Str("hi")), {}),
    "dict subclass message": ([Dict(role="user", content="hi")], {}),
    "dict subclass with its own items()": ([Masked(role="user", content="hi", secret="x")], {}),
    "list subclass messages": (List(user("hi")), {}),
    # what orjson and json both refuse to nest, or nest differently
    "circular": (circular(), {}),
    "nested 100": (user(nested(100)), {}),
    "nested 300 (past orjson's limit)": (user(nested(300)), {}),
}


@pytest.mark.parametrize(("messages", "params"), list(CASES.values()), ids=list(CASES))
def test_each_known_difference(messages, params):
    same_key(CANDIDATE, messages, params)


def test_numpy_scalars():
    np = pytest.importorskip("numpy")
    # np.float64 is a float subclass (json writes it), np.int64 is not an int (json refuses it)
    for value in (np.float64(0.2), np.float64(1e-7), np.float32(0.5), np.int64(3), np.bool_(True)):
        same_key(CANDIDATE, user("hi"), {"temperature": value})


def test_subclassed_candidate_strings():
    """A model string that is a str subclass (model_copy does not validate) writes as before."""
    same_key(CANDIDATE.model_copy(update={"model": Str("m")}), user("hi"), {})
    same_key(CANDIDATE.model_copy(update={"model": Reversed("m")}), user("hi"), {})


def test_zero_and_negative_zero_are_told_apart():
    """The float memo never gives -0.0 the verdict of 0.0 (they are equal, written differently)."""
    keys = []
    for value in (0.0, -0.0, 0.0, -0.0):
        same_key(CANDIDATE, user("hi"), {"temperature": value})
        keys.append(cache_key(CANDIDATE, user("hi"), {"temperature": value}))
    assert keys[0] == keys[2] != keys[1] == keys[3]


def test_the_float_memo_never_answers_for_an_equal_float(monkeypatch):
    """0.0 and -0.0 are one dict key but two texts: were orjson to write -0.0 otherwise than json
    (as this stand-in does), -0.0 must not get the verdict remembered for 0.0."""

    def dumps(value, option=None):
        return orjson.dumps(value, option=option).replace(b"-0.0", b"-0")

    monkeypatch.setattr(cache, "orjson", SimpleNamespace(
        dumps=dumps, OPT_SORT_KEYS=orjson.OPT_SORT_KEYS, JSONEncodeError=orjson.JSONEncodeError))
    monkeypatch.setattr(cache, "_FLOATS", {})
    for value in (0.0, -0.0, 0.0, -0.0):
        same_key(CANDIDATE, user("hi"), {"temperature": value})


def test_floats_remembered_or_not_give_the_same_key():
    """A float's verdict, remembered or computed, gives the same key (NaN: a new one each time)."""
    for value in AWKWARD_FLOATS * 2:
        same_key(CANDIDATE, user("hi"), {"temperature": value, "top_p": value})
    for _ in range(3):
        same_key(CANDIDATE, user("hi"), {"temperature": float("nan")})


# --- every code point ------------------------------------------------------------------------

def test_every_code_point_is_written_alike():
    """Both writers escape the same characters the same way, in values and keys, and sort keys
    alike: every code point but the surrogates (which orjson refuses)."""
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    for start in range(0, len(every), 4096):
        chunk = every[start:start + 4096]
        assert orjson.dumps(chunk) == json.dumps(chunk, ensure_ascii=False).encode()
    # a key for each of the first 0x3000 code points and every 7th after: sort order and escapes
    keys = {c: i for i, c in enumerate(every[:0x3000] + every[0x3000::7])}
    keys.update({c + c: 0 for c in every[::97]})  # keys that extend one another
    assert (orjson.dumps(keys, option=orjson.OPT_SORT_KEYS)
            == json.dumps(keys, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    same_key(CANDIDATE, user(every), {"stop": [every[::13]]})


# --- the fast path is taken ------------------------------------------------------------------

def test_a_realistic_request_does_not_reach_json(monkeypatch):
    """The point of it all: a usual request is written by orjson, not json."""
    messages = [{"role": "system", "content": "Tu es l'assistant du support d'Acme. " * 20},
                {"role": "user", "content": "J'ai été facturé deux fois — commande n°48213 😀"},
                {"role": "assistant", "content": "Je vérifie."},
                {"role": "user", "content": [{"type": "text", "text": "Reçu : 49,90 €"},
                                             {"type": "image_url",
                                              "image_url": {"url": "https://x/y.png"}}]}]
    params = {"temperature": 0.2, "top_p": 0.9, "max_tokens": 512, "model": "x", "seed": 7,
              "stop": ["\n\n"], "stream": True, "presence_penalty": -0.5}
    expected = old_key(CANDIDATE, messages, params)

    def no_json(*args, **kwargs):
        raise AssertionError("cache_key wrote a usual request with json")

    monkeypatch.setattr(cache, "json", SimpleNamespace(dumps=no_json))
    assert cache_key(CANDIDATE, messages, params) == expected
