"""Duplicated task messages (a redelivery, a second enqueue) for a running and for a finished run are dropped.

The duplicates are raw `playbooks.execute_run` messages sent with `enqueue_run` from another client process.
The workers log at INFO so each task's return value ("dropped: …") shows the copy was delivered and refused.
"""

from __future__ import annotations

from cluster_support import Cluster, Worker, assert_completed_once, slow_output, slow_program, wait_until

STEPS = 5
DELAY_S = 0.4


def enqueue_copy(cluster: Cluster, run_id: str) -> None:
    sent = cluster.python("from playbooks_worker.cluster.app import enqueue_run\n"
                          "from playbooks_worker.config import load_settings\n"
                          f"enqueue_run({run_id!r}, load_settings())\n")
    assert sent.returncode == 0, sent


def dropped(workers: list[Worker], text: str) -> int:
    return sum(w.output().count(f"s: '{text}'") for w in workers)


def test_duplicate_messages_for_a_running_and_a_finished_run_are_dropped(cluster: Cluster) -> None:
    workers = [cluster.worker(concurrency=2, loglevel="INFO") for _ in range(2)]
    cluster.write("slow.pb", slow_program(cluster.effects_log, steps=STEPS, delay_s=DELAY_S))
    follower = cluster.follow("run", "slow.pb")
    run_id = follower.run_id()
    holder = cluster.holder(run_id)
    cluster.wait_started(2)
    held = f"dropped: run {run_id} is held by "

    enqueue_copy(cluster, run_id)
    wait_until(lambda: sum(w.output().count(f"s: '{held}") for w in workers) == 1, 15,
               "the copy to be delivered and dropped while the run runs")
    assert cluster.state(run_id) == "running"
    assert cluster.lease(run_id) == holder  # the same owner, the same epoch: nobody took it over

    result = follower.wait(30)
    assert result.returncode == 0, result
    assert result.out == slow_output(STEPS)
    assert_completed_once(cluster, run_id, steps=STEPS)  # no failure: every Work ran exactly once
    ran = cluster.starts()

    enqueue_copy(cluster, run_id)
    wait_until(lambda: dropped(workers, "dropped: run is succeeded") == 1, 15,
               "the copy for the finished run to be delivered and dropped")
    wait_until(cluster.queue_drained, 10, "every message to be acked")

    assert cluster.starts() == ran
    assert cluster.state(run_id) == "succeeded"
    assert cluster.end_states(run_id) == ["succeeded"]
    assert cluster.said(run_id) == slow_output(STEPS)
    assert cluster.client.get(cluster.key(run_id, "epoch")) == b"1"  # no copy ever acquired the run
    status = cluster.status(run_id)
    assert (status["state"], status["attempts"], status["failovers"]) == ("succeeded", 1, 0)
