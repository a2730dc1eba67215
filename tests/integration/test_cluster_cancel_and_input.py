"""Cancel (running, queued, waiting runs) and human input (a waiting run frees its slot; `send` resumes it)."""

from __future__ import annotations

import time

from cluster_support import Cluster, ask_program, slow_output, slow_program, wait_until


def submitted_id(stderr: str) -> str:
    return stderr.split("📤 Submitted run ")[1].split()[0]


def test_a_running_run_is_cancelled_at_its_next_await(cluster: Cluster) -> None:
    cluster.worker(concurrency=2)
    steps = 10
    cluster.write("slow.pb", slow_program(cluster.effects_log, steps=steps, delay_s=0.5))
    follower = cluster.follow("run", "slow.pb")
    run_id = follower.run_id()
    cluster.wait_started(2)

    asked_at = time.monotonic()
    cancel = cluster.pb("cancel", run_id)
    result = follower.wait(15)
    took_s = time.monotonic() - asked_at

    assert cancel.returncode == 0, cancel
    assert cancel.err == [f"⏹️  Run {run_id} stops at its next await"]
    assert result.returncode == 1, result
    assert result.err[-1] == "⏹️  Run cancelled"
    assert took_s < 4, f"cancelling took {took_s:.1f} s"
    assert cluster.state(run_id) == "cancelled"
    assert cluster.end_states(run_id) == ["cancelled"]
    starts = cluster.starts()
    last = max(n for n in starts if n is not None)
    assert last < steps, "the run went on to the end"
    assert starts == {n: 1 for n in range(1, last + 1)}
    assert result.out == slow_output(steps)[: len(result.out)] and len(result.out) >= 2
    assert cluster.lease(run_id) is None
    time.sleep(1.0)  # nothing runs after the cancel
    assert cluster.starts() == starts


def test_queued_and_waiting_runs_are_cancelled_at_once(cluster: Cluster) -> None:
    cluster.write("slow.pb", slow_program(cluster.effects_log, steps=2, delay_s=0.05))
    cluster.write("ask.pb", ask_program(cluster.effects_log))
    detached = cluster.pb("run", "slow.pb", "--detach")  # no worker yet: it stays queued
    assert detached.returncode == 0, detached
    queued_id = detached.stdout.strip()
    assert cluster.state(queued_id) == "queued"

    cancel = cluster.pb("cancel", queued_id)

    assert cancel.returncode == 0, cancel
    assert cancel.err == [f"⏹️  Run {queued_id} cancelled"]
    assert cluster.state(queued_id) == "cancelled"

    cluster.worker(concurrency=2)  # its task message is delivered now, and dropped
    asked = cluster.pb("run", "ask.pb")
    assert asked.returncode == 3, asked
    waiting_id = submitted_id(asked.stderr)
    assert cluster.state(waiting_id) == "waiting"

    cancel = cluster.pb("cancel", waiting_id)

    assert cancel.err == [f"⏹️  Run {waiting_id} cancelled"]
    assert cluster.state(waiting_id) == "cancelled"
    for run_id in (queued_id, waiting_id):
        attach = cluster.pb("attach", run_id, timeout=15)
        assert attach.returncode == 1, attach
        assert attach.err[-1] == "⏹️  Run cancelled"
        assert cluster.end_states(run_id)[-1] == "cancelled"
    wait_until(cluster.queue_drained, 10, "the cancelled run's task message to be consumed")
    assert cluster.starts() == {}  # the queued run never ran
    assert cluster.state(queued_id) == "cancelled"


def test_a_waiting_run_frees_its_slot_and_send_resumes_it(cluster: Cluster) -> None:
    cluster.worker(concurrency=1)  # one slot
    cluster.write("ask.pb", ask_program(cluster.effects_log))
    cluster.write("slow.pb", slow_program(cluster.effects_log, steps=2, delay_s=0.05))

    asked = cluster.pb("run", "ask.pb")

    assert asked.returncode == 3, asked
    run_id = submitted_id(asked.stderr)
    assert asked.out == ["What's your name?"]
    assert asked.err[-2:] == ["⏸️  The run is waiting for input from user",
                              f"   answer with: playbooks send {run_id} 'your answer'"]
    assert cluster.state(run_id) == "waiting"
    assert cluster.lease(run_id) is None

    other = cluster.pb("run", "slow.pb", timeout=20)  # completes on the slot the waiting run gave back
    assert other.returncode == 0, other
    assert other.out == slow_output(2)
    assert cluster.state(run_id) == "waiting"

    sent = cluster.pb("send", run_id, "Ada")
    assert sent.returncode == 0, sent
    assert sent.err == [f"✉️  Sent to run {run_id}: it continues on the next free worker"]
    attached = cluster.pb("attach", run_id, "--input", "Paris", timeout=20)

    assert attached.returncode == 0, attached
    assert attached.out == ["What's your name?", "Hello, Ada (ADA)! Which city are you in?",
                            "Greetings to Paris, Ada."]
    assert attached.err[-1] == "Execution complete ✅"
    assert cluster.state(run_id) == "succeeded"
    assert cluster.end_states(run_id).count("succeeded") == 1
    assert [s for s in cluster.end_states(run_id) if s != "waiting"] == ["succeeded"]
    assert [e.extra["what"] for e in cluster.effects("Remember")] == ["Ada", "Paris"]
    assert cluster.client.llen(cluster.key(run_id, "inbox")) == 0  # each answer consumed once
