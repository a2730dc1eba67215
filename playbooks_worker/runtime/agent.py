"""An agent in a run: its state, namespace and journal, and the two kinds of durable call (DESIGN §3).

- A *leaf* (a tool, Say, input, Step, Sleep…) runs at most once per record: with a record for its call path,
  its recorded result (or exception, and the state writes it made) comes back without running it; without
  one, it runs live and its record is appended — the checkpoint.
- A *composite* (a code or LLM playbook) has no record of its own: its code runs again on replay and its
  leaves replay from theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import reprlib
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from playbooks_worker.errors import InputUnavailable, PlaybookReturn
from playbooks_worker.runtime.callpath import Frame, current_agent, current_frame, current_writes, merge_writes
from playbooks_worker.runtime.digest import digest_args
from playbooks_worker.runtime.journal import Journal
from playbooks_worker.runtime.state import AgentState

if TYPE_CHECKING:
    from playbooks_worker.program.model import AgentDef
    from playbooks_worker.runtime.engine import Runtime


_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40


def describe_call(name: str, args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> str:
    """`ProcessOrder({'id': 101, ...})`: short enough to store in every record's metadata."""
    parts = [_short.repr(a) for a in args] + [f"{k}={_short.repr(v)}" for k, v in (kwargs or {}).items()]
    return f"{name}({', '.join(parts)})"


class Agent:
    def __init__(self, runtime: Runtime, definition: AgentDef, agent_id: str, journal: Journal) -> None:
        self.runtime = runtime
        self.definition = definition
        self.id = agent_id
        self.klass = definition.name
        self.journal = journal
        self.state = AgentState(owner=agent_id)
        self.namespace: dict[str, Any] = {}
        self.current_step: str | None = None
        self.proxy = AgentProxy(self)
        self.llm_calls = 0  # replayed and live: the scripted provider's index, and max_llm_calls' count
        self.listeners: list[Callable[[dict[str, Any]], None]] = []  # see every record this agent makes or replays

    # -- durable calls ---------------------------------------------------------------------------------

    def leaf(
        self,
        kind: str,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        live: Callable[[], Awaitable[Any]],
        output: Callable[[Any], dict[str, Any] | None] | None = None,
    ) -> Coroutine[Any, Any, Any]:
        # Everything that fixes the call's identity happens now, at the call site, not when it is awaited.
        path = current_frame.get().child()
        return self._leaf(path, kind, name, args, kwargs, digest_args(args, kwargs), self.runtime.call_site(),
                          live, output)

    async def _leaf(
        self,
        path: str,
        kind: str,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        digest: str,
        site: tuple[str, int],
        live: Callable[[], Awaitable[Any]],
        output: Callable[[Any], dict[str, Any] | None] | None,
    ) -> Any:
        record = self.journal.lookup(path, kind, name, digest, lambda: describe_call(name, args, kwargs), site)
        if record is not None:
            return self._replay(record)
        if self.runtime.replay_only:
            raise ReplayExhausted(self.runtime.capture_stack(), self)
        # Yield to the event loop once per live leaf: most awaits here never suspend (Say, Step, a sync
        # tool), so without this a cancellation (Ctrl+C, SIGTERM handoff) could not land until the whole
        # program had finished. Landing here, between two checkpoints, nothing runs twice on resume.
        await asyncio.sleep(0)
        if self.runtime.stop_reason is not None:
            raise self.runtime.stop_reason()
        writes: dict[str, dict[str, Any]] = {}
        frame_token = current_frame.set(Frame(path))
        writes_token = current_writes.set(writes)
        started = time.time()
        try:
            result = await live()
        except PlaybookReturn as ret:
            result = ret.value
        except InputUnavailable:
            # Not an outcome of the call: the run stops to wait, and on resume the call must ask again
            # (recorded, its replay would raise "no input" forever).
            current_frame.reset(frame_token)
            current_writes.reset(writes_token)
            raise
        except Exception as exc:
            current_frame.reset(frame_token)
            current_writes.reset(writes_token)
            self._pass_up(writes)
            record = self.journal.append(path, kind, name, digest, site, error=exc, writes=writes, started=started,
                                         call=describe_call(name, args, kwargs))
            self.runtime.on_checkpoint(self, record, replayed=False)
            _tag(exc, record)
            raise
        except BaseException:
            current_frame.reset(frame_token)
            current_writes.reset(writes_token)
            raise
        current_frame.reset(frame_token)
        current_writes.reset(writes_token)
        self._pass_up(writes)
        record = self.journal.append(path, kind, name, digest, site, result=result, writes=writes,
                                     output=output(result) if output else None, started=started,
                                     call=describe_call(name, args, kwargs))
        self.runtime.on_checkpoint(self, record, replayed=False)
        return result

    def sync_leaf(self, kind: str, name: str, args: tuple[Any, ...], live: Callable[[], Any]) -> Any:
        """A leaf called without await (time.time(), random.random() inside playbook code)."""
        path = current_frame.get().child()
        site = self.runtime.call_site()
        digest = digest_args(args)
        record = self.journal.lookup(path, kind, name, digest, lambda: describe_call(name, args, None), site)
        if record is not None:
            return self._replay(record)
        if self.runtime.replay_only:
            raise ReplayExhausted(self.runtime.capture_stack(), self)
        result = live()
        record = self.journal.append(path, kind, name, digest, site, result=result,
                                     call=describe_call(name, args, None))
        self.runtime.on_checkpoint(self, record, replayed=False)
        return result

    def _replay(self, record: dict[str, Any]) -> Any:
        writes = record["state_writes"]
        if writes:
            for owner, values in writes.items():
                target = self.runtime.agents.get(owner)
                if target is not None:
                    target.state.apply(values)
            self._pass_up(writes)
        self.runtime.on_checkpoint(self, record, replayed=True)
        error = record["error"]
        if error is not None:
            _tag(error, record)
            raise error
        return record["result"]

    def _pass_up(self, writes: dict[str, dict[str, Any]]) -> None:
        """An enclosing live leaf's record must carry the writes made inside it too."""
        if writes:
            outer = current_writes.get()
            if outer is not None:
                merge_writes(outer, writes)

    def composite(self, run: Callable[[], Awaitable[Any]]) -> Coroutine[Any, Any, Any]:
        path = current_frame.get().child()
        return self._composite(path, run)

    async def _composite(self, path: str, run: Callable[[], Awaitable[Any]]) -> Any:
        token = current_frame.set(Frame(path))
        try:
            return await run()
        except PlaybookReturn as ret:
            return ret.value
        finally:
            current_frame.reset(token)

    @property
    def idempotency_key(self) -> str:
        """Stable across retries of the current call: pass it to external systems to make a tool idempotent."""
        return f"{self.id}:{current_frame.get().path}"

    def __repr__(self) -> str:
        return f"<Agent {self.klass} {self.id}>"


class ReplayExhausted(BaseException):
    """In replay-only mode (inspect), the first call the journal has no record for: stop there."""

    def __init__(self, frames: list[dict[str, Any]], agent: Agent) -> None:
        super().__init__("replay reached the end of the journal")
        self.frames = frames
        self.agent = agent


def _tag(exc: BaseException, record: dict[str, Any]) -> None:
    # Lets the runner tell "this run failed because of checkpoint N" and retry that call on resume.
    with contextlib.suppress(AttributeError):
        exc.__pbw_checkpoint__ = (record["checkpoint_id"], record["metadata"]["seq"])  # type: ignore[attr-defined]


class _Handle:
    """What playbook code holds for an agent: its id and class; referenced by id in checkpoints."""

    __slots__ = ("_agent",)

    def __init__(self, agent: Agent | RemoteAgent) -> None:
        object.__setattr__(self, "_agent", agent)

    @property
    def id(self) -> str:
        return self._agent.id

    @property
    def klass(self) -> str:
        return self._agent.klass

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot set {name!r} on an agent; use self.state.{name} = …")

    def __repr__(self) -> str:
        return f"{self._agent.klass}({self._agent.id})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Never pickled with its runtime.
        return (_agent_ref, (self._agent.id, self._agent.klass))


class AgentProxy(_Handle):
    """What playbook code sees as `self` / `agent`: id, klass, state, and its playbooks and builtins."""

    __slots__ = ()
    _agent: Agent

    @property
    def state(self) -> AgentState:
        return self._agent.state

    @property
    def idempotency_key(self) -> str:
        return self._agent.idempotency_key

    def __getattr__(self, name: str) -> Any:
        agent = self._agent
        value = agent.namespace.get(name)
        if value is None or not callable(value):
            raise AttributeError(f"agent {agent.klass} has no playbook or builtin {name!r}")
        caller = current_agent.get()
        if caller is not None and caller is not agent and name in agent.definition.playbooks:
            return agent.runtime.call_between(caller, agent, name)
        return value


class RemoteAgent:
    """Another agent of a spread run, living in its own task (maybe on another worker): known by id and class.
    Messages reach it; its playbooks cannot be called from here (see `Runtime.call_between`)."""

    def __init__(self, agent_id: str, klass: str) -> None:
        self.id = agent_id
        self.klass = klass
        self.proxy = RemoteAgentProxy(self)


class RemoteAgentProxy(_Handle):
    """What playbook code sees for an agent in another task: `.id`, `.klass`, and a clear error for the rest."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        from playbooks_worker.errors import PlaybooksError

        agent = self._agent
        raise PlaybooksError(
            f"agent {agent.klass} ({agent.id}) runs as its own task in this cluster run: its playbook or "
            f"attribute {name!r} cannot be used from another agent; send it a message instead",
            hint="or keep the run's agents in one task: [cluster] spread_agents = false")


def _agent_ref(agent_id: str, klass: str) -> str:
    return f"{klass}({agent_id})"


def call_site_of(files: dict[str, tuple[str, list[str]]]) -> tuple[str, int]:
    frame = sys._getframe(2)
    for _ in range(8):
        if frame is None:
            break
        entry = files.get(frame.f_code.co_filename)
        if entry is not None:
            return entry[0], frame.f_lineno
        frame = frame.f_back
    return "<runtime>", 0
