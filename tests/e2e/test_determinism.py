"""Replay must meet the calls it recorded: a non-deterministic program is refused, an edited one resumes from
the last checkpoint that still matches, and time/random/uuid/datetime in playbook code replay their values."""

from __future__ import annotations

from e2e_support import Workspace, only_agent, say_lines

TOOLS = """
@playbook
def Work(tag: str) -> str:
    effect("Work", tag)
    crash_point(f"Work {tag}")
    return tag.upper()
"""

READS_FILE = """
## Main

```python
with open("mode.txt", encoding="utf-8") as f:
    mode = f.read().strip()
first = await Work(mode)
await Say("user", f"first {first}")
second = await Work("two")
await Say("user", f"second {second}")
```
"""


def test_call_depending_on_a_changed_file_is_a_non_determinism_error(ws: Workspace) -> None:
    ws.program("nd.pb", "# Reader:AI", READS_FILE, tools=TOOLS)
    ws.write("mode.txt", "alpha\n")
    ws.crash_at("Work two")
    crashed = ws.pb("run", "nd.pb")
    assert crashed.returncode == 137, crashed
    assert crashed.out == ["first ALPHA"]
    agent = only_agent(ws)

    ws.write("mode.txt", "beta\n")  # the program text is unchanged; what it reads is not
    resumed = ws.pb("run", "nd.pb", "--resume")
    assert resumed.returncode == 1, resumed
    assert "Traceback" not in resumed.stderr
    assert resumed.out == []
    error = next(line for line in resumed.err if line.startswith("❌ "))
    assert f"replay diverged at checkpoint {agent}_ckpt_1 (first = await Work(mode))" in error
    assert "tool Work('alpha') at nd.pb:" in error  # what the journal recorded
    assert "tool Work('beta') at nd.pb:" in error  # what the program calls now
    assert ws.effect_counts() == {"Work alpha": 1, "Work two": 1}


EDITABLE = """
## Main

```python
a = await Work("a")
await Say("user", f"got {a}")
b = await Work("b")
await Say("user", f"got {b}")
c = await Work("c")
await Say("user", f"got {c}")
```
"""


def test_edited_program_resumes_from_the_last_checkpoint_that_still_matches(ws: Workspace) -> None:
    path = ws.program("edit.pb", "# Editor:AI", EDITABLE, tools=TOOLS)
    ws.crash_at("Work c")
    crashed = ws.pb("run", "edit.pb")
    assert crashed.returncode == 137, crashed
    assert crashed.out == ["got A", "got B"]
    agent = only_agent(ws)

    # The user edits the program: the second call now differs; the first still matches.
    path.write_text(path.read_text(encoding="utf-8").replace('b = await Work("b")', 'b = await Work("B2")'),
                    encoding="utf-8")
    resumed = ws.pb("run", "edit.pb", "--resume")
    assert resumed.returncode == 0, resumed
    assert "Traceback" not in resumed.stderr
    changed = next(line for line in resumed.err if "changed since this run started" in line)
    assert changed.startswith(f"⚠️  edit.pb changed since this run started: replay diverged at checkpoint "
                              f"{agent}_ckpt_3 (tool Work('b') at edit.pb:")
    assert "now tool Work('B2') at edit.pb:" in changed
    assert (f"   Resuming from {agent}_ckpt_2 (await Say(\"user\", f\"got {{a}}\")), "
            "the last checkpoint that still matches") in resumed.err
    assert resumed.err[-1] == "Execution complete ✅"
    assert resumed.out == ["got B2", "got C"]
    # Work("a") replayed; Work("b")'s record was discarded; Work("c") was in flight at the crash.
    assert ws.effect_counts() == {"Work a": 1, "Work b": 1, "Work B2": 1, "Work c": 2}
    # Numbering goes on after the discarded records: nothing is overwritten.
    assert ws.counters(agent)[-1] > 5


DURABLE_TIME = """
## Main

```python
import datetime
import random
import time
import uuid

t = time.time()
r = random.random()
u = uuid.uuid4()
d = datetime.datetime.now()
await Say("user", f"before t={t!r} r={r!r} u={u} d={d.isoformat()}")
await Work("crash here")
await Say("user", f"after t={t!r} r={r!r} u={u} d={d.isoformat()}")
await Say("user", f"later {time.time() > t}")
```
"""


def test_time_random_uuid_and_datetime_replay_their_recorded_values(ws: Workspace) -> None:
    ws.program("clock.pb", "# Clock:AI", DURABLE_TIME, tools=TOOLS)
    ws.crash_at("Work crash here")
    crashed = ws.pb("run", "clock.pb")
    assert crashed.returncode == 137, crashed
    assert len(crashed.out) == 1 and crashed.out[0].startswith("before t="), crashed
    recorded = crashed.out[0].removeprefix("before ")

    resumed = ws.pb("run", "clock.pb", "--resume")
    assert resumed.returncode == 0, resumed
    assert resumed.out == [f"after {recorded}", "later True"]
    assert say_lines(crashed, resumed) == [f"before {recorded}", f"after {recorded}", "later True"]
    assert ws.effect_counts() == {"Work crash here": 2}
