"""Several agents in one local run: messages survive crashes exactly once (the journal is the mailbox)."""

from __future__ import annotations

import random
import shutil

from e2e_support import EXAMPLES, SECRET_KEY, Workspace

from playbooks_worker.checkpoints import FilesystemCheckpointProvider

PINGPONG = """
# Pinger

```python
import os

@playbook
async def Note(n: int) -> None:
    with open("effects.log", "a") as f:
        f.write(f"ping {n}\\n")
    if os.path.exists("crash.flag") and open("crash.flag").read().strip() == str(n):
        os.remove("crash.flag")
        os._exit(137)
```

## Main
### Triggers
- At the beginning

```python
ponger = await CreateAgent("Ponger")
count = 0
for n in range(50):
    await SendMessage(f"agent {ponger.id}", str(count))
    count = int(await WaitForMessage(f"agent {ponger.id}"))
    await Note(count)
await Say("user", f"final {count}")
await SendMessage(f"agent {ponger.id}", "stop")
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


def _journals(ws: Workspace) -> dict[str, list[dict]]:
    provider = FilesystemCheckpointProvider(ws.root / ".checkpoints", secret_key=SECRET_KEY.encode())
    return {agent: provider.read_journal_sync(agent) for agent in provider.agents_sync()}


def test_ping_pong_survives_crashes_at_random_points_with_every_message_once(ws: Workspace) -> None:
    ws.write("pingpong.pb", PINGPONG)
    points = sorted(random.Random(7).sample(range(2, 49), 4))
    outputs = []
    for n, point in enumerate(points):
        ws.crash_at(str(point))
        result = ws.pb("run", "pingpong.pb", *(["--resume"] if n else []))
        assert result.returncode == 137, result
        outputs.append(result.stdout)
    final = ws.pb("run", "pingpong.pb", "--resume")
    assert final.returncode == 0, final
    assert "".join(outputs) + final.stdout == "final 50\n"

    notes = ws.effects()
    assert sorted(set(notes), key=lambda s: int(s.split()[1])) == [f"ping {n}" for n in range(1, 51)]
    assert len(notes) == 50 + len(points)  # each crash point's note ran twice (in flight), nothing else

    journals = _journals(ws)
    pinger = next(records for agent, records in journals.items() if agent.startswith("pinger_"))
    received = [r["result"] for r in pinger if r["metadata"]["kind"] == "receive"]
    assert [int(m["text"]) for m in received] == list(range(1, 51))  # in order, none lost, none twice
    ids = [m["id"] for records in journals.values() for r in records if r["metadata"]["kind"] == "receive"
           for m in [r["result"]]]
    assert len(ids) == len(set(ids)) == 101  # 50 replies + 50 pings + stop, each taken once


def test_negotiation_resumes_while_the_buyer_waits_for_the_seller(ws: Workspace) -> None:
    shutil.copy(EXAMPLES / "negotiation.pb", ws.root / "negotiation.pb")
    env = {**ws.env, "NEGOTIATION_CRASH_AT": "340"}
    crashed = ws.pb("run", "negotiation.pb", env=env)
    assert crashed.returncode == 137, crashed
    resumed = ws.pb("run", "negotiation.pb", "--resume")
    assert resumed.returncode == 0, resumed
    assert crashed.out + resumed.out == [
        "Seller: asking 600 for the bicycle",
        "Seller: buyer offers 300, I ask 450",
        "Seller: buyer offers 340, I ask 395",
        "Buyer: deal at 395",
        "Seller: sold for 395",
    ]
    assert sum("Found checkpoint for agent" in line for line in resumed.err) == 2


def test_snoop_shows_agent_messages_on_stderr(ws: Workspace) -> None:
    shutil.copy(EXAMPLES / "negotiation.pb", ws.root / "negotiation.pb")
    result = ws.pb("run", "negotiation.pb", "--snoop")
    assert result.returncode == 0, result
    assert any(line.startswith("📨 seller_1_") and line.endswith(": 600") for line in result.err)
    assert not any("📨" in line for line in result.out)


HUMAN = """
# Boss:Human
The person at the terminal.

# Clerk

## Main
### Triggers
- At the beginning

```python
await Say("Boss", "Which report?")
which = await WaitForMessage("Boss")
await Say("agent Boss", f"Here is the {which} report")
await Say("user", "done")
```
"""


def test_a_human_agent_is_talked_to_like_the_user(ws: Workspace) -> None:
    ws.write("human.pb", HUMAN)

    asked = ws.pb("run", "human.pb")
    assert asked.returncode == 3, asked  # waits for the Boss's answer: input, like Yield("user")
    assert asked.out == ["Which report?"]
    answered = ws.pb("run", "human.pb", "--resume", "--input", "sales")
    assert answered.returncode == 0, answered
    assert answered.out == ["Here is the sales report", "done"]
