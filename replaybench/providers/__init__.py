"""Model endpoints, registered by API dialect and imported lazily.

A provider turns (messages, sampling parameters) into a `Completion`: the answer with its usage and
timing, normalised to OpenTelemetry GenAI token semantics. It never raises for an endpoint's
failure: after its retries the failure is a Completion with status `error` and an error class a
human can act on (see `base.py`).
"""

from __future__ import annotations

from importlib import import_module

from replaybench.providers.base import Completion, HTTPProvider

_REGISTRY = {
    "openai": "replaybench.providers.openai:OpenAIChat",
    "anthropic": "replaybench.providers.anthropic:AnthropicMessages",
}


def provider_class(name: str) -> type[HTTPProvider]:
    module, _, attr = _REGISTRY[name].partition(":")
    return getattr(import_module(module), attr)


__all__ = ["Completion", "HTTPProvider", "provider_class"]
