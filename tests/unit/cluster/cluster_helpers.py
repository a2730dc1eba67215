"""Helpers of the cluster unit tests (a module with its own name: `conftest` is ambiguous across test folders)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from playbooks_worker.cluster.store import RedisRunStore
from playbooks_worker.runs import RunRecord

KEY = b"unit-test-key-0123456789abcdef"
LEASE_S = 3.0

Enqueued = list[str]
StoreFactory = Callable[..., RedisRunStore]


def new_run(run_id: str = "r1", state: str = "queued") -> RunRecord:
    return RunRecord(run_id=run_id, program="/programs/x.pb", program_digest="d" * 16, created_at=time.time(),
                     state=state, program_display="x.pb")


def record(run_id: str, counter: int, *, kind: str = "tool", agent: str | None = None) -> dict[str, Any]:
    """A journal record of agent `agent_1_{run_id}` (the agent id ends with the run id, as the runtime's do)."""
    agent_id = agent or f"agent_1_{run_id}"
    return {
        "checkpoint_id": f"{agent_id}_ckpt_{counter}",
        "metadata": {"statement": f"x = await Step{counter}()", "counter": counter, "timestamp": 1.0 * counter,
                     "execution_id": agent_id, "call_path": f"1.{counter}", "kind": kind, "name": f"Step{counter}",
                     "digest": "d" * 16, "run_id": run_id, "seq": counter, "file": "x.pb", "line": counter,
                     "attempt": 1},
        "result": counter,
        "error": None,
        "state_writes": {},
    }


# Programs under test import this module: their tools record here what ran, and call a test's hook.
EFFECTS: list[tuple[int, str]] = []
HOOKS: dict[int, Callable[[], None]] = {}
WORKER = ["nobody"]  # which stand-in worker executes now

STEPS_PROGRAM = """\
# Stepper:AI
Runs a tool per step and says each result; the tools report to the test through cluster_helpers.

```python
import cluster_helpers


@playbook
async def Work(n: int) -> int:
    cluster_helpers.EFFECTS.append((n, cluster_helpers.WORKER[0]))
    hook = cluster_helpers.HOOKS.pop(n, None)
    if hook is not None:
        hook()
    return n * 10
```

## Main

```python
for n in range(1, 5):
    value = await Work(n)
    await Say("user", f"step {n}: {value}")
await Say("user", "all done")
```
"""
