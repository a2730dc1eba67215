"""Redis connections for cluster mode, with errors that name the server (never its password)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import redis

from playbooks_worker.config import redact_url
from playbooks_worker.errors import ClusterUnavailable, ConfigError

if TYPE_CHECKING:
    from playbooks_worker.config import Settings


def store_url(settings: Settings) -> str:
    url = settings.cluster.effective_redis_url
    if not url:
        raise ConfigError("cluster mode needs a Redis URL: set [cluster] broker_url (or redis_url)",
                          hint="e.g. PLAYBOOKS_BROKER_URL=redis://localhost:6379/0")
    return url


# Connections per process. A worker runs up to --concurrency runs at once, each making its own calls, plus its
# heartbeat and reaper: the worker raises this to fit before anything connects (`size_pool`).
_pool_size = 64


def size_pool(concurrent_users: int) -> None:
    global _pool_size
    _pool_size = max(_pool_size, concurrent_users + 16)


@functools.lru_cache(maxsize=8)
def _client(url: str) -> redis.Redis:
    try:
        # A blocking pool: a burst of runs waits for a free connection instead of failing with "Too many
        # connections". A bounded socket timeout: a partitioned server must fail a call (and lose the lease),
        # not hang it.
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=_pool_size, timeout=30, socket_timeout=10, socket_connect_timeout=5,
            health_check_interval=15)
        return redis.Redis(connection_pool=pool)
    except ValueError as exc:
        raise ConfigError(f"[cluster] {redact_url(url)} is not a Redis URL: {exc}",
                          hint="use redis://[:password@]host:port/db or rediss:// for TLS") from None


def redis_client(settings: Settings) -> redis.Redis:
    """A shared client (redis-py pools connections and is thread-safe)."""
    return _client(store_url(settings))


def check_reachable(settings: Settings) -> redis.Redis:
    client = redis_client(settings)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ClusterUnavailable(
            f"cannot reach Redis at {redact_url(store_url(settings))}: {exc}",
            hint="start Redis, or fix [cluster] broker_url / PLAYBOOKS_BROKER_URL",
        ) from None
    return client
