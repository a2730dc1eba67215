"""A worker loses its Redis connections mid-run: CLIENT KILL of every connection its process holds.

Celery's reaction on Redis (reference §0): kombu pushes the worker's unacked messages back at once, so a copy
of the running task is delivered again while the first still runs. With the threads pool Celery cannot
cancel the running task (it logs "Failed to cancel active request"); the lease decides instead: the copy
finds a live lease and is dropped, and the original, reconnected, finishes the run.
"""

from __future__ import annotations

import time

from cluster_support import (
    Cluster,
    assert_completed_once,
    slow_output,
    slow_program,
    socket_ports,
    wait_until,
)

LEASE_S = 2.0
STEPS = 8
DELAY_S = 0.5


def kill_connections(cluster: Cluster, pids: list[int]) -> int:
    """CLIENT KILL every connection whose peer port belongs to one of `pids`; returns how many."""
    ports = socket_ports(pids)
    killed = 0
    for client in cluster.client.client_list():
        host, _, port = client["addr"].rpartition(":")
        if host == "127.0.0.1" and int(port) in ports:
            killed += cluster.client.client_kill_filter(_id=client["id"])
    return killed


def test_a_worker_cut_off_from_redis_mid_run_still_completes_the_run_once(cluster: Cluster) -> None:
    workers = [cluster.worker(concurrency=2, lease_seconds=LEASE_S) for _ in range(2)]
    cluster.write("slow.pb", slow_program(cluster.effects_log, steps=STEPS, delay_s=DELAY_S))
    follower = cluster.follow("run", "slow.pb")
    run_id = follower.run_id()
    pid, _epoch = cluster.holder(run_id)
    victim = next(w for w in workers if w.pid == pid)
    cluster.wait_started(2)

    # Its broker connections (BRPOP, the producer, pidbox) and its store's: at least two.
    assert kill_connections(cluster, victim.pids()) >= 2
    time.sleep(0.3)
    kill_connections(cluster, victim.pids())  # and again, as it reconnects

    result = follower.wait(40)
    assert result.returncode == 0, result
    assert "Connection to broker lost" in victim.output()  # Celery saw it (not vacuous)
    assert result.out == slow_output(STEPS)
    started = [e.n for e in cluster.effects("Work") if e.pid == victim.pid and e.phase == "start" and e.n]
    assert_completed_once(cluster, run_id, steps=STEPS, inflight=max(started))
    ran = cluster.starts()
    wait_until(cluster.queue_drained, 10, "every task message (and the redelivered copy) to be acked")
    assert cluster.starts() == ran  # the redelivered copy ran nothing
    assert cluster.state(run_id) == "succeeded"
    assert cluster.end_states(run_id) == ["succeeded"]
    assert all(w.alive() for w in workers)
