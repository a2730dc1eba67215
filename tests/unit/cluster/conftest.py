"""Fixtures for the cluster unit tests: one fakeredis server per test, run stores that impersonate workers.

fakeredis runs the Lua scripts (with `lupa`), so these tests exercise the real scripts of scripts.py through
RedisRunStore and RedisCheckpointProvider, in milliseconds. The tier that kills real processes is
tests/integration.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
from cluster_helpers import KEY, LEASE_S, Enqueued, StoreFactory

from playbooks_worker.checkpoints.redis import RedisCheckpointProvider
from playbooks_worker.cluster.keys import Keys
from playbooks_worker.cluster.store import RedisRunStore


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's PLAYBOOKS_* settings or home."""
    for name in list(os.environ):
        if name.startswith("PLAYBOOKS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))


@pytest.fixture
def client() -> Iterator[fakeredis.FakeRedis]:
    fake = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    yield fake
    fake.close()


@pytest.fixture
def keys() -> Keys:
    return Keys("pbw")


@pytest.fixture
def enqueued() -> Enqueued:
    """Run ids the stores asked to enqueue (a Celery message each, in production)."""
    return []


@pytest.fixture
def worker_store(client: fakeredis.FakeRedis, keys: Keys, enqueued: Enqueued) -> StoreFactory:
    """`worker_store("host-a:1")`: a run store as the worker process `host-a:1` sees it."""

    def make(owner: str = "host-a:1", *, lease_seconds: float = LEASE_S,
             finished_ttl_s: float = 3600) -> RedisRunStore:
        store = RedisRunStore(client, keys=keys, lease_seconds=lease_seconds, finished_ttl_s=finished_ttl_s,
                              enqueue=enqueued.append)
        store.owner = owner
        return store

    return make


@pytest.fixture
def provider(client: fakeredis.FakeRedis) -> RedisCheckpointProvider:
    return RedisCheckpointProvider(client, prefix="pbw", secret_key=KEY)
