"""Run an LLM playbook: ask the model for code, execute it as it streams, loop until the playbook returns.

Durability (DESIGN §3, §7). Each model call is a leaf whose record is the whole response. The statements of
a response run in the frame of that call, so their own leaves (Say, tools, input) are journaled beneath it:

- live, the response streams in and each statement runs as soon as it is complete; when the stream ends the
  response is recorded — the checkpoint that means "this call is paid for";
- on replay, the recorded response's code runs again and its leaves replay from their records: no request;
- a call whose stream was cut off by a crash has no record: it is requested once more. The records its
  partial code left replay while the new answer's calls match them (a Say is not said twice), and are
  forgotten from the first call that differs, since the new answer may differ.

A statement that stops the run (waiting for input, handoff, EndProgram) lets the stream finish and the
response be recorded first, so an answer arriving later does not cost the call again.
"""

from __future__ import annotations

import ast
import inspect
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from playbooks_worker import metrics
from playbooks_worker.errors import (
    Cancelled,
    Handoff,
    InputUnavailable,
    PlaybookReturn,
    PlaybooksError,
    ProgramEnd,
)
from playbooks_worker.llm.codebuffer import CodeBuffer
from playbooks_worker.llm.prompt import SYSTEM, first_turn, next_turn, render_callables, stable_repr
from playbooks_worker.llm.provider import LLMRequest, LLMResponse
from playbooks_worker.runtime.callpath import Frame, current_frame
from playbooks_worker.runtime.digest import digest_args

if TYPE_CHECKING:
    from playbooks_worker.program.model import PlaybookDef
    from playbooks_worker.runtime.agent import Agent

MAX_CORRECTIONS = 3  # a response whose code fails is shown its error this many times before the playbook fails
_SUSPEND = (ProgramEnd, InputUnavailable, Handoff, Cancelled)  # stop the run, but record the response first


@dataclass
class TurnOutcome:
    returned: bool = False
    value: Any = None
    suspend: BaseException | None = None
    error: str | None = None


class _Executor:
    """Runs the statements of one response in the playbook's namespace, in the frame of its model call."""

    def __init__(self, interpreter: LLMPlaybook, path: str, filename: str) -> None:
        self.interpreter = interpreter
        self.path = path
        self.filename = filename
        self.buffer = CodeBuffer()
        self.outcome = TurnOutcome()
        self.stopped = False

    async def feed(self, text: str) -> None:
        self.buffer.feed(text)
        if "\n" in text and not self.stopped:
            await self._run(self.buffer.ready())

    async def finish(self) -> TurnOutcome:
        self.buffer.finish()
        if not self.stopped:
            try:
                statements = self.buffer.ready(final=True)
            except SyntaxError as exc:
                self.outcome.error = f"line {exc.lineno}: SyntaxError: {exc.msg}"
                statements = []
            await self._run(statements)
        return self.outcome

    async def _run(self, statements: list[tuple[ast.stmt, str]]) -> None:
        ns = self.interpreter.namespace
        self.interpreter.agent.runtime.register_source(self.filename, self.filename, self.buffer.lines)
        token = current_frame.set(self.interpreter.frames.setdefault(self.path, Frame(self.path)))
        try:
            for node, source in statements:
                if self.stopped:
                    return
                try:
                    code = compile(ast.Module(body=[node], type_ignores=[]), self.filename, "exec",
                                   flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
                    result = eval(code, ns)
                    if inspect.iscoroutine(result):
                        await result
                except PlaybookReturn as ret:
                    self.outcome.returned, self.outcome.value, self.stopped = True, ret.value, True
                except _SUSPEND as exc:
                    self.outcome.suspend, self.stopped = exc, True
                except Exception as exc:
                    where = f"line {getattr(node, 'lineno', '?')}: {source.strip()[:200]}"
                    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                    self.outcome.error, self.stopped = f"{where}\n{detail}", True
        finally:
            current_frame.reset(token)


class LLMPlaybook:
    """One call of an LLM playbook: its namespace (locals), its conversation, its turns."""

    def __init__(self, agent: Agent, playbook: PlaybookDef, arguments: dict[str, Any]) -> None:
        self.agent = agent
        self.playbook = playbook
        self.arguments = arguments
        self.namespace: dict[str, Any] = dict(agent.namespace)
        self.namespace.update(arguments)
        self._base = set(agent.namespace)
        self.frames: dict[str, Frame] = {}

    def variables(self) -> dict[str, Any]:
        return {k: v for k, v in self.namespace.items()
                if (k not in self._base or k in self.arguments) and not k.startswith("_")
                and not callable(v) and not inspect.ismodule(v)}

    async def run(self) -> Any:
        agent, playbook = self.agent, self.playbook
        call = f"{playbook.name}({', '.join(f'{k}={stable_repr(v)}' for k, v in self.arguments.items())})"
        callables = render_callables(agent.definition, agent.namespace,
                                     agent.runtime.python_playbooks.get(agent.klass, {}))
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": first_turn(agent.definition, playbook, call, callables,
                                                           agent.state.to_dict())}]
        corrections = 0
        while True:
            response, outcome, log = await self.turn(messages)
            if outcome.returned:
                return outcome.value
            if outcome.suspend is not None:
                raise outcome.suspend
            if outcome.error is not None:
                corrections += 1
                if corrections > MAX_CORRECTIONS:
                    raise PlaybooksError(
                        f"{playbook.location}: the model's code for {playbook.name} failed {MAX_CORRECTIONS + 1} "
                        f"times in a row; last error: {outcome.error}",
                        hint="make the playbook's steps clearer, or use a stronger model")
            else:
                corrections = 0
            messages = [*messages, {"role": "assistant", "content": response},
                        {"role": "user", "content": next_turn(playbook, log, self.variables(), agent.state.to_dict(),
                                                              outcome.error)}]

    async def turn(self, messages: list[dict[str, str]]) -> tuple[str, TurnOutcome, list[str]]:
        agent, runtime = self.agent, self.agent.runtime
        settings = runtime.settings.llm
        path = current_frame.get().child()
        agent.llm_calls += 1
        if agent.llm_calls > settings.max_llm_calls:
            raise PlaybooksError(f"agent {agent.id} made more than {settings.max_llm_calls} LLM calls in this run",
                                 hint="raise [llm] max_llm_calls if the program really needs more")
        site = (self.playbook.location.file, self.playbook.location.line)
        # The conversation is the call's identity, not the model it was sent to: a resume after `[llm] model`
        # changed replays the answers already paid for (and `inspect`, with its own settings, can replay them).
        digest = digest_args(tuple((m["role"], m["content"]) for m in messages))
        filename = f"<llm {self.playbook.name} {agent.id} {path}>"
        log: list[str] = []

        def listen(record: dict[str, Any]) -> None:
            meta = record["metadata"]
            if meta["call_path"].rpartition(".")[0] == path:
                result = "raised " + repr(record["error"]) if record["error"] is not None else (
                    "delivered" if meta["kind"] in ("say", "step") else stable_repr(record["result"]))
                call = f"Step({meta['name']!r})" if meta["kind"] == "step" else meta.get("call") or meta["name"]
                log.append(f"{call} → {result}")

        agent.listeners.append(listen)
        try:
            record = agent.journal.lookup(path, "llm", self.playbook.name, digest,
                                          lambda: f"{self.playbook.name} (LLM call #{agent.llm_calls})", site)
            executor = _Executor(self, path, filename)
            if record is not None:
                runtime.on_checkpoint(agent, record, replayed=True)
                response = record["result"]["response"]
                await executor.feed(response)
                return response, await executor.finish(), log
            agent.journal.reask(path)
            if runtime.replay_only:
                from playbooks_worker.runtime.agent import ReplayExhausted

                raise ReplayExhausted(runtime.capture_stack(), agent)
            if runtime.stop_reason is not None:
                raise runtime.stop_reason()
            label = f"{self.playbook.name}: LLM call #{agent.llm_calls}"
            request = LLMRequest(model=settings.model, messages=messages, agent=agent.klass,
                                 call_index=agent.llm_calls)
            started = time.time()
            answer: LLMResponse = await runtime.llm().complete(request, on_text=executor.feed)
            metrics.llm_answered(answer.usage)
            outcome = await executor.finish()
            agent.journal.settle(path)
            record = agent.journal.append(path, "llm", self.playbook.name, digest, site, result=answer.to_record(),
                                          started=started, call=label, statement=label)
            runtime.on_checkpoint(agent, record, replayed=False)
            return answer.text, outcome, log
        finally:
            agent.listeners.remove(listen)
