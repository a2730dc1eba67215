"""What the model is told: the interpreter's contract, the playbook, what it may call, and what happened.

Every part is rebuilt from things that replay identically (the program, recorded results, restored state),
so on resume the same messages are built and their digest matches the recorded call's.
"""

from __future__ import annotations

import dataclasses
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

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class _StableRepr(reprlib.Repr):
    """reprlib, short, and the same in every process: sets in a fixed order even when their elements do not
    sort (`{1, 'a', None}`), dataclasses field by field (their own repr would print a set field in hash
    order), and no memory addresses (removed before a long repr is cut, so no half address remains)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring = self.maxother = 200
        self.maxlist = self.maxdict = self.maxset = self.maxfrozenset = 20

    def _ordered(self, items: Any) -> list[Any]:
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=lambda v: (type(v).__name__, _ADDRESS.sub("", repr(v))))

    def _items(self, items: list[Any], level: int, left: str, right: str, limit: int) -> str:
        if level <= 0:
            return f"{left}{self.fillvalue}{right}"
        shown = [self.repr1(v, level - 1) for v in items[:limit]]
        if len(items) > limit:
            shown.append(self.fillvalue)
        return left + ", ".join(shown) + right

    def repr_set(self, x: Any, level: int) -> str:
        return self._items(self._ordered(x), level, "{", "}", self.maxset) if x else "set()"

    def repr_frozenset(self, x: Any, level: int) -> str:
        if not x:
            return "frozenset()"
        return self._items(self._ordered(x), level, "frozenset({", "})", self.maxfrozenset)

    def repr_instance(self, x: Any, level: int) -> str:
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            if level <= 0:
                return f"{type(x).__name__}(...)"
            fields = ", ".join(f"{f.name}={self.repr1(getattr(x, f.name, None), level - 1)}"
                               for f in dataclasses.fields(x) if f.repr)
            text = f"{type(x).__name__}({fields})"
        else:
            try:
                text = _ADDRESS.sub("", repr(x))
            except Exception:
                text = f"<{type(x).__name__} instance>"
        if len(text) > self.maxother:
            i = max(0, (self.maxother - 3) // 2)
            text = text[:i] + self.fillvalue + text[len(text) - max(0, self.maxother - 3 - i):]
        return text


_short = _StableRepr()


def stable_repr(value: Any) -> str:
    """A repr that is the same in every process: sorted sets and dicts, no memory addresses."""
    return _ADDRESS.sub("", _short.repr(value))


def _item(text: str, depth: int = 0) -> str:
    """A markdown list item; the lines of a multi-line item indented under its first."""
    indent = "  " * depth
    return f"{indent}- " + text.replace("\n", f"\n{indent}  ")


def render_steps(steps: list[StepDef], depth: int = 0) -> list[str]:
    lines = []
    for step in steps:
        lines.append(_item(step.text, depth))
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
        parts.append("### Notes\n" + "\n".join(_item(n) for n in playbook.notes))
    return "\n\n".join(parts)


def render_callables(agent: AgentDef, namespace: dict[str, Any], python_playbooks: dict[str, Any]) -> str:
    """The playbooks the code may call, as Python signatures with their descriptions."""
    lines = []
    for playbook in agent.playbooks.values():
        if playbook.kind == "python":
            function = getattr(python_playbooks.get(playbook.name), "__wrapped__", None)
            signature = f"{playbook.name}{_signature(function)}" if function else playbook.signature
        else:
            params = ", ".join(p.name + (f": {p.annotation}" if p.annotation else "") for p in playbook.params)
            signature = f"{playbook.name}({params})" + (f" -> {playbook.returns}" if playbook.returns else "")
        doc = " ".join((playbook.description or "").split())[:200]
        lines.append(f"async def {signature}:  # {doc}" if doc else f"async def {signature}: ...")
    return "\n".join(lines)


def _signature(function: Any) -> inspect.Signature:
    # Program code is compiled with string annotations (PEP 563): evaluate them, so the model reads
    # `n: int`, not `n: 'int'`; as written when they name something that does not exist.
    try:
        return inspect.signature(function, eval_str=True)
    except Exception:
        return inspect.signature(function)


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
