"""Redaction: take a customer's personal data out of a request before it leaves the machine.

`Redactor(extra_patterns).redact_messages(messages)` returns the messages with every e-mail
address, phone number, payment card number (Luhn-checked), IBAN (ISO 13616 mod-97), IPv4 and IPv6
address, API key or bearer token, and every match of a configured pattern replaced by a
placeholder such as `<EMAIL_1>`, and the number of replacements by kind.

Pseudonyms are consistent within one call: the same value becomes the same placeholder wherever it
appears in that request's messages, so an answer that repeats it stays checkable; separate calls
(requests) are independent. Placeholders are numbered by first appearance.

How a text is scanned: each detector, in priority order, finds its candidates in the original text;
a candidate that fails its validator (a 16-digit order number that fails Luhn) or overlaps a span
already claimed by an earlier detector is dropped; then all claimed spans are replaced in one pass.
Scanning the original text (not text with placeholders in it) means a configured pattern like
`\\d+` can never eat the digits of `<CARD_1>`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Kind -> how the report names it: (one, many).
KIND_LABELS = {
    "EMAIL": ("e-mail address", "e-mail addresses"),
    "PHONE": ("phone number", "phone numbers"),
    "CARD": ("payment card number", "payment card numbers"),
    "IBAN": ("IBAN", "IBANs"),
    "IPV4": ("IPv4 address", "IPv4 addresses"),
    "IPV6": ("IPv6 address", "IPv6 addresses"),
    "SECRET": ("API key or token", "API keys and tokens"),
}

# Parts of a message that are not text a customer wrote: never scanned (image data can be megabytes).
_SKIP_KEYS = frozenset({"role", "type", "id", "tool_call_id", "image_url", "input_audio", "file",
                        "source", "cache_control"})


# --- validators ----------------------------------------------------------------------------------

def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a string of digits (payment card numbers)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# ISO 13616 lengths per country; a country not listed is accepted at any length from 15 to 34.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28,
    "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31,
    "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TR": 26, "UA": 29,
}


def iban_ok(iban: str) -> bool:
    """ISO 13616: the country's length, and the mod-97 check over the rearranged number."""
    iban = iban.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34 or _IBAN_LENGTHS.get(iban[:2], len(iban)) != len(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _ipv6_ok(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


_DATE_SHAPE = re.compile(r"\d{1,4}([./-])\d{1,2}\1\d{1,4}")


def _phone_ok(text: str) -> bool:
    digits = sum(ch.isdigit() for ch in text)
    if not 7 <= digits <= 15 or _DATE_SHAPE.fullmatch(text):
        return False
    # national numbers without a country code: at least 9 digits (shorter ones are too often not phones)
    return digits >= 9 or text.startswith(("+", "("))


# --- detectors -----------------------------------------------------------------------------------
#
# Speed: Python's regex engine scans fast only for a pattern that starts with a literal or a
# character class, so each pattern begins with one and checks what precedes it with a lookbehind
# placed after that first character (`\d(?<![\w.]\d)` = a digit not preceded by a word char or dot).
# Kinds with a rare marker (`@`, `sk-`, `eyJ`, `::`) are skipped outright for texts without it.

@dataclass(frozen=True)
class Detector:
    """One kind of personal data: a compiled pattern, an optional validator of the match, and which
    group is the value (0: the whole match; 1: e.g. the token after `Bearer `)."""

    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] | None = None
    group: int = 0
    # lowercase markers: the detector runs only on texts that contain one of them (speed)
    needs: tuple[str, ...] = ()
    # or a cheap pattern the text must match for the detector to run
    gate: re.Pattern[str] | None = None
    shrink: bool = False  # on a failed validation, retry the prefixes that end at a separator
    left: re.Pattern[str] | None = None  # extends the match leftwards (an e-mail's local part)


_SECRET = re.compile(r"""
    eyJ(?<![\w-]eyJ)[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}   # a JWT
  | sk-(?<![\w-]sk-)(?:ant-)?[A-Za-z0-9_-]{16,}                              # OpenAI, Anthropic
  | g(?<![\w]g)(?:h[poust]_[A-Za-z0-9]{30,}|ithub_pat_[A-Za-z0-9_]{30,})     # GitHub
  | A(?<!\wA)[KS]IA[0-9A-Z]{16}\b                                            # AWS access key id
  | x(?<!\wx)ox[abposr]-[A-Za-z0-9-]{10,}                                    # Slack
  | A(?<!\wA)Iza[0-9A-Za-z_-]{35}                                            # Google
  | [srp](?<!\w[srp])k_(?:live|test)_[A-Za-z0-9]{16,}                        # Stripe
""", re.VERBOSE)
_SECRET_MARKERS = ("eyj", "sk-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "akia", "asia",
                   "xox", "aiza", "_live_", "_test_")
# a token has a digit or is long: "the bearer instrument" is prose, not a credential
_BEARER = re.compile(r"[Bb](?<!\w[Bb])(?i:earer)\s+((?=[A-Za-z\-._~+/]*\d|[A-Za-z0-9\-._~+/]{20})"
                     r"[A-Za-z0-9\-._~+/]{8,}=*)")
_KEY_VALUE = re.compile(
    r"[AaSsPp](?<!\w[AaSsPp])(?i:pi[_-]?key|ecret(?:[_-]?key)?|assword|asswd|ccess[_-]?token|uth[_-]?token)"
    r"[\"']?\s*[:=]\s*[\"']?([^\s\"',;]{8,})")
_KEY_MARKERS = ("key", "secret", "passw", "token")
# found from its `@` (a fast literal search), then extended left over the local part
_EMAIL = re.compile(r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b")
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9._%+-]{1,64}\Z")
_IBAN = re.compile(r"[A-Z](?<!\w[A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"""
    \d(?<![\d.,#+-]\d)(?<![A-Z]{2}\d\d[ ]\d)               # not a phone's digits, not inside an IBAN
    (?: \d{12,18}                                          # contiguous
      | \d{3}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?     # 4-4-4-4(-3), spaces or dashes
      | (?<=3)[47]\d{2}([ -])\d{6}\2\d{5}                  # Amex 4-6-5
    )
    (?![\d]|[.,]\d)
""", re.VERBOSE)
_IPV6 = re.compile(r"[0-9A-Fa-f:](?<![\w:.][0-9A-Fa-f:])(?:(?<=:)|[0-9A-Fa-f]{0,3}:)"  # first group
                   r"(?:[0-9A-Fa-f]{0,4}:){1,6}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4})"
                   r"(?!\w|:[\w:]|\.\w)")
_IPV6_GATE = re.compile(r"::|:[0-9A-Fa-f]{1,4}:")
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?!\w|\.\d)")
_PHONE = re.compile(r"""
    [+(\d](?<![\w+#/.,-][+(\d])(?<!\d[ -][+(\d])           # not the tail of a longer number
    (?: (?<=\+)\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){1,6}   # +49 30 1234567, +1 (555) 123-4567
      | (?<=0)0\d{1,3}(?:[ .-]\d{1,5}){2,6}                # 0049 30 1234567
      | (?<=\()\d{2,5}\)[ .-]?\d{2,5}(?:[ .-]?\d{2,5}){0,3}  # (555) 123-4567, (030) 123 4567
      | (?<=0)\d{1,4}(?:[ /.-]\d{2,8}){1,4}                # 030 1234567, 06 12 34 56 78
      | (?<=\d)\d{2}([ .-])\d{3}\1\d{4}                    # 555-123-4567
    )
    (?![\w-]|[.,]\d)
""", re.VERBOSE)


def _ipv4_ok(text: str) -> bool:
    return all(int(p) <= 255 and (len(p) == 1 or p[0] != "0") for p in text.split("."))


def _card_ok(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


BUILTIN_DETECTORS: tuple[Detector, ...] = (
    Detector("SECRET", _SECRET, needs=_SECRET_MARKERS),
    Detector("SECRET", _BEARER, group=1, needs=("bearer",)),
    Detector("SECRET", _KEY_VALUE, group=1, needs=_KEY_MARKERS),
    Detector("EMAIL", _EMAIL, needs=("@",), left=_EMAIL_LOCAL),
    Detector("IBAN", _IBAN, iban_ok, shrink=True),
    Detector("CARD", _CARD, _card_ok, shrink=True),
    Detector("IPV6", _IPV6, _ipv6_ok, gate=_IPV6_GATE),
    Detector("IPV4", _IPV4, _ipv4_ok, needs=(".",)),
    Detector("PHONE", _PHONE, _phone_ok),
)


def pattern_kind(name: str) -> str:
    """The placeholder kind of a configured pattern: its name in upper case, `[A-Z0-9_]` only."""
    return re.sub(r"[^A-Z0-9_]", "_", name.upper())


def _prefixes(text: str) -> list[tuple[int, str]]:
    """The prefixes of a separated number that end just before a separator, longest first."""
    ends = [i for i, ch in enumerate(text) if ch in " -"]
    return [(e, text[:e]) for e in reversed(ends)]


# --- the redactor --------------------------------------------------------------------------------

class _Pseudonyms:
    """The placeholders of one request: the same (kind, value) always gets the same one."""

    def __init__(self) -> None:
        self.names: dict[tuple[str, str], str] = {}
        self.next: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def name(self, kind: str, value: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        key = (kind, value)
        found = self.names.get(key)
        if found is None:
            n = self.next[kind] = self.next.get(kind, 0) + 1
            found = self.names[key] = f"<{kind}_{n}>"
        return found


class Redactor:
    """Finds and replaces personal data; build once (patterns compile here), use for many requests.

    `extra_patterns`: (name, regex) pairs, a {name: regex} mapping, or objects with `.name` and
    `.regex` (the config's `redact.patterns`); each match becomes `<NAME_n>`.
    """

    def __init__(self, extra_patterns: Iterable[Any] | Mapping[str, str] = ()) -> None:
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
    def _walk(self, value: Any, names: _Pseudonyms) -> Any:
        if isinstance(value, str):
            return self._string(value, names)
        if isinstance(value, list):
            return [self._walk(v, names) for v in value]
        if isinstance(value, dict):
            return {k: (v if k in _SKIP_KEYS else self._walk(v, names)) for k, v in value.items()}
        return value

    def _string(self, text: str, names: _Pseudonyms) -> str:
        # tool-call arguments are JSON in a string: redact the values, not the escapes around them
        if len(text) > 1 and text[0] in "{[" and text[-1] in "}]":
            try:
                parsed = json.loads(text)
            except ValueError:
                pass
            else:
                return json.dumps(self._walk(parsed, names), ensure_ascii=False)
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
        claimed: list[tuple[int, int, str]] = []
        lower = None
        for det in self.detectors:
            if det.needs:
                if lower is None:
                    lower = text.lower()
                if not any(n in lower for n in det.needs):
                    continue
            if det.gate is not None and not det.gate.search(text):
                continue
            for m in det.pattern.finditer(text):
                start, end = m.span(det.group)
                if start == end:
                    continue
                if det.left is not None:
                    before = det.left.search(text, max(0, start - 64), start)
                    if before is None:
                        continue
                    start = before.start()
                value = text[start:end]
                if det.valid is not None and not det.valid(value):
                    if not det.shrink:
                        continue
                    # "4111 1111 1111 1111 12/27" caught the expiry month too: try shorter
                    end = next((start + e for e, p in _prefixes(value) if det.valid(p)), None)
                    if end is None:
                        continue
                if not any(s < end and start < e for s, e, _ in claimed):
                    claimed.append((start, end, det.kind))
        claimed.sort()
        return claimed


_default: Redactor | None = None


def redact_messages(messages: list[Any], redactor: Redactor | None = None
                    ) -> tuple[list[Any], dict[str, int]]:
    """Redact one request's messages with the built-in detectors (or the given redactor)."""
    global _default
    if redactor is None:
        if _default is None:
            _default = Redactor()
        redactor = _default
    return redactor.redact_messages(messages)


def describe(counts: Mapping[str, int]) -> str:
    """'12 e-mail addresses, 1 phone number' in the order of KIND_LABELS, then configured kinds."""
    order = list(KIND_LABELS) + sorted(k for k in counts if k not in KIND_LABELS)
    parts = []
    for kind in order:
        n = counts.get(kind, 0)
        if n:
            one, many = KIND_LABELS.get(kind, (kind.lower(), kind.lower()))
            parts.append(f"{n:,} {one if n == 1 else many}")
    return ", ".join(parts)
