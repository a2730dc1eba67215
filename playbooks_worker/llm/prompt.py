"""What the model is told: the interpreter's contract, the playbook, what it may call, and what happened.

Every part is rebuilt from things that replay identically (the program, recorded results, restored state),
so on resume the same messages are built and their digest matches the recorded call's.
"""

from __future__ import annotations

import inspect
import re
import reprlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playbooks_worker.program.model import AgentDef, PlaybookDef, StepDef

SYSTEM = """You are the interpreter of a Playbooks program. You execute one playbook of one agent by writing
Python code, which runs statement by statement as you write it. Answer with a single ```python block only.

The code may use:
- await Step("Playbook:NN:CODE")      before carrying out step NN (e.g. await Step("Main:01:QUE"))
- await Say("user", "text")           tell the user something (or Say("agent ID", ...) to another agent)
- x = await Yield("user")             wait for the user's answer; it returns the text of the answer
- await SomePlaybook(arg, ...)        call another playbook or tool listed below; it returns its result
- self.state.name = value             remember a value in the agent's state (old spelling: $name = value)
- await Return(value)                 finish this playbook with a result
- await EndProgram()                  end the whole program
Plain Python works too (variables, loops, f-strings). Write `self.Step(...)` or `Step(...)` as you like.
If the steps are all done, call `await Return(...)`. If you need the user's answer before going on, stop
your code right after the `await Yield("user")`: you will be called again with what happened."""

_short = reprlib.Repr()
_short.maxstring = 200
_short.maxother = 200
_short.maxlist = 20
_short.maxdict = 20
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def stable_repr(value: Any) -> str:
    """A repr that is the same in every process: sorted sets and dicts (reprlib), no memory addresses."""
    return _ADDRESS.sub("", _short.repr(value))


def render_steps(steps: list[StepDef], depth: int = 0) -> list[str]:
    lines = []
    for step in steps:
        lines.append(f"{'  ' * depth}- {step.text}")
        lines.extend(render_steps(step.children, depth + 1))
    return lines


def render_playbook(playbook: PlaybookDef) -> str:
    parts = [f"## {playbook.signature or playbook.name}"]
    if playbook.description:
        parts.append(playbook.description)
    if playbook.triggers:
        parts.append("### Triggers\n" + "\n".join(f"- {t}" for t in playbook.triggers))
    if playbook.steps:
        parts.append("### Steps\n" + "\n".join(render_steps(playbook.steps)))
    if playbook.notes:
        parts.append("### Notes\n" + "\n".join(f"- {n}" for n in playbook.notes))
    return "\n\n".join(parts)


def render_callables(agent: AgentDef, namespace: dict[str, Any], python_playbooks: dict[str, Any]) -> str:
    """The playbooks the code may call, as Python signatures with their descriptions."""
    lines = []
    for playbook in agent.playbooks.values():
        if playbook.kind == "python":
            function = getattr(python_playbooks.get(playbook.name), "__wrapped__", None)
            signature = f"{playbook.name}{inspect.signature(function)}" if function else playbook.signature
        else:
            params = ", ".join(p.name + (f": {p.annotation}" if p.annotation else "") for p in playbook.params)
            signature = f"{playbook.name}({params})" + (f" -> {playbook.returns}" if playbook.returns else "")
        doc = " ".join((playbook.description or "").split())[:200]
        lines.append(f"async def {signature}:  # {doc}" if doc else f"async def {signature}: ...")
    return "\n".join(lines)


def first_turn(agent: AgentDef, playbook: PlaybookDef, call: str, callables: str, state: dict[str, Any]) -> str:
    return "\n\n".join(filter(None, [
        f"You are agent {agent.name}." + (f" {agent.description.strip()}" if agent.description.strip() else ""),
        f"Playbook to execute:\n\n{render_playbook(playbook)}",
        f"Playbooks you can call:\n```python\n{callables}\n```" if callables else "",
        f"Agent state: {stable_repr(state)}" if state else "",
        f"Execute {call} from step 01.",
    ]))


def next_turn(playbook: PlaybookDef, log: list[str], variables: dict[str, Any], state: dict[str, Any],
              error: str | None) -> str:
    parts = []
    if log:
        parts.append("What happened:\n" + "\n".join(f"- {line}" for line in log))
    if error:
        parts.append(f"ERROR: your code failed:\n{error}\nFix the error and continue.")
    if variables:
        parts.append("Local variables: " + ", ".join(f"{k} = {stable_repr(v)}" for k, v in variables.items()))
    if state:
        parts.append(f"Agent state: {stable_repr(state)}")
    parts.append(f"Continue executing {playbook.name} from where you stopped.")
    return "\n\n".join(parts)
