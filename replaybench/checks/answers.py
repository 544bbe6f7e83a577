"""A run's answers as the checks read them (`sql/answers.sql`), from the warehouse in chunks, so
that memory follows the chunk's size, not the night's.

A chunk is a run of `rows` answers in `answers.sql`'s order (prompt_version, model,
request_id), read as its pieces (`sql/answer_chunks.sql`): each one prompt_version and model
and a range of its request_ids, which `sql/answer_piece.sql` reads with the same logic as the
whole run (the `run_answers` macro, `sql/answer_macros.sql`), narrowed where DuckDB pushes the
narrowing into its scans.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby
from operator import itemgetter
from pathlib import Path

import polars as pl

from replaybench.warehouse import Warehouse, open_warehouse


def answer_chunks(warehouse: Path, run_id: str, rows: int,
                  questions: bool = True) -> Iterator[pl.DataFrame]:
    """The run's answers (`answers.sql`), `rows` at a time in its order: one query when they fit
    in one chunk, else each chunk read piece by piece. Each chunk is read in a turn of the
    warehouse (the first in the turn that cuts the run into chunks), which is over before the
    caller gets the chunk. Without `questions` (no judge, and no suite naming it), `user_message`
    is NULL and the logs are not read (`NightChecks.reads_questions`)."""
    with open_warehouse(warehouse) as wh:
        pieces = wh.query("answer_chunks", run_id=run_id, rows=rows)
        chunks = [list(chunk) for _, chunk in groupby(pieces, key=itemgetter(0))]
        first = _read(wh, run_id, chunks[0] if len(chunks) > 1 else None, questions)
    yield first  # an empty run too: one empty chunk
    for chunk in chunks[1:]:
        with open_warehouse(warehouse) as wh:
            frame = _read(wh, run_id, chunk, questions)
        yield frame


def _read(wh: Warehouse, run_id: str, pieces: list[tuple] | None,
          questions: bool) -> pl.DataFrame:
    """The run's answers (`answers.sql`), or, given a chunk's pieces, theirs, one after the
    other (`answer_piece.sql`)."""
    wh.query("answer_macros")
    if pieces is None:
        return wh.frame("answers", run_id=run_id, with_question=questions)
    return pl.concat([wh.frame("answer_piece", run_id=run_id, prompt_version=prompt_version,
                               model=model, first_request=first, last_request=last,
                               with_question=questions)
                      for _, prompt_version, model, first, last in pieces], how="vertical")
