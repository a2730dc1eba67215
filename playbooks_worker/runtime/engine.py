"""Execute one attempt of a run: start the program's agents and replay each from its journal, then go live.

The runtime knows nothing of where journals live or how the run was started: it is handed a provider, the
records each agent may replay, and an IO object for output and input. Local mode, the Celery task and the
tests all drive it the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from playbooks_worker.checkpoints.provider import CheckpointProvider
from playbooks_worker.errors import PlaybooksError, ProgramEnd
from playbooks_worker.program.model import AgentDef, PlaybookDef, Program
from playbooks_worker.runtime.agent import Agent, RemoteAgent, call_site_of
from playbooks_worker.runtime.callpath import Frame, current_agent, current_frame
from playbooks_worker.runtime.journal import Journal
from playbooks_worker.runtime.mailbox import Mailboxes, agent_spec
from playbooks_worker.runtime.namespace import build_namespace, code_filename


class RunIO(Protocol):
    """What a run needs from whoever started it."""

    def deliver(self, event: dict[str, Any]) -> None: ...

    async def read_input(self, agent: Agent) -> str: ...

    def on_resumed(self, agent: Agent) -> None: ...

    def on_checkpoint(self, agent: Agent, record: dict[str, Any], replayed: bool) -> None: ...


class Peers(Protocol):
    """The other agents of a spread run, each in its own task (cluster/spread.py): found, created and
    messaged through the store, never held in this process."""

    def resolve(self, target: str) -> tuple[str, str]: ...  # "agent 1001" | an id | a class -> (id, class)

    def find(self, klass: str) -> str | None: ...

    def new_agent_id(self, klass: str) -> str: ...

    def claim(self, klass: str) -> str: ...  # the one id get_or_create gives for this class

    async def receive(self, agent: Agent, source: str) -> dict[str, str]: ...


@dataclass
class AgentJournal:
    """What an agent may replay in this attempt, and where its checkpoint numbering continues."""

    records: list[dict[str, Any]] = field(default_factory=list)
    next_counter: int = 1


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def agent_id_for(klass: str, index: int, run_id: str) -> str:
    """Stable across resumes (creation order is replayed), unique across runs (the run id is in it)."""
    return f"{snake_case(klass)}_{index}_{run_id}"


def run_id_of_agent(agent_id: str) -> str:
    """The run an agent belongs to: its id ends with `_{run_id}` (agent_id_for)."""
    return agent_id.rsplit("_", 1)[-1]


def entry_agents(program: Program) -> list[tuple[AgentDef, list[PlaybookDef]]]:
    """The agents a run starts with, each with its entry playbooks, in the program's order."""
    groups: dict[str, tuple[AgentDef, list[PlaybookDef]]] = {}
    for definition, playbook in program.entry_points():
        groups.setdefault(definition.name, (definition, []))[1].append(playbook)
    return list(groups.values())


def display_path(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _source_files(program: Program) -> tuple[dict[str, tuple[str, list[str]]], dict[str, list[str]]]:
    """The program's sources by the filename their code is compiled under (resolved paths, as namespace.py
    compiles them) and by the name shown to users. Once per program and working directory, like the code it
    maps: resolving every path on every run cost a worker more than a tenth of a one-step run."""
    cwd = os.getcwd()
    cached = program.__dict__.get("_source_files")
    if cached is not None and cached[0] == cwd:
        return cached[1], cached[2]
    files: dict[str, tuple[str, list[str]]] = {}
    lines_by_display: dict[str, list[str]] = {}
    for path, text in program.sources.items():
        lines = text.splitlines()
        shown = display_path(path)
        files[code_filename(path)] = (shown, lines)
        lines_by_display[shown] = lines
    program.__dict__["_source_files"] = (cwd, files, lines_by_display)
    return files, lines_by_display


class Runtime:
    def __init__(
        self,
        program: Program,
        *,
        run_id: str,
        attempt: int,
        provider: CheckpointProvider,
        io: RunIO,
        journals: dict[str, AgentJournal] | None = None,
        next_seq: Callable[[], int],
        replay_only: bool = False,
        on_agent: Callable[[Agent], None] | None = None,
        settings: Any = None,
        peers: Peers | None = None,
    ) -> None:
        from playbooks_worker.config import Settings

        self.peers = peers  # set: this runtime hosts one agent of a spread run; the others are peers
        self.settings = settings or Settings()
        self._llm: Any = None
        self.program = program
        self.replay_only = replay_only
        self.on_agent = on_agent  # told of each agent as it is created (the runner records it in the run)
        # Set from another thread (a worker's heartbeat) to stop the run at its next live await: handoff,
        # lost lease, cancel. A factory, so each task that stops raises its own exception instance.
        self.stop_reason: Callable[[], BaseException] | None = None
        self.run_id = run_id
        self.attempt = attempt
        self.provider = provider
        self.io = io
        self.journals = journals or {}
        self.next_seq = next_seq
        self.agents: dict[str, Agent] = {}
        self.python_playbooks: dict[str, dict[str, Any]] = {}
        self.mailboxes = Mailboxes()
        self.mailboxes.rebuild([r for saved in self.journals.values() for r in saved.records])
        self.background: list[asyncio.Task[Any]] = []
        # compiled filename -> (name shown to users, source lines); copies: LLM code adds its own
        files, lines_by_display = _source_files(program)
        self.files: dict[str, tuple[str, list[str]]] = dict(files)
        self._lines_by_display: dict[str, list[str]] = dict(lines_by_display)

    # -- hooks used by agents --------------------------------------------------------------------------

    def call_site(self) -> tuple[str, int]:
        return call_site_of(self.files)

    def capture_stack(self) -> list[dict[str, Any]]:
        """The program's frames now executing, innermost first, with their local variables."""
        frames = []
        frame = sys._getframe(1)
        while frame is not None:
            entry = self.files.get(frame.f_code.co_filename)
            if entry is not None:
                from playbooks_worker.runtime.agent import AgentProxy, RemoteAgentProxy

                variables = {k: v for k, v in frame.f_locals.items()
                             if not k.startswith("__") and not callable(v)
                             and not isinstance(v, (ModuleType, AgentProxy, RemoteAgentProxy, _AgentClass))}
                frames.append({"playbook": frame.f_code.co_name, "file": entry[0], "line": frame.f_lineno,
                               "variables": variables})
            frame = frame.f_back
        return frames

    def statement_at(self, file: str, line: int) -> str:
        lines = self._lines_by_display.get(file)
        if not lines or not 0 < line <= len(lines):
            return ""
        return lines[line - 1].strip()

    def on_checkpoint(self, agent: Agent, record: dict[str, Any], replayed: bool) -> None:
        self.io.on_checkpoint(agent, record, replayed)
        for listener in agent.listeners:
            listener(record)

    def llm(self) -> Any:
        """The LLM provider, made on first use from the run's settings."""
        if self._llm is None:
            from playbooks_worker.llm.provider import make_provider

            self._llm = make_provider(self.settings)
        return self._llm

    def register_source(self, filename: str, shown: str, lines: list[str]) -> None:
        """Code compiled at run time (an LLM response) gets statements and call sites like program code."""
        self.files[filename] = (shown, lines)
        self._lines_by_display[shown] = lines

    async def read_input(self, agent: Agent) -> str:
        return await self.io.read_input(agent)

    async def send(self, sender: Agent, target: str, text: str) -> dict[str, str]:
        """Deliver a message; it is the sender's record, and its id (the send's call path) never changes."""
        path = current_frame.get().path
        if self.peers is not None:
            # Into the recipient's mailbox stream in the same atomic write as this send's record.
            to, _ = self.peers.resolve(target)
            message = {"id": f"{sender.id}:{path}", "from": sender.id, "from_klass": sender.klass, "to": to,
                       "text": text}
            sender.journal.staged.setdefault(path, []).append({"send": message, "snoop": {"type": "message",
                                                                                           **message}})
            return message
        recipient = self._resolve(target)
        message = {"id": f"{sender.id}:{path}", "from": sender.id, "from_klass": sender.klass,
                   "to": recipient.id, "text": text}
        self.mailboxes.put(message)
        self.io.deliver({"type": "message", **message})
        return message

    async def receive(self, agent: Agent, source: str) -> dict[str, str]:
        if self.peers is not None:
            return await self.peers.receive(agent, source)
        return await self.mailboxes.take(agent.id, source)

    def call_between(self, caller: Agent, callee: Agent, name: str) -> Callable[..., Any]:
        """`await other.GetTaxRate(x)`: a leaf of the caller (its result recorded in the caller's journal),
        running the callee's playbook on the callee's state. The callee's own calls inside it are journaled by
        the callee under a path named after the caller's call, so they never collide with its own paths."""
        function = callee.namespace[name]

        def call(*args: Any, **kwargs: Any) -> Any:
            async def live() -> Any:
                agent_token = current_agent.set(callee)
                frame_token = current_frame.set(Frame(f"{caller.id}/{current_frame.get().path}"))
                try:
                    return await function(*args, **kwargs)
                finally:
                    current_frame.reset(frame_token)
                    current_agent.reset(agent_token)

            return caller.leaf("agent_call", f"{callee.klass}.{name}", args, kwargs, live)

        call.__name__ = name
        return call

    def agent_class_proxy(self, klass: str) -> Any:
        return _AgentClass(self, klass)

    # -- agents ----------------------------------------------------------------------------------------

    def _new_agent(self, definition: AgentDef, agent_id: str | None = None) -> Agent:
        agent_id = agent_id or agent_id_for(definition.name, len(self.agents) + 1, self.run_id)
        saved = self.journals.get(agent_id, AgentJournal())
        journal = Journal(
            agent_id=agent_id,
            run_id=self.run_id,
            attempt=self.attempt,
            provider=self.provider,
            records=saved.records,
            next_counter=saved.next_counter,
            next_seq=self.next_seq,
            sink=self.io,
            statement_at=self.statement_at,
        )
        agent = Agent(self, definition, agent_id, journal)
        journal.on_live = lambda _journal: self.io.on_resumed(agent)
        self.agents[agent_id] = agent
        if self.on_agent is not None:
            self.on_agent(agent)
        return agent

    def create_agent(self, klass: str, kwargs: dict[str, Any], agent_id: str | None = None) -> Agent | RemoteAgent:
        try:
            definition = self.program.agent(klass)
        except KeyError:
            raise PlaybooksError(f"CreateAgent: no agent named {klass!r} in {self.program.path.name}") from None
        if self.peers is not None:
            # Its own task: it exists (queued) exactly when this call's record is written (by whichever
            # creator records first, for an id claimed by get_or_create).
            try:
                json.dumps(kwargs)
            except (TypeError, ValueError):
                raise PlaybooksError(
                    f"CreateAgent({klass!r}, …): its arguments must be plain data (JSON) when agents run as "
                    f"tasks of their own: {kwargs!r:.200}", hint="pass ids, numbers, strings, lists or dicts; or "
                    "keep the run's agents in one task: [cluster] spread_agents = false") from None
            creator = current_agent.get()
            assert creator is not None
            agent_id = agent_id or self.peers.new_agent_id(klass)
            creator.journal.staged.setdefault(current_frame.get().path, []).append(
                {"create": {"agent_id": agent_id, "klass": klass, "kwargs": kwargs, "entry": False}})
            return RemoteAgent(agent_id, klass)
        agent = self._new_agent(definition)
        self._start(agent, kwargs)
        return agent

    def ensure_agent(self, agent_id: str, klass: str, kwargs: dict[str, Any]) -> Agent | RemoteAgent:
        if agent_id in self.agents:
            return self.agents[agent_id]
        if self.peers is not None:
            return RemoteAgent(agent_id, klass)
        agent = self._new_agent(self.program.agent(klass), agent_id)
        self._start(agent, kwargs)
        return agent

    def _start(self, agent: Agent, kwargs: dict[str, Any]) -> None:
        build_namespace(agent)
        for key, value in kwargs.items():
            agent.state._values[key] = value
        begins = self._begins(agent)
        if begins:
            self.background.append(asyncio.ensure_future(self._main(agent, begins, {})))

    @staticmethod
    def _begins(agent: Agent) -> list[PlaybookDef]:
        # A created agent runs its begin playbooks; with none, Main, or its first `##` playbook that needs no
        # arguments; with none of those it only serves calls and messages.
        playbooks = list(agent.definition.playbooks.values())
        return [p for p in playbooks if p.is_begin] or [p for p in playbooks if p.name == "Main"] or [
            p for p in playbooks if p.kind != "python" and all(q.default is not None for q in p.params)][:1]

    def _resolve(self, target: str) -> Agent:
        spec = agent_spec(target)
        if spec in self.agents:
            return self.agents[spec]
        for agent in self.agents.values():
            if agent.klass == spec:
                return agent
        raise PlaybooksError(f"no agent {target!r} in this run (agents: {', '.join(self.agents)})")

    # -- the run ---------------------------------------------------------------------------------------

    async def run_agent(self, agent_id: str, klass: str, kwargs: dict[str, Any], entry: bool,
                        args: dict[str, Any] | None) -> Any:
        """A spread run's task for one agent: run it (its entry playbooks, or the playbooks a created agent
        begins with) until they return; messages to and from its peers go through the store."""
        agent = self._new_agent(self.program.agent(klass), agent_id)
        build_namespace(agent)
        for key, value in kwargs.items():
            agent.state._values[key] = value
        entries = dict((d.name, p) for d, p in self.entry_agents())
        playbooks = entries.get(klass, []) if entry else self._begins(agent)
        try:
            return await self._main(agent, playbooks, args) if playbooks else None
        finally:
            await self.close_llm()

    def entry_agents(self) -> list[tuple[AgentDef, list[PlaybookDef]]]:
        return entry_agents(self.program)

    async def run(self, args: dict[str, Any] | None = None) -> Any:
        """Run the program to its end; returns the first entry playbook's value (None after EndProgram)."""
        mains: list[asyncio.Future[Any]] = []
        started: list[tuple[Agent, list[PlaybookDef]]] = []
        for definition, playbooks in self.entry_agents():
            started.append((self._new_agent(definition), playbooks))
        for agent, _ in started:
            build_namespace(agent)
        for i, (agent, playbooks) in enumerate(started):
            mains.append(asyncio.ensure_future(self._main(agent, playbooks, args if i == 0 else {})))
        try:
            await self._until_done(mains)
        except ProgramEnd:
            return None
        finally:
            for task in [*mains, *self.background]:
                task.cancel()
            await self.close_llm()
        return mains[0].result() if mains and mains[0].done() else None

    async def close_llm(self) -> None:
        """Close the LLM provider's pooled connections while this run's event loop still runs."""
        llm, self._llm = self._llm, None
        close = getattr(llm, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()

    async def _until_done(self, mains: list[asyncio.Future[Any]]) -> None:
        """Until every agent's task finished, or all that remain wait for messages no one can send."""
        loop = asyncio.get_running_loop()
        while True:
            tasks = [*mains, *self.background]
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            running = [t for t in tasks if not t.done()]
            if not running or self.mailboxes.quiescent(len(running)):
                return
            # Woken when a task ends or starts waiting for a message. A bare future: a task waiting on an Event
            # and asyncio.wait cost a worker event-loop turns on every run, each a system call.
            woken: asyncio.Future[None] = loop.create_future()

            def wake(*_: Any, woken: asyncio.Future[None] = woken) -> None:
                if not woken.done():
                    woken.set_result(None)

            self.mailboxes.on_block = wake
            for task in running:
                task.add_done_callback(wake)
            try:
                await woken
            finally:
                self.mailboxes.on_block = None
                for task in running:
                    task.remove_done_callback(wake)

    async def _main(self, agent: Agent, playbooks: list[PlaybookDef], args: dict[str, Any] | None) -> Any:
        current_frame.set(Frame(""))  # this task's root: top-level calls get paths 1, 2, 3…
        current_agent.set(agent)
        result = None
        for i, playbook in enumerate(playbooks):
            function = agent.namespace.get(playbook.name)
            if function is None:
                raise PlaybooksError(f"{playbook.location}: playbook {playbook.name} was not defined when "
                                     f"agent {agent.klass} started")
            value = await function(**(args or {})) if i == 0 else await function()
            if i == 0:
                result = value
        return result


class _AgentClass:
    """`MyAgent` as a name in playbook code: creates or finds agents of that class."""

    def __init__(self, runtime: Runtime, klass: str) -> None:
        self._runtime = runtime
        self._klass = klass

    def get_or_create(self, requester: Any = None, **kwargs: Any) -> Any:
        """An agent of this class: the first one in the run, or a new one (journaled: same answer on replay)."""
        runtime, klass = self._runtime, self._klass
        agent = current_agent.get()
        if agent is None:
            raise PlaybooksError(f"{klass}.get_or_create() must be called from playbook code")

        async def find_or_create() -> str:
            if runtime.peers is not None:
                found = runtime.peers.find(klass)
                if found is not None:
                    return found
                # Two agents asking at once must get one agent: the first to claim the class names it.
                return runtime.create_agent(klass, kwargs, runtime.peers.claim(klass)).id
            for existing in runtime.agents.values():
                if existing.klass == klass:
                    return existing.id
            return runtime.create_agent(klass, kwargs).id

        leaf = agent.leaf("create_agent", klass, (), kwargs, find_or_create)

        async def proxy() -> Any:
            return runtime.ensure_agent(await leaf, klass, kwargs).proxy

        return proxy()

    def __repr__(self) -> str:
        return f"<agent class {self._klass}>"
