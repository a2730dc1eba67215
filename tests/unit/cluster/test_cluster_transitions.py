"""Run state transitions other than ownership: input (SEND_INPUT), cancel (CANCEL) and failover (REAP).

`ClusterClient` is what `playbooks send` / `cancel` call; the reaper is heartbeat.reap, run here against a
stand-in executor (its client, keys, store and enqueue are all it reads).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest
from cluster_helpers import Enqueued, StoreFactory, new_run

from playbooks_worker.cluster import client as client_module
from playbooks_worker.cluster import heartbeat
from playbooks_worker.cluster.client import ClusterClient
from playbooks_worker.cluster.keys import Keys
from playbooks_worker.cluster.store import NotRunnable
from playbooks_worker.config import load_settings
from playbooks_worker.errors import RunNotFound


@pytest.fixture
def cluster(client, enqueued: Enqueued, monkeypatch: pytest.MonkeyPatch) -> ClusterClient:
    """A ClusterClient on the fake server whose enqueues are recorded instead of sent to Celery."""
    monkeypatch.setattr(client_module, "check_reachable", lambda settings: client)
    monkeypatch.setattr(client_module, "enqueue_run", lambda run_id, settings: enqueued.append(run_id))
    settings = load_settings(environ={"PLAYBOOKS_BROKER_URL": "redis://fake:6379/0"})
    return ClusterClient(settings)


def events(client, keys: Keys, run_id: str = "r1") -> list[dict]:
    return [json.loads(fields[b"event"]) for _id, fields in client.xrange(keys.events(run_id))]


# -- input ----------------------------------------------------------------------------------------------


def test_sending_to_a_waiting_run_queues_it_again(cluster: ClusterClient, worker_store: StoreFactory, client,
                                                  keys: Keys, enqueued: Enqueued) -> None:
    worker_store().create(new_run("r1", state="waiting"))

    assert cluster.send("r1", "Ada") is True

    assert cluster.store.get("r1").state == "queued"
    assert client.lrange(keys.inbox("r1"), 0, -1) == [b"Ada"]
    assert events(client, keys) == [{"type": "input", "text": "Ada"}]
    assert enqueued == ["r1"]


def test_sending_to_a_running_run_leaves_the_answer_for_it(cluster: ClusterClient, worker_store: StoreFactory,
                                                           client, keys: Keys, enqueued: Enqueued) -> None:
    store = worker_store()
    store.create(new_run("r1"))
    store.acquire("r1")

    assert cluster.send("r1", "Ada") is False

    assert cluster.store.get("r1").state == "running"
    assert client.lrange(keys.inbox("r1"), 0, -1) == [b"Ada"]
    assert enqueued == []


def test_sending_to_an_unknown_run(cluster: ClusterClient, client, keys: Keys) -> None:
    with pytest.raises(RunNotFound, match="no run 'nope'"):
        cluster.send("nope", "Ada")
    assert not client.exists(keys.inbox("nope"))


# -- cancel ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["queued", "waiting"])
def test_a_run_that_is_not_executing_is_cancelled_at_once(cluster: ClusterClient, worker_store: StoreFactory,
                                                          client, keys: Keys, state: str) -> None:
    worker_store().create(new_run("r1", state=state))

    assert cluster.cancel("r1") == "cancelled"

    assert cluster.store.get("r1").state == "cancelled"
    assert events(client, keys) == [{"type": "end", "state": "cancelled", "lines": ["⏹️  Run cancelled"]}]
    assert client.smembers(keys.active) == set()  # reapers stop looking at it
    with pytest.raises(NotRunnable, match="run r1 is cancelled: nothing to execute"):
        worker_store().acquire("r1")  # its queued task message is dropped by the worker


def test_a_running_run_is_asked_to_stop_at_its_next_await(cluster: ClusterClient, worker_store: StoreFactory,
                                                          client, keys: Keys) -> None:
    store = worker_store()
    store.create(new_run("r1"))
    ownership = store.acquire("r1")
    stops: list[object] = []
    ownership.stop = stops.append

    assert cluster.cancel("r1") == "cancelling"

    assert cluster.store.get("r1").state == "running"  # its owner ends it, with its own end event
    assert events(client, keys) == []
    store.renew_all()
    assert [getattr(s, "__name__", s) for s in stops] == ["Cancelled"]


@pytest.mark.parametrize("state", ["succeeded", "failed", "cancelled"])
def test_cancelling_a_finished_run_changes_nothing(cluster: ClusterClient, worker_store: StoreFactory, client,
                                                   keys: Keys, state: str) -> None:
    worker_store().create(new_run("r1", state=state))

    assert cluster.cancel("r1") == f"already {state}"

    assert cluster.store.get("r1").state == state
    assert events(client, keys) == []


def test_cancelling_an_unknown_run(cluster: ClusterClient) -> None:
    with pytest.raises(RunNotFound):
        cluster.cancel("nope")


# -- failover -------------------------------------------------------------------------------------------


@pytest.fixture
def reaper(client, keys: Keys, worker_store: StoreFactory, enqueued: Enqueued) -> SimpleNamespace:
    """What heartbeat.reap reads of an Executor."""
    return SimpleNamespace(client=client, keys=keys, store=worker_store("reaper-host:9"), enqueue=enqueued.append)


def test_a_running_run_whose_lease_expired_is_queued_once(reaper: SimpleNamespace, worker_store: StoreFactory,
                                                          client, keys: Keys, enqueued: Enqueued) -> None:
    dead = worker_store("other-host:1")
    dead.create(new_run("r1"))
    dead.acquire("r1")
    client.delete(keys.lease("r1"))  # its worker died: nobody renews the lease…
    client.zadd(keys.leases, {"r1": 0})  # …so its deadline in the reapers' index has passed

    heartbeat.reap(reaper)
    heartbeat.reap(reaper)  # the next pass (or another worker's reaper) finds it queued already

    run = reaper.store.get("r1")
    assert (run.state, run.failovers) == ("queued", 1)
    assert enqueued == ["r1"]
    assert [e["text"] for e in events(client, keys)] == [
        "⚠️  Run r1 lost its worker (its lease expired): failing over"]
    taker = worker_store("host-b:2")
    assert taker.acquire("r1").epoch == 2


def test_the_requeue_guard_stops_a_second_reaper(reaper: SimpleNamespace, worker_store: StoreFactory, client,
                                                 keys: Keys, enqueued: Enqueued) -> None:
    dead = worker_store("other-host:1")
    dead.create(new_run("r1"))
    dead.acquire("r1")
    client.delete(keys.lease("r1"))
    assert heartbeat.reap_one(reaper, "r1", expected_lease=None) is True
    client.hset(keys.run("r1"), "state", "running")  # say a worker took it and lost it again at once

    assert heartbeat.reap_one(reaper, "r1", expected_lease=None) is False

    assert enqueued == ["r1"]
    assert client.pttl(keys.requeue("r1")) > 0


def test_a_live_lease_is_not_reaped(reaper: SimpleNamespace, worker_store: StoreFactory, keys: Keys,
                                    enqueued: Enqueued) -> None:
    owner = worker_store("other-host:1")
    owner.create(new_run("r1"))
    owner.acquire("r1")
    owner.create(new_run("r2", state="waiting"))

    heartbeat.reap(reaper)
    heartbeat.sweep(reaper)

    assert (reaper.store.get("r1").state, reaper.store.get("r2").state) == ("running", "waiting")
    assert enqueued == []


def test_a_lease_held_by_a_dead_process_on_this_host_is_expired_at_once(
        reaper: SimpleNamespace, worker_store: StoreFactory, client, keys: Keys, enqueued: Enqueued) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead_pid = int(gone.stdout)  # a pool process of this host that no longer exists
    dead = worker_store(f"{socket.gethostname()}:{dead_pid}")
    dead.create(new_run("r1"))
    dead.acquire("r1")
    alive = worker_store(f"{socket.gethostname()}:{os.getpid()}")
    alive.create(new_run("r2"))
    alive.acquire("r2")

    heartbeat.sweep(reaper)  # the once-a-second scan: the deadline index cannot know the pid is gone

    assert reaper.store.get("r1").state == "queued"
    assert not client.exists(keys.lease("r1"))
    assert reaper.store.get("r2").state == "running"
    assert enqueued == ["r1"]
    assert "its worker process died" in events(client, keys)[0]["text"]


def test_runs_that_expired_leave_the_active_set(reaper: SimpleNamespace, client, keys: Keys) -> None:
    client.sadd(keys.active, "gone")

    heartbeat.sweep(reaper)

    assert client.smembers(keys.active) == set()


def test_a_queued_run_without_a_task_message_is_enqueued_again(reaper: SimpleNamespace, worker_store: StoreFactory,
                                                                client, keys: Keys, enqueued: Enqueued) -> None:
    store = worker_store("other-host:1")
    store.create(new_run("r1"))  # its task failed before it owned the run: no message left anywhere
    client.hset(keys.run("r1"), "queued_at", 0)

    heartbeat.sweep(reaper)
    heartbeat.sweep(reaper)  # the guard: one message per STALE_QUEUED_S

    assert enqueued == ["r1"]
    assert reaper.store.get("r1").state == "queued"


def test_a_fresh_queued_run_is_left_alone(reaper: SimpleNamespace, worker_store: StoreFactory,
                                          enqueued: Enqueued) -> None:
    worker_store("other-host:1").create(new_run("r1"))
    heartbeat.sweep(reaper)
    assert enqueued == []


def test_housekeeping_forgets_old_workers_and_expired_runs(reaper: SimpleNamespace, worker_store: StoreFactory,
                                                           client, keys: Keys) -> None:
    import json
    import time

    client.hset(keys.workers, mapping={"old:1": json.dumps({"seen_at": time.time() - 7200}),
                                       "new:2": json.dumps({"seen_at": time.time()})})
    worker_store("other-host:1").create(new_run("r1"))
    client.zadd(keys.runs, {"expired": 1.0})

    heartbeat.housekeeping(reaper)

    assert set(client.hkeys(keys.workers)) == {b"new:2"}
    assert client.zrange(keys.runs, 0, -1) == [b"r1"]


def test_a_run_enqueued_again_while_stale_fails_over_as_fast_as_any(
        reaper: SimpleNamespace, worker_store: StoreFactory, client, keys: Keys, enqueued: Enqueued) -> None:
    """The stale-queue guard must not hold back the reaper when the worker that then took the run dies."""
    worker_store("client:0").create(new_run("r1"))
    client.hset(keys.run("r1"), "queued_at", 0)  # every worker was busy for a long while
    heartbeat.sweep(reaper)
    assert enqueued == ["r1"]
    worker_store("host-b:2").acquire("r1")  # a worker takes it at last...
    client.delete(keys.lease("r1"))  # ...and dies at once: its lease runs out
    client.zadd(keys.leases, {"r1": 0})

    heartbeat.reap(reaper)

    assert reaper.store.get("r1").state == "queued"
    assert enqueued == ["r1", "r1"]
