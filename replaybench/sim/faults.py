"""Fault injection for the simulated fleet: which fault (if any) an attempt gets, reproducibly.

A fault is drawn from sha256(server seed, request key, attempt number): the same run of requests
meets the same faults, and a retry (the next attempt of the same request) draws afresh, so it
can succeed. The request key is sha256(model name, canonical JSON of the messages, the request's
`seed`), the same on the OpenAI and the Anthropic endpoint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from replaybench.sim.profiles import FAULT_KINDS, FaultSpec, Profile, resolve

_SCALE = float(1 << 56)


@dataclass(frozen=True, slots=True)
class CompiledFaults:
    """A FaultSpec ready for the hot path: cumulative thresholds in FAULT_KINDS order."""

    thresholds: tuple[tuple[float, str], ...]
    retry_after_s: float
    reset_headers: bool
    stall_s: float

    @classmethod
    def of(cls, spec: FaultSpec) -> CompiledFaults:
        cumulative, thresholds = 0.0, []
        for kind in FAULT_KINDS:
            p = getattr(spec, kind)
            if p > 0:
                cumulative += p
                thresholds.append((cumulative, kind))
        return cls(tuple(thresholds), spec.retry_after_s, spec.reset_headers, spec.stall_s)

    def draw(self, seed: int, key: str, attempt: int) -> str | None:
        """The fault kind for this attempt, or None."""
        if not self.thresholds:
            return None
        digest = hashlib.sha256(f"{seed}\x00{key}\x00{attempt}".encode()).digest()
        u = int.from_bytes(digest[:7], "big") / _SCALE
        for threshold, kind in self.thresholds:
            if u < threshold:
                return kind
        return None


def request_key(model: str, messages: Any, seed: Any = None) -> str:
    """sha256 hex of the model name, the canonical JSON of the messages and the request's seed."""
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(
        f"{model}\x00{canonical}\x00{'' if seed is None else seed}".encode()).hexdigest()


def effective_faults(profiles: Mapping[str, Profile],
                     overrides: Mapping[str, Mapping[str, Any]] | None) -> dict[str, CompiledFaults]:
    """Per profile name: its YAML faults, updated field by field with overrides["*"], then with
    overrides[model] (a model may carry its provider prefix)."""
    overrides = dict(overrides or {})
    everyone = overrides.pop("*", None) or {}
    by_name: dict[str, Mapping[str, Any]] = {}
    for model, spec in overrides.items():
        profile = resolve(dict(profiles), model)
        if profile is None:
            raise ValueError(f"faults for unknown model {model!r}; available: {', '.join(profiles)}")
        by_name[profile.name] = spec or {}
    compiled = {}
    for name, profile in profiles.items():
        fields = {**profile.faults.model_dump(exclude_unset=True), **everyone,
                  **by_name.get(name, {})}
        compiled[name] = CompiledFaults.of(FaultSpec.model_validate(fields))
    return compiled


def go_duration(seconds: float) -> str:
    """A duration as OpenAI's x-ratelimit-reset-* headers write it: 20ms, 1s, 6m0s, 1h2m3s."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    frac = seconds - whole
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    sec = f"{s + frac:.3f}".rstrip("0").rstrip(".") if frac else str(s)
    if h:
        return f"{h}h{m}m{sec}s"
    if m:
        return f"{m}m{sec}s"
    return f"{sec}s"


def openai_rate_limit_headers(faults: CompiledFaults) -> dict[str, str]:
    if faults.reset_headers:
        reset = go_duration(faults.retry_after_s)
        return {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": reset, "x-ratelimit-reset-tokens": reset}
    return {"Retry-After": _seconds(faults.retry_after_s)}


def anthropic_rate_limit_headers(faults: CompiledFaults) -> dict[str, str]:
    reset = (datetime.now(UTC) + timedelta(seconds=faults.retry_after_s)).isoformat(
        timespec="seconds").replace("+00:00", "Z")
    headers = {"anthropic-ratelimit-requests-limit": "60",
               "anthropic-ratelimit-requests-remaining": "0",
               "anthropic-ratelimit-requests-reset": reset}
    if not faults.reset_headers:
        headers["retry-after"] = _seconds(faults.retry_after_s)
    return headers


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
