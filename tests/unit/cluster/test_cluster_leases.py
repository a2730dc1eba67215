"""Leases and fencing epochs through RedisRunStore (the ACQUIRE, RENEW, RELEASE and SAVE_RUN scripts)."""

from __future__ import annotations

import json

import pytest
from cluster_helpers import LEASE_S, StoreFactory, new_run

from playbooks_worker.cluster.keys import Keys
from playbooks_worker.cluster.store import NotRunnable
from playbooks_worker.errors import Cancelled, Fenced, RunNotFound


def test_create_is_idempotent_and_indexes_the_run(worker_store: StoreFactory, client, keys: Keys) -> None:
    store = worker_store()
    assert store.create(new_run("r1")) is True
    again = new_run("r1")
    again.program_display = "other.pb"

    assert store.create(again) is False

    assert store.get("r1").program_display == "x.pb"  # the first submission stands
    assert client.smembers(keys.active) == {b"r1"}
    assert [r.run_id for r in store.list()] == ["r1"]


def test_acquire_takes_a_lease_with_a_ttl_and_the_first_epoch(worker_store: StoreFactory, client, keys: Keys) -> None:
    store = worker_store("host-a:1")
    store.create(new_run("r1"))

    ownership = store.acquire("r1")

    assert ownership.epoch == 1
    assert client.get(keys.lease("r1")) == b"host-a:1 1"
    assert 0 < client.pttl(keys.lease("r1")) <= LEASE_S * 1000
    assert store.get("r1").state == "running"
    assert store.owned["r1"] is ownership


def test_a_live_lease_refuses_another_worker(worker_store: StoreFactory) -> None:
    a, b = worker_store("host-a:1"), worker_store("host-b:2")
    a.create(new_run("r1"))
    a.acquire("r1")

    with pytest.raises(NotRunnable, match=r"run r1 is held by host-a:1 1 \(a live lease\)"):
        b.acquire("r1")
    assert "r1" not in b.owned


@pytest.mark.parametrize("state", ["waiting", "succeeded", "failed", "cancelled"])
def test_a_run_that_is_not_queued_or_running_is_not_acquired(worker_store: StoreFactory, client, keys: Keys,
                                                              state: str) -> None:
    store = worker_store()
    store.create(new_run("r1", state=state))

    with pytest.raises(NotRunnable, match=f"run r1 is {state}: nothing to execute"):
        store.acquire("r1")
    assert client.get(keys.lease("r1")) is None
    assert client.get(keys.epoch("r1")) is None


def test_acquiring_an_unknown_run(worker_store: StoreFactory) -> None:
    with pytest.raises(RunNotFound):
        worker_store().acquire("nope")


def test_renew_extends_only_our_own_lease(worker_store: StoreFactory, client, keys: Keys) -> None:
    store = worker_store("host-a:1")
    store.create(new_run("r1"))
    store.acquire("r1")
    client.pexpire(keys.lease("r1"), 50)

    store.renew_all()

    assert client.pttl(keys.lease("r1")) > 50


def test_release_deletes_our_lease_but_not_a_successors(worker_store: StoreFactory, client, keys: Keys) -> None:
    a, b = worker_store("host-a:1"), worker_store("host-b:2")
    a.create(new_run("r1"))
    a.acquire("r1")
    a.release("r1")
    assert client.get(keys.lease("r1")) is None
    assert "r1" not in a.owned

    a.acquire("r1")
    client.delete(keys.lease("r1"))  # a's lease expired while it was paused...
    b.acquire("r1")  # ...and b took the run over
    a.release("r1")  # a's late release must not free b's lease

    assert client.get(keys.lease("r1")) == b"host-b:2 3"


def test_a_takeover_bumps_the_epoch_and_fences_the_old_owner(worker_store: StoreFactory, client, keys: Keys) -> None:
    a, b = worker_store("host-a:1"), worker_store("host-b:2")
    a.create(new_run("r1"))
    run_a = a.get("r1")
    first = a.acquire("r1")
    client.delete(keys.lease("r1"))  # the lease expired (a is paused, or dead)

    second = b.acquire("r1")

    assert (first.epoch, second.epoch) == (1, 2)
    assert client.get(keys.lease("r1")) == b"host-b:2 2"
    run_a.state = "succeeded"  # the zombie wakes up and tries to finish the run
    with pytest.raises(Fenced, match="run r1: epoch 1 was fenced out by a newer owner"):
        a.save(run_a)
    assert a.get("r1").state == "running"  # b's run record is untouched
    assert client.ttl(keys.run("r1")) == -1


def test_renewal_tells_a_run_that_lost_its_lease_to_stop_fenced(worker_store: StoreFactory, client,
                                                                keys: Keys) -> None:
    a, b = worker_store("host-a:1"), worker_store("host-b:2")
    a.create(new_run("r1"))
    ownership = a.acquire("r1")
    reasons: list[BaseException] = []
    ownership.stop = lambda reason: reasons.append(reason())
    client.delete(keys.lease("r1"))
    b.acquire("r1")

    a.renew_all()

    assert len(reasons) == 1 and isinstance(reasons[0], Fenced)
    assert reasons[0].epoch == 1
    assert client.get(keys.lease("r1")) == b"host-b:2 2"  # a did not extend b's lease


def test_renewal_passes_a_cancel_on(worker_store: StoreFactory, client, keys: Keys) -> None:
    store = worker_store()
    store.create(new_run("r1"))
    ownership = store.acquire("r1")
    reasons: list[object] = []
    ownership.stop = reasons.append

    store.renew_all()
    assert reasons == []
    client.hset(keys.run("r1"), "cancel", "1")
    store.renew_all()

    assert reasons == [Cancelled]


def test_saving_as_owner_keeps_the_lease_while_running_and_releases_it_after(worker_store: StoreFactory,
                                                                             client, keys: Keys) -> None:
    store = worker_store()
    store.create(new_run("r1"))
    run = store.get("r1")
    store.acquire("r1")
    run.state = "running"
    store.save(run)
    assert client.exists(keys.lease("r1"))

    run.state = "waiting"
    store.save(run)

    assert not client.exists(keys.lease("r1"))
    assert "r1" not in store.owned
    assert store.get("r1").state == "waiting"


def test_a_finished_run_expires_with_its_journals(worker_store: StoreFactory, client, keys: Keys,
                                                 enqueued: list[str]) -> None:
    store = worker_store(finished_ttl_s=600)
    store.create(new_run("r1"))
    run = store.get("r1")
    store.acquire("r1")
    client.hset(keys.journal("r1", "agent_1_r1"), "1", b"blob")
    run.agents = [{"agent_id": "agent_1_r1", "klass": "Agent"}]
    run.state = "succeeded"

    store.save(run)

    for key in (keys.run("r1"), keys.epoch("r1"), keys.journal("r1", "agent_1_r1")):
        assert 0 < client.ttl(key) <= 600, key
    assert not client.exists(keys.lease("r1"))
    assert client.smembers(keys.active) == set()
    assert enqueued == []


def test_a_run_asked_to_wait_when_its_answer_already_arrived_is_queued_again(worker_store: StoreFactory,
                                                                            client, keys: Keys,
                                                                            enqueued: list[str]) -> None:
    store = worker_store()
    store.create(new_run("r1"))
    run = store.get("r1")
    store.acquire("r1")
    client.rpush(keys.inbox("r1"), "Ada")  # `playbooks send` while the run was deciding to wait

    run.state = "waiting"
    store.save(run)

    assert store.get("r1").state == "queued"
    assert json.loads(client.hget(keys.run("r1"), "json"))["state"] == "queued"
    assert enqueued == ["r1"]
    assert not client.exists(keys.lease("r1"))
