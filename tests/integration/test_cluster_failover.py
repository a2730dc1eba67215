"""Failover: a worker dies, is paused, or is told to stop mid-run; another finishes the run exactly once.

Each test runs a slow program (`Work(n)` sleeps, and logs every call with the pid that made it), kills or
stops the worker whose pid holds the run's lease (`pbw:{RUN}:lease` = "host:pid epoch"), and asserts: the run
succeeds once with one `end` event, every completed `Work` ran once and the in-flight one at most twice, and
the follower (`playbooks run`) printed every Say line once, in order, plus the guide's resume lines.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from cluster_support import (
    Cluster,
    assert_completed_once,
    resume_lines,
    slow_output,
    slow_program,
    wait_until,
)

LEASE_S = 2.0
STEPS = 8
DELAY_S = 0.5


def started_by(cluster: Cluster, pid: int) -> list[int]:
    return [e.n for e in cluster.effects("Work") if e.phase == "start" and e.pid == pid and e.n is not None]


def new_holder(cluster: Cluster, run_id: str, old_pid: int, timeout: float) -> tuple[int, int]:
    def moved() -> tuple[int, int] | None:
        lease = cluster.lease(run_id)
        return lease if lease is not None and lease[0] != old_pid else None

    return wait_until(moved, timeout, f"another process to take run {run_id} over")


def test_kill_9_of_the_pool_process_executing_a_run(cluster: Cluster) -> None:
    # A long lease: the run must not wait for it to expire. The worker sees its own pool process die (the
    # reaper finds the lease holder's pid gone; Celery re-sends the task) and restarts the run at once.
    lease_s = 10.0
    worker = cluster.worker(concurrency=2, pool="prefork", lease_seconds=lease_s)
    cluster.write("slow.pb", slow_program(cluster.effects_log, steps=STEPS, delay_s=DELAY_S))
    follower = cluster.follow("run", "slow.pb")
    run_id = follower.run_id()
    child, _epoch = cluster.holder(run_id)
    assert child in worker.pool_pids(), (child, worker.pool_pids())
    cluster.wait_started(2)

    killed_at = time.monotonic()
    os.kill(child, signal.SIGKILL)
    new_pid, new_epoch = new_holder(cluster, run_id, child, timeout=10)
    took_s = time.monotonic() - killed_at
    print(f"failover took {took_s:.2f} s")

    result = follower.wait(30)
    assert result.returncode == 0, result
    assert took_s < lease_s / 2, f"the run waited {took_s:.1f} s for another pool process"
    assert new_epoch == 2 and new_pid in worker.pool_pids() and new_pid != child
    assert result.out == slow_output(STEPS)
    assert_completed_once(cluster, run_id, steps=STEPS, inflight=max(started_by(cluster, child)))
    resume_lines(result.stderr, f"slow_1_{run_id}")
    assert f"⚠️  Run {run_id} lost its worker (its worker process died): failing over" in result.err
    status = cluster.status(run_id)
    assert (status["state"], status["failovers"], status["attempts"]) == ("succeeded", 1, 2)
    assert worker.alive()


def test_kill_9_of_a_whole_worker_node_fails_over_to_the_other_worker(cluster: Cluster) -> None:
    workers = [cluster.worker(concurrency=2, lease_seconds=LEASE_S) for _ in range(2)]
    cluster.write("slow.pb", slow_program(cluster.effects_log, steps=STEPS, delay_s=DELAY_S))
    follower = cluster.follow("run", "slow.pb")
    run_id = follower.run_id()
    pid, _epoch = cluster.holder(run_id)
    victim = next(w for w in workers if w.pid == pid)
    survivor = next(w for w in workers if w is not victim)
    cluster.wait_started(2)

    killed_at = time.monotonic()
    victim.kill_group(signal.SIGKILL)  # the node is gone: the worker and everything in its process group
    new_pid, new_epoch = new_holder(cluster, run_id, victim.pid, timeout=LEASE_S + 10)
    took_s = time.monotonic() - killed_at
    print(f"failover took {took_s:.2f} s")

    result = follower.wait(30)
    assert result.returncode == 0, result
    assert new_pid == survivor.pid and new_epoch == 2
    assert took_s <= LEASE_S + 3, f"failover took {took_s:.1f} s with lease_seconds = {LEASE_S}"
    assert result.out == slow_output(STEPS)
    assert_completed_once(cluster, run_id, steps=STEPS, inflight=max(started_by(cluster, victim.pid)))
    resume_lines(result.stderr, f"slow_1_{run_id}")
    # Whichever noticed first: the lease running out, or (workers share this host) the sweep seeing the pid gone.
    assert any(line.startswith(f"⚠️  Run {run_id} lost its worker (") and line.endswith("): failing over")
               for line in result.err), result
    status = cluster.status(run_id)
    assert (status["state"], status["failovers"], status["attempts"], status["handoffs"]) == ("succeeded", 1, 2, 0)
    assert [a["pid"] for a in status["attempt_log"]] == [victim.pid, survivor.pid]


def test_a_paused_worker_is_fenced_out_and_never_writes_again(cluster: Cluster) -> None:
    # INFO: each task's return value is logged, so the paused worker's task is seen to end `fenced`.
    workers = [cluster.worker(concurrency=2, lease_seconds=LEASE_S, loglevel="INFO") for _ in range(2)]
    cluster.write("slow.pb", slow_program(cluster.effects_log, steps=STEPS, delay_s=DELAY_S))
    follower = cluster.follow("run", "slow.pb")
    run_id = follower.run_id()
    pid, _epoch = cluster.holder(run_id)
    paused = next(w for w in workers if w.pid == pid)
    survivor = next(w for w in workers if w is not paused)
    cluster.wait_started(2)

    paused.kill(signal.SIGSTOP)
    try:
        new_pid, new_epoch = new_holder(cluster, run_id, paused.pid, timeout=LEASE_S + 10)
        assert (new_pid, new_epoch) == (survivor.pid, 2)
        # Let the successor get going (past at least one more checkpoint) before the zombie wakes up.
        wait_until(lambda: started_by(cluster, survivor.pid), 10, "the successor to run a step")
    finally:
        paused.kill(signal.SIGCONT)
    inflight = max(started_by(cluster, paused.pid))

    result = follower.wait(30)
    assert result.returncode == 0, result
    assert result.out == slow_output(STEPS)
    assert_completed_once(cluster, run_id, steps=STEPS, inflight=inflight)
    # After the takeover the paused worker made no new call: at most it finished the tool it was in.
    effects = cluster.effects("Work")
    takeover = next(i for i, e in enumerate(effects) if e.pid == survivor.pid)
    late = [(e.n, e.phase) for e in effects[takeover:] if e.pid == paused.pid]
    assert late in ([], [(inflight, "end")]), late
    # ...and wrote nothing: its records all precede the successor's, each call path recorded once.
    listed = cluster.pb("checkpoints", run_id, "--json")
    assert listed.returncode == 0, listed
    rows = listed.json()
    by_attempt = {a: [r["counter"] for r in rows if r["attempt"] == a] for a in (1, 2)}
    assert {r["attempt"] for r in rows} == {1, 2}, rows
    assert max(by_attempt[1]) < min(by_attempt[2]), by_attempt
    paths = [r["call_path"] for r in rows]
    assert len(paths) == len(set(paths)), paths
    works = [r for r in rows if r["name"] == "Work"]
    assert [r["attempt"] for r in works] == [1] * (inflight - 1) + [2] * (STEPS - inflight + 1), works
    wait_until(lambda: "s: 'fenced'" in paused.output(), 10, "the paused worker's task to end fenced")
    assert paused.alive()  # fenced out, not dead: it goes on serving other runs
    status = cluster.status(run_id)
    assert (status["failovers"], status["attempts"]) == (1, 2)


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_sigterm_hands_the_run_off_to_another_worker_at_once(cluster: Cluster, pool: str) -> None:
    workers = [cluster.worker(concurrency=2, pool=pool, lease_seconds=LEASE_S) for _ in range(2)]
    steps, delay_s = 10, 1.0  # 10 s of work: the handoff must not wait for it
    cluster.write("slow.pb", slow_program(cluster.effects_log, steps=steps, delay_s=delay_s))
    follower = cluster.follow("run", "slow.pb")
    run_id = follower.run_id()
    pid, _epoch = cluster.holder(run_id)
    leaving = next(w for w in workers if pid in w.pids())
    staying = next(w for w in workers if w is not leaving)
    cluster.wait_started(2)

    sent_at = time.monotonic()
    leaving.kill(signal.SIGTERM)  # the worker's main process, as systemd or Kubernetes would
    new_pid, _new_epoch = new_holder(cluster, run_id, pid, timeout=10)
    took_s = time.monotonic() - sent_at
    print(f"handoff took {took_s:.2f} s")
    inflight = max(started_by(cluster, pid))

    assert new_pid in staying.pids()
    assert took_s < delay_s + 2, f"the handoff took {took_s:.1f} s"  # at the next await, not at the run's end
    leaving.process.wait(timeout=15)  # warm shutdown ends on its own once its run is handed off
    result = follower.wait(30)
    assert result.returncode == 0, result
    assert result.out == slow_output(steps)
    assert_completed_once(cluster, run_id, steps=steps, inflight=inflight)
    assert cluster.starts()[inflight] == 1  # a handoff stops between two checkpoints: nothing runs twice
    resume_lines(result.stderr, f"slow_1_{run_id}")
    assert any("is shutting down: the run continues on another worker" in line for line in result.err), result
    status = cluster.status(run_id)
    assert (status["handoffs"], status["failovers"], status["attempts"]) == (1, 0, 2)
    assert leaving.process.returncode == 0, leaving.output()
