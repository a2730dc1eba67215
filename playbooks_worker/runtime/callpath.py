"""Call paths: the identity of every durable call (DESIGN §3).

A call's path is its parent's path plus the index of the call among the parent's calls, counted when the call
is *made* (when the coroutine function is called, before anything is awaited) — never when it completes. So
`asyncio.gather(A(), B())` gives A and B the same paths on every replay, whatever order they finish in.

The current frame travels in a ContextVar: each task started by asyncio copies it, and every durable call sets
its own frame while it runs, so concurrent branches never share a counter.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any


class Frame:
    """One executing playbook (or tool) call; hands out the paths of the calls it makes."""

    __slots__ = ("children", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self.children = 0

    def child(self) -> str:
        self.children += 1
        return f"{self.path}.{self.children}" if self.path else str(self.children)


SETUP_PATH = "0"  # calls made while an agent's ```python blocks are first executed

current_frame: ContextVar[Frame] = ContextVar("playbooks_current_frame")

# The state writes made inside the innermost live leaf, so its record can carry them (None outside leaves):
# agent id -> variable -> value. Keyed by agent because a call to another agent's playbook writes its state.
current_writes: ContextVar[dict[str, dict[str, Any]] | None] = ContextVar("playbooks_current_writes", default=None)

# The agent whose code is running in this task: a call through another agent's proxy is a call between agents.
current_agent: ContextVar[Any] = ContextVar("playbooks_current_agent", default=None)


def merge_writes(outer: dict[str, dict[str, Any]], inner: dict[str, dict[str, Any]]) -> None:
    for owner, values in inner.items():
        outer.setdefault(owner, {}).update(values)
