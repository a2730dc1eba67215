"""Fixtures for the checkpoint tests: an isolated environment, and the store contract's parameters."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from ckpt_helpers import Store, filesystem_store, memory_store


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads the real home, a real key or the developer's PLAYBOOKS_* settings."""
    for name in list(os.environ):
        if name.startswith("PLAYBOOKS_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    return home


@pytest.fixture(params=["filesystem", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    yield filesystem_store(tmp_path / "ckpts") if request.param == "filesystem" else memory_store()
