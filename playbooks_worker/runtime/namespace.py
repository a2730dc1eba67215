"""An agent's namespace: builtins, its playbooks as callables, and the names its ```python blocks define.

Code playbooks are compiled once per run into `async def`s whose line numbers are the `.pb` file's, so
tracebacks, checkpoint metadata and `inspect` all point at the line the user wrote.
"""

from __future__ import annotations

import ast
import builtins
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playbooks_worker.errors import ProgramError
from playbooks_worker.program.model import CodeBlock, PlaybookDef
from playbooks_worker.runtime.builtins import make_builtins
from playbooks_worker.runtime.callpath import SETUP_PATH, Frame, current_agent, current_frame
from playbooks_worker.runtime.determinism import make_import

if TYPE_CHECKING:
    from playbooks_worker.runtime.agent import Agent


def code_filename(location_file: str) -> str:
    """The filename code is compiled under: absolute, so frames map back to the program's sources."""
    return str(Path(location_file).resolve())


def _parse(block: CodeBlock) -> ast.Module:
    try:
        tree = compile(block.code, code_filename(block.location.file), "exec",
                       flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except SyntaxError as exc:
        line = block.location.line + (exc.lineno or 1) - 1
        raise ProgramError(f"{block.location.file}:{line}: {exc.msg}") from None
    ast.increment_lineno(tree, block.location.line - 1)
    return tree


def _once(owner: Any, make: Callable[[], Any]) -> Any:
    """Compile once per parsed program: a worker runs the same (cached) program many times."""
    code = owner.__dict__.get("_compiled")
    if code is None:
        code = make()
        owner.__dict__["_compiled"] = code
    return code


def compile_code_playbook(playbook: PlaybookDef) -> Any:
    return _once(playbook, lambda: _compile_code_playbook(playbook))


def _compile_code_playbook(playbook: PlaybookDef) -> Any:
    """The code object of a module defining `async def __playbook__(<params>)` with the block as body."""
    assert playbook.code is not None
    tree = _parse(playbook.code)
    args, defaults = [], []
    for param in playbook.params:
        args.append(ast.arg(arg=param.name))
        if param.default is not None:
            defaults.append(ast.parse(param.default, mode="eval").body)
        elif defaults:
            defaults.append(ast.Constant(None))
    function = ast.AsyncFunctionDef(
        name=playbook.name,
        args=ast.arguments(posonlyargs=[], args=args, vararg=None, kwonlyargs=[], kw_defaults=[],
                           kwarg=None, defaults=defaults),
        body=tree.body or [ast.Pass()],
        decorator_list=[],
        returns=None,
        lineno=playbook.code.location.line,
        col_offset=0,
        end_lineno=max(playbook.code.location.line, getattr(tree.body[-1], "end_lineno", 0) if tree.body else 0),
        end_col_offset=0,
    )
    module = ast.Module(body=[function], type_ignores=[])
    ast.fix_missing_locations(module)
    # dont_inherit: this module's `from __future__ import annotations` must not leak into the user's code.
    return compile(module, code_filename(playbook.code.location.file), "exec", dont_inherit=True)


def build_namespace(agent: Agent) -> None:
    """Fill `agent.namespace`; runs the agent's ```python blocks (their top level runs on every replay)."""
    ns = agent.namespace
    ns["__name__"] = f"playbooks_program.{agent.klass}"  # not importable: cloudpickle saves classes by value
    ns["__builtins__"] = {**builtins.__dict__, "__import__": make_import(agent)}
    ns.update(make_builtins(agent))
    ns["self"] = ns["agent"] = agent.proxy
    ns["playbook"] = _decorator(agent)
    ns["asyncio"] = __import__("asyncio")
    for other in agent.runtime.program.agents:
        ns.setdefault(other.name, agent.runtime.agent_class_proxy(other.name))

    for playbook in agent.definition.playbooks.values():
        if playbook.kind == "code":
            ns[playbook.name] = _code_caller(agent, playbook)
        elif playbook.kind == "llm":
            ns[playbook.name] = _llm_caller(agent, playbook)

    token = current_frame.set(Frame(SETUP_PATH))
    agent_token = current_agent.set(agent)
    try:
        for block in agent.definition.code_blocks:
            exec(_once(block, lambda b=block: compile(_parse(b), code_filename(b.location.file), "exec",
                                                      dont_inherit=True)), ns)
    finally:
        current_agent.reset(agent_token)
        current_frame.reset(token)


def _code_caller(agent: Agent, playbook: PlaybookDef) -> Callable[..., Any]:
    holder: dict[str, Any] = {}
    exec(compile_code_playbook(playbook), agent.namespace, holder)
    function = holder[playbook.name]
    signature = inspect.signature(function)
    state_params = [p.name for p in playbook.params if p.is_state]

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{playbook.name}(): {exc}") from None
        bound.apply_defaults()

        async def run() -> Any:
            for name in state_params:
                setattr(agent.state, name, bound.arguments[name])
            return await function(*bound.args, **bound.kwargs)

        return agent.composite(run)

    call.__name__ = call.__qualname__ = playbook.name
    call.__doc__ = playbook.description
    return call


def _llm_caller(agent: Agent, playbook: PlaybookDef) -> Callable[..., Any]:
    names = [p.name for p in playbook.params]
    state_params = [p.name for p in playbook.params if p.is_state]

    def call(*args: Any, **kwargs: Any) -> Any:
        if len(args) > len(names):
            raise TypeError(f"{playbook.name}() takes {len(names)} arguments but {len(args)} were given")
        arguments = dict(zip(names, args, strict=False))
        arguments.update(kwargs)

        async def run() -> Any:
            from playbooks_worker.llm.interpreter import LLMPlaybook

            for name in state_params:
                if name in arguments:
                    setattr(agent.state, name, arguments[name])
            return await LLMPlaybook(agent, playbook, arguments).run()

        return agent.composite(run)

    call.__name__ = call.__qualname__ = playbook.name
    call.__doc__ = playbook.description
    return call


def _decorator(agent: Agent) -> Callable[..., Any]:
    """`@playbook` / `@playbook(triggers=[...], public=True)`: a Python playbook is a leaf (a tool)."""

    def wrap(function: Callable[..., Any], options: dict[str, Any]) -> Callable[..., Any]:
        name = function.__name__
        is_async = inspect.iscoroutinefunction(function)

        def call(*args: Any, **kwargs: Any) -> Any:
            async def live() -> Any:
                if is_async:
                    return await function(*args, **kwargs)
                return function(*args, **kwargs)

            return agent.leaf("tool", name, args, kwargs, live)

        call.__name__ = call.__qualname__ = name
        call.__doc__ = function.__doc__
        call.__wrapped__ = function  # type: ignore[attr-defined]
        call.__playbook_options__ = options  # type: ignore[attr-defined]
        agent.runtime.python_playbooks.setdefault(agent.klass, {})[name] = call
        return call

    def playbook(function: Callable[..., Any] | None = None, **options: Any) -> Any:
        if function is not None and callable(function):
            return wrap(function, options)
        return lambda f: wrap(f, options)

    return playbook
