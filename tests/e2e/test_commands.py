"""The looking and cleaning commands on real runs: runs, status, checkpoints, inspect, clear, check."""

from __future__ import annotations

import json

import pytest
from e2e_support import Workspace, agent_dirs, only_agent

TOOLS = """
@playbook
def Price(item: str) -> float:
    effect("Price", item)
    crash_point(f"Price {item}")
    return {"apple": 1.5, "pear": 2.25, "plum": 0.75}[item]
"""

BODY = """
## Main

```python
basket = ["apple", "pear", "plum"]
total = 0.0
for item in basket:
    price = await Price(item)
    total += price
    self.state.last_item = item
await Say("user", f"total {total}")
```
"""


@pytest.fixture
def crashed(ws: Workspace) -> tuple[Workspace, str, str]:
    """A run that crashed in Price("plum"): (workspace, run id, agent id)."""
    ws.program("shop.pb", "# Shop:AI", BODY, tools=TOOLS)
    ws.crash_at("Price plum")
    result = ws.pb("run", "shop.pb")
    assert result.returncode == 137, result
    agent = only_agent(ws)
    return ws, agent.rsplit("_", 1)[1], agent


def test_runs_status_and_checkpoints_as_json(crashed: tuple[Workspace, str, str]) -> None:
    ws, run_id, agent = crashed
    runs = json.loads(ws.pb("runs", "--json").stdout)
    assert [(r["run_id"], r["state"], r["attempts"]) for r in runs] == [(run_id, "interrupted", 1)]
    assert runs[0]["program"] == str(ws.root / "shop.pb")
    assert runs[0]["agents"] == [{"agent_id": agent, "klass": "Shop"}]

    status = ws.pb("status", run_id, "--json")
    assert status.returncode == 0, status
    info = json.loads(status.stdout)
    assert info["run_id"] == run_id and info["state"] == "interrupted"
    assert info["agents"] == [{"agent_id": agent, "klass": "Shop", "checkpoints": 2,
                               "last_checkpoint": f"{agent}_ckpt_2"}]
    assert len(info["attempt_log"]) == 1

    rows = json.loads(ws.pb("checkpoints", run_id, "--json").stdout)
    assert [(r["checkpoint_id"], r["kind"], r["name"], r["statement"]) for r in rows] == [
        (f"{agent}_ckpt_1", "tool", "Price", "price = await Price(item)"),
        (f"{agent}_ckpt_2", "tool", "Price", "price = await Price(item)"),
    ]
    assert all(r["replayable"] and not r["failed"] for r in rows)
    assert json.loads(ws.pb("checkpoints", agent, "--json").stdout) == rows

    resumed = ws.pb("run", "shop.pb", "--resume")
    assert resumed.returncode == 0, resumed
    assert resumed.out == ["total 4.5"]
    info = json.loads(ws.pb("status", run_id, "--json").stdout)
    assert info["state"] == "succeeded"
    assert [a["outcome"] for a in info["attempt_log"]] == [None, "succeeded"]
    assert info["agents"][0]["checkpoints"] == 4
    assert ws.effect_counts() == {"Price apple": 1, "Price pear": 1, "Price plum": 2}


def test_inspect_shows_statement_value_and_variables(crashed: tuple[Workspace, str, str]) -> None:
    ws, _, agent = crashed
    shown = ws.pb("inspect", f"{agent}_ckpt_2")
    assert shown.returncode == 0, shown
    lines = shown.out
    assert lines[0] == f"Checkpoint   {agent}_ckpt_2  (#2, call path 1.2)"
    assert any(line.startswith("Statement    price = await Price(item)   (shop.pb:") for line in lines)
    assert "Value        2.25" in lines
    assert "State write  last_item = 'apple'" not in lines  # written by Main, not inside the tool
    assert "Variables as of this checkpoint:" in lines
    assert "    total = 3.75" in lines  # 1.5 + 2.25, as Main held it after this checkpoint
    assert "    basket = ['apple', 'pear', 'plum']" in lines
    assert "    last_item = 'pear'" in lines  # agent state, rebuilt by replay

    as_json = json.loads(ws.pb("inspect", f"{agent}_ckpt_1", "--json").stdout)
    assert as_json["checkpoint_id"] == f"{agent}_ckpt_1"
    assert as_json["metadata"]["statement"] == "price = await Price(item)"
    assert as_json["metadata"]["call"] == "Price('apple')"
    assert as_json["result"] == "1.5"
    (frame,) = as_json["frames"]
    assert frame["playbook"] == "Main"
    assert frame["variables"]["total"] == "1.5"
    assert frame["variables"]["item"] == "'pear'"  # stopped at the next call, Price('pear'), not yet recorded
    assert as_json["state"] == {agent: {"last_item": "'apple'"}}

    missing = ws.pb("inspect", f"{agent}_ckpt_99")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr, missing
    assert f"checkpoint {agent}_ckpt_99 not found" in missing.stderr


def test_clear_one_run_and_clear_all(ws: Workspace) -> None:
    ws.program("shop.pb", "# Shop:AI", BODY, tools=TOOLS)
    for _ in range(2):
        assert ws.pb("run", "shop.pb").returncode == 0
    runs = [r["run_id"] for r in json.loads(ws.pb("runs", "--json").stdout)]
    assert len(runs) == 2 and len(agent_dirs(ws)) == 2

    cleared = ws.pb("clear", runs[0])
    assert cleared.returncode == 0, cleared
    assert cleared.err == [f"Cleared run {runs[0]}"]
    assert agent_dirs(ws) == [f"shop_1_{runs[1]}"]
    assert [r["run_id"] for r in json.loads(ws.pb("runs", "--json").stdout)] == [runs[1]]
    unknown = ws.pb("clear", runs[0])
    assert unknown.returncode == 2 and f"no run '{runs[0]}'" in unknown.stderr, unknown

    everything = ws.pb("clear", "--all", "--yes")
    assert everything.returncode == 0, everything
    assert agent_dirs(ws) == []
    assert json.loads(ws.pb("runs", "--json").stdout) == []
    nothing = ws.pb("clear")
    assert nothing.returncode == 2 and nothing.err[0] == "❌ say which runs to clear, or --all", nothing


def test_check_lists_playbooks_and_refuses_a_broken_program(ws: Workspace) -> None:
    ws.program("shop.pb", "# Shop:AI", BODY, tools=TOOLS)
    text = ws.pb("check", "shop.pb")
    assert text.returncode == 0, text
    assert text.out[0] == "✅ shop.pb"
    assert text.out[1] == "  Shop (AI)"
    assert any(line.startswith("    Price(item)  python  line ") for line in text.out)
    assert any(line.startswith("    Main()  code  line ") and line.endswith("← entry") for line in text.out)

    report = json.loads(ws.pb("check", "shop.pb", "--json").stdout)
    assert [(r["program"], r["ok"]) for r in report] == [("shop.pb", True)]
    playbooks = {p["name"]: p for p in report[0]["agents"][0]["playbooks"]}
    assert playbooks["Main"]["entry"] and playbooks["Main"]["kind"] == "code"
    assert playbooks["Price"]["params"] == ["item"] and not playbooks["Price"]["entry"]
    assert not (ws.root / ".checkpoints").exists()  # check runs nothing

    ws.write("broken.pb", "# Broken:AI\n" + BODY.replace("await Price(item)", "await Prise(item)"))
    broken = ws.pb("check", "shop.pb", "broken.pb")
    assert broken.returncode == 2, broken
    assert "Traceback" not in broken.stderr
    assert broken.out[0] == "✅ shop.pb"
    assert any(line.startswith("❌ broken.pb:") and "'Prise' is not a playbook" in line for line in broken.err)
    as_json = json.loads(ws.pb("check", "broken.pb", "--json").stdout)
    assert as_json[0]["ok"] is False and as_json[0]["error"].startswith("broken.pb:")
