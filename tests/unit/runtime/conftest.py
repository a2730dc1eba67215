"""In-process runs of small programs: crash by raising a BaseException from a tool, then resume."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from playbooks_worker.api import CollectingIO, Playbooks
from playbooks_worker.config import load_settings


class Crash(BaseException):
    """Stands in for the process dying: not an Exception, so no tool record is written for it."""


class Harness:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.effects = root / "effects.log"
        (root / "playbooks.toml").write_text("[durability]\nenabled = true\n")

    def program(self, text: str, name: str = "prog.pb") -> Path:
        path = self.root / name
        path.write_text(textwrap.dedent(text).replace("EFFECTS", str(self.effects)))
        return path

    def playbooks(self, path: Path, inputs: tuple[str, ...] = (), durable: bool = True) -> Playbooks:
        settings = load_settings(self.root / "playbooks.toml",
                                 overrides={"durability.enabled": durable,
                                            "durability.storage_path": str(self.root / ".checkpoints")})
        return Playbooks([path], settings=settings, reporter=CollectingIO(inputs))

    def run(self, path: Path, *, resume: bool = False, inputs: tuple[str, ...] = (), durable: bool = True) -> Any:
        pb = self.playbooks(path, inputs, durable)
        outcome = asyncio.run(pb.resume() if resume else pb.run())
        outcome.output = pb.reporter.output  # type: ignore[attr-defined]
        outcome.notices = pb.reporter.notices  # type: ignore[attr-defined]
        return outcome

    def crash(self, path: Path, **kwargs: Any) -> list[str]:
        pb = self.playbooks(path, kwargs.get("inputs", ()))
        with pytest.raises(Crash):
            asyncio.run(pb.resume() if kwargs.get("resume") else pb.run())
        return pb.reporter.output  # type: ignore[attr-defined,no-any-return]

    def effect_lines(self) -> list[str]:
        return self.effects.read_text().splitlines() if self.effects.exists() else []


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLAYBOOKS_SECRET_KEY", "unit-test-key-0123456789")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    import builtins

    builtins.pbw_test_crash = Crash  # type: ignore[attr-defined]
    yield Harness(tmp_path)
    del builtins.pbw_test_crash  # type: ignore[attr-defined]
