"""Fenced checkpoint writes through RedisCheckpointProvider (the APPEND_CHECKPOINT script).

One checkpoint is one atomic write: the epoch check, the record, the agent index, the output event the
record stands for, and the input it consumed. Either all of it happens or none of it.
"""

from __future__ import annotations

import json

import pytest
from cluster_helpers import StoreFactory, new_run, record

from playbooks_worker.checkpoints.redis import RedisCheckpointProvider
from playbooks_worker.cluster.keys import Keys
from playbooks_worker.errors import CheckpointError, Fenced

SAY = {"type": "say", "agent": "agent_1_r1", "message": "Order 101 charged"}


def events(client, keys: Keys, run_id: str = "r1") -> list[dict]:
    return [json.loads(fields[b"event"]) for _id, fields in client.xrange(keys.events(run_id))]


def test_the_owner_writes_the_record_its_event_and_the_agent_index_at_once(
        worker_store: StoreFactory, provider: RedisCheckpointProvider, client, keys: Keys) -> None:
    store = worker_store()
    store.create(new_run("r1"))
    owner = provider.fenced(store.acquire("r1").epoch)

    owner.write_sync(record("r1", 1), event=SAY)

    assert owner.ids_sync("agent_1_r1") == ["agent_1_r1_ckpt_1"]
    assert owner.run_agents_sync("r1") == ["agent_1_r1"]
    assert events(client, keys) == [SAY]


def test_a_write_with_a_stale_epoch_is_fenced_and_leaves_no_trace(
        worker_store: StoreFactory, provider: RedisCheckpointProvider, client, keys: Keys) -> None:
    a, b = worker_store("host-a:1"), worker_store("host-b:2")
    a.create(new_run("r1"))
    zombie = provider.fenced(a.acquire("r1").epoch)
    zombie.write_sync(record("r1", 1), event=SAY)
    client.delete(keys.lease("r1"))
    successor = provider.fenced(b.acquire("r1").epoch)
    client.rpush(keys.inbox("r1"), "an answer for the successor")

    with pytest.raises(Fenced, match="run r1: epoch 1 was fenced out"):
        zombie.write_sync(record("r1", 2, kind="input"), event={"type": "say", "message": "twice?"},
                          consume_input=True)

    assert provider.ids_sync("agent_1_r1") == ["agent_1_r1_ckpt_1"]
    assert events(client, keys) == [SAY]  # the zombie's output was not published
    assert client.lrange(keys.inbox("r1"), 0, -1) == [b"an answer for the successor"]  # nor its input taken
    successor.write_sync(record("r1", 2))  # the new owner writes the counter the zombie could not
    assert provider.read_sync("agent_1_r1_ckpt_2")["metadata"]["counter"] == 2


def test_a_write_without_an_epoch_is_not_fenced(worker_store: StoreFactory, provider: RedisCheckpointProvider,
                                                client, keys: Keys) -> None:
    """Local mode with Redis checkpoints (durability.storage = "redis") has no leases."""
    worker_store().create(new_run("r1"))
    client.set(keys.epoch("r1"), 7)

    provider.write_sync(record("r1", 1))

    assert provider.ids_sync("agent_1_r1") == ["agent_1_r1_ckpt_1"]


def test_an_existing_counter_is_refused_without_publishing_again(
        worker_store: StoreFactory, provider: RedisCheckpointProvider, client, keys: Keys) -> None:
    store = worker_store()
    store.create(new_run("r1"))
    owner = provider.fenced(store.acquire("r1").epoch)
    owner.write_sync(record("r1", 1), event=SAY)

    with pytest.raises(CheckpointError, match="checkpoint agent_1_r1_ckpt_1 already exists"):
        owner.write_sync(record("r1", 1), event=SAY)

    assert events(client, keys) == [SAY]


def test_the_input_checkpoint_consumes_the_answer_it_recorded(
        worker_store: StoreFactory, provider: RedisCheckpointProvider, client, keys: Keys) -> None:
    store = worker_store()
    store.create(new_run("r1"))
    owner = provider.fenced(store.acquire("r1").epoch)
    client.rpush(keys.inbox("r1"), "Ada", "Paris")

    owner.write_sync(record("r1", 1))  # any other checkpoint leaves the inbox alone
    assert client.llen(keys.inbox("r1")) == 2
    owner.write_sync(record("r1", 2, kind="input"), consume_input=True)

    assert client.lrange(keys.inbox("r1"), 0, -1) == [b"Paris"]


def test_fenced_providers_share_the_store_but_not_the_epoch(provider: RedisCheckpointProvider) -> None:
    owner = provider.fenced(3)

    assert (provider.epoch, owner.epoch) == (None, 3)
    assert owner.client is provider.client
    assert repr(owner) == "RedisCheckpointProvider(prefix='pbw', epoch=3)"
