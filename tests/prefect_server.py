"""A real Prefect server and process worker for end-to-end tests, as subprocesses on loopback.

Every process started here gets its own process group and an environment built from scratch
for Prefect: nothing of the test process's own Prefect settings (the test harness, its home, its
API URL) leaks in. Output goes to files, so a chatty process never blocks on a full pipe and a
failure can show what the worker said. Every process that appears under the ones started here is
remembered, so the test can prove that nothing it started outlives it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PREFECT = str(BIN / "prefect")
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

_OFFLINE = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_environment(**extra: str) -> dict[str, str]:
    """os.environ without any PREFECT_* or REPLAYBENCH_* variable, plus the offline settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "REPLAYBENCH_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(_OFFLINE)
    env.update(extra)
    return env


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, parent pid, process group, start time) from /proc; None when gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def alive(proc: tuple[int, int]) -> bool:
    """Whether the process (pid, start time) still runs (a zombie counts as ended)."""
    st = _stat(proc[0])
    return st is not None and st[3] == proc[1] and st[0] not in ("Z", "X")


class Stack:
    """The server, the worker and every process under them."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.prefect_home = folder / "prefect-home"
        self.replaybench_home = folder / "replaybench-home"
        self.prefect_home.mkdir(parents=True, exist_ok=True)
        self.replaybench_home.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.seen: dict[tuple[int, int], str] = {}  # (pid, start time) -> command line

    # --- environment -----------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        """For the CLI and the worker: this server's API, this test's homes; PWD is the repo root
        (prefect.yaml's pull step is `set_working_directory: {{ $PWD }}`, read at deploy time)."""
        return clean_environment(
            PREFECT_HOME=str(self.prefect_home), PREFECT_API_URL=self.api_url,
            REPLAYBENCH_HOME=str(self.replaybench_home), PWD=str(ROOT), **extra)

    # --- processes -------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.folder / f"{name}.log").open("wb")
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[name] = proc
        self.track()
        return proc

    def output(self, name: str, tail: int = 6000) -> str:
        path = self.folder / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text[-tail:]

    def track(self) -> None:
        """Remember every process that now runs under one started here."""
        table = {pid: st for pid in _all_pids() if (st := _stat(pid))}
        roots = {p.pid for p in self.procs.values()}
        groups = roots  # each started process leads its own group
        found = {pid for pid, st in table.items() if pid in roots or st[2] in groups}
        grew = True
        while grew:
            more = {pid for pid, st in table.items() if st[1] in found} - found
            found |= more
            grew = bool(more)
        for pid in found:
            key = (pid, table[pid][3])
            if key not in self.seen:
                self.seen[key] = _cmdline(pid)

    def start_server(self, deadline_s: float = 120) -> None:
        env = clean_environment(PREFECT_HOME=str(self.prefect_home))  # no API URL: it is the API
        self._spawn("server", [PREFECT, "server", "start", "--host", "127.0.0.1", "--port",
                               str(self.port), "--analytics-off", "--no-ui"], env)
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:  # wait for readiness, bounded
            if self.procs["server"].poll() is not None:
                raise RuntimeError(f"prefect server exited:\n{self.output('server')}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    self.track()
                    return
            time.sleep(0.5)
        raise TimeoutError(f"prefect server not healthy in {deadline_s}s:\n{self.output('server')}")

    def cli(self, *args: str, timeout: float = 180) -> str:
        """Run a prefect CLI command against this server; its output, or an error with it."""
        done = subprocess.run([PREFECT, *args], cwd=ROOT, env=self.env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
        out = done.stdout + done.stderr
        if done.returncode != 0:
            raise RuntimeError(f"prefect {' '.join(args)} exited {done.returncode}:\n{out}")
        return out

    def start_worker(self, pool: str) -> None:
        env = self.env(PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                                 os.environ.get("PYTHONPATH")])),
                       PREFECT_WORKER_QUERY_SECONDS="2", PREFECT_LOGGING_LEVEL="INFO")
        self._spawn("worker", [PREFECT, "worker", "start", "--pool", pool], env)

    def run_deployment(self, name: str, **params: str) -> str:
        """`prefect deployment run`; the flow run's id."""
        args = ["deployment", "run", name]
        for key, value in params.items():
            args += ["--param", f"{key}={value}"]
        out = self.cli(*args)
        found = re.search(r"UUID:\s*([0-9a-f]{8}-[0-9a-f-]{27})", out)
        if not found:
            raise RuntimeError(f"no flow run id in the output of prefect {' '.join(args)}:\n{out}")
        return found.group(1)

    def wait_for_flow_run(self, flow_run_id: str, deadline_s: float = 300) -> dict:
        """Poll the REST API until the flow run is in a terminal state; the flow run."""
        deadline = time.monotonic() + deadline_s
        with httpx.Client(base_url=self.api_url, timeout=10) as client:
            while True:
                run = client.get(f"/flow_runs/{flow_run_id}").raise_for_status().json()
                self.track()
                state = (run.get("state") or {}).get("type")
                if state in TERMINAL:
                    return run
                if self.procs["worker"].poll() is not None:
                    raise RuntimeError(f"the worker exited while the run was {state}:\n"
                                       f"{self.output('worker')}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"flow run still {state} after {deadline_s}s; worker:\n"
                                       f"{self.output('worker')}")
                time.sleep(1)

    def stop(self, grace_s: float = 20) -> list[str]:
        """Terminate the worker, then the server (whole process groups, SIGKILL after `grace_s`).

        Returns the processes (pid and command line) that were still alive after that; they are
        then killed one by one.
        """
        self.track()
        for name in ("worker", "server"):
            proc = self.procs.get(name)
            if proc is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        deadline = time.monotonic() + grace_s  # members of the groups may outlive their leader
        while (left := [p for p in self.seen if alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid, _ in left:  # left its group, or ignored SIGTERM: cleaned up, and reported
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return [f"{key[0]}: {self.seen[key]}" for key in left]
