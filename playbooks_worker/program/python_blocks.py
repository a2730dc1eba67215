"""Static reading of ```python blocks: syntax checked and `@playbook` functions found, nothing executed.

The runtime executes these blocks later, in the agent's namespace. Here we only need what the parser and the
validator can know without running user code: does it compile, and which functions are playbooks.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ProgramError
from .model import AgentDef, CodeBlock, Param, PlaybookDef, SourceLocation

LineLocator = Callable[[int], SourceLocation]  # 1-based line of the code → where it is in the .pb file


@dataclass
class PyUnit:
    """One piece of Python in the program: an agent's ```python block, or a code playbook's body."""

    agent: AgentDef
    block: CodeBlock
    tree: ast.Module
    locate: LineLocator
    order: int  # combined-text index of the first code line: sorts units into source order
    playbook: PlaybookDef | None = None  # the code playbook this is the body of; None for an agent block


def parse_python(code: str, locate: LineLocator, *, body: bool, what: str) -> ast.Module:
    """Parse and compile-check `code`; a SyntaxError becomes a ProgramError at its line in the .pb file.

    `body=True` is a code playbook's body: top-level `await` and `return` are allowed, because the runtime
    runs it as the body of an async function. Compiling (never executing) also catches what the parser lets
    through, such as `break` outside a loop.
    """
    try:
        # Warnings off: an invalid escape such as "\d" is a warning Python tolerates, and under `-W error`
        # (our test suite) it would surface as a SyntaxError the user never sees at run time.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree: ast.Module = compile(
                code,
                "<playbook>",
                "exec",
                dont_inherit=True,
                flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            )
            compile(
                _as_function(tree) if body else tree,
                "<playbook>",
                "exec",
                flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                dont_inherit=True,
            )
    except SyntaxError as exc:
        line = exc.lineno or 1
        text = (exc.text or "").strip()
        raise ProgramError(
            f"{locate(line)}: invalid Python in {what}: {exc.msg}",
            hint=f"the line reads: {text}" if text else "fix the Python syntax there",
        ) from None
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        raise ProgramError(
            f"{locate(1)}: invalid Python in {what}: {str(exc) or 'nested too deeply'}",  # MemoryError() says nothing
            hint="fix the Python code in this block",
        ) from None
    return tree


def _as_function(tree: ast.Module) -> ast.Module:
    wrapper = ast.AsyncFunctionDef(
        name="__playbook_body__",
        args=_no_args(),
        body=tree.body or [ast.Pass()],
        decorator_list=[],
        returns=None,
        type_comment=None,
    )
    module = ast.Module(body=[wrapper], type_ignores=[])
    ast.copy_location(wrapper, tree.body[0] if tree.body else ast.Pass(lineno=1, col_offset=0))
    return ast.fix_missing_locations(module)


def _no_args() -> ast.arguments:
    return ast.arguments(
        posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[]
    )


def python_playbooks(tree: ast.Module, code: str, locate: LineLocator) -> list[tuple[int, PlaybookDef]]:
    """Top-level functions decorated `@playbook` / `@playbook(...)`, with their line in the code."""
    found: list[tuple[int, PlaybookDef]] = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        decorator = next((d for d in node.decorator_list if _is_playbook_decorator(d)), None)
        if decorator is None:
            continue
        where = locate(node.lineno)
        triggers, metadata = _decorator_args(decorator, locate)
        returns = _text(code, node.returns) if node.returns else None
        signature = f"{node.name}({_arguments(node.args, code)})" + (f" -> {returns}" if returns else "")
        description = ast.get_docstring(node) or str(metadata.get("description", ""))
        found.append(
            (
                node.lineno,
                PlaybookDef(
                    name=node.name,
                    kind="python",
                    location=where,
                    signature=signature,
                    params=_params(node, code),
                    returns=returns,
                    description=description,
                    metadata=metadata,
                    triggers=triggers,
                ),
            )
        )
    return found


def _is_playbook_decorator(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    return isinstance(target, ast.Name) and target.id == "playbook"


def _decorator_args(decorator: ast.expr, locate: LineLocator) -> tuple[list[str], dict[str, object]]:
    """`triggers=[...]` and the other keyword arguments that are literals (`public=True`, `hidden=True`, ...).

    A non-literal keyword (`public=IS_PUBLIC`) is left out: its value is only known when the block runs, and
    the runtime's decorator sees it then.
    """
    if not isinstance(decorator, ast.Call):
        return [], {}
    triggers: list[str] = []
    metadata: dict[str, object] = {}
    for keyword in decorator.keywords:
        if keyword.arg is None:
            continue
        try:
            value = ast.literal_eval(keyword.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            if keyword.arg == "triggers":
                raise ProgramError(
                    f"{locate(keyword.value.lineno)}: triggers must be a list of strings",
                    hint='e.g. @playbook(triggers=["At the beginning"])',
                ) from None
            continue
        if keyword.arg == "triggers":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list | tuple) or not all(isinstance(t, str) for t in value):
                raise ProgramError(
                    f"{locate(keyword.value.lineno)}: triggers must be a list of strings",
                    hint='e.g. @playbook(triggers=["At the beginning"])',
                )
            triggers = list(value)
        else:
            metadata[keyword.arg] = value
    return triggers, metadata


def _params(node: ast.FunctionDef | ast.AsyncFunctionDef, code: str) -> list[Param]:
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = [*zip(positional, defaults, strict=True), *zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    # *args / **kwargs are left out: they bind nothing by name; the signature string still shows them.
    return [
        Param(
            arg.arg,
            _text(code, arg.annotation) if arg.annotation else None,
            _text(code, default) if default is not None else None,
        )
        for arg, default in pairs
    ]


def _arguments(args: ast.arguments, code: str) -> str:
    """The parameter list as the author wrote each piece (`ast.unparse` would print `retries: int=3`)."""

    def one(arg: ast.arg, default: ast.expr | None = None, star: str = "") -> str:
        text = star + arg.arg + (f": {_text(code, arg.annotation)}" if arg.annotation else "")
        if default is not None:
            text += f" = {_text(code, default)}" if arg.annotation else f"={_text(code, default)}"
        return text

    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pieces = [one(arg, default) for arg, default in zip(positional, defaults, strict=True)]
    if args.posonlyargs:
        pieces.insert(len(args.posonlyargs), "/")
    if args.vararg:
        pieces.append(one(args.vararg, star="*"))
    elif args.kwonlyargs:
        pieces.append("*")
    pieces += [one(arg, default) for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    if args.kwarg:
        pieces.append(one(args.kwarg, star="**"))
    return ", ".join(pieces)


def _text(code: str, node: ast.AST) -> str:
    return ast.get_source_segment(code, node) or ast.unparse(node)
