"""The files a replay keeps beside the warehouse, and their names.

- `<warehouse>.journal/<run>--<stem>[--<chunk>].jsonl`: every answer the moment it arrives;
- `<warehouse>.shards/<run>--<stem>[--<chunk>]--<pid>-<n>.parquet`: the answers in batches, to load;
- `<warehouse>.plans/<run>--<stem>.parquet`: the requests a candidate has left to send.

A candidate's name is for display (`glm-5.2 [fp8]`, `a/b`, `../x`): its files are named by
`file_stem`, never by the name itself, and found by exact match, never by a glob.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from replaybench.beside import beside
from replaybench.config import Candidate, Settings
from replaybench.runs import Run


def file_stem(name: str) -> str:
    """A candidate's name as part of a file name: its letters, digits, dots and underscores (any
    other run of characters one dash, so never `--`, the separator) and a short hash of the exact
    name, so that no name becomes a path or a pattern and two names never share a file."""
    readable = re.sub(r"[^A-Za-z0-9._]+", "-", name)[:40].strip("-.") or "candidate"
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def journal_folder(settings: Settings) -> Path:
    return beside(settings.warehouse, ".journal")


def shard_folder(settings: Settings) -> Path:
    return beside(settings.warehouse, ".shards")


def journal_path(settings: Settings, run: Run, candidate: Candidate, chunk: int = 0) -> Path:
    suffix = f"--{chunk}" if chunk else ""
    return journal_folder(settings) / f"{run.run_id}--{file_stem(candidate.name)}{suffix}.jsonl"


def plan_path(settings: Settings, run: Run, candidate: Candidate) -> Path:
    return beside(settings.warehouse, ".plans") / f"{run.run_id}--{file_stem(candidate.name)}.parquet"


def leftovers(settings: Settings, run: Run, candidate: Candidate) -> tuple[list[Path], list[Path]]:
    """(journals, shards) a run's candidate left behind: a killed attempt's, or the ones to load.
    Matched exactly (`<run>--<stem>[--<chunk>]`), never by a glob; files named by the raw name,
    as releases before `file_stem` did, are found too when the name was a plain file name."""
    prefixes = [f"{run.run_id}--{file_stem(candidate.name)}"]
    if candidate.name == Path(candidate.name).name and candidate.name not in (".", ".."):
        prefixes.append(f"{run.run_id}--{candidate.name}")
    ours = "|".join(re.escape(p) for p in prefixes)
    journals = re.compile(rf"(?:{ours})(?:--\d+)?\.jsonl")
    shards = re.compile(rf"(?:{ours})(?:--\d+)?--\d+-\d+\.parquet")
    return _matching(journal_folder(settings), journals), _matching(shard_folder(settings), shards)


def _matching(folder: Path, pattern: re.Pattern[str]) -> list[Path]:
    """The files of `folder` whose whole name matches `pattern`."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(folder / n for n in names if pattern.fullmatch(n))
