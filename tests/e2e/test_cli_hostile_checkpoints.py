"""Hostile checkpoint files, through the real `playbooks` command (test_fork_and_integrity.py covers a flipped
byte, truncation and a copy within one run; tests/unit/checkpoints the same for every store):

- a valid checkpoint of one run copied into another run's agent directory under the name that run's next
  checkpoint would have: a replay that would skip a tool, refused; removing it lets the run resume;
- a checkpoint file whose pickle would run code (it creates a directory): unsigned, with a genuine signature
  header over a swapped payload, or signed and then changed by one byte — `run --resume`, `inspect` and
  `checkpoints` all refuse it, and the directory never appears;
- a result over `max_checkpoint_size_mb`: the run stops naming the statement and the limit, writes nothing
  for it, and resumes once the limit is raised.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import cloudpickle
import pytest
from e2e_support import SECRET_KEY, Result, Workspace, agent_dirs

from playbooks_worker.checkpoints.signing import HEADER_SIZE, Signer

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


def two_runs(ws: Workspace) -> tuple[str, str]:
    """Run A completes; run B crashes inside Work(3) with checkpoints 1-5. Returns (agent A, agent B)."""
    ws.program("loop.pb", "# Looper:AI", BODY, tools=TOOLS)
    first = ws.pb("run", "loop.pb")
    assert first.returncode == 0, first
    [agent_a] = agent_dirs(ws)
    ws.crash_at("Work 3")
    crashed = ws.pb("run", "loop.pb")
    assert crashed.returncode == 137, crashed
    [agent_b] = [a for a in agent_dirs(ws) if a != agent_a]
    assert ws.counters(agent_b) == [1, 2, 3, 4, 5]
    return agent_a, agent_b


def refused(result: Result, ckpt_id: str, why: str) -> None:
    assert result.returncode not in (0, 130, 137), result
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.err if line.startswith("❌ ")]
    assert len(errors) == 1, result
    assert f"checkpoint {ckpt_id}" in errors[0] and why in errors[0], result


def test_a_checkpoint_replayed_from_another_run_under_a_correct_looking_name_is_refused(ws: Workspace) -> None:
    agent_a, agent_b = two_runs(ws)
    # A's checkpoint 6 records Work(3) -> 30: the same call, call path and arguments B was running when it
    # crashed. Accepted, it would let B skip Work(3).
    planted = ws.root / ".checkpoints" / agent_b / f"{agent_b}_ckpt_6.pkl"
    shutil.copyfile(ws.root / ".checkpoints" / agent_a / f"{agent_a}_ckpt_6.pkl", planted)
    assert ws.counters(agent_b) == [1, 2, 3, 4, 5, 6]

    resumed = ws.pb("run", "loop.pb", "--resume")
    refused(resumed, f"{agent_b}_ckpt_6", "copied from another checkpoint id")
    assert resumed.out == []
    inspected = ws.pb("inspect", f"{agent_b}_ckpt_6")
    refused(inspected, f"{agent_b}_ckpt_6", "copied from another checkpoint id")
    assert ws.effect_counts() == {"Work 1": 2, "Work 2": 2, "Work 3": 2, "Work 4": 1}  # A ran all; B to Work 3

    planted.unlink()
    again = ws.pb("run", "loop.pb", "--resume")
    assert again.returncode == 0, again
    assert again.out == ["Item 3 -> 30", "Item 4 -> 40", "done"]
    assert ws.effect_counts() == {"Work 1": 2, "Work 2": 2, "Work 3": 3, "Work 4": 2}  # Work 3 really ran


class Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.marker,))  # pickled as `posix.mkdir`: loads in any process


@pytest.mark.parametrize("how", ["unsigned pickle", "genuine header, payload swapped", "signed, one byte changed"])
def test_a_checkpoint_that_would_run_code_is_never_unpickled(ws: Workspace, how: str) -> None:
    _, agent_b = two_runs(ws)
    marker = ws.root / "PWNED"
    ckpt_id = f"{agent_b}_ckpt_5"
    path = ws.root / ".checkpoints" / agent_b / f"{ckpt_id}.pkl"
    record = {"checkpoint_id": ckpt_id, "metadata": {}, "result": Exploit(marker), "error": None,
              "state_writes": {}}
    payload = cloudpickle.dumps(record, protocol=5)
    if how == "unsigned pickle":
        blob = pickle.dumps(record)
    elif how == "genuine header, payload swapped":
        blob = path.read_bytes()[:HEADER_SIZE] + payload
    else:
        sealed = bytearray(Signer(SECRET_KEY.encode()).seal(ckpt_id, payload))
        sealed[-2] ^= 0x01
        blob = bytes(sealed)
    path.write_bytes(blob)

    why = "not a playbooks-worker checkpoint" if how == "unsigned pickle" else "signature mismatch"
    refused(ws.pb("run", "loop.pb", "--resume"), ckpt_id, why)
    refused(ws.pb("inspect", ckpt_id), ckpt_id, why)
    refused(ws.pb("checkpoints", agent_b), ckpt_id, why)
    assert not marker.exists()
    # The control: the same payload, loaded, does run code (so the refusals above are what stopped it).
    cloudpickle.loads(payload)
    assert marker.is_dir()


def test_a_result_over_the_size_limit_stops_the_run_and_is_not_written(ws: Workspace) -> None:
    ws.config("[durability]\nenabled = true\nmax_checkpoint_size_mb = 0.01\n")
    ws.program("big.pb", "# Hoarder:AI", """
        ## Main

        ```python
        await Say("user", "start")
        small = await Big(10)
        big = await Big(50000)
        await Say("user", f"got {len(big)}")
        ```
        """, tools="""
        @playbook
        async def Big(n: int) -> str:
            effect("Big", n)
            return "x" * n
        """)
    first = ws.pb("run", "big.pb")
    assert first.returncode == 1, first
    assert first.out == ["start"]
    [agent] = agent_dirs(ws)
    assert first.err[-1] == (
        f"❌ checkpoint {agent}_ckpt_3 is 0.0481 MB, over the limit of 0.01 MB, for `big = await Big(50000)`. "
        "Return a smaller value (save big data elsewhere and return a reference to it), or raise "
        "durability.max_checkpoint_size_mb in playbooks.toml")
    assert "Traceback" not in first.stderr
    assert ws.counters(agent) == [1, 2]

    again = ws.pb("run", "big.pb", "--resume", env={"PLAYBOOKS_DURABILITY__MAX_CHECKPOINT_SIZE_MB": "1"})
    assert again.returncode == 0, again
    assert again.out == ["got 50000"]
    assert ws.effect_counts() == {"Big 10": 1, "Big 50000": 2}
