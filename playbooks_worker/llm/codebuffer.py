"""Split a streaming Python response into statements that are complete, as soon as they are.

A top-level statement is complete when a later line starts at column 0 and is not part of it (not `else:`,
`elif`, `except`, `finally`, a closing bracket…) and the text before that line parses. Flat statements run as
soon as their line ends; compound ones (`for`, `if`, `try`) when the first line after their block arrives.
Markdown fences the model wraps its code in are blanked, so line numbers stay those of the response.
"""

from __future__ import annotations

import ast
import re

_COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.Try, ast.TryStar, ast.With, ast.AsyncWith,
             ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Match)  # may go on past their last line
_CONTINUATION = re.compile(r"^(else\b|elif\b|except\b|finally\b|case\b|[)\]}])")
_DOLLAR = re.compile(r"\$([A-Za-z_]\w*)")


def normalize(line: str) -> str:
    """Fences become blank lines; the older `$name` spelling of state variables becomes `self.state.name`."""
    if line.lstrip().startswith("```"):
        return ""
    if line.strip() == "python":  # a fence's language tag leaked onto its own line
        return ""
    return _DOLLAR.sub(r"self.state.\1", line) if "$" in line else line


class CodeBuffer:
    def __init__(self) -> None:
        self.lines: list[str] = []  # every complete line received, normalized
        self.partial = ""  # the text after the last newline
        self.done = 0  # lines[:done] have been handed out as statements

    def feed(self, text: str) -> None:
        text = self.partial + text
        *complete, self.partial = text.split("\n")
        self.lines.extend(normalize(line) for line in complete)

    def finish(self) -> None:
        if self.partial:
            self.lines.append(normalize(self.partial))
            self.partial = ""

    def ready(self, final: bool = False) -> list[tuple[ast.stmt, str]]:
        """Statements now complete (with their source), in order; each is handed out once.

        With `final` everything left is taken; what does not parse then raises SyntaxError (line numbers are
        the response's).
        """
        start, lines = self.done, self.lines
        end = len(lines) if final else self._boundary()
        if end <= start:
            return []
        chunk = "\n".join(lines[start:end])
        if not chunk.strip():
            self.done = end
            return []
        tree = ast.parse("\n" * start + chunk)  # padded so node line numbers are the response's
        self.done = end
        return [(node, ast.get_source_segment("\n" * start + chunk, node) or "") for node in tree.body]

    def _boundary(self) -> int:
        """The largest k such that lines[done:k] is a run of complete statements (or `done` if none)."""
        lines = self.lines
        if len(lines) > self.done:
            # Every line received parses and the last statement is a simple one: nothing that follows can
            # extend it, so it is complete now, not only when the next line arrives.
            try:
                body = ast.parse("\n".join(lines[self.done:])).body
            except SyntaxError:
                body = []
            if body and not isinstance(body[-1], _COMPOUND):
                return len(lines)
        for k in range(len(lines) - 1, self.done, -1):
            line = lines[k]
            if not line or line[0].isspace() or line.startswith("#") or _CONTINUATION.match(line):
                continue
            try:
                ast.parse("\n".join(lines[self.done:k]))
            except SyntaxError:
                continue
            return k
        return self.done
