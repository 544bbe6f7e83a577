"""Fault injection for the simulated fleet: which fault (if any) an attempt gets, reproducibly.

A fault is drawn from sha256(server seed, request key, attempt number): the same run of requests
meets the same faults, and a retry (the next attempt of the same request) draws afresh, so it
can succeed. The request key is sha256(model name, canonical JSON of the messages, the request's
`seed`), the same on the OpenAI and the Anthropic endpoint.

Kinds, each a probability per attempt (their sum at most 1); the first seven are a profile's own
`faults` (replaybench.sim.profiles.FaultSpec), all eleven can be set by `replaybench sim --faults`
and `make_app(faults=...)`:

    rate_limited        429 with Retry-After: retry_after_s (reset_headers: x-ratelimit-reset-*)
    server_error        500
    unavailable         503 (Anthropic endpoint: 529)
    stall               sleep stall_s before answering
    reset               abort the TCP connection, no response
    truncated           200 with a JSON body cut in half (a stream: sse_cut)
    sse_cut             stream aborted before [DONE] (not streamed: truncated)
    garbage             200 whose JSON has the wrong shape: {"choices":[{"message":"str"}]} and
                        the like; a stream sends a chunk such as `data: [1,2]`
    huge                200 with an answer of huge_bytes (default 20 MiB, past the default
                        max_response_bytes), made while it is sent and never held whole
    endless             a stream that sends a delta every ENDLESS_GAP_S until the client hangs
                        up, and is aborted after endless_s (not streamed: a body of blanks that
                        never ends, aborted likewise)
    absurd_retry_after  429 with Retry-After: 86400 (reset_headers: x-ratelimit-reset-* of 24h)

The last four are what a hostile endpoint sends (issue 12); none of them ever counts as a
completion in the fleet's stats.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field, ValidationError

from replaybench.sim.profiles import FAULT_KINDS, FaultSpec, Profile, resolve

_SCALE = float(1 << 56)
HOSTILE_KINDS = ("garbage", "huge", "endless", "absurd_retry_after")
# Drawn in this order: the hostile kinds come last, so a seed meets the faults it met before.
KINDS = FAULT_KINDS + HOSTILE_KINDS
ABSURD_RETRY_AFTER_S = 86400.0
ENDLESS_GAP_S = 0.2  # between two deltas of an endless stream (real time, whatever time_scale)
HUGE_BYTES = 20 * 1024 * 1024  # past the default max_response_bytes (16 MiB)
ENDLESS_S = 30.0


class FleetFaults(FaultSpec):
    """A profile's FaultSpec plus the kinds of a hostile endpoint: what `--faults` may set."""

    garbage: float = Field(0.0, ge=0, le=1, description="200 whose JSON has the wrong shape (a "
                                                        "stream: a chunk like `data: [1,2]`)")
    huge: float = Field(0.0, ge=0, le=1, description="200 with an answer of huge_bytes")
    endless: float = Field(0.0, ge=0, le=1, description="a stream that never ends by itself "
                                                        "(aborted after endless_s)")
    absurd_retry_after: float = Field(0.0, ge=0, le=1, description="429 with Retry-After: 86400")
    huge_bytes: int = Field(HUGE_BYTES, ge=1, description="size of a huge answer, bytes")
    endless_s: float = Field(ENDLESS_S, ge=0, description="when the server gives up an endless "
                                                          "answer nobody hung up on, seconds")
    kinds: ClassVar[tuple[str, ...]] = KINDS


@dataclass(frozen=True, slots=True)
class CompiledFaults:
    """A FaultSpec ready for the hot path: cumulative thresholds in KINDS order."""

    thresholds: tuple[tuple[float, str], ...]
    retry_after_s: float
    reset_headers: bool
    stall_s: float
    huge_bytes: int = HUGE_BYTES
    endless_s: float = ENDLESS_S

    @classmethod
    def of(cls, spec: FaultSpec) -> CompiledFaults:
        if not isinstance(spec, FleetFaults):
            spec = FleetFaults.model_validate(spec.model_dump())
        cumulative, thresholds = 0.0, []
        for kind in KINDS:
            p = getattr(spec, kind)
            if p > 0:
                cumulative += p
                thresholds.append((cumulative, kind))
        return cls(tuple(thresholds), spec.retry_after_s, spec.reset_headers, spec.stall_s,
                   spec.huge_bytes, spec.endless_s)

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
    overrides[model] (a model may carry its provider prefix). A bad override is a ValueError of
    one line that names it (an unknown kind lists the known ones)."""
    overrides = dict(overrides or {})
    for model, spec in overrides.items():
        unknown = sorted(set(spec or {}) - set(FleetFaults.model_fields))
        if unknown:
            raise ValueError(f"faults for {model!r}: unknown {', '.join(map(repr, unknown))}"
                             f"; kinds: {', '.join(KINDS)}; settings: retry_after_s, "
                             "reset_headers, stall_s, huge_bytes, endless_s")
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
        try:
            spec = FleetFaults.model_validate(fields)
        except ValidationError as exc:
            reasons = "; ".join("".join(f"{loc}: " for loc in e["loc"])
                                + e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise ValueError(f"faults for {name!r}: {reasons}") from None
        compiled[name] = CompiledFaults.of(spec)
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


def openai_rate_limit_headers(faults: CompiledFaults, wait_s: float | None = None
                              ) -> dict[str, str]:
    """A 429's headers asking for `wait_s` (default: the spec's retry_after_s)."""
    wait_s = faults.retry_after_s if wait_s is None else wait_s
    if faults.reset_headers:
        reset = go_duration(wait_s)
        return {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": reset, "x-ratelimit-reset-tokens": reset}
    return {"Retry-After": _seconds(wait_s)}


def anthropic_rate_limit_headers(faults: CompiledFaults, wait_s: float | None = None
                                 ) -> dict[str, str]:
    """A 429's headers on the Anthropic endpoint asking for `wait_s` (default: retry_after_s)."""
    wait_s = faults.retry_after_s if wait_s is None else wait_s
    reset = (datetime.now(UTC) + timedelta(seconds=wait_s)).isoformat(
        timespec="seconds").replace("+00:00", "Z")
    headers = {"anthropic-ratelimit-requests-limit": "60",
               "anthropic-ratelimit-requests-remaining": "0",
               "anthropic-ratelimit-requests-reset": reset}
    if not faults.reset_headers:
        headers["retry-after"] = _seconds(wait_s)
    return headers


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
