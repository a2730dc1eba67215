"""Real clusters for the cluster benchmarks: a private redis-server and `playbooks worker` processes.

`Cluster` starts a redis-server on a free loopback port and workers against it, and stops every process it
started — each in its own process group, killed as a group — when the block ends, also on Ctrl+C, SIGTERM,
a failure or its time budget running out (SIGALRM). Every child also dies with the benchmark process
(PR_SET_PDEATHSIG), so even `kill -9` of the benchmark leaves nothing behind. At most `max_processes`
(default MAX_PROCESSES) are started per cluster.

Workers are the real `playbooks worker` command with default settings (no playbooks.toml: lease_seconds = 3).
Two benchmarks need one thing the command cannot do, and get it from this file run as a launcher
(`python bench/_cluster.py worker …`), which applies the change and then runs the `playbooks` CLI's own
`main()` unchanged:

- PBW_BENCH_NODE=name: the worker reports `name` as its host name. Leases are owned by "host:pid", and a
  reaper on the *same* host fails a run over as soon as the holder's pid is gone; on one machine every
  worker is on the same host, so only this makes a kill look like the loss of another node, which the lease
  alone must detect (failover.py).
- PBW_BENCH_NOOP=1: registers `bench.noop` (increments a Redis counter) as a shared task, so the worker's
  app has it next to `playbooks.execute_run`: raw Celery tasks on the same processes (throughput.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

REDIS_START_TIMEOUT_S = 10.0
WORKER_READY_TIMEOUT_S = 40.0
STOP_TIMEOUT_S = 5.0
MAX_PROCESSES = 24
NOOP_TASK = "bench.noop"
NOOP_COUNTER = "bench:noop:done"

_PR_SET_PDEATHSIG = 1


class BenchTimeout(Exception):
    """The benchmark ran past its time budget."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the benchmark process dies, however it dies (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def playbooks_command() -> list[str]:
    """The installed console script next to this interpreter, else the one on PATH."""
    script = Path(sys.executable).parent / "playbooks"
    if script.exists():
        return [str(script)]
    found = shutil.which("playbooks")
    if not found:
        raise SystemExit("the `playbooks` console script is not installed (pip install -e .)")
    return [found]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Worker:
    popen: subprocess.Popen[bytes]
    node: str  # the host name the worker reports (its own lease owner is f"{node}:{pid}")
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def owner(self) -> str:
        return f"{self.node}:{self.pid}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Cluster:
    """A redis-server and workers under `root`; a context manager that always stops them."""

    def __init__(self, root: Path, *, budget_s: float, max_processes: int = MAX_PROCESSES) -> None:
        self.root = root
        self.budget_s = budget_s
        self.max_processes = max_processes
        self.port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.port}/0"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers: list[Worker] = []
        self.redis_proc: subprocess.Popen[bytes] | None = None
        self.client: Any = None
        self._saved_handlers: dict[int, Any] = {}
        self._started = 0

    # -- lifetime -------------------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if signum == signal.SIGALRM:
                raise BenchTimeout(f"the benchmark ran past its budget of {self.budget_s:.0f} s")
            raise SystemExit(128 + signum)  # SIGTERM: unwind, so the finally blocks stop the processes

        for signum in (signal.SIGTERM, signal.SIGALRM, signal.SIGHUP):
            self._saved_handlers[signum] = signal.signal(signum, on_signal)
        signal.alarm(max(1, round(self.budget_s)))
        os.environ["PLAYBOOKS_BROKER_URL"] = self.redis_url
        try:
            self._start_redis()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        signal.alarm(0)
        for popen in reversed(self.procs):  # workers first, redis-server last
            self._kill_group(popen)
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        for signum, handler in self._saved_handlers.items():
            signal.signal(signum, handler)
        self._saved_handlers.clear()

    @staticmethod
    def _kill_group(popen: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=STOP_TIMEOUT_S)

    def _spawn(self, argv: list[str], *, log: Path, env: dict[str, str] | None = None,
               cwd: Path | None = None) -> subprocess.Popen[bytes]:
        if self._started >= self.max_processes:
            raise RuntimeError(f"refusing to start more than {self.max_processes} processes in one cluster")
        self._started += 1
        with open(log, "wb") as out:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     env=env, cwd=cwd, start_new_session=True, preexec_fn=_die_with_parent)
        self.procs.append(popen)
        return popen

    def _start_redis(self) -> None:
        import redis

        data = self.root / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self.redis_proc = self._spawn(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(data), "--protected-mode", "yes", "--maxclients", "4096"],
            log=data / "redis.log")
        self.client = redis.Redis.from_url(self.redis_url, socket_timeout=10)
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while True:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                if self.redis_proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start:\n"
                                       + (data / "redis.log").read_text(errors="replace")[-2000:]) from None
                time.sleep(0.02)

    # -- workers --------------------------------------------------------------------------------------

    def start_worker(self, *, concurrency: int, node: str | None = None, noop: bool = False,
                     loglevel: str = "WARNING") -> Worker:
        """Start `playbooks worker -c N`; `node`/`noop` run it through the launcher below (see the docstring)."""
        n = len(self.workers) + 1
        cwd = self.root / f"worker{n}"  # no playbooks.toml there: default settings
        cwd.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("PBW_BENCH_NODE", None)
        env.pop("PBW_BENCH_NOOP", None)
        args = ["worker", "-c", str(concurrency), "--loglevel", loglevel]
        if node is None and not noop:
            argv = [*playbooks_command(), *args]
        else:
            argv = [sys.executable, str(Path(__file__).resolve()), *args]
            if node is not None:
                env["PBW_BENCH_NODE"] = node
            if noop:
                env["PBW_BENCH_NOOP"] = "1"
        worker = Worker(self._spawn(argv, log=cwd / "worker.log", env=env, cwd=cwd), node or socket.gethostname(),
                        cwd / "worker.log")
        self.workers.append(worker)
        return worker

    def wait_ready(self, *workers: Worker, timeout_s: float = WORKER_READY_TIMEOUT_S) -> None:
        """Until each worker has beaten once (its heartbeat thread starts when Celery reports it ready)."""
        from playbooks_worker.cluster.keys import Keys

        key = Keys().workers
        deadline = time.monotonic() + timeout_s
        pending = list(workers)
        while pending:
            for worker in list(pending):
                if not worker.alive():
                    raise RuntimeError(f"worker {worker.owner} exited ({worker.popen.returncode}):\n"
                                       f"{worker.log_tail()}")
                if self.client.hexists(key, worker.owner):
                    pending.remove(worker)
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"worker {pending[0].owner} not ready after {timeout_s:.0f} s:\n"
                                   f"{pending[0].log_tail()}")
            if pending:
                time.sleep(0.05)

    def kill(self, worker: Worker, sig: int = signal.SIGKILL, *, wait: bool = True) -> None:
        """Signal the worker's whole process group; with `wait`, reap it (for signals that end it)."""
        if not wait:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(worker.pid, sig)
            return
        self._kill_group(worker.popen, sig)

    def stop_workers(self) -> None:
        for worker in self.workers:
            if worker.alive():
                self.kill(worker)

    def live_workers(self) -> list[Worker]:
        return [w for w in self.workers if w.alive()]

    def by_owner(self, owner: str) -> Worker | None:
        return next((w for w in self.workers if w.owner == owner), None)

    def settings(self) -> Any:
        """Client settings: the defaults plus this cluster's broker (PLAYBOOKS_BROKER_URL is set)."""
        from playbooks_worker.config import load_settings

        return load_settings(None)

    def redis_commands(self) -> int:
        """Commands the server has executed so far (INFO stats), to count commands per task."""
        return int(self.client.info("stats")["total_commands_processed"])

    def redis_calls(self, command: str) -> int:
        """Calls of one command so far (INFO commandstats), e.g. "hgetall"."""
        return int(self.client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


# -- the launcher ------------------------------------------------------------------------------------


def _register_noop() -> None:
    from celery import shared_task

    clients: list[Any] = []

    @shared_task(name=NOOP_TASK, acks_late=True, ignore_result=True)
    def noop(counter: str = NOOP_COUNTER) -> None:
        if not clients:
            import redis

            clients.append(redis.Redis.from_url(os.environ["PLAYBOOKS_BROKER_URL"]))
        clients[0].incr(counter)


def _launch() -> int:
    node = os.environ.get("PBW_BENCH_NODE")
    if node:
        socket.gethostname = lambda: node  # type: ignore[assignment]
    if os.environ.get("PBW_BENCH_NOOP") == "1":
        _register_noop()
    from playbooks_cli.main import main

    sys.argv[0] = "playbooks"
    result = main()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(_launch())
