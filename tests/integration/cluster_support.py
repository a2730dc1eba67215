"""Helpers of the cluster integration tests: real `playbooks worker` processes, the real CLI, real Redis.

- `Cluster` (fixture `cluster`): one test's directory and environment (signing key, broker URL of the test's
  `redis-server`, private XDG_CONFIG_HOME, no PLAYBOOKS_* from outside). `cluster.pb(...)` runs the CLI to
  completion; `cluster.follow(...)` starts it in the background (a follower of a run, while the test kills
  things); `cluster.worker(...)` starts a worker and waits until its heartbeat is in Redis.
- `Worker`: one `playbooks worker` in its own process group, its log in tmp_path (printed when a test fails);
  every group is SIGKILLed at teardown, so no process outlives its test.
- `slow_program(...)`: a program whose tool `Work(n)` appends JSON lines (tool, n, phase, pid, monotonic
  time) to an absolute log path and sleeps in between, so kills land mid-run and tests count what ran where.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from cli_support import Result, playbooks_command

SECRET_KEY = "integration-secret-key-0123456789abcdef"
PREFIX = "pbw"
DEFAULT_TIMEOUT_S = 30.0


def wait_until(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition",
               every_s: float = 0.05) -> Any:
    """Poll `condition` until it is truthy and return its value; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every_s)


# -- programs --------------------------------------------------------------------------------------------

EFFECT_TOOLS = '''
```python
import json
import os
import time

LOG = {log!r}
GATE = {gate!r}  # a file: when set, Work(2) waits until it exists


def effect(**fields):
    """A side effect: one JSON line with the process that made it (plain function: not a leaf)."""
    fields["pid"] = os.getpid()
    fields["t"] = time.monotonic()
    with open(LOG, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(fields) + "\\n")


@playbook
async def Work(n: int) -> int:
    effect(tool="Work", n=n, phase="start")
    time.sleep({delay_s})
    while GATE and n == 2 and not os.path.exists(GATE):
        time.sleep(0.02)
    effect(tool="Work", n=n, phase="end")
    return n * 10
```
'''


def slow_program(log: Path, *, steps: int, delay_s: float, gate: Path | None = None, agent: str = "Slow") -> str:
    """`starting`, then per step `Work(n)` (sleeps `delay_s`) and `step n: 10n`, then `total …`.

    With `gate`, Work(2) does not return before that file exists: the test decides when the run goes on.
    """
    return (f"# {agent}:AI\nWorks through {steps} slow steps; each tool call is logged as a side effect.\n"
            + EFFECT_TOOLS.format(log=str(log), delay_s=delay_s, gate=str(gate) if gate else "")
            + textwrap.dedent(f'''
                ## Main

                ```python
                await Say("user", "starting")
                total = 0
                for n in range(1, {steps} + 1):
                    value = await Work(n)
                    total += value
                    await Say("user", f"step {{n}}: {{value}}")
                await Say("user", f"total {{total}}")
                ```
                '''))


def slow_output(steps: int) -> list[str]:
    return ["starting", *(f"step {n}: {n * 10}" for n in range(1, steps + 1)),
            f"total {sum(n * 10 for n in range(1, steps + 1))}"]


def ask_program(log: Path) -> str:
    """Asks twice (Yield("user")); a tool logs each answer it is given."""
    return ("# Greeter:AI\nAsks for a name and a city.\n" + EFFECT_TOOLS.format(log=str(log), delay_s=0, gate="")
            + textwrap.dedent('''
                ```python
                @playbook
                async def Remember(what: str) -> str:
                    effect(tool="Remember", what=what, phase="start")
                    return what.upper()
                ```

                ## Main

                ```python
                await Say("user", "What's your name?")
                name = await Yield("user")
                shout = await Remember(name)
                await Say("user", f"Hello, {name} ({shout})! Which city are you in?")
                city = await Yield("user")
                await Remember(city)
                await Say("user", f"Greetings to {city}, {name}.")
                ```
                '''))


# -- processes -------------------------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (psutil is not installed: /proc/PID/task/TID/children)."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found.extend(int(p) for p in children.read_text().split())
    return sorted(set(found))


def pid_alive(pid: int) -> bool:
    """Running (not a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def socket_ports(pids: list[int]) -> set[int]:
    """Local TCP ports of the sockets these processes hold (to find their Redis connections)."""
    inodes: set[str] = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if parts[9] in inodes:
                    ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path
    name: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def pool_pids(self) -> list[int]:
        """The pool processes (prefork); empty for the threads pool."""
        return children_of(self.pid)

    def pids(self) -> list[int]:
        return [self.pid, *self.pool_pids()]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        os.kill(self.pid, sig)

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Follower:
    """A `playbooks` command running in the background; its output goes to files."""

    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def run_id(self, timeout: float = 15.0) -> str:
        """The id `playbooks run` prints when it submits."""
        def found() -> str | None:
            match = re.search(r"Submitted run (\w+)", self.stderr())
            return match.group(1) if match else None

        return str(wait_until(found, timeout, "the follower to submit its run"))

    def wait(self, timeout: float = DEFAULT_TIMEOUT_S) -> Result:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"the follower did not exit within {timeout} s:\n{self.stderr()}")
        return Result(self.process.returncode, self.stdout_path.read_text(encoding="utf-8"), self.stderr())


@dataclass
class Effect:
    tool: str
    n: int | None
    phase: str
    pid: int
    t: float
    extra: dict[str, Any] = field(default_factory=dict)


class Cluster:
    """One test's cluster: its directory, environment, Redis, workers and CLI."""

    def __init__(self, root: Path, redis_url: str, client: redis.Redis) -> None:
        self.root = root
        self.redis_url = redis_url
        self.client = client
        self.workers: list[Worker] = []
        self.followers: list[Follower] = []
        self.effects_log = root / "effects.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYBOOKS_")}
        self.env.update({
            "PLAYBOOKS_SECRET_KEY": SECRET_KEY,
            "PLAYBOOKS_BROKER_URL": redis_url,
            "XDG_CONFIG_HOME": str(root / ".config"),
            "HOME": str(root / "home"),
            "PYTHONUNBUFFERED": "1",
        })
        self._count = 0

    # -- files -----------------------------------------------------------------------------------------

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text, encoding="utf-8")
        return path

    def effects(self, tool: str | None = None) -> list[Effect]:
        if not self.effects_log.exists():
            return []
        rows = []
        for line in self.effects_log.read_text(encoding="utf-8").splitlines():
            data = json.loads(line)
            row = Effect(data.pop("tool"), data.pop("n", None), data.pop("phase"), data.pop("pid"), data.pop("t"),
                         data)
            if tool is None or row.tool == tool:
                rows.append(row)
        return rows

    def starts(self, tool: str = "Work") -> collections.Counter[int | None]:
        return collections.Counter(e.n for e in self.effects(tool) if e.phase == "start")

    # -- processes -------------------------------------------------------------------------------------

    def worker(self, concurrency: int = 2, *, pool: str = "threads", lease_seconds: float = 2.0,
               loglevel: str = "WARNING", env: dict[str, str] | None = None, ready: bool = True,
               timeout: float = 20.0) -> Worker:
        """Start `playbooks worker` (own process group) and wait until its heartbeat is in Redis."""
        self._count += 1
        name = f"worker{self._count}"
        cwd = self.root / name
        cwd.mkdir()
        log = self.root / f"{name}.log"
        full_env = {**self.env, "PLAYBOOKS_CLUSTER__LEASE_SECONDS": str(lease_seconds), **(env or {})}
        with open(log, "wb") as handle:
            process = subprocess.Popen(
                [*playbooks_command(), "worker", "-c", str(concurrency), "--pool", pool, "--loglevel", loglevel],
                cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(process, log, name)
        self.workers.append(worker)
        if ready:
            wait_until(lambda: self._registered(worker), timeout, f"{name} to be ready:\n{worker.output()}",
                       every_s=0.05)
        return worker

    def _registered(self, worker: Worker) -> bool:
        if not worker.alive():
            pytest.fail(f"{worker.name} exited with {worker.process.returncode}:\n{worker.output()}")
        return any(json.loads(raw).get("pid") == worker.pid for raw in self.client.hvals(f"{PREFIX}:workers"))

    def pb(self, *args: str, input: str | None = None, timeout: float = DEFAULT_TIMEOUT_S,
           env: dict[str, str] | None = None) -> Result:
        """Run `playbooks ARGS…` as a client, to completion (stdin: `input`, or empty)."""
        try:
            done = subprocess.run([*playbooks_command(), *args], cwd=self.root, env={**self.env, **(env or {})},
                                  input=input or "", capture_output=True, text=True, encoding="utf-8",
                                  timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"`playbooks {' '.join(args)}` did not finish in {timeout} s:\n{exc.stderr}")
        return Result(done.returncode, done.stdout, done.stderr)

    def follow(self, *args: str, env: dict[str, str] | None = None) -> Follower:
        """Start `playbooks ARGS…` in the background (stdin closed), output to files."""
        n = len(self.followers) + 1
        out, err = self.root / f"follower{n}.out", self.root / f"follower{n}.err"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            process = subprocess.Popen([*playbooks_command(), *args], cwd=self.root,
                                       env={**self.env, **(env or {})}, stdin=subprocess.DEVNULL, stdout=stdout,
                                       stderr=stderr, start_new_session=True)
        follower = Follower(process, out, err)
        self.followers.append(follower)
        return follower

    def python(self, code: str, timeout: float = DEFAULT_TIMEOUT_S) -> Result:
        """Run Python in a client process with the cluster's environment (e.g. to enqueue a raw task)."""
        done = subprocess.run([sys.executable, "-c", code], cwd=self.root, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        return Result(done.returncode, done.stdout, done.stderr)

    def teardown(self) -> None:
        for process in [w.process for w in self.workers] + [f.process for f in self.followers]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)

    # -- Redis -----------------------------------------------------------------------------------------

    def key(self, run_id: str, name: str) -> str:
        return f"{PREFIX}:{{{run_id}}}:{name}"

    def state(self, run_id: str) -> str | None:
        state = self.client.hget(self.key(run_id, "run"), "state")
        return state.decode() if state is not None else None

    def lease(self, run_id: str) -> tuple[int, int] | None:
        """(pid, epoch) of the run's lease holder ("host:pid epoch"), or None."""
        value = self.client.get(self.key(run_id, "lease"))
        if value is None:
            return None
        owner, epoch = value.decode().split(" ")
        return int(owner.rpartition(":")[2]), int(epoch)

    def events(self, run_id: str) -> list[dict[str, Any]]:
        return [json.loads(fields[b"event"]) for _id, fields in self.client.xrange(self.key(run_id, "events"))]

    def end_states(self, run_id: str) -> list[str]:
        return [e["state"] for e in self.events(run_id) if e["type"] == "end"]

    def said(self, run_id: str) -> list[str]:
        return [e["message"] for e in self.events(run_id) if e["type"] == "say"]

    def status(self, run_id: str) -> dict[str, Any]:
        result = self.pb("status", run_id, "--json")
        assert result.returncode == 0, result
        return dict(result.json())

    def queue_drained(self, queue: str = "playbooks") -> bool:
        """No task message waits in the queue or is delivered and not yet acked."""
        celery = f"{PREFIX}-celery:"
        return self.client.llen(celery + queue) == 0 and self.client.hlen(celery + "unacked") == 0

    def wait_state(self, run_id: str, *states: str, timeout: float = 20.0) -> str:
        return str(wait_until(lambda: self.state(run_id) in states and self.state(run_id), timeout,
                              f"run {run_id} to be {' or '.join(states)} (it is {self.state(run_id)})"))

    def wait_started(self, n: int, timeout: float = 20.0) -> Effect:
        """The first start of Work(n)."""
        def started() -> Effect | None:
            return next((e for e in self.effects("Work") if e.n == n and e.phase == "start"), None)

        return wait_until(started, timeout, f"Work({n}) to start")

    def holder(self, run_id: str, timeout: float = 20.0) -> tuple[int, int]:
        return wait_until(lambda: self.lease(run_id), timeout, f"a worker to hold run {run_id}")


# -- assertions ------------------------------------------------------------------------------------------


def assert_completed_once(cluster: Cluster, run_id: str, *, steps: int, inflight: int | None = None) -> None:
    """The run succeeded once, with one `end`; each Work(n) ran once, the in-flight one at most twice."""
    assert cluster.state(run_id) == "succeeded"
    assert cluster.end_states(run_id).count("succeeded") == 1, cluster.events(run_id)
    assert [s for s in cluster.end_states(run_id) if s != "waiting"] == ["succeeded"]
    starts = cluster.starts()
    assert sorted(n for n in starts if n is not None) == list(range(1, steps + 1)), starts
    for n in range(1, steps + 1):
        if n == inflight:
            assert 1 <= starts[n] <= 2, (n, starts)
        else:
            assert starts[n] == 1, (f"Work({n}) ran {starts[n]} times (in flight: {inflight})", starts)
    assert cluster.said(run_id) == slow_output(steps)


def inflight_at(cluster: Cluster) -> int:
    """The step whose tool was running (started last) at this moment."""
    starts = [e.n for e in cluster.effects("Work") if e.phase == "start"]
    assert starts, "no Work call has started yet"
    return int(max(n for n in starts if n is not None))


def resume_lines(stderr: str, agent_id: str) -> None:
    """The guide's resume lines for `agent_id`, in order, as `run`/`attach` print them after a failover."""
    lines = stderr.splitlines()
    found = [i for i, line in enumerate(lines) if line == f"🔄 Found checkpoint for agent {agent_id}"]
    assert found, stderr
    i = found[-1]
    assert lines[i + 1].startswith(f"   Checkpoint: {agent_id}_ckpt_"), stderr
    assert lines[i + 2].startswith("   Last statement: ") and lines[i + 2].strip() != "Last statement:", stderr
    assert f"✅ Resumed execution for agent {agent_id}" in lines[i + 3:], stderr
