"""Progress of the long phases (ingest per file, replay per candidate), in process.

A phase only counts; whoever watches shows it. `console_bars()` draws a rich bar per phase on
stderr while it is active; inside a Prefect flow or task run, a phase with a `key` keeps a
Prefect progress artifact up to date from a thread of its own. With nobody watching,
`advance()` is one locked addition, safe from any thread:

    with progress.phase(f"replay {name}", total=len(requests), key=f"replay-{slug(name)}") as p:
        for ... : p.advance()
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from rich.console import Console, RenderableType
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

log = logging.getLogger(__name__)

ARTIFACT_INTERVAL_S = 2.0   # at most one artifact update per phase this often
ARTIFACT_FLUSH_S = 5.0      # close() waits at most this long for the artifact's last update

_lock = threading.Lock()
_open: dict[int, Phase] = {}
_watchers: list[_Bars] = []


def slug(text: str) -> str:
    """`text` as a Prefect artifact key: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "phase"


class Phase:
    """One long step's count of work done (of `total`, when known). Also a context manager."""

    def __init__(self, name: str, total: int | None = None, key: str | None = None,
                 unit: str = ""):
        self.name, self.total, self.key, self.unit = name, total, key, unit
        self.done = 0
        self.closed = False
        self._lock = threading.Lock()
        self._artifact: _ArtifactFeed | None = None

    def advance(self, n: int = 1) -> None:
        """Count `n` more units of work done."""
        with self._lock:
            self.done += n

    def percent(self) -> float:
        """Done as a percentage of the total (0 while the total is unknown)."""
        if self.total is None:
            return 0.0
        return 100.0 if self.total <= 0 else min(100.0, 100.0 * self.done / self.total)

    def close(self) -> None:
        """End the phase: bars show their last count, the artifact goes to 100 (idempotent)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
        with _lock:
            _open.pop(id(self), None)
            watchers = list(_watchers)
        for bars in watchers:
            bars.closed(self)
        if self._artifact is not None:
            self._artifact.stop()

    def __enter__(self) -> Phase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Phase({self.name!r}, {self.done}/{self.total})"


def phase(name: str, total: int | None = None, *, key: str | None = None,
          unit: str = "") -> Phase:
    """Open a phase. With a `key`, inside a Prefect run, it also feeds a progress artifact.
    `unit="B"` shows the counts as bytes."""
    p = Phase(name, total, key, unit)
    if key is not None and total is not None and _in_prefect_run():
        p._artifact = _ArtifactFeed(p, key)
    with _lock:
        _open[id(p)] = p
        watchers = list(_watchers)
    for bars in watchers:
        bars.opened(p)
    return p


# --- the console -------------------------------------------------------------------------------

class _Count(ProgressColumn):
    """done/total, as bytes for a byte-counting phase; `?` while the total is unknown."""

    def render(self, task: Task) -> Text:
        fmt = decimal if task.fields.get("unit") == "B" else "{:,.0f}".format
        total = "?" if task.total is None else fmt(int(task.total))
        unit = task.fields.get("unit")
        suffix = f" {unit}" if unit and unit != "B" else ""
        return Text(f"{fmt(int(task.completed))}/{total}{suffix}", style="progress.download")


class _Bars(Progress):
    """A rich Progress that reads the phases' counts whenever it draws, so that `advance()`
    never has to call into rich."""

    def __init__(self, console: Console):
        self._tasks_of: dict[int, tuple[Phase, TaskID]] = {}  # before super(): it draws once
        super().__init__(TextColumn("{task.description}"), BarColumn(), _Count(),
                         TimeElapsedColumn(), console=console, refresh_per_second=5)

    def opened(self, p: Phase) -> None:
        with self._lock:
            if id(p) not in self._tasks_of:
                task = self.add_task(p.name, total=p.total, completed=p.done, unit=p.unit)
                self._tasks_of[id(p)] = (p, task)

    def closed(self, p: Phase) -> None:
        self.opened(p)
        with self._lock:
            _, task = self._tasks_of.pop(id(p))
            self.update(task, completed=p.done, total=p.total if p.total is not None else p.done)
            self.stop_task(task)

    def get_renderables(self) -> Iterable[RenderableType]:
        with self._lock:
            for p, task in self._tasks_of.values():
                self.update(task, completed=p.done)
        yield from super().get_renderables()


@contextmanager
def console_bars(console: Console | None = None) -> Iterator[None]:
    """While active, every phase shows as a progress bar on stderr, or on `console`. Bars are for
    people: when stderr is not a terminal (cron, CI, a pipe), nothing is drawn."""
    if console is None:
        console = Console(stderr=True)
        if not console.is_terminal:
            yield
            return
    bars = _Bars(console)
    with bars:
        with _lock:
            _watchers.append(bars)
            already = list(_open.values())
        for p in already:
            bars.opened(p)
        try:
            yield
        finally:
            with _lock:
                _watchers.remove(bars)


# --- the Prefect artifact ----------------------------------------------------------------------

def _in_prefect_run() -> bool:
    if "prefect" not in sys.modules:  # not imported, so not running (importing it costs ~2 s)
        return False
    try:
        from prefect.context import FlowRunContext, TaskRunContext
    except ImportError:
        return False
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


class _ArtifactFeed:
    """Creates the phase's progress artifact and updates it from a thread of its own, so that
    neither the event loop nor the counting ever waits on Prefect's API. The thread runs in a
    copy of the caller's context: the artifact belongs to the caller's flow or task run."""

    def __init__(self, p: Phase, key: str):
        self.phase, self.key = p, key
        self._stop = threading.Event()
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._feed,),
                                        name=f"progress-{key}", daemon=True)
        self._thread.start()

    def _describe(self) -> str:
        return f"{self.phase.name}: {self.phase.done:,} of {self.phase.total:,}"

    def _feed(self) -> None:
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        try:
            shown = self.phase.percent()
            artifact_id = create_progress_artifact(shown, key=self.key,
                                                   description=self._describe(), _sync=True)
            while not self._stop.wait(ARTIFACT_INTERVAL_S):
                now = self.phase.percent()
                if now != shown:
                    update_progress_artifact(artifact_id, now, description=self._describe(),
                                             _sync=True)
                    shown = now
            update_progress_artifact(artifact_id, 100.0, description=self._describe(), _sync=True)
        except Exception:  # progress is a courtesy: it never breaks the work it reports on
            log.debug("progress artifact %r not updated", self.key, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(ARTIFACT_FLUSH_S)
