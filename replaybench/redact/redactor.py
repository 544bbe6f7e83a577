"""The `Redactor`: walks a request's messages (OpenAI and Anthropic shapes, tool calls, JSON inside
strings), lets each detector claim its spans in the original text, and replaces them with
placeholders that are consistent within the request."""

from __future__ import annotations

import bisect
import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from replaybench.redact.detectors import (
    BUILTIN_DETECTORS,
    CANONICAL,
    Detector,
    pattern_kind,
    separator_prefixes,
)
from replaybench.redact.ner import choose_ner_model, presidio_recognizer

_log = logging.getLogger("replaybench.redact")

# Parts of a message that are not text a customer wrote: never scanned (image data can be megabytes).
_SKIP_KEYS = frozenset({"role", "type", "id", "tool_call_id", "image_url", "input_audio", "file",
                        "source", "cache_control"})


# --- the redactor --------------------------------------------------------------------------------

MAX_DEPTH = 64  # JSON nesting walked value by value; deeper is redacted as text


class _Pseudonyms:
    """The placeholders of one request: the same (kind, value) always gets the same one."""

    def __init__(self) -> None:
        self.names: dict[tuple[str, str], str] = {}
        self.next: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def name(self, kind: str, value: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        canonical = CANONICAL.get(kind)
        key = (kind, canonical(value) if canonical else value)
        found = self.names.get(key)
        if found is None:
            n = self.next[kind] = self.next.get(kind, 0) + 1
            found = self.names[key] = f"<{kind}_{n}>"
        return found


class _Claims:
    """Spans claimed so far, in order, none overlapping: a span that overlaps one is not claimed."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.spans: list[tuple[int, int, str]] = []

    def claim(self, start: int, end: int, kind: str) -> None:
        i = bisect.bisect_right(self.starts, start)
        if (i and self.spans[i - 1][1] > start) or (i < len(self.spans) and self.starts[i] < end):
            return
        self.starts.insert(i, start)
        self.spans.insert(i, (start, end, kind))


def _scan(det: Detector, text: str, lower: str, claimed: _Claims) -> None:
    """Claim the values one detector finds in `text` (`lower`: the same in lower case)."""
    if det.needs and not any(n in lower for n in det.needs):
        return
    if det.gate is not None and not det.gate.search(text):
        return
    for m in det.pattern.finditer(text):
        start, end = m.span(det.group)
        if start == end:
            continue
        if det.left is not None:
            before = det.left.search(text, max(0, start - 64), start)
            if before is None:
                continue
            start = before.start()
        if det.not_after is not None and det.not_after.search(text, max(0, start - 40), start):
            continue
        value = text[start:end]
        if det.valid is not None and not det.valid(value):
            if not det.shrink:
                continue
            # "4111 1111 1111 1111 12/27" caught the expiry month too: try shorter
            end = next((start + e for e, p in separator_prefixes(value) if det.valid(p)), None)
            if end is None:
                continue
        claimed.claim(start, end, det.kind)


class Redactor:
    """Finds and replaces personal data; build once (patterns compile here), use for many requests.

    `extra_patterns`: (name, regex) pairs, a {name: regex} mapping, or objects with `.name` and
    `.regex` (the config's `redact.patterns`); each match becomes `<NAME_n>`.
    `ner`: None uses Presidio's names and places when the `ner` extra and a spaCy model are
    installed (else only the built-in detectors); False never; True insists on one of `NER_MODELS`;
    a string insists on that spaCy model (package name or path).
    """

    def __init__(self, extra_patterns: Iterable[Any] | Mapping[str, str] = (), *,
                 ner: bool | str | None = None) -> None:
        if isinstance(extra_patterns, Mapping):
            pairs = list(extra_patterns.items())
        else:
            pairs = [(p.name, p.regex) if hasattr(p, "regex") else tuple(p) for p in extra_patterns]
        extra = []
        for name, regex in pairs:
            try:
                extra.append(Detector(pattern_kind(name), re.compile(regex)))
            except re.error as exc:
                raise ValueError(f"redaction pattern {name!r} is not a valid regex: {exc}") from None
        # built-ins first: a sloppy configured pattern never splits a card number in two
        self.detectors: tuple[Detector, ...] = BUILTIN_DETECTORS + tuple(extra)
        self._builtins = len(BUILTIN_DETECTORS)
        self._insist = ner is not None and ner is not False
        self.ner_model: str | None = choose_ner_model(ner)

    def redact_messages(self, messages: list[Any]) -> tuple[list[Any], dict[str, int]]:
        """The messages with personal data replaced (the input is not changed), and how many
        values of each kind were replaced. Pseudonyms are shared across the messages."""
        names = _Pseudonyms()
        return [self._walk(m, names) for m in messages], dict(sorted(names.counts.items()))

    def redact_text(self, text: str) -> tuple[str, dict[str, int]]:
        """One text on its own (its own pseudonyms)."""
        names = _Pseudonyms()
        return self._text(text, names), dict(sorted(names.counts.items()))

    # every string a message holds, in OpenAI and Anthropic shapes: content strings, content-part
    # lists (`text`), tool-call arguments (JSON inside a string), tool results
    def _walk(self, value: Any, names: _Pseudonyms, depth: int = 0) -> Any:
        if isinstance(value, str):
            return self._string(value, names, depth)
        if depth >= MAX_DEPTH and isinstance(value, list | dict):
            # nested deeper than any real request: redacted as the text of its JSON, so that
            # nothing escapes and no recursion limit ends the night (too deep even for that:
            # dropped, never sent as it was)
            try:
                return self._text(json.dumps(value, ensure_ascii=False), names)
            except RecursionError:
                return "<NESTED_TOO_DEEP>"
        if isinstance(value, list):
            return [self._walk(v, names, depth + 1) for v in value]
        if isinstance(value, dict):
            return {k: (v if k in _SKIP_KEYS else self._walk(v, names, depth + 1))
                    for k, v in value.items()}
        return value

    def _string(self, text: str, names: _Pseudonyms, depth: int = 0) -> str:
        # tool-call arguments are JSON in a string: redact the values, not the escapes around them
        if len(text) > 1 and text[0] in "{[" and text[-1] in "}]":
            try:
                parsed = json.loads(text)
            except (ValueError, RecursionError):
                pass
            else:
                return json.dumps(self._walk(parsed, names, depth + 1), ensure_ascii=False)
        return self._text(text, names)

    def _text(self, text: str, names: _Pseudonyms) -> str:
        spans = self.find(text)
        if not spans:
            return text
        out, last = [], 0
        for start, end, kind in spans:
            out.append(text[last:start])
            out.append(names.name(kind, text[start:end]))
            last = end
        out.append(text[last:])
        return "".join(out)

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, kind) of every value to redact in `text`, in order, none overlapping."""
        claimed = _Claims()
        lower = text.lower()
        for det in self.detectors[:self._builtins]:
            _scan(det, text, lower, claimed)
        self._claim_ner(text, claimed)
        for det in self.detectors[self._builtins:]:
            _scan(det, text, lower, claimed)
        return claimed.spans

    def _claim_ner(self, text: str, claimed: _Claims) -> None:
        # spaCy's models find names by their capitals: a text without one is not worth the model
        if self.ner_model is None or not any(ch.isupper() for ch in text):
            return
        try:
            recognizer = presidio_recognizer(self.ner_model)
        except Exception as exc:  # a model built for another spaCy, a broken install
            if self._insist:
                raise
            _log.warning("redaction: spaCy model %s does not load (%s); names and places are found "
                         "by the built-in rules only", self.ner_model, exc)
            self.ner_model = None
            return
        for start, end, kind in recognizer(text):
            claimed.claim(start, end, kind)
