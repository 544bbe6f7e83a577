"""What every workload module shares: the Workload record, the registry, a request's parts, names."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from replaybench.sim.tokens import message_text

Messages = list[dict[str, Any]]
# generate(prompt_version, rng) -> (messages, metadata, truth)
Generator = Callable[[str, random.Random], tuple[Messages, dict[str, Any], str]]


@dataclass(frozen=True, eq=False)
class Workload:
    """One product endpoint, the prompt versions deployed behind it, and how to answer it.

    The answer functions read the facts back from the user message the generator wrote, so a
    "correct" simulated answer really is correct."""

    kind: str
    endpoint: str
    production_model: str  # provider/model as logged in model_id
    system_prompts: dict[str, str]  # per prompt_version, in deployment order
    reference_rate: float  # share of logged rows that carry a human-reviewed or golden reference
    max_tokens: int
    temperature: float
    reasoning_note: str  # what a reasoning model's visible thinking says about this workload
    generate: Generator
    solve: Callable[[str, float], str]  # (user text, verbosity) -> the correct answer
    wrong: Callable[[str, random.Random, float], str]  # a plausible wrong answer
    drift: Callable[[str, random.Random], str]  # the right answer in a format the prompt forbids
    # the checkable core of an answer: the label, JSON, final number, SQL or order number
    core_value: Callable[[str], str] = str.strip
    # whether the fleet, as an LLM judge, can verify an answer to this question (None: never)
    judgeable: Callable[[str], bool] | None = None

    @property
    def prompt_versions(self) -> tuple[str, ...]:
        return tuple(self.system_prompts)


@dataclass
class Task:
    """A generated request: the messages, the correct answer, and what a log row would carry."""

    kind: str
    prompt_version: str
    messages: Messages
    truth: str  # known by construction: the label, golden JSON, number, SQL or order number
    reference: str | None  # `truth` when this row carries a reference, else None
    metadata: dict[str, Any] = field(default_factory=dict)


WORKLOADS: dict[str, Workload] = {}


def register(workload: Workload) -> Workload:
    """Add a workload to WORKLOADS (each workload module calls this for itself)."""
    if workload.kind in WORKLOADS:
        raise ValueError(f"two workloads of kind {workload.kind!r}")
    WORKLOADS[workload.kind] = workload
    return workload


def chat(system: str, user: str) -> Messages:
    """A request's messages: the prompt version's system prompt, then the user's text."""
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def user_text(messages: Messages) -> str:
    """The text of the last user message ("" if there is none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


FIRST_NAMES = ("Anna", "Ben", "Carla", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas",
               "Kira", "Luca", "Mara", "Nils", "Olga", "Pablo", "Rosa", "Sven", "Tara", "Yusuf")
LAST_NAMES = ("Schmidt", "Rossi", "Dubois", "Novak", "Jensen", "Garcia", "Kowalski", "Murphy",
              "Lindqvist", "Yilmaz", "Costa", "Weber", "Moreau", "Silva", "Berg")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
