"""Spread runs in Redis, at the level of their scripts (spread.py, scripts.py): which programs spread, the
atomic checkpoint-plus-effects write, and parking with its quiescence check. The processes are in
tests/integration/test_cluster_agents.py."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from cluster_helpers import new_run, record

from playbooks_worker.checkpoints.redis import RedisCheckpointProvider
from playbooks_worker.cluster import heartbeat
from playbooks_worker.cluster.keys import Keys, is_agent_unit, unit_run
from playbooks_worker.cluster.scripts import Scripts
from playbooks_worker.cluster.spread import finish_run, set_run, should_spread
from playbooks_worker.config import Settings
from playbooks_worker.errors import Fenced
from playbooks_worker.program import parse_text

RUN = "abc123"
PING, PONG = f"pinger_1_{RUN}", f"ponger_2_{RUN}"

TWO_AGENTS = """
# Pinger

## Main
### Triggers
- At the beginning

```python
other = await CreateAgent("Ponger")
{call}
```

# Ponger

```python
@playbook
async def Answer(x: int) -> int:
    return x
```

## Serve

```python
await Say("user", await WaitForMessage("*"))
```
"""


def program(call: str = 'await SendMessage(f"agent {other.id}", "hi")', text: str = TWO_AGENTS):
    return parse_text(text.replace("{call}", call), "/programs/two.pb")


# -- which runs spread ----------------------------------------------------------------------------------


def test_agents_that_only_exchange_messages_spread() -> None:
    assert should_spread(program())


def test_agents_that_call_each_others_playbooks_stay_together() -> None:
    assert not should_spread(program("await other.Answer(1)"))


def test_an_agent_calling_its_own_playbook_still_spreads() -> None:
    assert should_spread(program("await self.Step('x')"))


def test_a_single_agent_program_does_not_spread() -> None:
    assert not should_spread(parse_text("# Solo\n\n## Main\n\n```python\nawait Say('user', 'hi')\n```\n",
                                        "/programs/solo.pb"))


def test_llm_playbooks_keep_agents_together() -> None:
    llm = TWO_AGENTS.replace("## Serve", "## Chat\n### Steps\n- Ask the user something\n\n## Serve")
    assert not should_spread(program(text=llm))


# -- keys ------------------------------------------------------------------------------------------------


def test_an_agents_keys_share_its_runs_hash_tag_and_differ_from_the_runs() -> None:
    keys = Keys("pbw")
    assert is_agent_unit(PING) and not is_agent_unit(RUN) and unit_run(PING) == RUN
    assert keys.run(PING) == f"pbw:{{{RUN}}}:unit:{PING}"
    assert keys.lease(PING) == f"pbw:{{{RUN}}}:lease:{PING}" != keys.lease(RUN)
    assert keys.epoch(PING) != keys.epoch(RUN)
    assert keys.mailbox(PONG) == f"pbw:{{{RUN}}}:mailbox:{PONG}"


# -- a checkpoint with effects ----------------------------------------------------------------------------


@pytest.fixture
def scripts(client) -> Scripts:
    return Scripts(client)


def unit(client, keys: Keys, agent_id: str, state: str, waiting_for: str = "") -> None:
    client.hset(keys.run(agent_id), mapping={"state": state, "waiting_for": waiting_for,
                                             "json": json.dumps({"agent_id": agent_id, "klass": "X"})})
    client.sadd(keys.units(RUN), agent_id)


def message(n: int, to: str = PONG) -> dict:
    return {"id": f"{PING}:1.{n}", "from": PING, "from_klass": "Pinger", "to": to, "text": str(n)}


def send(provider: RedisCheckpointProvider, counter: int, to: str = PONG) -> list[str]:
    return provider.write_with_effects(record(RUN, counter, kind="send", agent=PING),
                                       [{"send": message(counter, to), "snoop": {"type": "message"}}])


def mailbox(client, keys: Keys, agent_id: str = PONG) -> list[str]:
    return [json.loads(f[b"message"])["id"] for _id, f in client.xrange(keys.mailbox(agent_id))]


def test_a_send_is_in_the_mailbox_exactly_when_its_record_is_written(client, keys, provider) -> None:
    client.set(keys.epoch(PING), 2)
    unit(client, keys, PONG, "running")
    mine = provider.fenced(2, unit=PING)

    assert send(mine, 1) == []  # the recipient reads its stream itself: nothing to enqueue
    with pytest.raises(Fenced):
        send(provider.fenced(1, unit=PING), 2)  # a stale owner of the sender

    assert mailbox(client, keys) == [f"{PING}:1.1"]
    assert [int(c) for c in client.hkeys(keys.journal(RUN, PING))] == [1]
    events = [json.loads(f[b"event"])["type"] for _id, f in client.xrange(keys.events(RUN))]
    assert events == ["message"]  # for --snoop


def test_a_send_wakes_a_parked_recipient_but_not_one_waiting_for_the_user(client, keys, provider) -> None:
    client.set(keys.epoch(PING), 1)
    unit(client, keys, PONG, "waiting", "*")
    unit(client, keys, f"ponger_3_{RUN}", "waiting", "user")
    mine = provider.fenced(1, unit=PING)

    assert send(mine, 1) == [PONG]
    assert client.hget(keys.run(PONG), "state") == b"queued"
    assert send(mine, 2, to=f"ponger_3_{RUN}") == []
    assert client.hget(keys.run(f"ponger_3_{RUN}"), "state") == b"waiting"


def test_a_created_agent_exists_once_with_its_creators_record(client, keys, provider) -> None:
    client.set(keys.epoch(PING), 1)
    mine = provider.fenced(1, unit=PING)
    created = {"create": {"agent_id": PONG, "klass": "Ponger", "kwargs": {"budget": 4}, "entry": False}}

    assert mine.write_with_effects(record(RUN, 1, kind="create_agent", agent=PING), [created]) == [PONG]

    assert client.hget(keys.run(PONG), "state") == b"queued"
    assert json.loads(client.hget(keys.run(PONG), "json"))["kwargs"] == {"budget": 4}
    assert client.smembers(keys.units(RUN)) == {PONG.encode()}


# -- parking ----------------------------------------------------------------------------------------------


def park(client, keys: Keys, scripts: Scripts, agent_id: str, state: str, waiting_for: str = "",
         last_id: str = "0-0", epoch: int = 1, units: list[str] | None = None) -> int:
    units = units or sorted(m.decode() for m in client.smembers(keys.units(RUN)))
    return int(scripts.park(
        keys=[keys.run(agent_id), keys.epoch(agent_id), keys.lease(agent_id), keys.run(RUN), keys.mailbox(agent_id),
              keys.inbox(RUN), keys.units(RUN), keys.inbox(agent_id), *(keys.run(u) for u in units)],
        args=[epoch, state, waiting_for, last_id, json.dumps({"agent_id": agent_id}), "host:1 1"]))


@pytest.fixture
def two(client, keys: Keys) -> None:
    client.hset(keys.run(RUN), mapping={"state": "running", "spread": "1"})
    for agent_id in (PING, PONG):
        unit(client, keys, agent_id, "running")
        client.set(keys.epoch(agent_id), 1)
        client.set(keys.lease(agent_id), "host:1 1")


def test_the_last_agent_to_park_ends_the_run_once(client, keys, scripts, two) -> None:
    assert park(client, keys, scripts, PING, "done") == 1  # the ponger still runs
    assert client.get(keys.lease(PING)) is None  # parking frees the lease
    assert park(client, keys, scripts, PONG, "waiting", "*") == 2  # waits for a message nobody can send
    assert client.hget(keys.run(RUN), "ended")
    client.hset(keys.run(PONG), "state", "running")
    assert park(client, keys, scripts, PONG, "waiting", "*") == -1  # parking fenced the task that parked
    assert park(client, keys, scripts, PONG, "waiting", "*", epoch=2) == 1  # the run was ended already


def test_a_message_that_arrived_since_the_last_read_keeps_the_agent_going(client, keys, scripts, two) -> None:
    entry = client.xadd(keys.mailbox(PONG), {"message": json.dumps(message(1))}).decode()

    assert park(client, keys, scripts, PONG, "waiting", "*", last_id="0-0") == 0
    assert client.hget(keys.run(PONG), "state") == b"running"
    assert park(client, keys, scripts, PONG, "waiting", "*", last_id=entry) == 1


def test_parking_refuses_a_stale_owner_and_an_outdated_list_of_agents(client, keys, scripts, two) -> None:
    assert park(client, keys, scripts, PING, "done", epoch=0) == -1
    client.sadd(keys.units(RUN), f"late_3_{RUN}")
    assert park(client, keys, scripts, PING, "done", units=[PING, PONG]) == -3
    assert client.hget(keys.run(PING), "state") == b"running"  # nothing written


def test_with_one_agent_waiting_for_the_user_the_run_waits_for_input(client, keys, scripts, two) -> None:
    assert park(client, keys, scripts, PING, "waiting", "user") == 1
    assert park(client, keys, scripts, PONG, "waiting", "*") == 3
    client.rpush(keys.inbox(RUN), "Ada")
    client.hset(keys.run(PING), "state", "running")
    assert park(client, keys, scripts, PING, "waiting", "user", epoch=2) == 0  # the answer is there already
    client.lmove(keys.inbox(RUN), keys.inbox(PING), "LEFT", "RIGHT")
    assert park(client, keys, scripts, PING, "waiting", "user", epoch=2) == 0  # claimed, not yet consumed


def test_agents_that_read_each_others_state_stay_together() -> None:
    assert not should_spread(program("x = other.state.budget"))
    assert should_spread(program("self.state.count = 1"))


def test_a_deferred_receive_is_written_with_the_next_record_or_not_at_all(client, keys, provider) -> None:
    client.set(keys.epoch(PING), 2)
    received = record(RUN, 1, kind="receive", agent=PING)

    with pytest.raises(Fenced):
        provider.fenced(1, unit=PING).write_sync(record(RUN, 2, agent=PING), earlier=received)
    assert client.hlen(keys.journal(RUN, PING)) == 0  # neither

    provider.fenced(2, unit=PING).write_sync(record(RUN, 2, agent=PING), earlier=received)
    assert [r["metadata"]["kind"] for r in provider.read_journal_sync(PING)] == ["receive", "tool"]


# -- what the sweep finishes for agents whose worker died -----------------------------------------------------


@pytest.fixture
def executor(client, keys: Keys, worker_store, enqueued) -> SimpleNamespace:
    """What the sweep and spread.finish_run read of an Executor."""
    return SimpleNamespace(client=client, keys=keys, store=worker_store("sweeper:9"), enqueue=enqueued.append,
                           settings=Settings(), program=lambda run: None)


def spread_run(worker_store, client, keys: Keys) -> None:
    store = worker_store("starter:1")
    store.create(new_run(RUN, state="running"))
    client.hset(keys.run(RUN), "spread", "1")
    for agent_id in (PING, PONG):
        unit(client, keys, agent_id, "done")


def test_a_run_whose_ending_agent_died_is_ended_by_the_sweep_once(executor, worker_store, client, keys,
                                                                     enqueued) -> None:
    spread_run(worker_store, client, keys)
    client.hset(keys.run(PING), "json", json.dumps({"agent_id": PING, "klass": "Pinger", "first": True,
                                                     "result": "'ok'"}))
    client.hset(keys.run(RUN), "ended", 1)  # decided long ago (PARK said "over"), never written: it died

    heartbeat.sweep(executor)
    heartbeat.sweep(executor)

    run = executor.store.get(RUN)
    assert (run.state, run.result) == ("succeeded", "'ok'")
    ends = [json.loads(f[b"event"]) for _id, f in client.xrange(keys.events(RUN))]
    assert [e["state"] for e in ends] == ["succeeded"]  # once
    assert client.pttl(keys.run(PING)) > 0 and RUN.encode() not in client.smembers(keys.active)


def test_a_run_ended_just_now_is_left_to_the_agent_that_ends_it(executor, worker_store, client, keys) -> None:
    spread_run(worker_store, client, keys)
    seconds, micros = client.time()
    client.hset(keys.run(RUN), "ended", seconds * 1000 + micros // 1000)

    heartbeat.sweep(executor)

    assert executor.store.get(RUN).state == "running"


def test_a_failed_agent_whose_worker_died_fails_the_run(executor, worker_store, client, keys) -> None:
    spread_run(worker_store, client, keys)
    client.hset(keys.run(PONG), mapping={"state": "failed", "json": json.dumps(
        {"agent_id": PONG, "klass": "Ponger", "failed": "ValueError: boom"})})
    client.hset(keys.run(RUN), "ended", 1)

    heartbeat.sweep(executor)

    run = executor.store.get(RUN)
    assert (run.state, run.error) == ("failed", "ValueError: boom")


def test_the_runs_own_task_that_died_starting_its_agents_is_enqueued_again(executor, worker_store, client, keys,
                                                                           enqueued) -> None:
    spread_run(worker_store, client, keys)
    client.hset(keys.run(RUN), "starting", "1")  # and no lease: its task died

    heartbeat.sweep(executor)
    heartbeat.sweep(executor)

    assert enqueued.count(RUN) == 1


def test_an_ended_run_is_never_overwritten(executor, worker_store, client, keys) -> None:
    spread_run(worker_store, client, keys)
    client.hset(keys.run(RUN), "state", "cancelled")

    assert finish_run(executor, RUN, "succeeded") is False
    run = executor.store.get(RUN)
    assert set_run(executor, run, "running") == 0
    assert executor.store.get(RUN).state == "cancelled"
