"""Helpers of the LLM unit tests (fixtures in conftest.py): programs run in-process through
`playbooks_worker.api.Playbooks` with the scripted provider or the OpenAI provider against the fake server
(tests/llm_fake_server.py); a crash is a BaseException raised from a tool (`pbw_test_crash`), which writes no
record, as a killed process would not."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbooks_worker.api import CollectingIO, Playbooks
from playbooks_worker.config import load_settings

KEY = "llm-unit-test-secret-key-0123456789"
API_KEY = "sk-test-0123456789abcdefSECRET"


class Crash(BaseException):
    """Stands in for the process dying: not an Exception, so nothing records it."""


def fence(code: str) -> str:
    """A response as a model writes it: the code in a ```python block."""
    return "```python\n" + textwrap.dedent(code).strip("\n") + "\n```"


class LLMHarness:
    def __init__(self, root: Path) -> None:
        self.root = root

    def program(self, text: str, name: str = "prog.pb") -> Path:
        path = self.root / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def script(self, responses: dict[str, list[str]], name: str = "responses.yaml") -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(responses, sort_keys=False), encoding="utf-8")
        return path

    def playbooks(self, path: Path, *, inputs: tuple[str, ...] = (), **llm: Any) -> Playbooks:
        overrides = {"durability.enabled": True, "durability.storage_path": str(self.root / ".checkpoints")}
        overrides |= {f"llm.{k}": v for k, v in llm.items()}
        settings = load_settings(overrides=overrides, environ={})
        return Playbooks([path], settings=settings, reporter=CollectingIO(inputs))

    def run(self, path: Path, *, resume: bool = False, inputs: tuple[str, ...] = (), **llm: Any) -> Any:
        pb = self.playbooks(path, inputs=inputs, **llm)
        outcome = asyncio.run(pb.resume() if resume else pb.run())
        outcome.output = pb.reporter.output  # type: ignore[attr-defined]
        return outcome

    def crash(self, path: Path, *, resume: bool = False, inputs: tuple[str, ...] = (), **llm: Any) -> list[str]:
        pb = self.playbooks(path, inputs=inputs, **llm)
        with pytest.raises(Crash):
            asyncio.run(pb.resume() if resume else pb.run())
        return pb.reporter.output  # type: ignore[attr-defined,no-any-return]

    def effects(self) -> list[str]:
        path = self.root / "effects.log"
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []
