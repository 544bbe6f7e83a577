"""Model endpoints, registered by API dialect and imported lazily.

A provider turns (messages, sampling parameters) into a `Completion`: the answer with its usage and
timing, normalised to OpenTelemetry GenAI token semantics. It never raises for an endpoint's
failure: after its retries the failure is a Completion with status `error` and an error class a
human can act on (see `base.py`).

Adding a dialect is one module, `replaybench/providers/<name>.py`, holding an `HTTPProvider`
subclass registered with `@register("<name>")`; a vendor's quirk within a dialect is a small
subclass of that dialect's provider.
"""

from __future__ import annotations

import pkgutil
from importlib import import_module

from replaybench.providers.base import PROVIDERS, Completion, HTTPProvider

_NOT_PROVIDERS = {"base", "read"}  # the modules every provider shares


def names() -> list[str]:
    """The providers a candidate can name: one module each in this package, found unimported."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__)
                  if m.name not in _NOT_PROVIDERS and not m.name.startswith("_"))


def provider_class(name: str) -> type[HTTPProvider]:
    """The provider registered as `name`, its module imported on first use."""
    if name not in PROVIDERS:
        if name not in names():
            raise KeyError(f"unknown provider {name!r}; known: {', '.join(names())}")
        import_module(f"{__name__}.{name}")
    return PROVIDERS[name]


__all__ = ["Completion", "HTTPProvider", "names", "provider_class"]
