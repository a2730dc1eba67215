"""Fixtures of the end-to-end tests; the helpers themselves are in e2e_support.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import Result, Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """tmp_path as the working directory of `playbooks`, with durability on and a fixed signing key."""
    return Workspace(tmp_path)


@pytest.fixture
def pb(ws: Workspace) -> Callable[..., Result]:
    """`pb("run", "x.pb", input=None, timeout=30)`: run the real command in the workspace."""
    return ws.pb
