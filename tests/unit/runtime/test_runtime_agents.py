"""Calls between agents: the caller journals the result; the callee's state and own calls stay the callee's."""

from __future__ import annotations

from runtime_support import TOOLS

PROGRAM = '''
# Host

```python
@playbook
async def Boom() -> None:
    crash_once("boom")
```

## Main

```python
accountant = await Accountant.get_or_create()
rate = await accountant.GetTaxRate(1000)
again = await Accountant.get_or_create()
await Boom()
await Say("user", f"rate {rate}, same agent {again.id == accountant.id}, asked {accountant.state.asked}")
```

# Accountant
TOOLS_HERE
```python
@playbook
async def Lookup(income: int) -> float:
    effect(f"lookup {income}")
    return 0.1 if income < 5000 else 0.3
```

## GetTaxRate($income: int) -> float
metadata:
  public: true
---

```python
rate = await Lookup(income)
self.state.asked = self.state.get("asked", 0) + 1
await Return(rate)
```
'''

def test_a_call_to_another_agent_replays_with_the_callee_state(harness) -> None:
    path = harness.program(PROGRAM.replace("# Host\n", "# Host\n" + TOOLS, 1).replace("TOOLS_HERE", TOOLS))
    harness.crash(path)
    outcome = harness.run(path, resume=True)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.output == ["rate 0.1, same agent True, asked 1"]
    assert harness.effect_lines() == ["lookup 1000"]  # the callee's tool ran once, across the crash

    from playbooks_worker.checkpoints import FilesystemCheckpointProvider

    provider = FilesystemCheckpointProvider(harness.root / ".checkpoints")
    agents = provider.agents_sync()
    accountant = next(a for a in agents if a.startswith("accountant_"))
    host = next(a for a in agents if a.startswith("host_"))
    paths = [r["metadata"]["call_path"] for r in provider.read_journal_sync(accountant)]
    assert paths and all(p.startswith(f"{host}/") for p in paths)  # namespaced under the caller's call
