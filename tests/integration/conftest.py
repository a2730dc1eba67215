"""Fixtures of the cluster integration tests: a real redis-server, real workers, the real CLI.

The helpers are in cluster_support.py; the Redis server in tests/redis_fixtures.py (shared with the
checkpoint contract suite). Every test of this folder is marked `slow` and has a 60 s timeout.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: shared redis_fixtures, cli_support

from cluster_support import Cluster
from redis_fixtures import RedisServer, redis_server, redis_server_session  # noqa: F401  (fixtures)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(60))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer,  # noqa: F811  (the fixture imported above)
            request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """An empty Redis, no workers yet; every process started through it is killed at teardown."""
    cluster = Cluster(tmp_path, redis_server.url, redis_server.client)
    try:
        yield cluster
    finally:
        cluster.teardown()
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            for worker in cluster.workers:
                print(f"===== {worker.name} (pid {worker.pid}) log =====\n{worker.output()}")
            for n, follower in enumerate(cluster.followers, start=1):
                print(f"===== follower {n} stderr =====\n{follower.stderr()}")
