"""One contract, every store: the filesystem and in-memory providers must behave the same (STYLE: tests)."""

from __future__ import annotations

import asyncio
import json
import pickle
import random
import threading
from typing import Any

import cloudpickle
import pytest
from ckpt_helpers import KEY, Store, make_record

from playbooks_worker.checkpoints.signing import HEADER_SIZE, MAGIC, Signer
from playbooks_worker.errors import CheckpointCorrupt, CheckpointError, CheckpointNotFound, CheckpointTooLarge

TAMPERED = "tampered, or signed with another key, or copied from another checkpoint id"


def test_round_trip_keeps_the_whole_record(store: Store) -> None:
    record = make_record("agent_123", 1, result={"orders": [1, 2, 3]})
    record["error"] = ValueError("boom")
    store.provider.write_sync(record)

    loaded = store.provider.read_sync("agent_123_ckpt_1")

    assert loaded["checkpoint_id"] == "agent_123_ckpt_1"
    assert loaded["metadata"] == record["metadata"]
    assert loaded["result"] == {"orders": [1, 2, 3]}
    assert isinstance(loaded["error"], ValueError) and str(loaded["error"]) == "boom"
    assert loaded["state_writes"] == {"last": 1}


def test_ids_are_ordered_numerically(store: Store) -> None:
    counters = list(range(1, 15))
    random.Random(7).shuffle(counters)
    for n in counters:
        store.provider.write_sync(make_record("a", n))

    ids = store.provider.ids_sync("a")

    assert ids == [f"a_ckpt_{n}" for n in range(1, 15)]  # ckpt_10 after ckpt_9, not after ckpt_1
    assert [r["metadata"]["counter"] for r in store.provider.read_journal_sync("a")] == list(range(1, 15))
    assert store.provider.next_counter_sync("a") == 15


def test_an_agent_id_that_contains_the_separator(store: Store) -> None:
    store.provider.write_sync(make_record("x_ckpt_2", 1))
    store.provider.write_sync(make_record("x", 3))

    assert store.provider.ids_sync("x_ckpt_2") == ["x_ckpt_2_ckpt_1"]
    assert store.provider.ids_sync("x") == ["x_ckpt_3"]
    assert store.provider.read_sync("x_ckpt_2_ckpt_1")["metadata"]["counter"] == 1


def test_a_checkpoint_is_never_overwritten(store: Store) -> None:
    store.provider.write_sync(make_record("a", 1, result="first"))

    with pytest.raises(CheckpointError, match=r"checkpoint a_ckpt_1 already exists.*never overwritten"):
        store.provider.write_sync(make_record("a", 1, result="second"))

    assert store.provider.read_sync("a_ckpt_1")["result"] == "first"


def test_unknown_agent(store: Store) -> None:
    assert store.provider.ids_sync("nobody") == []
    assert store.provider.read_journal_sync("nobody") == []
    assert store.provider.next_counter_sync("nobody") == 1
    assert store.provider.delete_agent_sync("nobody") == 0
    with pytest.raises(CheckpointNotFound, match="checkpoint nobody_ckpt_1 not found"):
        store.provider.read_sync("nobody_ckpt_1")


@pytest.mark.parametrize("bad", ["not-a-checkpoint", "a_ckpt_", "../etc_ckpt_1", ".runs_ckpt_1"])
def test_reading_a_malformed_id_is_not_found(store: Store, bad: str) -> None:
    with pytest.raises(CheckpointNotFound):
        store.provider.read_sync(bad)


@pytest.mark.parametrize("bad", ["a_ckpt_0", "a_ckpt_01", ".runs_ckpt_1", "x/y_ckpt_1", "no-counter"])
def test_writing_a_malformed_id_is_refused(store: Store, bad: str) -> None:
    record = make_record("a", 1)
    record["checkpoint_id"] = bad
    with pytest.raises(ValueError):
        store.provider.write_sync(record)


def test_delete_one_agent(store: Store) -> None:
    for n in (1, 2, 3):
        store.provider.write_sync(make_record("a", n))
    store.provider.write_sync(make_record("b", 1))

    assert store.provider.delete_agent_sync("a") == 3

    assert store.provider.ids_sync("a") == []
    assert store.provider.agents_sync() == ["b"]
    assert store.provider.ids_sync("b") == ["b_ckpt_1"]
    store.provider.write_sync(make_record("a", 1))  # the agent starts over after a clear
    assert store.provider.ids_sync("a") == ["a_ckpt_1"]


def test_agents_lists_every_agent_with_a_checkpoint(store: Store) -> None:
    assert store.provider.agents_sync() == []
    for agent in ("zeta", "alpha", "main_agent_1"):
        store.provider.write_sync(make_record(agent, 1))

    assert store.provider.agents_sync() == ["alpha", "main_agent_1", "zeta"]


def test_too_large_names_the_id_size_limit_and_statement(store: Store) -> None:
    provider = store.sibling(max_size_mb=0.01)  # 10,485 bytes
    record = make_record("a", 4, result="x" * 50_000, statement="data = await FetchData()")

    with pytest.raises(CheckpointTooLarge) as caught:
        provider.write_sync(record)

    message = str(caught.value)
    assert message.startswith("checkpoint a_ckpt_4 is 0.048 MB, over the limit of 0.01 MB, ")
    assert "for `data = await FetchData()`" in message
    assert "save big data elsewhere and return a reference" in message
    assert "durability.max_checkpoint_size_mb" in message
    assert provider.ids_sync("a") == []


def test_a_value_that_cannot_be_pickled_raises_pickles_own_error(store: Store) -> None:
    # The runtime catches PicklingError/TypeError/AttributeError to name the source line, or to record an
    # unpicklable exception as text: the store must not wrap them.
    record = make_record("a", 1, result=threading.Lock())
    with pytest.raises(TypeError, match=r"cannot pickle '_thread\.lock' object"):
        store.provider.write_sync(record)
    assert store.provider.ids_sync("a") == []


@pytest.mark.parametrize("where", [3, HEADER_SIZE - 1, HEADER_SIZE + 5, None])
def test_a_tampered_byte_is_refused(store: Store, where: int | None) -> None:
    store.provider.write_sync(make_record("a", 1))
    blob = bytearray(store.get_blob("a_ckpt_1"))
    where = len(blob) - 1 if where is None else where  # None: the last byte of the payload
    blob[where] ^= 0x01
    store.put_blob("a_ckpt_1", bytes(blob))

    expected = "not a playbooks-worker checkpoint" if where < len(MAGIC) else f"signature mismatch \\({TAMPERED}\\)"
    with pytest.raises(CheckpointCorrupt, match=f"checkpoint a_ckpt_1.*{expected}"):
        store.provider.read_sync("a_ckpt_1")


@pytest.mark.parametrize("keep", [0, 5, HEADER_SIZE - 1])
def test_a_file_cut_inside_its_header_is_truncated(store: Store, keep: int) -> None:
    store.provider.write_sync(make_record("a", 1))
    store.put_blob("a_ckpt_1", store.get_blob("a_ckpt_1")[:keep])

    with pytest.raises(CheckpointCorrupt, match=rf"checkpoint a_ckpt_1 is truncated \({keep} bytes"):
        store.provider.read_sync("a_ckpt_1")


def test_a_file_cut_inside_its_payload_fails_the_signature(store: Store) -> None:
    store.provider.write_sync(make_record("a", 1))
    store.put_blob("a_ckpt_1", store.get_blob("a_ckpt_1")[:-3])

    with pytest.raises(CheckpointCorrupt, match="signature mismatch"):
        store.provider.read_journal_sync("a")


class _Boom:
    """Unpickling this runs code: the store must never get that far with an unsigned file."""

    ran = False

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_Boom._explode, ())

    @staticmethod
    def _explode() -> None:
        _Boom.ran = True


def test_an_unsigned_pickle_is_refused_without_being_unpickled(store: Store) -> None:
    store.put_blob("a_ckpt_1", pickle.dumps({"checkpoint_id": "a_ckpt_1", "evil": _Boom()}))

    with pytest.raises(CheckpointCorrupt, match="checkpoint a_ckpt_1 is not a playbooks-worker checkpoint"):
        store.provider.read_sync("a_ckpt_1")
    assert _Boom.ran is False


@pytest.mark.parametrize("target", ["a_ckpt_2", "b_ckpt_1"])
def test_a_record_copied_to_another_id_is_refused(store: Store, target: str) -> None:
    store.provider.write_sync(make_record("a", 1))
    store.put_blob(target, store.get_blob("a_ckpt_1"))

    with pytest.raises(CheckpointCorrupt, match=f"checkpoint {target}: signature mismatch.*copied from another"):
        store.provider.read_sync(target)


def test_a_record_signed_with_another_key_is_refused(store: Store) -> None:
    store.provider.write_sync(make_record("a", 1))
    other = store.sibling(secret_key=b"another-key-9876543210-abcdefgh")

    with pytest.raises(CheckpointCorrupt, match="signed with another key"):
        other.read_sync("a_ckpt_1")
    assert store.sibling(secret_key=KEY).read_sync("a_ckpt_1")["result"] == {"value": 1}


def test_signed_but_unloadable_is_corrupt_too(store: Store) -> None:
    payload = b"cno_such_module_xyz\nOrder\n."  # a pickle of a class whose module is gone
    store.put_blob("a_ckpt_1", Signer(KEY).seal("a_ckpt_1", payload))

    with pytest.raises(CheckpointCorrupt, match="checkpoint a_ckpt_1 is signed but cannot be loaded") as caught:
        store.provider.read_sync("a_ckpt_1")
    assert "No module named 'no_such_module_xyz'" in str(caught.value)


def test_the_cluster_write_options(store: Store) -> None:
    """Local stores accept and ignore them; Redis publishes the event and pops the input in the same write."""
    event = {"type": "say", "message": "hi"}
    if store.name.startswith("redis"):
        client = store.provider.client  # type: ignore[attr-defined]
        client.rpush("pbw:{a}:inbox", "the answer", "the next one")
        assert store.provider.delivers_events is True  # so the journal leaves publishing to the store
    else:
        assert store.provider.delivers_events is False  # so the journal delivers output itself

    store.provider.write_sync(make_record("a", 1), event=event, consume_input=True)

    assert store.provider.read_sync("a_ckpt_1")["metadata"]["counter"] == 1
    if store.name.startswith("redis"):
        published = [json.loads(fields[b"event"]) for _id, fields in client.xrange("pbw:{a}:events")]
        assert published == [event]
        assert client.lrange("pbw:{a}:inbox", 0, -1) == [b"the next one"]


def test_a_class_defined_in_a_function_round_trips(store: Store) -> None:
    class Order:  # not importable: cloudpickle must carry the class by value
        def __init__(self, number: int) -> None:
            self.number = number

        def label(self) -> str:
            return f"order #{self.number}"

    store.provider.write_sync(make_record("a", 1, result=[Order(7), Order(8)]))
    # Load the bytes as another process would: without this test's Order in any module.
    loaded = cloudpickle.loads(cloudpickle.dumps(store.provider.read_sync("a_ckpt_1")))

    assert [o.label() for o in loaded["result"]] == ["order #7", "order #8"]


def test_the_async_api(store: Store) -> None:
    async def main() -> tuple[str, list[str], dict[str, Any], int, list[str]]:
        saved = await store.provider.save_checkpoint(make_record("agent_123", 1))
        listed = await store.provider.list_checkpoints("agent_123")
        loaded = await store.provider.load_checkpoint("agent_123_ckpt_1")
        deleted = await store.provider.delete_checkpoints("agent_123")
        return saved, listed, loaded, deleted, await store.provider.list_checkpoints("agent_123")

    saved, listed, loaded, deleted, after = asyncio.run(main())

    assert (saved, listed, deleted, after) == ("agent_123_ckpt_1", ["agent_123_ckpt_1"], 1, [])
    assert loaded["metadata"]["statement"] == "x1 = await Step1()"
