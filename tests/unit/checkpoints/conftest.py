"""Fixtures for the checkpoint tests: an isolated environment, and the store contract's parameters.

The contract runs against every provider: filesystem, memory, and Redis both on fakeredis (fast) and on a
real `redis-server` (tests/redis_fixtures.py starts one per session, only when a test asks for it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
from ckpt_helpers import Store, filesystem_store, memory_store, redis_store

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: the shared redis_fixtures module

from redis_fixtures import redis_server, redis_server_session  # noqa: F401  (fixtures)


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


@pytest.fixture(params=["filesystem", "memory", "redis-fake", "redis-real"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "filesystem":
        yield filesystem_store(tmp_path / "ckpts")
    elif request.param == "memory":
        yield memory_store()
    elif request.param == "redis-fake":
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        yield redis_store(request.param, client)
        client.close()
    else:
        server = request.getfixturevalue("redis_server")
        yield redis_store(request.param, server.client)
