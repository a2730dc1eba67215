"""`--from-checkpoint` forks a run; checkpoints that were tampered with, cut short or copied are refused."""

from __future__ import annotations

import json
import shutil

import pytest
from e2e_support import Workspace, only_agent

TOOLS = """
@playbook
def Work(i: int) -> int:
    effect("Work", i)
    crash_point(f"Work {i}")
    return i * 10
"""

BODY = """
## Main

```python
await Say("user", "start")
for i in range(1, 5):
    value = await Work(i)
    await Say("user", f"Item {i} -> {value}")
await Say("user", "done")
```
"""


def test_from_checkpoint_starts_a_new_run_and_leaves_the_old_one_intact(ws: Workspace) -> None:
    ws.program("loop.pb", "# Looper:AI", BODY, tools=TOOLS)
    first = ws.pb("run", "loop.pb")
    assert first.returncode == 0, first
    old_agent = only_agent(ws)
    old_run = old_agent.rsplit("_", 1)[1]
    old_files = {p.name: p.read_bytes() for p in ws.checkpoint_files()}
    assert len(old_files) == 10  # Say, 4 x (Work, Say), Say

    # Checkpoints: 1 Say start, 2 Work(1), 3 Say, 4 Work(2), 5 Say "Item 2", 6 Work(3)…
    fork_point = f"{old_agent}_ckpt_5"
    forked = ws.pb("run", "loop.pb", "--from-checkpoint", fork_point)
    assert forked.returncode == 0, forked
    assert forked.out == ["Item 3 -> 30", "Item 4 -> 40", "done"]
    runs = json.loads(ws.pb("runs", "--json").stdout)
    assert len(runs) == 2
    new = next(r for r in runs if r["run_id"] != old_run)
    old = next(r for r in runs if r["run_id"] == old_run)
    assert new["parent"] == {"run_id": old_run, "checkpoint_id": fork_point}
    assert new["state"] == old["state"] == "succeeded"
    new_agent = new["agents"][0]["agent_id"]
    assert forked.err[0] == "Loading playbooks from: ['loop.pb']"
    assert forked.err[1] == (f"🔀 Forked run {new['run_id']} from checkpoint {fork_point} "
                             f"(run {old_run} keeps its later checkpoints)")
    assert f"   Checkpoint: {new_agent}_ckpt_5" in forked.err
    assert forked.err[-1] == "Execution complete ✅"

    # The old run's checkpoints, including those after the fork point, are all still there, unchanged.
    after = {p.name: p.read_bytes() for p in ws.checkpoint_files() if p.parent.name == old_agent}
    assert after == old_files
    assert ws.counters(new_agent) == list(range(1, 11))
    # Tools before the fork point ran once; after it they ran again in the new run.
    assert ws.effect_counts() == {"Work 1": 1, "Work 2": 1, "Work 3": 2, "Work 4": 2}


def _flip_byte(path: str) -> None:
    from pathlib import Path

    data = bytearray(Path(path).read_bytes())
    data[-5] ^= 0x01
    Path(path).write_bytes(bytes(data))


def _truncate(path: str, keep: int | None = None) -> None:
    from pathlib import Path

    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2 if keep is None else keep])


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "truncated to its header", "copied over another id"])
def test_damaged_checkpoint_is_refused_without_traceback(ws: Workspace, damage: str) -> None:
    ws.program("loop.pb", "# Looper:AI", BODY, tools=TOOLS)
    ws.crash_at("Work 3")
    crashed = ws.pb("run", "loop.pb")
    assert crashed.returncode == 137, crashed
    agent = only_agent(ws)
    assert ws.counters(agent) == [1, 2, 3, 4, 5]
    target = ws.root / ".checkpoints" / agent / f"{agent}_ckpt_4.pkl"
    if damage == "flipped byte":
        _flip_byte(str(target))
    elif damage == "truncated":
        _truncate(str(target))
    elif damage == "truncated to its header":
        _truncate(str(target), keep=20)
    else:
        shutil.copyfile(target.with_name(f"{agent}_ckpt_2.pkl"), target)

    resumed = ws.pb("run", "loop.pb", "--resume")
    assert resumed.returncode != 0, resumed
    assert resumed.returncode not in (137, 130), resumed
    assert "Traceback" not in resumed.stderr
    assert resumed.out == []  # nothing ran
    message = [line for line in resumed.err if line.startswith("❌ ")]
    assert len(message) == 1, resumed
    assert f"checkpoint {agent}_ckpt_4" in message[0]
    expected = {"flipped byte": "signature mismatch", "truncated": "signature mismatch",
                "truncated to its header": "is truncated",
                "copied over another id": "copied from another checkpoint id"}[damage]
    assert expected in message[0]
    assert ws.effect_counts() == {"Work 1": 1, "Work 2": 1, "Work 3": 1}
