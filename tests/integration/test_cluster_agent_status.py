"""`status` and `--snoop` for spread runs: each agent's state, worker and what it waits for; messages shown.

The Opener creates a Waiter and then holds its worker in a tool until the test creates a gate file; the Waiter
waits for the Opener's message meanwhile, parked (no worker). The test looks while both are so, then opens
the gate: the Opener sends, the Waiter answers, and both finish.
"""

from __future__ import annotations

import json
import re
import socket

from cluster_support import Cluster, wait_until

GATED = """
# Opener

```python
import os, time

@playbook
async def AwaitGate() -> str:
    while not os.path.exists({gate!r}):
        time.sleep(0.02)
    return "open"
```

## Main
### Triggers
- At the beginning

```python
waiter = await CreateAgent("Waiter", opener=self.id)
word = await AwaitGate()
await SendMessage(f"agent {{waiter.id}}", word)
reply = await WaitForMessage(f"agent {{waiter.id}}")
await Say("user", f"opener got {{reply}}")
```

# Waiter

## Serve

```python
word = await WaitForMessage(f"agent {{self.state.opener}}")
await Say("user", f"waiter got {{word}}")
await SendMessage(f"agent {{self.state.opener}}", word.upper())
```
"""

FAST_PARK = {"PLAYBOOKS_CLUSTER__MESSAGE_LINGER_S": "0.2"}  # a waiting agent frees its worker after 0.2 s


def gated(cluster: Cluster) -> str:
    cluster.write("gated.pb", GATED.format(gate=str(cluster.root / "gate")))
    return "gated.pb"


def submitted(stderr: str) -> str:
    match = re.search(r"Submitted run (\w+)", stderr)
    assert match, stderr
    return match.group(1)


def unit_state(cluster: Cluster, agent_id: str) -> str | None:
    run_id = agent_id.rsplit("_", 1)[1]
    state = cluster.client.hget(cluster.key(run_id, f"unit:{agent_id}"), "state")
    return state.decode() if state is not None else None


def test_status_shows_each_agent_of_a_spread_run_where_it_runs_and_what_it_waits_for(cluster: Cluster) -> None:
    worker = cluster.worker(concurrency=2, env=FAST_PARK)
    follower = cluster.follow("run", gated(cluster))
    run_id = follower.run_id()
    opener, waiter = f"opener_1_{run_id}", f"waiter_2_{run_id}"
    wait_until(lambda: unit_state(cluster, waiter) == "waiting", 15, f"{waiter} to park")

    blocked = cluster.status(run_id)

    assert (blocked["state"], blocked["spread"], blocked["worker"]) == ("running", True, None)
    agents = {a["agent_id"]: a for a in blocked["agents"]}
    assert list(agents) == [opener, waiter]
    here = f"{socket.gethostname()}:{worker.pid}"
    assert {k: agents[opener][k] for k in ("klass", "state", "worker", "waiting_for", "failovers", "error")} == {
        "klass": "Opener", "state": "running", "worker": here, "waiting_for": None, "failovers": 0, "error": None}
    assert {k: agents[waiter][k] for k in ("klass", "state", "worker", "waiting_for", "failovers", "error")} == {
        "klass": "Waiter", "state": "waiting", "worker": None, "waiting_for": f"agent {opener}", "failovers": 0,
        "error": None}
    assert agents[opener]["checkpoints"] == 1  # CreateAgent; AwaitGate has not returned
    assert agents[waiter]["checkpoints"] == 0

    table = cluster.pb("status", run_id)
    assert table.returncode == 0, table
    lines = [line for line in table.out if line.startswith("Agent ")]
    assert lines == [
        f"Agent     {opener} (Opener): running on {here}; 1 checkpoints, last {opener}_ckpt_1",
        f"Agent     {waiter} (Waiter): waiting for message from agent {opener}; 0 checkpoints, last None",
    ], table

    (cluster.root / "gate").touch()
    done = follower.wait(20)
    assert done.returncode == 0, done
    assert done.out == ["waiter got open", "opener got OPEN"]

    finished = cluster.status(run_id)
    assert finished["state"] == "succeeded"
    assert [(a["agent_id"], a["state"], a["worker"], a["waiting_for"]) for a in finished["agents"]] == [
        (opener, "done", None, None), (waiter, "done", None, None)]
    table = cluster.pb("status", run_id)
    assert f"Agent     {waiter} (Waiter): done; 3 checkpoints, last {waiter}_ckpt_3" in table.out, table


def test_snoop_shows_the_messages_between_agents_in_cluster_mode(cluster: Cluster) -> None:
    cluster.worker(concurrency=2, env=FAST_PARK)
    (cluster.root / "gate").touch()
    program = gated(cluster)

    snooped = cluster.pb("run", program, "--snoop")
    plain = cluster.pb("run", program)

    assert snooped.returncode == 0, snooped
    run_id = submitted(snooped.stderr)
    opener, waiter = f"opener_1_{run_id}", f"waiter_2_{run_id}"
    messages = [f"📨 {opener} → {waiter}: open", f"📨 {waiter} → {opener}: OPEN"]
    assert [line for line in snooped.err if line.startswith("📨")] == messages, snooped
    assert snooped.out == ["waiter got open", "opener got OPEN"]
    assert plain.returncode == 0, plain
    assert "📨" not in plain.stderr and plain.out == snooped.out

    attached = cluster.pb("attach", run_id, "--snoop")
    assert attached.returncode == 0, attached
    assert [line for line in attached.err if line.startswith("📨")] == messages, attached
    assert "📨" not in cluster.pb("attach", run_id).stderr

    as_json = cluster.pb("attach", run_id, "--snoop", "--json")
    assert as_json.returncode == 0, as_json
    events = [e for e in map(json.loads, as_json.out) if e["type"] == "message"]
    assert [(e["from"], e["to"], e["text"]) for e in events] == [(opener, waiter, "open"), (waiter, opener, "OPEN")]
    assert "📨" not in as_json.stderr
