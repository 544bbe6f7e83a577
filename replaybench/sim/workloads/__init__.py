"""The demo workloads: prompts whose correct answer is computable from the prompt itself.

Each workload has a fixed system prompt per prompt_version and user messages generated from
templates. Because the generator writes the facts into the text, a solver can read them back:
that is how the simulated fleet answers "correctly", and why a check that passes really means
the answer was right.

    generate(kind, prompt_version, rng) -> Task       a new request (and its truth)
    identify(messages) -> (kind, prompt_version)       which workload a request belongs to
    solve(messages) -> str                             the correct answer text
    wrong(messages, rng) -> str                        a plausible wrong answer
    drift(messages, answer, rng) -> str                the right answer in a non-compliant format
    generic_answer(messages, model) -> str             for any prompt that is not a workload
    judge(question, answer) -> (score, why)            the fleet as an LLM judge

A workload is one module of this package, named after its kind, that calls
`register(Workload(...))` (see triage.py). Every module here is imported with the package, so a
new workload is its module; the profiles (data/sim/profiles.yaml) may name its kind in their
`accuracy` and `reasoning_tokens`, and answer it with accuracy 0.8 and no reasoning otherwise.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
from functools import lru_cache

from replaybench.sim.tokens import message_text
from replaybench.sim.workloads.base import WORKLOADS, Messages, Task, Workload, chat, user_text

__all__ = ["WORKLOADS", "Task", "Workload", "core_value", "drift", "generate", "generic_answer",
           "identify", "judge", "solve", "wrong"]

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

TENANTS = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wonka", "tyrell")
TENANT_WEIGHTS = (30, 18, 14, 10, 9, 8, 6, 5)
_BY_SYSTEM_PROMPT: dict[str, tuple[str, str]] = {
    text: (w.kind, pv) for w in WORKLOADS.values() for pv, text in w.system_prompts.items()
}


def identify(messages: Messages) -> tuple[str, str] | None:
    """(kind, prompt_version) of a request, recognised by its system prompt; None if unknown."""
    for message in messages:
        if message.get("role") in ("system", "developer"):
            return _BY_SYSTEM_PROMPT.get(message_text(message.get("content")).strip())
    return None


def core_value(kind: str, answer: str) -> str:
    """The checkable core of an answer text: the label, JSON, final number, SQL or order number."""
    return WORKLOADS[kind].core_value(answer)


def generate(kind: str, prompt_version: str, rng: random.Random) -> Task:
    """A new request for `prompt_version` of workload `kind`, with its truth and metadata."""
    workload = WORKLOADS[kind]
    if prompt_version not in workload.prompt_versions:
        raise ValueError(f"{prompt_version!r} is not a prompt_version of {kind!r}: "
                         f"use one of {', '.join(workload.prompt_versions)}")
    messages, extra, truth = workload.generate(prompt_version, rng)
    metadata = {"tenant": rng.choices(TENANTS, TENANT_WEIGHTS)[0], **extra}
    has_reference = rng.random() < workload.reference_rate
    return Task(kind=kind, prompt_version=prompt_version, messages=messages, truth=truth,
                reference=truth if has_reference else None, metadata=metadata)


@lru_cache(maxsize=4096)
def _solve_cached(kind: str, user: str, verbosity: float) -> str:
    return WORKLOADS[kind].solve(user, verbosity)


def solve(messages: Messages, verbosity: float = 1.0) -> str:
    """The correct answer text for a workload request (a generic answer for unknown prompts)."""
    known = identify(messages)
    if known is None:
        return generic_answer(messages)
    return _solve_cached(known[0], user_text(messages), verbosity)


def wrong(messages: Messages, rng: random.Random, verbosity: float = 1.0) -> str:
    """A plausible wrong answer: a confused label, a wrong field, an arithmetic slip, ..."""
    known = identify(messages)
    if known is None:
        return generic_answer(messages)
    return WORKLOADS[known[0]].wrong(user_text(messages), rng, verbosity)


def drift(messages: Messages, answer: str, rng: random.Random) -> str:
    """`answer` in a format the prompt forbids (capitalised label, code fences, prose, ...)."""
    known = identify(messages)
    return answer if known is None else WORKLOADS[known[0]].drift(answer, rng)


def generic_answer(messages: Messages, model: str = "the simulated model") -> str:
    """A short, deterministic reply to a prompt that is not one of the workloads."""
    words = user_text(messages).split()
    topic = " ".join(words[:12]) + (" ..." if len(words) > 12 else "")
    if not topic:
        return f"Hello! This is {model}, a simulated model. How can I help?"
    return (f"This is a simulated answer from {model}. You asked: \"{topic}\". A real model would "
            "answer here; the replaybench fleet only simulates its cost, latency and quality.")


def judge(question: str, answer: str) -> tuple[int, str]:
    """A deterministic judge score for `answer` to a workload question: 5 when its core value
    (final number, SQL) equals the solver's, 1 when it does not, 3 for a question no workload
    can verify."""
    for w in WORKLOADS.values():
        if w.judgeable is not None and w.judgeable(question):
            truth = w.core_value(solve(chat(w.system_prompts[w.prompt_versions[0]], question)))
            seen = w.core_value(answer)
            if seen == truth:
                return 5, f"correct: the {w.kind} answer {truth} is right"
            return 1, f"wrong: expected {truth}, got {seen[:80]!r}"
    return 3, "not a question the judge can verify"
