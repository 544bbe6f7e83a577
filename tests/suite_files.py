"""Suite files written by the checks' tests, and the error that loading a bad one raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from replaybench.checks.suites import load_suites


def one_expectation(entry: str, prompt_version: str = "t@v1") -> str:
    """A suite file with one expectation, `entry` being its YAML after the list's `- `."""
    return f"prompt_version: {prompt_version}\nexpectations:\n  - {entry}\n"


def load_error(folder: Path, text: str, file: str = "bad.yaml") -> str:
    """The message of the ValueError raised loading `folder` with `text` written as `file`."""
    (folder / file).write_text(text)
    with pytest.raises(ValueError) as info:
        load_suites(folder)
    return str(info.value)
