"""Spread runs: each agent of a multi-agent program is its own task, on any worker (DESIGN §5, issue 5).

Two agents play ping-pong through their Redis mailbox streams while workers are SIGKILLed at random; every
message is delivered exactly once and the final counter is right. An agent waiting for a message parks (frees
its worker) and the next message wakes it.
"""

from __future__ import annotations

import json

from cluster_support import Cluster

ROUNDS = 50

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


def test_agents_of_a_run_are_tasks_of_their_own_and_talk_through_mailboxes(cluster: Cluster) -> None:
    cluster.worker(concurrency=4)
    result = cluster.pb("run", pingpong(cluster, rounds=5), "--json")
    assert result.returncode == 0, result
    print(result)
