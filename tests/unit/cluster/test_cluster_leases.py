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


def test_a_runs_own_task_starts_its_attempt_in_the_acquiring_write(worker_store: StoreFactory, client,
                                                                   keys: Keys) -> None:
    store = worker_store("host-a:1")
    store.create(new_run("r1"))
    client.sadd(keys.agents("r1"), "agent_1_r1")  # a journal written by an earlier attempt
    run = store.get("r1")
    run.begin_attempt()
    run.worker = store.owner

    ownership = store.acquire("r1", record=run, event={"type": "status", "text": "on host-a:1 (epoch {epoch})"})

    assert ownership.agents == {"agent_1_r1"}
    saved = store.get("r1")
    assert (saved.state, len(saved.attempts), saved.worker) == ("running", 1, "host-a:1")
    assert [json.loads(f[b"event"]) for _, f in client.xrange(keys.events("r1"))] == [
        {"type": "status", "text": "on host-a:1 (epoch 1)"}]


def test_a_refused_start_writes_nothing(worker_store: StoreFactory, client, keys: Keys) -> None:
    a, b = worker_store("host-a:1"), worker_store("host-b:2")
    a.create(new_run("r1"))
    a.acquire("r1")
    run = b.get("r1")
    run.begin_attempt()

    with pytest.raises(NotRunnable):
        b.acquire("r1", record=run, event={"type": "status", "text": "b"})

    assert b.get("r1").attempts == []
    assert client.xlen(keys.events("r1")) == 0


def test_the_end_event_is_published_with_the_final_state_and_never_when_fenced(worker_store: StoreFactory,
                                                                               client, keys: Keys) -> None:
    a, b = worker_store("host-a:1"), worker_store("host-b:2")
    a.create(new_run("r1"))
    run_a = a.get("r1")
    a.acquire("r1")
    client.delete(keys.lease("r1"))
    b.acquire("r1")  # a was taken over
    run_a.state = "succeeded"

    with pytest.raises(Fenced):
        a.save(run_a, event={"type": "end", "state": "succeeded"})
    assert client.xlen(keys.events("r1")) == 0
    assert client.smembers(keys.active) == {b"r1"}  # the reapers still watch b's run
    assert client.zscore(keys.leases, "r1") is not None

    run_b = b.get("r1")
    run_b.state = "succeeded"
    b.save(run_b, event={"type": "end", "state": "succeeded"})

    assert [json.loads(f[b"event"]) for _, f in client.xrange(keys.events("r1"))] == [
        {"type": "end", "state": "succeeded"}]
    assert client.smembers(keys.active) == set()
    assert client.zscore(keys.leases, "r1") is None


def test_an_owner_expires_the_journals_of_agents_it_indexed_itself(worker_store: StoreFactory, client,
                                                                   keys: Keys) -> None:
    """The agents a run's owner knows without reading the index again: those indexed when it took the run,
    and those it added since (here one no longer in the record, as after a divergence)."""
    store = worker_store(finished_ttl_s=600)
    store.create(new_run("r1"))
    client.sadd(keys.agents("r1"), "old_1_r1")
    run = store.get("r1")
    run.begin_attempt()
    ownership = store.acquire("r1", record=run, event={"type": "status", "text": "s"})
    ownership.agents.add("gone_2_r1")
    for agent in ("old_1_r1", "gone_2_r1", "agent_3_r1"):
        client.hset(keys.journal("r1", agent), "1", b"blob")
    run.agents = [{"agent_id": "agent_3_r1", "klass": "Agent"}]
    run.state = "succeeded"

    store.save(run)

    for agent in ("old_1_r1", "gone_2_r1", "agent_3_r1"):
        assert 0 < client.ttl(keys.journal("r1", agent)) <= 600, agent


def test_scripts_sent_in_a_pipeline_survive_redis_losing_them(worker_store: StoreFactory, client,
                                                              keys: Keys) -> None:
    """A Redis restart (or SCRIPT FLUSH) empties the script cache: the pipelined EVALSHA fails with NOSCRIPT and
    the script is loaded and run again on its own."""
    store = worker_store()
    store.create(new_run("r1"))
    run = store.get("r1")
    client.script_flush()

    store.acquire("r1")
    client.script_flush()
    run.state = "succeeded"
    store.save(run, event={"type": "end", "state": "succeeded"})

    assert store.get("r1").state == "succeeded"
    assert client.xlen(keys.events("r1")) == 1
    assert client.smembers(keys.active) == set()
