"""Model endpoints, registered by API dialect and imported lazily.

A provider turns (messages, sampling parameters) into a `Completion`: the answer with its usage and
timing, normalised to OpenTelemetry GenAI token semantics. It never raises for an endpoint's
failure: the failure is a Completion with status `error` and an error class a human can act on.
"""

from __future__ import annotations

from importlib import import_module

from replaybench.providers.base import Completion, Provider

_REGISTRY = {"openai": "replaybench.providers.openai:OpenAIChat"}


def provider_class(name: str) -> type[Provider]:
    module, _, attr = _REGISTRY[name].partition(":")
    return getattr(import_module(module), attr)


__all__ = ["Completion", "Provider", "provider_class"]
