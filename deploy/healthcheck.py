"""Container health check of a `playbooks worker`: exit 0 when a worker process on this host is beating.

Every worker process records a heartbeat in Redis (`P:workers`, field `host:pid` -> JSON with `host` and
`seen_at`) every `lease_seconds / 4`. This check reads the same settings as the worker (playbooks.toml or
PLAYBOOKS_CONFIG, PLAYBOOKS_BROKER_URL, PLAYBOOKS_CLUSTER__*) and passes when some worker of this host
(`socket.gethostname()`: the container's or pod's name) was seen within 3 × lease_seconds — alive, as
`ClusterClient.workers()` defines it — and is not draining. One HVALS, no Celery import; otherwise exit 1
with the reason.

    python /opt/playbooks/healthcheck.py        (the image's HEALTHCHECK)
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time


def check(client: object, prefix: str, lease_seconds: float, host: str, now: float) -> str | None:
    """None when healthy, else why not."""
    from playbooks_worker.cluster.keys import Keys

    max_age = 3 * lease_seconds
    seen = []
    for raw in client.hvals(Keys(prefix).workers):  # type: ignore[attr-defined]
        beat = json.loads(raw)
        if beat.get("host") != host:
            continue
        age = now - float(beat.get("seen_at", 0))
        if age <= max_age and not beat.get("draining"):
            return None
        seen.append(age)
    if not seen:
        return f"no heartbeat from a worker on {host} in {Keys(prefix).workers}"
    return f"the newest heartbeat from {host} is {min(seen):.1f} s old (alive: <= {max_age:g} s) or draining"


def main() -> int:
    import redis

    from playbooks_worker.config import load_settings, redact_url
    from playbooks_worker.errors import PlaybooksError

    try:
        settings = load_settings(os.environ.get("PLAYBOOKS_CONFIG") or None)
    except PlaybooksError as exc:
        print(f"unhealthy: {exc.message}", file=sys.stderr)
        return 1
    url = settings.cluster.effective_redis_url
    if not url:
        print("unhealthy: no broker configured (PLAYBOOKS_BROKER_URL)", file=sys.stderr)
        return 1
    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        problem = check(client, settings.cluster.key_prefix, settings.cluster.lease_seconds,
                        socket.gethostname(), time.time())
    except redis.RedisError as exc:
        problem = f"cannot reach Redis at {redact_url(url)}: {exc}"
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
