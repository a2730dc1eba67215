"""The terminal side of a run: program output on stdout, the guide's status lines on stderr, user input."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import sys
from collections.abc import Iterable
from typing import Any

import click

from playbooks_worker.errors import InputUnavailable
from playbooks_worker.messages import found_checkpoint_lines, no_checkpoints_line, resumed_line, short


class ConsoleIO:
    def __init__(self, *, inputs: Iterable[str] = (), verbose: bool = False, answer_hint: str = "",
                 json_events: bool = False, snoop: bool = False) -> None:
        self.snoop = snoop  # --snoop: agent-to-agent messages as status lines
        self.json_events = json_events  # --json: each output event as a JSON line on stdout
        self.inputs = collections.deque(inputs)
        self.verbose = verbose
        self.answer_hint = answer_hint
        self.found: set[str] = set()
        self.resumed: set[str] = set()
        self.checkpoints_written = 0
        self.replayed = 0
        self.line: Any = None  # the live status line (statusline.py), on a terminal only

    # -- output ----------------------------------------------------------------------------------------

    def deliver(self, event: dict[str, Any]) -> None:
        if self.json_events:
            click.echo(json.dumps(event, ensure_ascii=False, default=str))
        elif event.get("type") == "say":
            click.echo(event["message"])
        elif event.get("type") == "message":
            if self.snoop:
                self.status(f"📨 {event['from']} → {event['to']}: {short(event['text'], 200)}")
            return
        sys.stdout.flush()

    def status(self, text: str) -> None:
        click.echo(text, err=True)

    notice = status

    # -- the guide's resume lines ----------------------------------------------------------------------

    def found_checkpoint(self, agent_id: str, record: dict[str, Any]) -> None:
        self.found.add(agent_id)
        for line in found_checkpoint_lines(agent_id, record):
            self.status(line)

    def no_checkpoints(self, agent_id: str) -> None:
        self.status(no_checkpoints_line(agent_id))

    def on_resumed(self, agent: Any) -> None:
        if agent.id in self.found and agent.id not in self.resumed:
            self.resumed.add(agent.id)
            self.status(resumed_line(agent.id))

    def finish_resume_lines(self) -> None:
        for agent_id in sorted(self.found - self.resumed):
            self.resumed.add(agent_id)
            self.status(resumed_line(agent_id))

    def on_checkpoint(self, agent: Any, record: dict[str, Any], replayed: bool) -> None:
        if replayed:
            self.replayed += 1
        else:
            self.checkpoints_written += 1
        if self.line is not None:
            self.line.update(step=record["metadata"]["name"] if record["metadata"]["kind"] == "step" else None,
                             checkpoints=self.checkpoints_written + self.replayed)
        if self.verbose:
            meta = record["metadata"]
            mark = "↺ replayed" if replayed else "✓ saved"
            took = f" [{meta['duration_ms']:.1f} ms]" if meta.get("duration_ms") and not replayed else ""
            self.status(f"   {mark} {record['checkpoint_id']} {meta['kind']} {short(meta['name'], 40)} "
                        f"at {meta['file']}:{meta['line']}{took}")

    # -- input -----------------------------------------------------------------------------------------

    async def read_input(self, agent: Any) -> str:
        if self.inputs:
            return self.inputs.popleft()
        stdin = sys.stdin
        if stdin is None or stdin.closed:
            raise self._no_input()
        if stdin.isatty():
            try:
                with self.line.paused() if self.line is not None else contextlib.nullcontext():
                    return await asyncio.to_thread(input, "User: ")
            except EOFError:
                raise self._no_input() from None
        line = await asyncio.to_thread(stdin.readline)
        if not line:
            raise self._no_input()
        return line.rstrip("\n")

    def _no_input(self) -> InputUnavailable:
        return InputUnavailable("the run waits for input from user, and none is left (stdin closed, no --input)",
                                hint=self.answer_hint or None)
