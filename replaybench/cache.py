"""The response cache: an answer is keyed by everything that can change it, and nothing else.

In the key: provider, base URL, model, the messages, and the sampling parameters (the output cap
under one name, whichever the endpoint calls it). Not in it: streaming, timeouts, retries, limits —
settings that change how an answer arrives, not what it says.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from replaybench.config import Candidate

NOT_IN_KEY = {"stream", "stream_options", "timeout", "user", "metadata", "store", "service_tier"}


def cache_key(candidate: Candidate, messages: list[dict], params: dict[str, Any]) -> str:
    """A stable sha256 for (endpoint, model, messages, answer-changing parameters)."""
    semantic = {k: v for k, v in params.items() if k not in NOT_IN_KEY}
    cap = semantic.pop("max_tokens", None)
    cap = semantic.pop("max_completion_tokens", cap)
    if cap is not None:
        semantic["max_output_tokens"] = cap
    blob = json.dumps([candidate.provider, candidate.base_url.rstrip("/"), candidate.model,
                       messages, semantic], sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()
