"""Fixtures of the end-to-end tests; the helpers themselves are in e2e_support.py."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared cli_support module

from e2e_support import Result, Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """tmp_path as the working directory of `playbooks`, with durability on and a fixed signing key."""
    return Workspace(tmp_path)


@pytest.fixture
def pb(ws: Workspace) -> Callable[..., Result]:
    """`pb("run", "x.pb", input=None, timeout=30)`: run the real command in the workspace."""
    return ws.pb
