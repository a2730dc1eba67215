"""Reading a program's files: shebang, frontmatter, `!import` inlining, and the map back to original lines.

The markdown parser sees one combined text. Every line of it remembers the file and line it came from, so that
errors and `SourceLocation`s name what the user wrote, never the combined text.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ProgramError
from .model import SourceLocation

IMPORT_RE = re.compile(r"^(\s*)!import\s+(.+?)(?:\s*#.*)?$")
MAX_IMPORT_DEPTH = 10
MAX_IMPORT_BYTES = 1 << 20  # the original framework's limit: an import is a fragment, not a corpus
# What yaml.safe_load raises on bad input: YAMLError, and from its constructors ValueError (`2001-02-30`,
# `!!int x`, a 5,000-digit integer), TypeError, or RecursionError (`[[[[…` thousands deep).
YAML_ERRORS = (yaml.YAMLError, ValueError, TypeError, RecursionError)


@dataclass
class Source:
    """The combined text the markdown parser sees, and where each of its lines really is."""

    lines: list[str]
    origins: list[SourceLocation]  # origins[i] is where combined line i (0-based) was written
    sources: dict[str, str] = field(default_factory=dict)  # absolute path -> text, in read order
    frontmatter: dict[str, Any] = field(default_factory=dict)
    main: str = ""  # the main file as the user named it

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def locate(self, index: int) -> SourceLocation:
        """Where combined line `index` (0-based) was written; past the end means the last line."""
        if not self.origins:
            return SourceLocation(self.main, 1)
        return self.origins[max(0, min(index, len(self.origins) - 1))]

    def digest(self) -> str:
        h = hashlib.sha256()
        for path, text in self.sources.items():
            h.update(path.encode())
            h.update(b"\0")
            h.update(text.encode())
        return h.hexdigest()


def read_program_file(path: Path, display: str) -> str:
    """The text of the main program file; any reason it cannot be read is a ProgramError."""
    return _decode(_read_bytes(path, display, f"{display}: cannot read program"), display)


def build_source(text: str, path: Path, display: str) -> Source:
    """Frontmatter and shebang off the main file, imports inlined (except in .pbasm), every line mapped."""
    abs_path = _absolute(path)
    text = _normalize(_checked_unicode(text, display))
    src = Source(lines=[], origins=[], main=display)
    src.sources[abs_path] = text
    lines = _blank_shebang(text.split("\n"))
    src.frontmatter = _frontmatter(lines, display, start=1 if text.startswith("#!") else 0)
    _inline(src, lines, display, abs_path, chain=[(abs_path, display)], prefix="")
    return src


def _inline(
    src: Source, lines: list[str], display: str, abs_path: str, chain: list[tuple[str, str]], prefix: str
) -> None:
    """Append `lines` (from file `display`) to `src`, replacing each `!import` line by the imported file."""
    process = not abs_path.endswith(".pbasm")  # compiled files are already self-contained
    for number, line in enumerate(lines, start=1):
        here = SourceLocation(display, number)
        match = IMPORT_RE.match(line) if process else None
        if match is None:
            src.lines.append(prefix + line if line.strip() else line)
            src.origins.append(here)
            continue
        target_abs, target_display, target_path = _resolve(match.group(2), display, abs_path, here)
        paths, names = [a for a, _ in chain], [d for _, d in chain]
        if target_abs in paths:
            loop = " -> ".join([*names[paths.index(target_abs) :], target_display])
            raise ProgramError(f"{here}: circular import: {loop}", hint="remove one of these !import lines")
        if len(chain) > MAX_IMPORT_DEPTH:
            raise ProgramError(
                f"{here}: imports nested more than {MAX_IMPORT_DEPTH} deep: {' -> '.join(names)}",
                hint="flatten the imports",
            )
        text = _normalize(_read_import(target_path, target_display, here, match.group(2)))
        src.sources.setdefault(target_abs, text)
        # A nested directive's own indentation adds to its importer's, so an import inside an indented
        # import still lands inside the same list.
        lines_in = text.split("\n")
        if len(lines_in) > 1 and lines_in[-1] == "":
            lines_in.pop()  # the file's final newline ends the directive's line; it is not a blank line
        _inline(
            src,
            _blank_shebang(lines_in),
            target_display,
            target_abs,
            [*chain, (target_abs, target_display)],
            prefix + match.group(1),
        )


def _resolve(
    raw: str, importer_display: str, importer_abs: str, here: SourceLocation
) -> tuple[str, str, Path]:
    """The imported file's absolute path, how to name it in messages, and the Path to read."""
    target = raw.strip().strip("\"'")
    if target.startswith(("http://", "https://")):
        raise ProgramError(
            f"{here}: cannot import '{target}': only local files can be imported",
            hint="download the file next to the program and import it by path",
        )
    target = target.removeprefix("file://")
    if not target:
        raise ProgramError(f"{here}: !import needs a file name", hint="write e.g. '!import steps.pb'")
    if "\0" in target:  # os.stat would raise ValueError, not OSError
        raise ProgramError(f"{here}: cannot import {target!r}: a file name cannot contain a NUL byte",
                           hint="remove the NUL byte from the !import line")
    if os.path.isabs(target):
        display = os.path.normpath(target)
        path = Path(display)
    else:
        # Name the file the way the user named the importer, so every message uses one form of path.
        display = os.path.normpath(os.path.join(os.path.dirname(importer_display), target))
        path = Path(os.path.dirname(importer_abs)) / target
    return _absolute(path), display, path


def _read_import(path: Path, display: str, here: SourceLocation, raw: str) -> str:
    what = f"{here}: cannot import '{raw.strip()}'"
    try:
        info = None if stored_sources.get() is not None else path.stat()
    except OSError:
        info = None  # _read_bytes reports why
    if info is not None and not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        # `!import /dev/zero` would read forever, a FIFO or /dev/stdin block: an import is a file's text.
        raise ProgramError(f"{what}: {display} is not a regular file (a device, pipe or socket)",
                           hint="import a .pb or .md file")
    size = info.st_size if info is not None else 0
    if size > MAX_IMPORT_BYTES:
        raise ProgramError(
            f"{what}: {display} is {size} bytes, over the 1 MiB limit for imports",
            hint="split it into smaller files",
        )
    return _decode(_read_bytes(path, display, what), display)


# Set while parsing a program from stored sources (a worker has the run's files, not the submitter's disk).
stored_sources: ContextVar[dict[str, str] | None] = ContextVar("stored_sources", default=None)


def _read_bytes(path: Path, display: str, what: str) -> bytes:
    stored = stored_sources.get()
    if stored is not None:
        try:
            return _checked_unicode(stored[_absolute(path)], display).encode("utf-8")
        except KeyError:
            raise ProgramError(f"{what}: {display} is not among the program's stored files",
                               hint="submit the run again from the machine that has the file") from None
    try:
        if path.is_dir():  # inside the try: is_dir raises OSError for a name that is too long
            raise ProgramError(f"{what}: {display} is a directory", hint="name a .pb or .pbasm file")
        return path.read_bytes()
    except FileNotFoundError:
        raise ProgramError(
            f"{what}: no such file {display}", hint="check the path and the current directory"
        ) from None
    except OSError as exc:
        raise ProgramError(
            f"{what}: {exc.strerror or exc}: {display}", hint="check the file's permissions"
        ) from None


def _checked_unicode(text: str, display: str) -> str:
    """Text that came as a str (parse_text, stored sources from JSON) may hold a lone surrogate, which no
    file can: refuse it here, where the line is known, rather than fail later encoding the digest."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        raise ProgramError(
            f"{display}:{line}: not valid Unicode text (lone surrogate U+{ord(text[exc.start]):04X})",
            hint="save the file as UTF-8",
        ) from None
    return text


def _decode(data: bytes, display: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ProgramError(
            f"{display}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x})", hint="save the file as UTF-8"
        ) from None


def _frontmatter(lines: list[str], display: str, start: int) -> dict[str, Any]:
    """Parse a `---` YAML block at line `start` and blank its lines (not removed: line numbers stay put)."""
    first = start
    if len(lines) <= first or lines[first].rstrip() != "---":
        return {}
    end = next((i for i in range(first + 1, len(lines)) if lines[i].rstrip() in ("---", "...")), None)
    if end is None:
        raise ProgramError(
            f"{display}:{first + 1}: frontmatter opened here is never closed",
            hint="end the YAML frontmatter with a line holding only '---'",
        )
    try:
        data = yaml.safe_load("\n".join(lines[first + 1 : end]))
    except YAML_ERRORS as exc:
        mark = getattr(exc, "problem_mark", None)
        line = first + 2 + (mark.line if mark is not None else 0)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProgramError(
            f"{display}:{line}: invalid YAML in frontmatter: {problem}",
            hint="frontmatter is YAML 'key: value' lines between two '---' lines",
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProgramError(
            f"{display}:{first + 2}: frontmatter must be a YAML mapping",
            hint="write 'key: value' lines, e.g. 'title: My program'",
        )
    for i in range(first, end + 1):
        lines[i] = ""
    return data


def _blank_shebang(lines: list[str]) -> list[str]:
    if lines and lines[0].startswith("#!"):
        return ["", *lines[1:]]
    return lines


def _normalize(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _absolute(path: Path) -> str:
    return os.path.abspath(path)
