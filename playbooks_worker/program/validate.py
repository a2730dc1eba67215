"""Static checks run before anything executes: every playbook a piece of Python calls must exist.

DESIGN §2: a program that names a playbook that does not exist is refused before it runs or is enqueued. A
typo found here costs the user a second; found by the runtime it costs a crashed run, after the LLM calls that
came before it.
"""

from __future__ import annotations

import ast
import builtins
import difflib

from ..errors import ProgramError
from .model import Program
from .python_blocks import PyUnit

BUILTIN_PLAYBOOKS = frozenset(
    {
        "Step",
        "Say",
        "Yield",
        "Yld",
        "WaitForMessage",
        "SendMessage",
        "Return",
        "EndProgram",
        "Exit",
        "SaveArtifact",
        "LoadArtifact",
        "CreateAgent",
        "Loadfile",
        "Sleep",
        "Now",
        "Random",
        "Artifact",
        "LogTrigger",
    }
)
# Nodes whose `.name` binds a name: def, class, `except E as name`, `case [*name]` / `case x as name`.
_NAMED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.ExceptHandler, ast.MatchAs, ast.MatchStar)
_PYTHON_BUILTINS = frozenset(dir(builtins))
_RECEIVERS = ("self", "agent")  # `await self.Name(...)`, `await agent.Name(...)`: a playbook of this agent


def validate(program: Program, units: list[PyUnit]) -> None:
    """Raise a ProgramError for the first call, in source order, of a name nothing defines."""
    playbooks = [name for agent in program.agents for name in agent.playbooks]
    known = set(playbooks) | BUILTIN_PLAYBOOKS | {agent.name for agent in program.agents} | _PYTHON_BUILTINS
    agent_names: dict[str, set[str]] = {}
    opaque: set[str] = set()  # agents with `from x import *`: any name may be bound, so we cannot judge
    for unit in units:
        if unit.playbook is None:
            names, star = bound_names(unit.tree)
            agent_names.setdefault(unit.agent.name, set()).update(names)
            if star:
                opaque.add(unit.agent.name)

    problems: list[tuple[int, int, PyUnit, str, ast.Call]] = []
    for unit in units:
        bound = set(agent_names.get(unit.agent.name, ()))
        if unit.playbook is not None:
            names, _ = bound_names(unit.tree)  # `import *` cannot occur: a body is compiled as a function
            bound |= names | {param.name for param in unit.playbook.params}
        if unit.agent.name in opaque:
            continue
        for name, call in called_names(unit.tree):
            if name not in known and name not in bound:
                problems.append((unit.order + call.lineno, call.col_offset, unit, name, call))
    if not problems:
        return
    _, _, unit, name, call = min(problems, key=lambda p: (p[0], p[1]))
    local = {n for n in agent_names.get(unit.agent.name, ()) if n[:1].isupper()}
    candidates = sorted((known - _PYTHON_BUILTINS) | local)
    close = difflib.get_close_matches(name, candidates, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"available playbooks: {', '.join(playbooks)}"
    raise ProgramError(
        f"{unit.locate(call.lineno)}: '{name}' is not a playbook or builtin of agent {unit.agent.name}",
        hint=hint,
    )


def called_names(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    """Calls that look like playbook calls: `Name(...)`, `self.Name(...)`, `agent.Name(...)`, capitalized.

    Lower-case calls are left to Python: they are ordinary functions far more often than playbooks, and a
    false alarm here would refuse a program that runs.
    """
    calls: list[tuple[str, ast.Call]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name):
            name = func.id
        elif (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in _RECEIVERS
        ):
            name = func.attr
        else:
            continue
        if name[:1].isupper():
            calls.append((name, node))
    return calls


def bound_names(tree: ast.AST) -> tuple[set[str], bool]:
    """Every name the code binds anywhere (any scope), and whether it has a `from x import *`."""
    names: set[str] = set()
    star = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            if node.name == "*":
                star = True
            else:
                names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, _NAMED) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
    return names, star
