"""A deterministic token-count approximation shared by the fleet and the demo log generator.

Real tokenizers differ per model; the simulation only needs counts that are stable, cheap and
roughly proportional to text length (~4 characters per token, as for English BPE vocabularies).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from replaybench import tokens
from replaybench.tokens import estimate_tokens

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4  # role markers and separators per message, as in OpenAI's chat format
REPLY_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>


def count_tokens(text: str | None) -> int:
    """Approximate token count of `text`: ceil(len / 4), as replaybench estimates it too."""
    return estimate_tokens(text)


def message_text(content: Any) -> str:
    """The text of a message's `content` (`replaybench.tokens.message_text`), "" for none."""
    return tokens.message_text(content) or ""


def count_message_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """Approximate prompt tokens of a chat: content tokens plus a small per-message overhead."""
    total = REPLY_PRIMING
    for message in messages:
        total += MESSAGE_OVERHEAD + count_tokens(message_text(message.get("content")))
    return total
