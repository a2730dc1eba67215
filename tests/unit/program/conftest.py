"""Helpers for the parser tests: programs are written to a temporary directory that is also the cwd, so error
messages name files the way a user running `playbooks run blah.pb` would see them."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from playbooks_worker.errors import ProgramError
from playbooks_worker.program import Program, load_program

Write = Callable[[str, str], Path]


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Write:
    monkeypatch.chdir(tmp_path)

    def write(name: str, text: str) -> Path:
        path = Path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def load(write: Write) -> Callable[[str], Program]:
    """Write `text` to main.pb and load it."""

    def load(text: str) -> Program:
        return load_program(write("main.pb", text))

    return load


@pytest.fixture
def refuse(write: Write) -> Callable[[str], ProgramError]:
    """Write `text` to main.pb, load it, and return the ProgramError it must raise."""

    def refuse(text: str) -> ProgramError:
        with pytest.raises(ProgramError) as info:
            load_program(write("main.pb", text))
        return info.value

    return refuse
