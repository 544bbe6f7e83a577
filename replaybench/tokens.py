"""Token accounting, once for ingest and replay: the vendors' usage blocks read as OpenTelemetry
GenAI counts (input tokens include cached ones, output tokens include reasoning ones), the text of a
message's content, and the rough estimate used where an endpoint reports no count.

The usage readers know where each vendor puts each count; the caller hands them its own way of
reading one value (`Count`), so that a bad value is a reject with ingest's reason, or a bad
response naming the field with a provider's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

Counts = dict[str, int | None]  # input_tokens, output_tokens, cached_tokens, reasoning_tokens
# (value, where) -> a token count, or None when the value is absent; raises the caller's error.
# `where` is the value's path in the usage block, `usage.prompt_tokens_details.cached_tokens`.
Count = Callable[[Any, str], int | None]
# (value, where) -> a nested object of the block (`prompt_tokens_details`), {} when absent
Block = Callable[[Any, str], dict[str, Any]]


def lenient(value: Any, where: str) -> dict[str, Any]:
    """A nested object as a lenient reader takes it: {} when it is not an object."""
    return value if isinstance(value, dict) else {}


def with_cache(fresh: int | None, read: int | None, written: int | None) -> int | None:
    """Input tokens as OTel counts them, from a vendor that counts cache reads and writes apart
    (Anthropic, Helicone's columns); None when the fresh input is unknown."""
    return None if fresh is None else fresh + (read or 0) + (written or 0)


def chat_completions(usage: dict[str, Any], count: Count, where: str = "usage", block: Block = lenient,
                     cache_hit: str | None = "cache_read_input_tokens") -> Counts:
    """Chat Completions usage (OpenAI and the compatible APIs), already OTel's: cached input from
    `prompt_tokens_details`, else from the vendor's own field `cache_hit` (LiteLLM's
    `cache_read_input_tokens`, DeepSeek's `prompt_cache_hit_tokens`; None: none)."""
    prompt = block(usage.get("prompt_tokens_details"), f"{where}.prompt_tokens_details")
    completion = block(usage.get("completion_tokens_details"), f"{where}.completion_tokens_details")
    cached = prompt.get("cached_tokens")
    if (cached is None or cached == "") and cache_hit is not None:
        cached = usage.get(cache_hit)
    return {
        "input_tokens": count(usage.get("prompt_tokens"), f"{where}.prompt_tokens"),
        "output_tokens": count(usage.get("completion_tokens"), f"{where}.completion_tokens"),
        "reasoning_tokens": count(completion.get("reasoning_tokens"),
                                  f"{where}.completion_tokens_details.reasoning_tokens"),
        "cached_tokens": count(cached, f"{where}.prompt_tokens_details.cached_tokens"),
    }


def anthropic(usage: dict[str, Any], count: Count, where: str = "usage") -> Counts:
    """Anthropic Messages usage: `input_tokens` excludes cache reads and writes, added back here;
    no reasoning count (the caller estimates one)."""
    fresh = count(usage.get("input_tokens"), f"{where}.input_tokens")
    read = count(usage.get("cache_read_input_tokens"), f"{where}.cache_read_input_tokens")
    written = count(usage.get("cache_creation_input_tokens"), f"{where}.cache_creation_input_tokens")
    return {
        "input_tokens": with_cache(fresh, read, written),
        "output_tokens": count(usage.get("output_tokens"), f"{where}.output_tokens"),
        "cached_tokens": read,
        "reasoning_tokens": None,
    }


def responses(usage: dict[str, Any], count: Count, where: str = "usage") -> Counts:
    """OpenAI Responses API usage, already OTel's."""
    prompt = lenient(usage.get("input_tokens_details"), "")
    completion = lenient(usage.get("output_tokens_details"), "")
    return {
        "input_tokens": count(usage.get("input_tokens"), f"{where}.input_tokens"),
        "output_tokens": count(usage.get("output_tokens"), f"{where}.output_tokens"),
        "cached_tokens": count(prompt.get("cached_tokens"), f"{where}.input_tokens_details.cached_tokens"),
        "reasoning_tokens": count(completion.get("reasoning_tokens"),
                                  f"{where}.output_tokens_details.reasoning_tokens"),
    }


def any_usage(usage: Any, count: Count, where: str = "usage") -> Counts:
    """A usage block of any of the three shapes, told apart by its fields; {} when it is none."""
    if not isinstance(usage, dict):
        return {}
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        return chat_completions(usage, count, where)
    if "input_tokens" in usage and "input_tokens_details" not in usage:
        return anthropic(usage, count, where)
    return responses(usage, count, where)


def as_text(value: Any) -> str:
    """A string as it is, None as nothing, anything else as its JSON text (as DuckDB gives it)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def message_text(content: Any) -> str | None:
    """Message content as text (the `text` of OpenAI content parts joined); other values as JSON."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(as_text(p.get("text")) for p in content if isinstance(p, dict))
    return as_text(content)


def estimate_tokens(text: str | None) -> int:
    """Roughly four characters a token: for rate budgets and for endpoints that report no count."""
    return math.ceil(len(text) / 4) if text else 0
