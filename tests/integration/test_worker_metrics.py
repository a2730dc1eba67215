"""A real worker's metrics endpoint (scraped during a run and after), its JSON logs (no password in them), and
the live status line of a follower on a terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import termios
import time
import urllib.request
from collections.abc import Iterator

import pytest
import redis
from cluster_support import Cluster, playbooks_command, slow_output, slow_program, wait_until
from prometheus_client.parser import text_string_to_metric_families
from redis_fixtures import RedisServer, free_port

STEPS = 6
PASSWORD = "s3cret"


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of http://127.0.0.1:PORT/metrics: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_are_served_during_a_run_and_count_it_after(cluster: Cluster) -> None:
    port = free_port()
    cluster.worker(env={"PLAYBOOKS_METRICS_PORT": str(port)})
    cluster.write("steps.pb", slow_program(cluster.effects_log, steps=STEPS, delay_s=0.4))
    before = scrape(port)
    assert value(before, "playbooks_checkpoints_written_total") == 0
    assert value(before, "playbooks_runs_executed_total", outcome="succeeded") == 0

    run_id = cluster.pb("run", "steps.pb", "--detach").stdout.strip()
    cluster.wait_started(2)  # mid-run: Work(1) and its Say are checkpointed, Work(2) is running
    during = scrape(port)
    assert cluster.state(run_id) == "running"
    written_during = value(during, "playbooks_checkpoints_written_total")
    assert written_during >= 2
    assert value(during, "playbooks_runs", state="running") == 1
    assert value(during, "playbooks_runs_executed_total", outcome="succeeded") == 0

    cluster.wait_state(run_id, "succeeded")
    after = wait_until(lambda: (s := scrape(port)) and value(s, "playbooks_runs_executed_total",
                                                             outcome="succeeded") == 1 and s,
                       10, "the run's outcome to be counted")
    written = value(after, "playbooks_checkpoints_written_total")
    assert written > written_during
    assert written == 2 * STEPS + 2  # starting, then Work and Say per step, then the total
    assert value(after, "playbooks_checkpoint_write_seconds_count") == written
    assert 0 < value(after, "playbooks_checkpoint_write_seconds_sum") < written  # well under a second each
    assert value(after, "playbooks_runs", state="running") == 0
    assert value(after, "playbooks_failovers_total") == 0
    assert cluster.said(run_id) == slow_output(STEPS)


@pytest.fixture
def acl_user(redis_server: RedisServer) -> Iterator[str]:
    """A Redis user with a real password on the session's server: `redis://pbw:s3cret@…`.

    An ACL user rather than `requirepass`, so the default user the other tests (and the fixtures) use stays
    as it was; the password is checked all the same (see the test's first assertion).
    """
    redis_server.client.execute_command("ACL", "SETUSER", "pbw", "on", f">{PASSWORD}", "~*", "&*", "+@all")
    try:
        yield f"redis://pbw:{PASSWORD}@127.0.0.1:{redis_server.port}/0"
    finally:
        redis_server.client.execute_command("ACL", "DELUSER", "pbw")


def test_json_logs_tag_run_lines_with_the_run_and_never_show_the_password(cluster: Cluster, acl_user: str,
                                                                          redis_server: RedisServer) -> None:
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=redis_server.port, username="pbw", password="wrong").ping()
    env = {"PLAYBOOKS_BROKER_URL": acl_user}
    worker = cluster.worker(loglevel="INFO", env={**env, "PLAYBOOKS_LOG_FORMAT": "json"})
    cluster.write("steps.pb", slow_program(cluster.effects_log, steps=2, delay_s=0.05))

    result = cluster.pb("run", "steps.pb", env=env)

    assert result.returncode == 0, result
    run_id = result.stderr.split("📤 Submitted run ")[1].split()[0]
    assert f"on redis://pbw:***@127.0.0.1:{redis_server.port}/0" in result.stderr
    wait_until(lambda: "succeeded in" in worker.output(), 10, "the worker to log the task's end")
    log = worker.output()  # stdout and stderr of the worker, together
    assert PASSWORD not in log and PASSWORD not in result.stdout + result.stderr
    records = [json.loads(line) for line in log.splitlines()]  # every line is one JSON object
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
        if run_id in record["message"]:
            assert record.get("run_id") == run_id, record
    assert any(r["message"] == f"run {run_id}: attempt 1 started" for r in records), log
    ended = [r for r in records if r["logger"] == "celery.app.trace" and "succeeded in" in r["message"]]
    assert [r.get("run_id") for r in ended] == [run_id], log  # Celery's own line, tagged too
    starting = next(r for r in records if r["message"].startswith("worker playbooks@"))
    assert f"broker redis://pbw:***@127.0.0.1:{redis_server.port}/0" in starting["message"]


STEPPED = '''\
# Stepper:AI
Names its steps.

```python
import time

@playbook
def Slow(n: int) -> int:
    time.sleep(0.3)
    return n
```

## Main

```python
total = 0
for n in range(1, 7):
    await Step(f"Part {n}")
    total += await Slow(n)
await Say("user", f"total {total}")
```
'''


def test_following_a_run_on_a_terminal_shows_its_progress(cluster: Cluster) -> None:
    """`playbooks run` in cluster mode, stderr a pseudo-terminal: a status line read from the run's journal."""
    cluster.worker()
    cluster.write("stepped.pb", STEPPED)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen([*playbooks_command(), "run", "stepped.pb"], cwd=cluster.root,
                               env={**cluster.env, "TERM": "xterm"}, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    terminal = bytearray()
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the follower exited
                    break
                if not chunk:
                    break
                terminal += chunk
            elif process.poll() is not None:
                break
        stdout = process.stdout.read().decode() if process.stdout else ""
        process.wait(timeout=10)
    finally:
        os.close(master)
        if process.stdout:
            process.stdout.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    text = terminal.decode(errors="replace")
    assert process.returncode == 0, text
    assert stdout.splitlines() == ["total 21"]
    assert "checkpoints saved · step: Part " in text, text
    assert "⏳" not in text.rsplit("Execution complete ✅", 1)[1]
