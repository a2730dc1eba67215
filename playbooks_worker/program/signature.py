"""Headings → names: `# Order Support Agent:AI` and `## Get tax rate($gross_income: float) -> float`."""

from __future__ import annotations

import re

from ..errors import ProgramError
from .model import Param, SourceLocation

NAME_RE = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_PARAM_RE = re.compile(
    r"^(?P<state>\$?)(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*"
    r"(?::\s*(?P<annotation>[^=]+?))?\s*(?:=\s*(?P<default>.+))?$",
    re.DOTALL,
)
_PAIRS = {"(": ")", "[": "]", "{": "}"}


def camel_case(text: str) -> str:
    """`Order Support Agent` → `OrderSupportAgent`, `Magi_Gaspar` → `MagiGaspar`; CamelCase stays as it is."""
    text = text.strip()
    if NAME_RE.match(text):
        return text
    words = [w for w in re.split(r"[\W_]+", text) if w]
    return "".join(w[0].upper() + w[1:] for w in words)


MAX_AGENT_NAME_CHARS = 100  # an agent's name is in its checkpoint directory's name (at most 255 bytes)


def checked_name(text: str, where: SourceLocation, what: str) -> str:
    name = camel_case(text)
    if not NAME_RE.match(name):
        raise ProgramError(
            f"{where}: {what} name {text.strip()!r} does not make a name (got {name!r})",
            hint="names start with a letter and use only ASCII letters and digits, e.g. 'OrderSupport'",
        )
    if what == "agent" and len(name) > MAX_AGENT_NAME_CHARS:
        raise ProgramError(
            f"{where}: agent name {name[:20]}… is {len(name)} characters long, over the limit of "
            f"{MAX_AGENT_NAME_CHARS}",
            hint="give the agent a shorter name",
        )
    return name


def parse_signature(text: str, where: SourceLocation) -> tuple[str, list[Param], str | None]:
    """`Name`, `Name()`, `Name($a, b: int = 10) -> float` or prose → (name, params, return annotation)."""
    text = text.strip()
    params: list[Param] = []
    returns: str | None = None
    open_at = text.find("(")
    if open_at >= 0:
        close_at = _matching(text, open_at)
        if close_at < 0:
            raise ProgramError(
                f"{where}: unbalanced parentheses in playbook signature {text!r}",
                hint="close the parameter list, e.g. '## GetTaxRate($income: float) -> float'",
            )
        name_part, inner, rest = text[:open_at], text[open_at + 1 : close_at], text[close_at + 1 :].strip()
        pieces = _split_top_level(inner) if inner.strip() else []
        if len(pieces) > 1 and not pieces[-1].strip():
            pieces.pop()  # a trailing comma, as Python allows
        params = [_param(piece, where, text) for piece in pieces]
        if rest.startswith("->"):
            returns = rest[2:].strip()
        elif rest:
            raise ProgramError(
                f"{where}: unexpected {rest!r} after the parameters of {text!r}",
                hint="only a return type may follow, e.g. '-> str'",
            )
    elif "->" in text:
        name_part, _, returns = text.partition("->")
        returns = returns.strip()
    else:
        name_part = text
    if returns == "":
        raise ProgramError(
            f"{where}: '->' without a return type in {text!r}", hint="e.g. '-> str' or '-> None'"
        )
    if not name_part.strip():
        raise ProgramError(f"{where}: a playbook heading needs a name", hint="e.g. '## Main'")
    names = [p.name for p in params]
    for name in names:
        if names.count(name) > 1:
            raise ProgramError(
                f"{where}: parameter {name!r} appears twice in {text!r}", hint="rename one of them"
            )
    return checked_name(name_part, where, "playbook"), params, returns


def _param(piece: str, where: SourceLocation, signature: str) -> Param:
    match = _PARAM_RE.match(piece.strip())
    if match is None:
        raise ProgramError(
            f"{where}: cannot read parameter {piece.strip()!r} of {signature!r}",
            hint="write parameters as 'name', '$name', 'name: type' or 'name: type = default'",
        )
    annotation = match["annotation"].strip() if match["annotation"] else None
    default = match["default"].strip() if match["default"] else None
    return Param(match["name"], annotation, default, is_state=bool(match["state"]))


def _matching(text: str, open_at: int) -> int:
    """Index of the `)` closing the `(` at `open_at`, skipping brackets and quotes in defaults; -1 if none."""
    depth, quote = 0, ""
    for i in range(open_at, len(text)):
        ch = text[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in _PAIRS:
            depth += 1
        elif ch in _PAIRS.values():
            depth -= 1
            if depth == 0:
                return i if ch == ")" else -1
    return -1


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets and quotes: `a, b: dict = {'x': 1, 'y': 2}` is two parameters."""
    pieces: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in _PAIRS:
            depth += 1
        elif ch in _PAIRS.values():
            depth -= 1
        elif ch == "," and depth == 0:
            pieces.append("".join(current))
            current = []
            continue
        current.append(ch)
    pieces.append("".join(current))
    return pieces
