"""The errors replaybench raises on purpose and the CLI reports, in one small hierarchy.

    ReplaybenchError            anything the user can fix; the CLI prints its message on one line
    ├── ConfigError             replaybench.yaml is missing, malformed, or names a secret not set
    ├── IngestError             a log file cannot be read at all (a bad *line* is a reject, not this)
    ├── WarehouseError          the DuckDB file is locked, or a stored run is not there
    ├── SampleError             a run has nothing to sample (no traffic in its window)
    └── RunInProgress           the run of that day is under way in another process

A model endpoint's failure is not among them: it is stored with the replay, as its error kind
(replaybench.providers.base.Failure).

Messages say what to do next, and never carry a secret: `scrub()` removes every secret value
the configuration resolved before a message leaves the process.
"""

from __future__ import annotations

_SECRETS: set[str] = set()


class ReplaybenchError(Exception):
    """Base class: a failure with a message a person can act on."""

    def __init__(self, message: str):
        super().__init__(scrub(message))


class ConfigError(ReplaybenchError):
    """The configuration is invalid or incomplete."""


class IngestError(ReplaybenchError):
    """A log file cannot be read at all."""


class WarehouseError(ReplaybenchError):
    """The warehouse cannot be opened or does not hold what was asked for."""


class SampleError(ReplaybenchError):
    """A run has nothing to sample (no traffic in its window)."""


class RunInProgress(ReplaybenchError):
    """The run of a day is under way in another process: it is not started twice."""


def register_secret(value: str | None) -> None:
    """Remember a secret value so that `scrub` can remove it from any message."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def scrub(text: str) -> str:
    """Replace every registered secret in `text` with a placeholder."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    return text
