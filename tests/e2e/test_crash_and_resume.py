"""Real crashes, then `playbooks run X.pb --resume`: the guide's flow, at depth, after input, inside gather,
after Ctrl+C and after an unhandled exception. Each asserts that completed tools ran once, the in-flight one at
most twice, and that no line the program said was said twice across the crashed run and its resume."""

from __future__ import annotations

import signal

from e2e_support import Workspace, only_agent, resume_header, say_lines

BATCH_TOOLS = """
@playbook
async def FetchItems() -> list:
    effect("FetchItems")
    return [1, 2, 3, 4]


@playbook
async def Work(i: int) -> int:
    effect("Work", i)
    crash_point(f"Work {i}")
    return i * 10


@playbook
async def Summarize(total: int) -> str:
    effect("Summarize", total)
    return f"total={total}"
"""

BATCH_MAIN = """
## Main

```python
await Step("Main:01:ACT")
await Say("user", "Starting batch...")
items = await FetchItems()
total = 0
for i in items:
    value = await Work(i)
    total += value
    await Say("user", f"Item {i} -> {value}")
summary = await Summarize(total)
await Say("user", f"Done: {summary}")
```
"""

BATCH_OUTPUT = ["Starting batch...", "Item 1 -> 10", "Item 2 -> 20", "Item 3 -> 30", "Item 4 -> 40",
                "Done: total=100"]


def write_batch(ws: Workspace) -> None:
    ws.program("batch.pb", "# Batch:AI\nProcesses items one by one.", BATCH_MAIN, tools=BATCH_TOOLS)


def test_guide_flow_crash_mid_loop_then_resume(ws: Workspace) -> None:
    write_batch(ws)
    ws.crash_at("Work 2")
    first = ws.pb("run", "batch.pb")
    assert first.returncode == 137, first
    assert first.out == ["Starting batch...", "Item 1 -> 10"]
    assert first.err == ["Loading playbooks from: ['batch.pb']", "Starting execution..."]

    agent = only_agent(ws)
    assert agent.startswith("batch_1_")
    # Step, Say, FetchItems, Work(1), Say: one checkpoint per await, in the guide's layout.
    assert ws.counters(agent) == [1, 2, 3, 4, 5]
    assert (ws.root / ".checkpoints" / agent / f"{agent}_ckpt_5.pkl").is_file()
    before = {p.name: p.read_bytes() for p in ws.checkpoint_files()}

    ws.crash_at("Work 4")  # the resume crashes too: numbering must go on across both resumes
    second = ws.pb("run", "batch.pb", "--resume")
    assert second.returncode == 137, second
    assert second.out == ["Item 2 -> 20", "Item 3 -> 30"]
    assert second.err == ["Loading playbooks from: ['batch.pb']",
                          *resume_header(agent, f"{agent}_ckpt_5", 'await Say("user", f"Item {i} -> {value}")')]
    assert ws.counters(agent) == list(range(1, 10))

    third = ws.pb("run", "batch.pb", "--resume")
    assert third.returncode == 0, third
    assert third.out == ["Item 4 -> 40", "Done: total=100"]
    assert third.err == ["Loading playbooks from: ['batch.pb']",
                         *resume_header(agent, f"{agent}_ckpt_9", 'await Say("user", f"Item {i} -> {value}")'),
                         "Execution complete ✅"]

    assert say_lines(first, second, third) == BATCH_OUTPUT
    assert ws.counters(agent) == list(range(1, 14))  # 1, 2, 3… never reused, never skipped
    after = {p.name: p.read_bytes() for p in ws.checkpoint_files()}
    assert {name: after[name] for name in before} == before  # never overwritten
    counts = ws.effect_counts()
    assert counts == {"FetchItems": 1, "Work 1": 1, "Work 2": 2, "Work 3": 1, "Work 4": 2, "Summarize 100": 1}


NESTED_TOOLS = """
@playbook
async def Prepare(name: str) -> str:
    effect("Prepare", name)
    return name.upper()


@playbook
async def Compute(k: int) -> int:
    effect("Compute", k)
    crash_point(f"Compute {k}")
    return k * k + 1
"""

NESTED_BODY = """
## Main

```python
base = await Prepare("base")
label = f"label-{base}"
result = await SubTask(3)
await Say("user", f"{label} result={result}")
```

## SubTask($n: int) -> int

```python
acc = 0
for k in range(n):
    acc += await Helper(k)
await Say("user", f"SubTask acc={acc}")
await Return(acc)
```

## Helper($k: int) -> int

```python
await Say("user", f"Helper {k}")
v = await Compute(k)
await Return(v)
```
"""


def test_crash_three_calls_deep_keeps_main_variables(ws: Workspace) -> None:
    ws.program("deep.pb", "# Deep:AI", NESTED_BODY, tools=NESTED_TOOLS)
    ws.crash_at("Compute 2")
    first = ws.pb("run", "deep.pb")
    assert first.returncode == 137, first
    assert first.out == ["Helper 0", "Helper 1", "Helper 2"]

    resumed = ws.pb("run", "deep.pb", "--resume")
    assert resumed.returncode == 0, resumed
    agent = only_agent(ws)
    assert resumed.err == ["Loading playbooks from: ['deep.pb']",
                           *resume_header(agent, f"{agent}_ckpt_6", 'await Say("user", f"Helper {k}")'),
                           "Execution complete ✅"]
    # `label` was computed in Main before the crash and is printed after it.
    assert resumed.out == ["SubTask acc=8", "label-BASE result=8"]
    assert say_lines(first, resumed) == ["Helper 0", "Helper 1", "Helper 2", "SubTask acc=8", "label-BASE result=8"]
    assert ws.effect_counts() == {"Prepare base": 1, "Compute 0": 1, "Compute 1": 1, "Compute 2": 2}


def test_crash_after_input_does_not_ask_again(ws: Workspace) -> None:
    ws.program("greet.pb", "# Greeter:AI", """
        ## Main

        ```python
        await Say("user", "What's your name?")
        name = await Yield("user")
        greeting = await Greet(name)
        await Say("user", greeting)
        ```
        """, tools="""
        @playbook
        async def Greet(name: str) -> str:
            effect("Greet", name)
            crash_point("Greet")
            return f"Hello, {name}!"
        """)
    ws.crash_at("Greet")
    first = ws.pb("run", "greet.pb", "--input", "Ada")
    assert first.returncode == 137, first
    assert first.out == ["What's your name?"]

    resumed = ws.pb("run", "greet.pb", "--resume", stdin_closed=True)
    assert resumed.returncode == 0, resumed
    assert resumed.out == ["Hello, Ada!"]
    assert "input" not in resumed.stderr.lower()
    assert say_lines(first, resumed) == ["What's your name?", "Hello, Ada!"]
    assert ws.effect_counts() == {"Greet Ada": 2}


def test_crash_inside_gather_replays_by_call_site_not_completion_order(ws: Workspace) -> None:
    ws.program("fan.pb", "# Fan:AI", """
        ## Main

        ```python
        await Say("user", "Fetching...")
        results = await asyncio.gather(Fetch("a", 0.6), Fetch("b", 0.05), Fetch("c", 0.3), Fetch("d", 0.0))
        await Say("user", " ".join(results))
        ```
        """, tools="""
        import asyncio as _asyncio


        @playbook
        async def Fetch(name: str, delay: float) -> str:
            effect("Fetch", name)
            await _asyncio.sleep(delay)
            crash_point(f"Fetch {name}")
            effect("Fetched", name)
            return name.upper()
        """)
    ws.crash_at("Fetch c")  # after d and b finished, while a still sleeps
    first = ws.pb("run", "fan.pb")
    assert first.returncode == 137, first
    assert first.out == ["Fetching..."]
    assert ws.effects() == ["Fetch a", "Fetch b", "Fetch c", "Fetch d", "Fetched d", "Fetched b"]

    resumed = ws.pb("run", "fan.pb", "--resume")
    assert resumed.returncode == 0, resumed
    assert resumed.out == ["A B C D"]
    assert say_lines(first, resumed) == ["Fetching...", "A B C D"]
    counts = ws.effect_counts()
    assert counts["Fetch b"] == counts["Fetch d"] == 1  # completed before the crash: not run again
    assert counts["Fetch a"] == counts["Fetch c"] == 2  # in flight at the crash: run again, once
    assert counts["Fetched a"] == counts["Fetched c"] == 1


SLOW_BODY = """
## Main

```python
await Say("user", "begin")
for i in range(1, 13):
    value = await Tick(i)
    await Say("user", f"tick {value}")
await Say("user", "end")
```
"""

SLOW_TOOLS = """
import time as _time


@playbook
def Tick(i: int) -> int:
    effect("Tick", i)
    _time.sleep(0.05)
    effect("Ticked", i)
    return i
"""

SLOW_OUTPUT = ["begin", *[f"tick {i}" for i in range(1, 13)], "end"]


def test_sigint_exits_130_and_resume_completes_without_repeats(ws: Workspace) -> None:
    ws.program("slow.pb", "# Slow:AI", SLOW_BODY, tools=SLOW_TOOLS)
    child = ws.start("run", "slow.pb")
    ws.wait_until(lambda: "Ticked 3" in ws.effects(), what="three ticks")
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=15)
    assert child.returncode == 130, (out, err)
    assert err.splitlines()[-1] == "⏹️  Interrupted. Resume with: playbooks run slow.pb --resume"
    assert "Traceback" not in err
    interrupted_at = len(out.splitlines())
    assert 3 < interrupted_at < len(SLOW_OUTPUT), out

    resumed = ws.pb("run", "slow.pb", "--resume")
    assert resumed.returncode == 0, resumed
    assert resumed.err[-1] == "Execution complete ✅"
    assert out.splitlines() + resumed.out == SLOW_OUTPUT
    counts = ws.effect_counts()
    assert all(counts[f"Ticked {i}"] == 1 for i in range(1, 13)), counts
    assert all(1 <= counts[f"Tick {i}"] <= 2 for i in range(1, 13)), counts
    assert sum(counts[f"Tick {i}"] for i in range(1, 13)) <= 13  # at most the in-flight one twice


def test_unhandled_exception_then_fix_then_resume(ws: Workspace) -> None:
    body = """
        ## Main

        ```python
        for i in [1, 2, 0, 4]:
            v = await Invert(i)
            await Say("user", f"1/{i} = {v}")
        await Say("user", "all inverted")
        ```
        """
    path = ws.program("inv.pb", "# Inverter:AI", body, tools="""
        @playbook
        async def Invert(i: int) -> float:
            effect("Invert", i)
            return 1 / i
        """)
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    bad_line = lines.index("    return 1 / i") + 1
    call_line = lines.index("    v = await Invert(i)") + 1

    failed = ws.pb("run", "inv.pb")
    assert failed.returncode == 1, failed
    assert failed.out == ["1/1 = 1.0", "1/2 = 0.5"]
    assert "❌ The program failed: ZeroDivisionError: division by zero" in failed.err
    assert f"   inv.pb:{bad_line} in Invert: return 1 / i" in failed.err
    assert f"   inv.pb:{call_line} in Main: v = await Invert(i)" in failed.err
    assert failed.err[-1] == "   Fix the problem, then continue from the last checkpoint: playbooks run inv.pb --resume"
    assert "Traceback" not in failed.stderr

    path.write_text(text.replace("    return 1 / i", "    return 1 / i if i else float('inf')"), encoding="utf-8")
    resumed = ws.pb("run", "inv.pb", "--resume")
    assert resumed.returncode == 0, resumed
    assert resumed.out == ["1/0 = inf", "1/4 = 0.25", "all inverted"]
    assert resumed.err[-1] == "Execution complete ✅"
    assert say_lines(failed, resumed) == ["1/1 = 1.0", "1/2 = 0.5", "1/0 = inf", "1/4 = 0.25", "all inverted"]
    assert ws.effect_counts() == {"Invert 1": 1, "Invert 2": 1, "Invert 0": 2, "Invert 4": 1}


def test_sigkill_while_a_tool_is_in_flight(ws: Workspace) -> None:
    ws.program("hold.pb", "# Holder:AI", """
        ## Main

        ```python
        await Say("user", "started")
        before = await Note("before")
        await Hold()
        after = await Note("after")
        await Say("user", f"{before} {after}")
        ```
        """, tools="""
        import time as _time


        @playbook
        def Note(text: str) -> str:
            effect("Note", text)
            return text.upper()


        @playbook
        def Hold() -> None:
            effect("Hold")
            while not os.path.exists("release.flag"):
                _time.sleep(0.02)
        """)
    child = ws.start("run", "hold.pb")
    ws.wait_until(lambda: "Hold" in ws.effects(), what="Hold to be in flight")
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate(timeout=15)
    assert child.returncode == -signal.SIGKILL
    assert out.splitlines() == ["started"]

    (ws.root / "release.flag").touch()
    resumed = ws.pb("run", "hold.pb", "--resume")
    assert resumed.returncode == 0, resumed
    assert resumed.out == ["BEFORE AFTER"]
    assert ws.effect_counts() == {"Note before": 1, "Hold": 2, "Note after": 1}
