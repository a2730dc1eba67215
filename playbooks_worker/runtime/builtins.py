"""The builtins every agent's code can call, bare or as `self.X` / `agent.X` (DESIGN §2)."""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playbooks_worker.errors import PlaybookReturn, ProgramEnd
from playbooks_worker.runtime.mailbox import agent_spec

if TYPE_CHECKING:
    from playbooks_worker.runtime.agent import Agent

HUMAN_TARGETS = frozenset({"user", "human"})


def _humans(agent: Agent) -> frozenset[str]:
    """`user`, `human`, and every `# Name:Human` agent of the program: talking to them is output and input."""
    return HUMAN_TARGETS | {a.name.lower() for a in agent.runtime.program.agents if a.kind == "Human"}


async def _none() -> None:
    return None


def make_builtins(agent: Agent) -> dict[str, Callable[..., Any]]:
    runtime = agent.runtime
    humans = _humans(agent)

    def _is_human(target: str) -> bool:
        return agent_spec(target).lower() in humans

    def Step(step: str) -> Any:
        agent.current_step = str(step)
        return agent.leaf("step", str(step), (), None, _none)

    def Say(target: str, message: Any) -> Any:
        text = str(message)
        if not _is_human(target):
            # To another agent: the record holds the message, so the journal is its mailbox (mailbox.py).
            return agent.leaf("send", "Say", (str(target), text), None,
                              lambda: runtime.send(agent, str(target), text))

        def output(_: Any) -> dict[str, Any]:
            return {"type": "say", "agent": agent.id, "klass": agent.klass, "target": str(target), "message": text}

        return agent.leaf("say", "Say", (str(target), text), None, _none, output)

    def SendMessage(target: str, message: Any) -> Any:
        return Say(target, message)

    def WaitForMessage(source: str = "*") -> Any:
        if _is_human(source):
            return agent.leaf("input", "user", (), None, lambda: runtime.read_input(agent))
        leaf = agent.leaf("receive", str(source), (), None, lambda: runtime.receive(agent, str(source)))

        async def text() -> str:
            return str((await leaf)["text"])

        return text()

    def Yield(target: str = "user") -> Any:
        where = str(target).strip().lower()
        if where == "exit":
            return EndProgram()
        if where in ("return", "call"):
            return _none()
        return WaitForMessage(target)

    async def Return(value: Any = None) -> None:
        raise PlaybookReturn(value)

    async def EndProgram() -> None:
        raise ProgramEnd()

    def Sleep(seconds: float) -> Any:
        # The record holds the deadline and is written *before* sleeping, so a resumed run sleeps only what
        # is left of the original duration.
        async def deadline() -> float:
            return time.time() + float(seconds)

        return _sleep_until(agent.leaf("sleep", "Sleep", (float(seconds),), None, deadline))

    def Now() -> Any:
        async def now() -> float:
            return time.time()

        return agent.leaf("now", "Now", (), None, now)

    def Random() -> Any:
        async def rnd() -> float:
            return _random.random()

        return agent.leaf("random", "Random", (), None, rnd)

    async def SaveArtifact(name: str, summary: str, value: Any = None) -> str:
        artifacts = dict(agent.state.get("artifacts") or {})
        artifacts[name] = {"summary": summary, "value": value}
        agent.state.artifacts = artifacts
        return name

    async def LoadArtifact(name: str) -> Any:
        artifacts = agent.state.get("artifacts") or {}
        if name not in artifacts:
            raise KeyError(f"no artifact named {name!r}")
        return artifacts[name]["value"]

    def Loadfile(file_path: str, inline: bool = False, silent: bool = False) -> Any:
        async def read() -> str:
            path = Path(file_path)
            if not path.is_absolute():
                path = runtime.program.path.parent / path
            return await asyncio.to_thread(path.read_text, encoding="utf-8")

        return agent.leaf("loadfile", str(file_path), (str(file_path),), None, read)

    def CreateAgent(agent_klass: str, **kwargs: Any) -> Any:
        async def create() -> str:
            return runtime.create_agent(str(agent_klass), kwargs).id

        leaf = agent.leaf("create_agent", str(agent_klass), (), kwargs, create)

        async def created() -> Any:
            agent_id = await leaf
            return runtime.ensure_agent(agent_id, str(agent_klass), kwargs).proxy

        return created()

    async def LogTrigger(trigger: str) -> None:
        return None

    return {
        "Step": Step,
        "Say": Say,
        "SendMessage": SendMessage,
        "WaitForMessage": WaitForMessage,
        "Yield": Yield,
        "Yld": Yield,
        "Return": Return,
        "EndProgram": EndProgram,
        "Exit": EndProgram,
        "Sleep": Sleep,
        "Now": Now,
        "Random": Random,
        "SaveArtifact": SaveArtifact,
        "LoadArtifact": LoadArtifact,
        "Loadfile": Loadfile,
        "CreateAgent": CreateAgent,
        "LogTrigger": LogTrigger,
    }


async def _sleep_until(deadline_leaf: Awaitable[float]) -> float:
    deadline = await deadline_leaf
    await asyncio.sleep(max(0.0, deadline - time.time()))
    return deadline
