"""Journal-and-replay semantics (DESIGN §3), in-process: each test crashes a run, resumes it, and checks
from a side-effect log what ran again and what was replayed."""

from __future__ import annotations

import pytest
from runtime_support import TOOLS

from playbooks_worker.errors import NonDeterminismError


def test_completed_tools_replay_and_the_in_flight_one_reruns(harness) -> None:
    path = harness.program("# A\n" + TOOLS + '''
```python
@playbook
async def Work(n: int) -> int:
    effect(f"work {n}")
    if n == 3:
        crash_once("work3")
    return n * 10
```

## Main

```python
total = 0
for n in range(1, 6):
    total += await Work(n)
    await Say("user", f"step {n}")
await Say("user", f"total {total}")
```
''')
    first = harness.crash(path)
    outcome = harness.run(path, resume=True)
    assert outcome.status == "succeeded"
    assert first + outcome.output == ["step 1", "step 2", "step 3", "step 4", "step 5", "total 150"]
    assert harness.effect_lines() == ["work 1", "work 2", "work 3", "work 3", "work 4", "work 5"]


def test_gather_replays_by_call_site_not_completion_order(harness) -> None:
    path = harness.program("# A\n" + TOOLS + '''
```python
import asyncio as aio

@playbook
async def Fetch(name: str, delay: float) -> str:
    await aio.sleep(delay)
    effect(f"fetch {name}")
    if name == "c":
        crash_once("c")
    return name.upper()
```

## Main

```python
results = await asyncio.gather(Fetch("a", 0.03), Fetch("b", 0.0), Fetch("c", 0.05), Fetch("d", 0.01))
await Say("user", ",".join(results))
```
''')
    harness.crash(path)
    outcome = harness.run(path, resume=True)
    assert outcome.output == ["A,B,C,D"]
    lines = harness.effect_lines()
    for name in "abd":
        assert lines.count(f"fetch {name}") == 1
    assert lines.count("fetch c") == 2


def test_state_written_by_a_tool_is_restored_without_rerunning_it(harness) -> None:
    path = harness.program("# A\n" + TOOLS + '''
```python
@playbook
async def Login(user: str) -> None:
    effect("login")
    agent.state.user = user
    agent.state.visits = 1

@playbook
async def Boom() -> None:
    crash_once("boom")
```

## Main

```python
await Login("ada")
await Boom()
await Say("user", f"{self.state.user} {self.state.visits}")
```
''')
    harness.crash(path)
    outcome = harness.run(path, resume=True)
    assert outcome.output == ["ada 1"]
    assert harness.effect_lines() == ["login"]


def test_a_tool_in_flight_reruns_but_the_calls_it_completed_replay(harness) -> None:
    path = harness.program("# A\n" + TOOLS + '''
```python
@playbook
async def Charge(n: int) -> int:
    effect(f"charge {n} {agent.idempotency_key}")
    return n

@playbook
async def Batch() -> int:
    a = await Charge(1)
    b = await Charge(2)
    crash_once("batch")
    return a + b
```

## Main

```python
await Say("user", f"sum {await Batch()}")
```
''')
    harness.crash(path)
    outcome = harness.run(path, resume=True)
    assert outcome.output == ["sum 3"]
    lines = harness.effect_lines()
    assert len(lines) == 2, lines  # each inner charge once, though Batch itself ran twice
    assert lines[0].endswith(":1.1.1") and lines[1].endswith(":1.1.2")  # Main 1 > Batch 1.1 > Charge


def test_plain_python_time_random_uuid_datetime_replay_identically(harness) -> None:
    path = harness.program("# A\n" + TOOLS + '''
```python
@playbook
async def Boom() -> None:
    crash_once("boom")
```

## Main

```python
import time, random, uuid, datetime
values = [time.time(), random.random(), random.choice("abcdefgh"), str(uuid.uuid4()),
          datetime.datetime.now().isoformat(), await Now(), await Random()]
await Say("user", repr(values))
await Boom()
await Say("user", repr(values))
```
''')
    first = harness.crash(path)
    outcome = harness.run(path, resume=True)
    assert len(first) == 1 and outcome.output == first


def test_sleep_resumes_with_what_is_left_of_the_deadline(harness) -> None:
    import time

    path = harness.program("# A\n" + TOOLS + '''
```python
@playbook
async def Boom() -> None:
    crash_once("boom")
```

## Main

```python
await Sleep(0.6)
await Boom()
await Say("user", "woke")
```
''')
    harness.crash(path)
    started = time.monotonic()
    outcome = harness.run(path, resume=True)
    assert outcome.output == ["woke"]
    assert time.monotonic() - started < 0.5  # the 0.6 s already passed before the crash


def test_unchanged_program_that_diverges_is_refused(harness) -> None:
    flag = harness.root / "arg.txt"
    flag.write_text("1")
    path = harness.program("# A\n" + TOOLS + f'''
```python
@playbook
async def Pick(n: int) -> int:
    return n

@playbook
async def Boom() -> None:
    crash_once("boom")
```

## Main

```python
x = await Pick(int(__import__("pathlib").Path("{flag}").read_text()))
await Boom()
```
''')
    harness.crash(path)
    flag.write_text("2")
    with pytest.raises(NonDeterminismError) as info:
        harness.run(path, resume=True)
    message = str(info.value)
    assert "Pick(1)" in message and "Pick(2)" in message and "_ckpt_1" in message


def test_edited_program_resumes_from_the_last_matching_checkpoint(harness) -> None:
    source = "# A\n" + TOOLS + '''
```python
@playbook
async def Step1() -> int:
    effect("step1")
    return 1

@playbook
async def Step2(x: int) -> int:
    effect(f"step2 {x}")
    return x

@playbook
async def Boom() -> None:
    crash_once("boom")
```

## Main

```python
a = await Step1()
b = await Step2(a)
await Boom()
await Say("user", f"{a} {b}")
```
'''
    path = harness.program(source)
    harness.crash(path)
    path.write_text(source.replace("await Step2(a)", "await Step2(a + 1)").replace("EFFECTS", str(harness.effects)))
    outcome = harness.run(path, resume=True)
    assert outcome.output == ["1 2"]
    assert harness.effect_lines() == ["step1", "step2 1", "step2 2"]
    assert any("the last checkpoint that still matches" in n for n in outcome.notices)


def test_a_tool_that_failed_the_run_is_retried_on_resume(harness) -> None:
    marker = harness.root / "fixed"
    path = harness.program("# A\n" + TOOLS + f'''
```python
import os

@playbook
async def Flaky() -> str:
    effect("flaky")
    if not os.path.exists("{marker}"):
        raise ConnectionError("service down")
    return "ok"
```

## Main

```python
await Say("user", await Flaky())
```
''')
    failed = harness.run(path)
    assert failed.status == "failed" and isinstance(failed.error, ConnectionError)
    marker.touch()
    outcome = harness.run(path, resume=True)
    assert outcome.status == "succeeded" and outcome.output == ["ok"]
    assert harness.effect_lines() == ["flaky", "flaky"]


def test_checkpoint_numbers_continue_across_resumes(harness) -> None:
    path = harness.program("# A\n" + TOOLS + '''
```python
@playbook
async def Boom() -> None:
    crash_once("boom")
```

## Main

```python
await Step("Main:01:QUE")
await Boom()
await Step("Main:02:QUE")
```
''')
    harness.crash(path)
    harness.run(path, resume=True)
    files = sorted(p.name for p in (harness.root / ".checkpoints").glob("*/*.pkl"))
    counters = sorted(int(name.rsplit("_", 1)[1].split(".")[0]) for name in files)
    assert counters == [1, 2, 3]


def test_without_durability_nothing_is_written(harness) -> None:
    path = harness.program('''
# A

## Main

```python
await Say("user", "hi")
```
''')
    outcome = harness.run(path, durable=False)
    assert outcome.status == "succeeded" and outcome.output == ["hi"]
    assert not (harness.root / ".checkpoints").exists()


def test_end_program_completes_the_run(harness) -> None:
    path = harness.program('''
# A

## Main

```python
await Say("user", "before")
await EndProgram()
await Say("user", "after")
```
''')
    outcome = harness.run(path)
    assert outcome.status == "succeeded" and outcome.output == ["before"]


def test_program_code_does_not_inherit_the_runtimes_future_imports(harness) -> None:
    path = harness.program('''
# A

```python
@playbook
async def Kind(n: int) -> str:
    return repr(Kind.__wrapped__.__annotations__["n"])
```

## Main

```python
def local(x: int) -> None:
    pass
await Say("user", f"{await Kind(1)} {local.__annotations__['x']!r}")
```
''')
    outcome = harness.run(path)
    assert outcome.output == ["<class 'int'> <class 'int'>"]
