"""Agents' mailboxes, rebuilt from the journals on resume: the journal *is* the mailbox.

A message sent to an agent is the sender's checkpoint (its record holds the message); a message taken is the
receiver's (its record holds the message's id). So what was sent and not yet taken when the process died is
exactly: every sent message whose id no receive record names — put back in order, nothing lost. A send that
was in flight (delivered, not yet recorded) is sent again on resume with the same id (its call path), and
dropped if the receiver had already taken it: nothing delivered twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Message = dict[str, str]  # {"id", "from", "from_klass", "to", "text"}


def agent_spec(target: str) -> str:
    """Who `Say`, `SendMessage` or `WaitForMessage` names: an agent id or class (`"agent ID"` means ID)."""
    spec = str(target).strip()
    return spec[6:].strip() if spec.lower().startswith("agent ") else spec


def matches(message: Message, source: str) -> bool:
    spec = agent_spec(source)
    return spec in ("*", "") or spec in (message["from"], message.get("from_klass"))


class Mailboxes:
    def __init__(self) -> None:
        self.pending: dict[str, list[Message]] = {}
        self.taken: set[str] = set()
        self._changed: dict[str, asyncio.Event] = {}
        self.blocked: dict[str, int] = {}  # agent id -> its tasks waiting for a message
        self.on_block: Callable[[], None] | None = None  # called whenever a task starts waiting (quiescence check)

    def rebuild(self, records: list[dict[str, Any]]) -> None:
        """From every agent's replayable records, in the order they were written."""
        sent: list[tuple[int, Message]] = []
        for record in records:
            meta, result = record["metadata"], record["result"]
            if meta["kind"] == "send" and isinstance(result, dict):
                sent.append((meta["seq"], result))
            elif meta["kind"] == "receive" and isinstance(result, dict):
                self.taken.add(result["id"])
        for _, message in sorted(sent, key=lambda pair: pair[0]):
            if message["id"] not in self.taken:
                self.pending.setdefault(message["to"], []).append(message)

    def put(self, message: Message) -> bool:
        if message["id"] in self.taken or any(m["id"] == message["id"]
                                              for m in self.pending.get(message["to"], ())):
            return False
        self.pending.setdefault(message["to"], []).append(message)
        self._event(message["to"]).set()
        return True

    async def take(self, agent_id: str, source: str) -> Message:
        while True:
            queue = self.pending.get(agent_id, [])
            for i, message in enumerate(queue):
                if matches(message, source):
                    del queue[i]
                    self.taken.add(message["id"])
                    return message
            event = self._event(agent_id)
            event.clear()
            self.blocked[agent_id] = self.blocked.get(agent_id, 0) + 1
            if self.on_block is not None:
                self.on_block()
            try:
                await event.wait()
            finally:
                self.blocked[agent_id] -= 1

    def quiescent(self, running: int) -> bool:
        """Every running task waits for a message, and none is waiting in their mailboxes: nobody can send."""
        waiting = sum(self.blocked.values())
        return running > 0 and waiting >= running and not any(
            self.pending.get(agent_id) for agent_id, count in self.blocked.items() if count)

    def _event(self, agent_id: str) -> asyncio.Event:
        if agent_id not in self._changed:
            self._changed[agent_id] = asyncio.Event()
        return self._changed[agent_id]
