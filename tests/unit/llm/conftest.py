"""Fixtures of the LLM unit tests; the helpers are in llm_support.py."""

from __future__ import annotations

import builtins
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_support import API_KEY, KEY, Crash, LLMHarness

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: the shared llm_fake_server module

from llm_fake_server import FakeLLMServer


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMHarness]:
    for name in list(os.environ):
        if name.startswith(("PLAYBOOKS_", "OPENAI_", "ANTHROPIC_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLAYBOOKS_SECRET_KEY", KEY)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    builtins.pbw_test_crash = Crash  # type: ignore[attr-defined]
    yield LLMHarness(tmp_path)
    del builtins.pbw_test_crash  # type: ignore[attr-defined]


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server
