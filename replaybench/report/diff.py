"""Two answers side by side, with the words that differ marked: model text escaped, only the
<mark> tags are markup."""

from __future__ import annotations

import difflib
import re

from markupsafe import Markup, escape

DIFF_MAX_WORDS = 3000  # beyond this, answers are shown without a diff (SequenceMatcher is quadratic)


def _words(text: str) -> list[tuple[str, str]]:
    """(leading whitespace, word) pairs; a trailing whitespace run becomes ('  ', '')."""
    pairs = [(m.group(1), m.group(2)) for m in re.finditer(r"(\s*)(\S+)", text)]
    tail = text[len(text.rstrip()):] if text.strip() else text
    return pairs + ([(tail, "")] if tail else [])


def _render(pairs: list[tuple[str, str]], changed: list[tuple[int, int]]) -> Markup:
    """The text, escaped segment by segment, with each run of changed words in one <mark>."""
    out, i = [], 0
    for start, end in changed:
        out += [escape(ws) + escape(w) for ws, w in pairs[i:start]]
        out += [escape(pairs[start][0]), Markup("<mark>"), escape(pairs[start][1])]
        out += [escape(ws) + escape(w) for ws, w in pairs[start + 1:end]]
        out.append(Markup("</mark>"))
        i = end
    out += [escape(ws) + escape(w) for ws, w in pairs[i:]]
    return Markup("").join(out)


def word_diff(candidate: str | None, production: str | None) -> tuple[Markup, Markup] | None:
    """Both answers as safe markup with the words that differ wrapped in <mark> (word-level
    SequenceMatcher; whitespace kept as it was). Every piece of model text is escaped; only the
    <mark> tags are markup. None when an answer is missing or too long to diff."""
    if candidate is None or production is None:
        return None
    a, b = _words(candidate), _words(production)
    if len(a) > DIFF_MAX_WORDS or len(b) > DIFF_MAX_WORDS:
        return None
    a_words = [w for _, w in a if w]
    b_words = [w for _, w in b if w]
    ops = difflib.SequenceMatcher(None, a_words, b_words, autojunk=False).get_opcodes()
    return (_render(a, [(i1, i2) for tag, i1, i2, _, _ in ops if tag != "equal" and i2 > i1]),
            _render(b, [(j1, j2) for tag, _, _, j1, j2 in ops if tag != "equal" and j2 > j1]))
