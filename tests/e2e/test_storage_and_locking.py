"""Checkpoint size limit, retention of finished runs, and one process per run."""

from __future__ import annotations

import json

from e2e_support import Workspace, agent_dirs, only_agent

BLOB = """
## Main

```python
small = await Blob(10)
await Say("user", f"small {len(small)}")
big = await Blob(5000)
await Say("user", f"big {len(big)}")
```
"""

BLOB_TOOLS = """
@playbook
def Blob(n: int) -> str:
    effect("Blob", n)
    return "x" * n
"""


def test_checkpoint_over_the_size_limit_fails_naming_statement_and_limit(ws: Workspace) -> None:
    ws.config("[durability]\nenabled = true\nmax_checkpoint_size_mb = 0.001\n")
    ws.program("big.pb", "# Big:AI", BLOB, tools=BLOB_TOOLS)
    result = ws.pb("run", "big.pb")
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert result.out == ["small 10"]
    agent = only_agent(ws)
    (error,) = [line for line in result.err if line.startswith("❌ ")]
    assert error.startswith(f"❌ checkpoint {agent}_ckpt_3 is ")
    assert "over the limit of 0.001 MB, for `big = await Blob(5000)`" in error
    assert "durability.max_checkpoint_size_mb" in error
    assert ws.counters(agent) == [1, 2]  # nothing over the limit was written


COUNT = """
## Main

```python
await Say("user", "counting")
n = await Bump()
await Say("user", f"run {n}")
```
"""

COUNT_TOOLS = """
@playbook
def Bump() -> int:
    effect("Bump")
    crash_point("Bump")
    with open("effects.log", encoding="utf-8") as log:
        return len(log.read().splitlines())
"""


def test_keep_last_n_prunes_finished_runs_but_never_an_unfinished_one(ws: Workspace) -> None:
    ws.config("[durability]\nenabled = true\nkeep_last_n = 2\n")
    ws.program("count.pb", "# Counter:AI", COUNT, tools=COUNT_TOOLS)
    ws.crash_at("Bump")
    assert ws.pb("run", "count.pb").returncode == 137
    (unfinished,) = agent_dirs(ws)

    for i in range(2, 6):
        done = ws.pb("run", "count.pb")
        assert done.returncode == 0, done
        assert done.out == ["counting", f"run {i}"]
    runs = json.loads(ws.pb("runs", "--json").stdout)
    finished = [r for r in runs if r["state"] == "succeeded"]
    assert len(finished) == 2  # the two newest of the four completed runs
    kept = {a["agent_id"] for r in finished for a in r["agents"]}
    assert set(agent_dirs(ws)) == kept | {unfinished}
    assert [r["state"] for r in runs if r["run_id"] == unfinished.rsplit("_", 1)[1]] == ["interrupted"]

    resumed = ws.pb("run", "count.pb", "--resume", unfinished.rsplit("_", 1)[1])
    assert resumed.returncode == 0, resumed
    assert resumed.out == ["run 6"]


WAITS = """
## Main

```python
await Say("user", "started")
await Hold()
await Say("user", "released")
```
"""

WAITS_TOOLS = """
import time as _time


@playbook
def Hold() -> None:
    effect("Hold")
    while not os.path.exists("release.flag"):
        _time.sleep(0.02)
"""


def test_a_run_executing_in_one_process_cannot_be_resumed_by_another(ws: Workspace) -> None:
    ws.program("hold.pb", "# Holder:AI", WAITS, tools=WAITS_TOOLS)
    first = ws.start("run", "hold.pb")
    try:
        ws.wait_until(lambda: ws.effects() == ["Hold"], what="the first run to be executing")
        run_id = only_agent(ws).rsplit("_", 1)[1]
        for args in (("--resume", run_id), ("--resume",)):
            second = ws.pb("run", "hold.pb", *args)
            assert second.returncode == 2, second
            assert "Traceback" not in second.stderr
            assert second.out == []
            (error,) = [line for line in second.err if line.startswith("❌ ")]
            assert error.startswith(f"❌ run {run_id} is already being executed by pid {first.pid} on "), error
        (ws.root / "release.flag").touch()
        out, err = first.communicate(timeout=15)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, (out, err)
    assert out.splitlines() == ["started", "released"]
    assert ws.effects() == ["Hold"]
