"""The local model fleet: simulated models behind an OpenAI-compatible server, and demo logs.

    profiles.py   how each simulated model behaves (Profile.respond: the answer, usage, timing)
    workloads/    the demo workloads, one module each: prompts, generators, right and wrong answers
    faults.py     fault injection: the kinds, their draw per attempt, rate-limit headers
    dialects/     how an answer looks on the wire: OpenAI (per profile dialect) and Anthropic
    app.py        the aiohttp app: routes, state, stats, faults acted out
    server.py     serving it: run(), ProcessFleet, ThreadedFleet, ThreadedApp
    demo_logs.py  the bundled demo production logs
"""

from typing import Any

from replaybench.sim.faults import request_key
from replaybench.sim.profiles import Completion, FaultSpec, Profile, load_profiles
from replaybench.sim.tokens import count_message_tokens, count_tokens
from replaybench.sim.workloads import WORKLOADS, Task, generate, identify, solve, wrong

__all__ = [
    "WORKLOADS", "Completion", "FaultSpec", "Profile", "ProcessFleet", "Task", "ThreadedFleet",
    "count_message_tokens", "count_tokens", "generate", "identify", "load_profiles", "make_app",
    "request_key", "run", "solve", "wrong",
]
_LAZY = {"ProcessFleet": "server", "ThreadedFleet": "server", "run": "server", "make_app": "app"}


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m replaybench.sim.server` does not import the module twice (and aiohttp
    # stays out of code that only needs the workloads).
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"replaybench.sim.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'replaybench.sim' has no attribute {name!r}")
