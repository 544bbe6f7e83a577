"""Simulated model profiles and the one function that turns a request into a simulated answer.

`Profile.respond(messages, seed)` is shared by the HTTP fleet and the demo log generator, so the
logged production answers and a replay of the same model come from the same machinery.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from replaybench.sim import workloads
from replaybench.sim.tokens import count_message_tokens, count_tokens, message_text

DEFAULT_PROFILES_PATH = Path(__file__).resolve().parents[2] / "data" / "sim" / "profiles.yaml"
CACHE_BLOCK = 64  # cached prompt tokens come in blocks, as with real prompt caches
GENERIC_REASONING_NOTE = "Consider what the user is asking and answer briefly. "
MAX_REASONING_CHARS = 480  # the text is a token gesture; the count carries the cost


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Strict):
    """USD per 1M tokens."""

    input: float = Field(ge=0, description="uncached input tokens")
    cached_input: float = Field(ge=0, description="input tokens served from the prompt cache")
    output: float = Field(ge=0, description="output tokens, reasoning included")

    def cost(self, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> float:
        """USD for one call; `prompt_tokens` includes the cached ones."""
        return ((prompt_tokens - cached_tokens) * self.input + cached_tokens * self.cached_input
                + completion_tokens * self.output) / 1_000_000


FAULT_KINDS = ("rate_limited", "server_error", "unavailable", "stall", "reset", "truncated",
               "sse_cut")
Dialect = Literal["generic", "openai", "glm", "deepseek", "minimax", "vllm", "anthropic"]


class FaultSpec(_Strict):
    """Fault injection for one model: each kind is a probability per attempt (default 0)."""

    rate_limited: float = Field(0.0, ge=0, le=1, description="429 with Retry-After")
    server_error: float = Field(0.0, ge=0, le=1, description="500")
    unavailable: float = Field(0.0, ge=0, le=1, description="503 (Anthropic endpoint: 529)")
    stall: float = Field(0.0, ge=0, le=1, description="sleep stall_s before answering")
    reset: float = Field(0.0, ge=0, le=1, description="abort the TCP connection, no response")
    truncated: float = Field(0.0, ge=0, le=1, description="200 with a JSON body cut in half")
    sse_cut: float = Field(0.0, ge=0, le=1, description="stream aborted before [DONE]")
    retry_after_s: float = Field(1.0, ge=0, description="the 429's Retry-After, seconds")
    reset_headers: bool = Field(False, description="429 with x-ratelimit-reset-* headers "
                                                   "instead of Retry-After")
    stall_s: float = Field(30.0, ge=0, description="how long a stall sleeps")

    kinds: ClassVar[tuple[str, ...]] = FAULT_KINDS  # the probability fields, in draw order

    @model_validator(mode="after")
    def _at_most_one(self) -> FaultSpec:
        total = sum(getattr(self, kind) for kind in self.kinds)
        if total > 1 + 1e-9:
            raise ValueError(f"fault probabilities add up to {total:g}; at most 1 per attempt")
        return self

    @property
    def active(self) -> bool:
        """Whether any kind has a non-zero probability."""
        return any(getattr(self, kind) > 0 for kind in self.kinds)


class Timing(_Strict):
    """A mean and a standard deviation in milliseconds."""

    mean: float = Field(gt=0)
    jitter: float = Field(ge=0)


class Profile(_Strict):
    """How one simulated model behaves: quality, length, speed, caching and price."""

    name: str = Field(description="the model string clients send, e.g. glm-5.2")
    provider: str = Field(description="prefix accepted before the name, e.g. openai/gpt-5-mini")
    role: Literal["candidate", "production"]
    description: str = ""
    accuracy: dict[str, float] = Field(description="P(correct answer) per workload kind")
    format_compliance: dict[str, float] = Field(
        default_factory=dict, description="P(format followed | correct) per prompt_version")
    verbosity: float = Field(1.0, gt=0, description="output length multiplier")
    reasoning_tokens: dict[str, float] = Field(
        default_factory=dict, description="mean reasoning tokens per kind (and 'generic')")
    ttft_ms: Timing
    tokens_per_s: float = Field(gt=0)
    cache_hit_rate: float = Field(ge=0, le=1)
    price: Price
    faults: FaultSpec = Field(default_factory=FaultSpec,
                              description="fault injection (429/5xx/stalls/resets); none by default")
    dialect: Dialect = Field("generic", description="how the HTTP response is rendered: where "
                                                     "reasoning and cache counts go, which "
                                                     "parameters are refused")

    def respond(self, messages: list[dict[str, Any]], seed: int = 0) -> Completion:
        """The simulated answer to `messages`: deterministic for (profile, messages, seed)."""
        rng = request_rng(self.name, messages, seed)
        # Fixed draw order, so adding a workload never shifts another's numbers.
        u_correct, u_format, u_cache = rng.random(), rng.random(), rng.random()
        z_reasoning, z_ttft, u_speed = rng.gauss(0, 1), rng.gauss(0, 1), rng.uniform(0.8, 1.2)
        answer_rng = random.Random(rng.getrandbits(64))

        known = workloads.identify(messages)
        kind, prompt_version = known if known else ("generic", None)
        correct: bool | None = None
        if known is None:
            content = workloads.generic_answer(messages, self.name)
        else:
            correct = u_correct < self.accuracy.get(kind, 0.8)
            if correct:
                content = workloads.solve(messages, self.verbosity)
                if u_format >= self.format_compliance.get(prompt_version, 1.0):
                    content = workloads.drift(messages, content, answer_rng)
            else:
                content = workloads.wrong(messages, answer_rng, self.verbosity)

        mean = self.reasoning_tokens.get(kind, 0.0)
        reasoning = max(0, round(mean + 0.3 * mean * z_reasoning)) if mean > 0 else 0
        reasoning_text = ""
        if reasoning:
            note = workloads.WORKLOADS[kind].reasoning_note if known else GENERIC_REASONING_NOTE
            reasoning_text = (note * (MAX_REASONING_CHARS // len(note) + 1))[
                : min(MAX_REASONING_CHARS, reasoning * 4)].rstrip()
        completion_tokens = count_tokens(content) + reasoning

        system = next((m for m in messages if m.get("role") in ("system", "developer")), None)
        cached = 0
        if system is not None and u_cache < self.cache_hit_rate:
            cached = count_message_tokens([system]) // CACHE_BLOCK * CACHE_BLOCK

        ttft = max(0.2 * self.ttft_ms.mean, self.ttft_ms.mean + self.ttft_ms.jitter * z_ttft)
        generation = completion_tokens / (self.tokens_per_s * u_speed) * 1000
        prompt_tokens = count_message_tokens(messages)
        return Completion(
            content=content, reasoning_content=reasoning_text, prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens, reasoning_tokens=reasoning, cached_tokens=cached,
            ttft_ms=round(ttft), latency_ms=round(ttft + generation), kind=kind,
            prompt_version=prompt_version, correct=correct,
            cost_usd=self.price.cost(prompt_tokens, cached, completion_tokens))


@dataclass(frozen=True)
class Completion:
    """One simulated answer with its usage and timing (milliseconds at time_scale 1)."""

    content: str
    reasoning_content: str
    prompt_tokens: int
    completion_tokens: int  # content plus reasoning
    reasoning_tokens: int
    cached_tokens: int
    ttft_ms: int
    latency_ms: int
    kind: str  # a workload kind, or "generic"
    prompt_version: str | None
    correct: bool | None  # None for prompts that are not a workload
    cost_usd: float

    def usage(self) -> dict[str, Any]:
        """The OpenAI `usage` object."""
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
                "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens}}


def request_rng(profile_name: str, messages: list[dict[str, Any]], seed: int) -> random.Random:
    """A Random seeded from sha256(profile name, canonical JSON of the messages, seed)."""
    canonical = json.dumps(
        [{"role": m.get("role"), "content": message_text(m.get("content"))} for m in messages],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{profile_name}\x00{canonical}\x00{seed}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


class ProfilesFile(_Strict):
    """The profiles file: a list of profiles."""

    profiles: list[Profile]


def load_profiles(path: str | Path | None = None) -> dict[str, Profile]:
    """Profiles by name from a YAML file (default: data/sim/profiles.yaml)."""
    path = Path(path) if path else DEFAULT_PROFILES_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"No simulator profiles at {path}: pass a profiles file, or run "
                                "from a checkout that has data/sim/profiles.yaml") from None
    parsed = ProfilesFile.model_validate(raw)
    return {p.name: p for p in parsed.profiles}


def resolve(profiles: dict[str, Profile], model: str) -> Profile | None:
    """The profile for a model string, accepting a provider prefix (openai/gpt-5-mini)."""
    if model in profiles:
        return profiles[model]
    _, _, name = model.partition("/")
    profile = profiles.get(name)
    return profile if profile is not None and name else None
