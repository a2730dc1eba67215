"""The Procfile, as the README runs it: `honcho start -c worker=2` against a real redis-server.

Two workers register their heartbeats, run examples/orders.pb submitted with the real CLI, answer Celery's
remote control only when the client uses their key prefix (what deploy/flower/pbw_celeryconfig.py gives
Flower), and stop when honcho gets SIGTERM: honcho passes it on to each process group, each worker makes a
warm shutdown (the handoff) and exits by itself — well before honcho's own SIGKILL, 5 s after its SIGTERM.
Every process group is SIGKILLed at the end, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_fixtures import RedisServer

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SECRET_KEY = "procfile-test-key-0123456789abcdef"
WORKERS = 2
CONCURRENCY = 4
STOP_BOUND_S = 15.0
ORDERS_OUTPUT = [
    "Starting order processing...",
    "Order 101 charged 25.00",
    "Order 102 charged 40.00",
    "Order 103 charged 12.50",
    "Order 104 charged 99.00",
    "Complete! Summary: 4 orders, 176.50 charged",
]


def executable(name: str) -> str:
    found = BIN / name if (BIN / name).exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed")
    return str(found)


def wait_for(condition, timeout: float, what: str, log: Path):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}\n--- honcho\n{log.read_text()}")
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


class Honcho:
    """`honcho start -c worker=2` in a directory holding a copy of the Procfile, its output in a file."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.dir = root / "procfile"
        self.dir.mkdir()
        shutil.copy(ROOT / "Procfile", self.dir / "Procfile")  # no .env here: only the test's environment
        self.log = root / "honcho.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [executable("honcho"), "start", "-c", f"worker={WORKERS}"], cwd=self.dir, env=env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> list[int]:
        """Honcho starts each Procfile process in its own session: pid = process group id."""
        return [int(pid) for pid in re.findall(r"worker\.\d+ started \(pid=(\d+)\)", self.output())]

    def kill_everything(self) -> None:
        for pgid in [self.process.pid, *self.children()]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


@pytest.fixture
def env(tmp_path: Path, redis_server: RedisServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYBOOKS_")}
    env.update({
        "PLAYBOOKS_BROKER_URL": redis_server.url,
        "PLAYBOOKS_SECRET_KEY": SECRET_KEY,
        "PLAYBOOKS_CONCURRENCY": str(CONCURRENCY),
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # the Procfile calls `playbooks`
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config"),
        "PYTHONUNBUFFERED": "1",
    })
    return env


@pytest.fixture
def honcho(tmp_path: Path, env: dict[str, str]) -> Iterator[Honcho]:
    started = Honcho(tmp_path, env)
    try:
        yield started
    finally:
        started.kill_everything()


def heartbeats(redis_server: RedisServer) -> dict[int, dict]:  # type: ignore[type-arg]
    rows = (json.loads(raw) for raw in redis_server.client.hvals("pbw:workers"))
    return {row["pid"]: row for row in rows}


def celery_ping(env: dict[str, str], cwd: Path, *config: str) -> subprocess.CompletedProcess[str]:
    """`celery --broker URL [--config pbw_celeryconfig] inspect ping`, as Flower's app would call them."""
    return subprocess.run(
        [sys.executable, "-m", "celery", f"--broker={env['PLAYBOOKS_BROKER_URL']}", *config,
         "inspect", "ping", "--timeout=2"],
        cwd=cwd, env={**env, "PYTHONPATH": str(ROOT / "deploy" / "flower")}, capture_output=True, text=True,
        timeout=20)


def test_procfile_two_workers_run_a_program_and_stop_on_sigterm(
        tmp_path: Path, env: dict[str, str], redis_server: RedisServer, honcho: Honcho) -> None:
    beats = wait_for(lambda: len(heartbeats(redis_server)) == WORKERS and heartbeats(redis_server), 30,
                     f"{WORKERS} workers to register in pbw:workers", honcho.log)
    worker_pids = sorted(beats)
    assert honcho.output().count(f"concurrency: {CONCURRENCY} (thread)") == WORKERS  # ${PLAYBOOKS_CONCURRENCY}

    client = tmp_path / "client"
    client.mkdir()
    shutil.copy(ROOT / "examples" / "orders.pb", client / "orders.pb")
    done = subprocess.run([executable("playbooks"), "run", "orders.pb"], cwd=client, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{done.stderr}\n--- honcho\n{honcho.output()}"
    assert done.stdout.splitlines() == ORDERS_OUTPUT
    assert done.stderr.splitlines()[-1] == "Execution complete ✅"

    # Flower's view: the workers answer remote control only under their key prefix.
    with_prefix = celery_ping(env, client, "--config=pbw_celeryconfig")
    assert with_prefix.returncode == 0, with_prefix.stdout + with_prefix.stderr
    assert f"{WORKERS} nodes online" in with_prefix.stdout, with_prefix.stdout
    without = celery_ping(env, client)
    assert without.returncode != 0 and "No nodes replied" in without.stdout + without.stderr

    sent = time.monotonic()
    honcho.process.send_signal(signal.SIGTERM)
    try:
        honcho.process.wait(timeout=STOP_BOUND_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"honcho did not exit within {STOP_BOUND_S} s of SIGTERM\n{honcho.output()}")
    took = time.monotonic() - sent
    output = honcho.output()
    assert "SIGTERM received" in output
    assert output.count("worker: Warm shutdown (MainProcess)") == WORKERS, output
    for n in range(1, WORKERS + 1):
        # rc is the exit status of the `sh -c` honcho runs the line with: 0 when the line execs the worker,
        # -15 when the shell stays in between (it dies of the SIGTERM honcho sends its process group; the
        # worker in that group handles it). Never -9: honcho's SIGKILL comes only after 5 s.
        assert re.search(rf"worker\.{n} stopped \(rc=(0|-15)\)", output), output
    assert "sending SIGKILL" not in output
    assert not [pid for pid in worker_pids if alive(pid)]
    assert took < STOP_BOUND_S
