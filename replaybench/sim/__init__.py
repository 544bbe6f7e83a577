"""The local model fleet: simulated models behind an OpenAI-compatible server, and demo logs."""

from typing import Any

from replaybench.sim.faults import request_key
from replaybench.sim.profiles import Completion, FaultSpec, Profile, load_profiles
from replaybench.sim.tokens import count_message_tokens, count_tokens
from replaybench.sim.workloads import WORKLOADS, Task, generate, identify, solve, wrong

__all__ = [
    "WORKLOADS", "Completion", "FaultSpec", "Fleet", "Profile", "Task", "ThreadedFleet",
    "count_message_tokens", "count_tokens", "generate", "identify", "load_profiles", "make_app",
    "request_key", "run", "solve", "wrong",
]
_SERVER_NAMES = {"Fleet", "ThreadedFleet", "make_app", "run"}


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m replaybench.sim.server` does not import the module twice (and aiohttp
    # stays out of code that only needs the workloads).
    if name in _SERVER_NAMES:
        from replaybench.sim import server

        return getattr(server, name)
    raise AttributeError(f"module 'replaybench.sim' has no attribute {name!r}")
