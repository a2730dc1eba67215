"""Spread runs: each agent of a multi-agent program is its own task, on any worker (DESIGN §5, issue 5).

Two agents play ping-pong through their Redis mailbox streams while workers are SIGKILLed at random; every
message is delivered exactly once and the final counter is right. An agent waiting for a message parks (frees
its worker) and the next message wakes it.
"""

from __future__ import annotations

import collections
import json
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from cluster_support import PREFIX, SECRET_KEY, Cluster, wait_until

from playbooks_worker.checkpoints.redis import RedisCheckpointProvider

ROUNDS = 50
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

PINGPONG = """
# Pinger

```python
import json, os, time

@playbook
async def Note(n: int) -> None:
    with open({log!r}, "a") as f:
        f.write(json.dumps({{"tool": "Note", "n": n, "phase": "start", "pid": os.getpid(),
                            "t": time.monotonic()}}) + "\\n")
    time.sleep({delay})
```

## Main
### Triggers
- At the beginning

```python
ponger = await CreateAgent("Ponger")
count = 0
for n in range({rounds}):
    await SendMessage(f"agent {{ponger.id}}", str(count))
    count = int(await WaitForMessage(f"agent {{ponger.id}}"))
    await Note(count)
await Say("user", f"final {{count}}")
await SendMessage(f"agent {{ponger.id}}", "stop")
```

# Ponger

## Serve

```python
while True:
    message = await WaitForMessage("*")
    if message == "stop":
        break
    await SendMessage("Pinger", str(int(message) + 1))
```
"""


def pingpong(cluster: Cluster, rounds: int = ROUNDS, delay: float = 0.0) -> str:
    cluster.write("pingpong.pb", PINGPONG.format(log=str(cluster.effects_log), rounds=rounds, delay=delay))
    return "pingpong.pb"


def journals(cluster: Cluster, run_id: str) -> dict[str, list[dict[str, Any]]]:
    provider = RedisCheckpointProvider(cluster.client, prefix=PREFIX, secret_key=SECRET_KEY.encode())
    return {agent: provider.read_journal_sync(agent) for agent in provider.run_agents_sync(run_id)}


def unit(cluster: Cluster, agent_id: str) -> dict[str, str]:
    run_id = agent_id.rsplit("_", 1)[-1]
    fields = cluster.client.hgetall(f"{PREFIX}:{{{run_id}}}:unit:{agent_id}")
    return {k.decode(): v.decode() for k, v in fields.items()}


def mailbox_ids(cluster: Cluster, agent_id: str) -> list[str]:
    run_id = agent_id.rsplit("_", 1)[-1]
    stream = cluster.client.xrange(f"{PREFIX}:{{{run_id}}}:mailbox:{agent_id}")
    return [json.loads(fields[b"message"])["id"] for _id, fields in stream]


def assert_each_message_once(cluster: Cluster, run_id: str, rounds: int) -> None:
    """Sent once (one record, one stream entry), received once, by the agent it was sent to."""
    by_agent = journals(cluster, run_id)
    pinger = next(a for a in by_agent if a.startswith("pinger_1_"))
    ponger = next(a for a in by_agent if a.startswith("ponger_"))
    sent = {a: [r["result"] for r in records if r["metadata"]["kind"] == "send"] for a, records in by_agent.items()}
    got = {a: [r["result"]["id"] for r in records if r["metadata"]["kind"] == "receive"]
           for a, records in by_agent.items()}
    assert len(sent[pinger]) == rounds + 1 and len(sent[ponger]) == rounds  # pings + stop; replies
    for sender, receiver in ((pinger, ponger), (ponger, pinger)):
        ids = [m["id"] for m in sent[sender]]
        assert len(ids) == len(set(ids))
        assert mailbox_ids(cluster, receiver) == ids  # in the stream once each, in order
        assert got[receiver] == ids  # taken once each, in order
    replies = [int(m["text"]) for m in sent[ponger]]
    assert replies == list(range(1, rounds + 1))


def test_agents_of_a_run_are_tasks_of_their_own_and_talk_through_mailboxes(cluster: Cluster) -> None:
    cluster.worker(concurrency=4)
    result = cluster.pb("run", pingpong(cluster, rounds=5), "--json")

    assert result.returncode == 0, result
    events = [json.loads(line) for line in result.stdout.splitlines()]
    run_id = events[0]["run_id"]
    assert [e["message"] for e in events if e["type"] == "say"] == ["final 5"]
    assert [e["state"] for e in events if e["type"] == "end"] == ["succeeded"]
    assert cluster.client.hget(f"{PREFIX}:{{{run_id}}}:run", "spread") == b"1"
    by_agent = journals(cluster, run_id)
    assert sorted(a.split("_")[0] for a in by_agent) == ["pinger", "ponger"]
    for agent_id in by_agent:
        assert unit(cluster, agent_id)["state"] == "done"
    assert_each_message_once(cluster, run_id, 5)
    status = cluster.status(run_id)
    assert status["state"] == "succeeded"
    assert sorted(a["klass"] for a in status["agents"]) == ["Pinger", "Ponger"]
    # Each agent's journal is inspectable like any run's: the variables as of a checkpoint, by replay.
    ponger = next(a for a in by_agent if a.startswith("ponger_"))
    third = next(r for r in by_agent[ponger] if r["metadata"]["kind"] == "receive" and r["result"]["text"] == "2")
    inspected = cluster.pb("inspect", third["checkpoint_id"], "--json")
    assert inspected.returncode == 0, inspected
    frames = inspected.json()["frames"]
    assert frames and frames[0]["variables"].get("message") == "'2'", frames


def test_an_agent_waiting_for_a_message_frees_its_worker(cluster: Cluster) -> None:
    # One slot, two agents talking: it completes only if a waiting agent gives the slot up (parks) and the
    # message it waits for brings it back.
    worker = cluster.worker(concurrency=1, env={"PLAYBOOKS_CLUSTER__MESSAGE_LINGER_S": "0.05"})
    result = cluster.pb("run", pingpong(cluster, rounds=4), timeout=60)

    assert result.returncode == 0, (result, worker.output())
    assert result.out == ["final 4"]
    assert "Found checkpoint" not in result.stderr  # woken agents resume quietly: nothing crashed
    run_id = result.stderr.split("Submitted run ")[1].split()[0]
    assert_each_message_once(cluster, run_id, 4)


def test_ping_pong_survives_random_worker_kills_exactly_once(cluster: Cluster) -> None:
    rng = random.Random(5)
    for _ in range(3):
        cluster.worker(concurrency=2, lease_seconds=1.0)
    follower = cluster.follow("run", pingpong(cluster, rounds=ROUNDS, delay=0.1))
    run_id = follower.run_id()
    kills = 0
    deadline = time.monotonic() + 60
    while kills < 4 and time.monotonic() < deadline and follower.process.poll() is None:
        time.sleep(rng.uniform(0.2, 0.8))
        holders = set()
        for agent_id in list(journals(cluster, run_id)):
            lease = cluster.client.get(f"{PREFIX}:{{{run_id}}}:lease:{agent_id}")
            if lease is not None:
                holders.add(int(lease.decode().split(" ")[0].rpartition(":")[2]))
        victims = [w for w in cluster.workers if w.alive() and w.pid in holders]
        if not victims:
            continue
        victim = rng.choice(victims)
        victim.kill_group(signal.SIGKILL)
        victim.process.wait(timeout=10)
        kills += 1
        cluster.worker(concurrency=2, lease_seconds=1.0)  # the pool stays at three
    result = follower.wait(timeout=120)

    assert kills == 4, f"only {kills} kills landed before the run ended"
    assert result.returncode == 0, result
    assert result.out == [f"final {ROUNDS}"]
    assert_each_message_once(cluster, run_id, ROUNDS)
    notes = collections.Counter(e.n for e in cluster.effects("Note"))
    assert sorted(notes) == list(range(1, ROUNDS + 1))
    assert all(count <= 2 for count in notes.values())  # only a call in flight at a kill runs twice
    assert cluster.state(run_id) == "succeeded"
    assert cluster.end_states(run_id) == ["succeeded"]


def test_negotiation_resumes_on_another_worker_while_the_buyer_waits(cluster: Cluster) -> None:
    shutil.copy(EXAMPLES / "negotiation.pb", cluster.root / "negotiation.pb")
    doomed = cluster.worker(concurrency=2, lease_seconds=1.0, env={"NEGOTIATION_CRASH_AT": "340"})
    follower = cluster.follow("run", "negotiation.pb")
    run_id = follower.run_id()
    wait_until(lambda: not doomed.alive(), 30, "the seller to crash its worker at the offer of 340")
    buyer = next(a for a in journals(cluster, run_id) if a.startswith("buyer_"))
    assert unit(cluster, buyer)["state"] in ("running", "waiting")  # waits for the seller's answer
    cluster.worker(concurrency=2, lease_seconds=1.0)
    result = follower.wait(timeout=60)

    assert result.returncode == 0, result
    seller = ["Seller: asking 600 for the bicycle", "Seller: buyer offers 300, I ask 450",
              "Seller: buyer offers 340, I ask 395", "Seller: sold for 395"]
    # Each agent's lines in its order, each once; the two agents run at once, so theirs interleave freely.
    assert [line for line in result.out if line.startswith("Seller")] == seller
    assert [line for line in result.out if line.startswith("Buyer")] == ["Buyer: deal at 395"]
    assert len(result.out) == 5
    assert any("Found checkpoint for agent seller_1_" in line for line in result.err)


ASK = """
# Host

```python
@playbook
async def Shout(text: str) -> str:
    import os
    if os.path.exists({flag!r}):
        raise ValueError("the tool is broken: " + text)
    return text.upper()
```

## Main
### Triggers
- At the beginning

```python
greeter = await CreateAgent("Greeter")
await Say("user", "What's your name?")
name = await Yield("user")
await SendMessage(f"agent {{greeter.id}}", await Shout(name))
await Say("user", await WaitForMessage(f"agent {{greeter.id}}"))
```

# Greeter

## Greet

```python
name = await WaitForMessage("Host")
await SendMessage("Host", f"Hello, {{name}}!")
```
"""


def test_an_agent_asks_the_user_and_the_answer_wakes_it(cluster: Cluster) -> None:
    cluster.worker(concurrency=2, env={"PLAYBOOKS_CLUSTER__MESSAGE_LINGER_S": "0.1"})
    cluster.write("ask.pb", ASK.format(flag=str(cluster.root / "broken.flag")))

    waiting = cluster.pb("run", "ask.pb")
    assert waiting.returncode == 3, waiting
    run_id = waiting.stderr.split("Submitted run ")[1].split()[0]
    assert waiting.out == ["What's your name?"]
    assert cluster.state(run_id) == "waiting"
    host = next(a for a in journals(cluster, run_id) if a.startswith("host_"))
    assert (unit(cluster, host)["state"], unit(cluster, host)["waiting_for"]) == ("waiting", "user")

    answered = cluster.pb("attach", run_id, "--input", "ada")
    assert answered.returncode == 0, answered
    assert answered.out[-1] == "Hello, ADA!"
    assert cluster.state(run_id) == "succeeded"


def test_a_failing_agent_fails_the_run_and_resume_retries_its_call(cluster: Cluster) -> None:
    cluster.worker(concurrency=2, env={"PLAYBOOKS_CLUSTER__MESSAGE_LINGER_S": "0.1"})
    flag = cluster.root / "broken.flag"
    flag.write_text("1")
    cluster.write("ask.pb", ASK.format(flag=str(flag)))

    failed = cluster.pb("run", "ask.pb", "--input", "bob")
    assert failed.returncode == 1, failed
    run_id = failed.stderr.split("Submitted run ")[1].split()[0]
    assert "the tool is broken: bob" in failed.stderr
    assert cluster.state(run_id) == "failed"

    flag.unlink()
    resumed = cluster.pb("run", "ask.pb", "--resume", run_id)
    assert resumed.returncode == 0, resumed
    assert resumed.out[-1] == "Hello, BOB!"
    assert cluster.said(run_id) == ["What's your name?", "Hello, BOB!"]  # nothing said twice


def holders(cluster: Cluster, run_id: str) -> dict[str, int]:
    """agent id -> pid of the worker process executing it now."""
    found = {}
    for agent_id in journals(cluster, run_id):
        lease = cluster.client.get(f"{PREFIX}:{{{run_id}}}:lease:{agent_id}")
        if lease is not None:
            found[agent_id] = int(lease.decode().split(" ")[0].rpartition(":")[2])
    return found


def test_sigterm_hands_a_conversation_off_to_another_worker(cluster: Cluster) -> None:
    first = cluster.worker(concurrency=2)
    follower = cluster.follow("run", pingpong(cluster, rounds=20, delay=0.1))
    run_id = follower.run_id()
    wait_until(lambda: len(cluster.effects("Note")) >= 3, 20, "a few rounds")
    second = cluster.worker(concurrency=2)
    assert first.pid in holders(cluster, run_id).values()

    first.kill(signal.SIGTERM)
    first.process.wait(timeout=15)  # it hands its agents off instead of waiting for the conversation to end
    result = follower.wait(timeout=60)

    assert result.returncode == 0, (result, first.output())
    assert result.out == ["final 20"]
    assert any("continues on another worker" in line for line in result.err)
    assert_each_message_once(cluster, run_id, 20)
    assert second.alive()


def test_cancel_stops_every_agent_of_a_spread_run(cluster: Cluster) -> None:
    cluster.worker(concurrency=2)
    follower = cluster.follow("run", pingpong(cluster, rounds=200, delay=0.05))
    run_id = follower.run_id()
    wait_until(lambda: len(cluster.effects("Note")) >= 2, 20, "a few rounds")

    cancelled = cluster.pb("cancel", run_id)
    result = follower.wait(timeout=30)

    assert cancelled.returncode == 0, cancelled
    assert result.returncode == 1 and "Run cancelled" in result.stderr, result
    wait_until(lambda: not holders(cluster, run_id), 10, "every agent to stop")
    notes = len(cluster.effects("Note"))
    time.sleep(0.5)
    assert len(cluster.effects("Note")) == notes  # nothing runs any more
    assert cluster.state(run_id) == "cancelled"


TWO_ASK = """
# Asker

## Main
### Triggers
- At the beginning

```python
await CreateAgent("Second")
answer = await Yield("user")
await Say("user", f"first got {answer}")
```

# Second

## Ask

```python
answer = await Yield("user")
await Say("user", f"second got {answer}")
```
"""


def test_two_agents_waiting_for_the_user_each_get_their_own_answer(cluster: Cluster) -> None:
    cluster.worker(concurrency=4, env={"PLAYBOOKS_CLUSTER__MESSAGE_LINGER_S": "0.1"})
    cluster.write("two.pb", TWO_ASK)

    result = cluster.pb("run", "two.pb", "--input", "ada", "--input", "grace", timeout=60)

    assert result.returncode == 0, result
    got = sorted(result.out)
    assert got in (["first got ada", "second got grace"], ["first got grace", "second got ada"]), result.out
    run_id = result.stderr.split("Submitted run ")[1].split()[0]
    assert cluster.client.llen(f"{PREFIX}:{{{run_id}}}:inbox") == 0  # every answer consumed, none twice


SINGLETON = """
# Left

## Main
### Triggers
- At the beginning

```python
registry = await Registry.get_or_create()
await SendMessage(f"agent {registry.id}", "left")
```

# Right

## Main
### Triggers
- At the beginning

```python
registry = await Registry.get_or_create()
await SendMessage(f"agent {registry.id}", "right")
```

# Registry

## Collect

```python
names = sorted([await WaitForMessage("*"), await WaitForMessage("*")])
await Say("user", f"registered {names}")
```
"""


def test_agents_asking_for_the_same_agent_at_once_get_one(cluster: Cluster) -> None:
    cluster.worker(concurrency=4)
    cluster.write("singleton.pb", SINGLETON)

    result = cluster.pb("run", "singleton.pb")

    assert result.returncode == 0, result
    assert result.out == ["registered ['left', 'right']"]
    run_id = result.stderr.split("Submitted run ")[1].split()[0]
    units = {m.decode() for m in cluster.client.smembers(f"{PREFIX}:{{{run_id}}}:units")}
    assert sorted(u.split("_")[0] for u in units) == ["left", "registry", "right"]
