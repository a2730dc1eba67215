"""The two background threads of every worker process: the heartbeat and the reaper (DESIGN §5).

- Heartbeat, every `lease_seconds / 4`: renews the lease of each run this process executes (a run whose lease
  is gone — taken over, or expired while the process was paused — is told to stop at its next await, fenced),
  passes on cancels, notices that this process is draining (SIGTERM: hand every run off), and records the
  worker in `P:workers`.
- Reaper, every 0.1 s: re-enqueues running runs whose lease expired — their worker died or was cut off — so
  another worker resumes them within seconds, not after Celery's one-hour visibility timeout. It reads only
  the expired entries of the deadline index `P:leases`, so a pass costs the same with 10 or 10,000 runs.
- Sweep, every second: the full scan of active runs, for what the index cannot tell — the lease of a run whose
  holder was a process on this host that no longer exists (a killed pool process) is expired at once rather
  than waiting out the TTL, and a run left queued with no task message (a task that failed before it owned
  the run) is enqueued again after `STALE_QUEUED_S`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING

from playbooks_worker import metrics
from playbooks_worker.cluster.keys import is_agent_unit, unit_run
from playbooks_worker.errors import Handoff

if TYPE_CHECKING:
    from playbooks_worker.cluster.executor import Executor

log = logging.getLogger("playbooks_worker.cluster")

STALE_QUEUED_S = 30.0  # a queued run not picked up for this long gets another task message (duplicates drop)
_started_in: set[int] = set()
_lock = threading.Lock()


def start_background(executor: Executor) -> None:
    """Start both threads once per process (a forked pool process starts its own)."""
    with _lock:
        if os.getpid() in _started_in:
            return
        _started_in.add(os.getpid())
    interval = executor.settings.cluster.lease_seconds
    threading.Thread(target=_loop, args=(heartbeat, executor, interval / 4), name="pbw-heartbeat",
                     daemon=True).start()
    threading.Thread(target=_loop, args=(reap, executor, min(0.1, interval / 10)), name="pbw-reaper",
                     daemon=True).start()
    threading.Thread(target=_loop, args=(sweep, executor, 1.0), name="pbw-sweep", daemon=True).start()


def _loop(step: object, executor: Executor, every_s: float) -> None:
    while True:
        started = time.monotonic()
        try:
            step(executor)  # type: ignore[operator]
        except Exception as exc:  # Redis down for a moment: keep beating; leases decide who owns what
            log.warning("%s failed: %s", getattr(step, "__name__", step), exc)
        time.sleep(max(0.0, every_s - (time.monotonic() - started)))


def heartbeat(executor: Executor) -> None:
    store = executor.store
    if not executor.draining.is_set():
        parent = f"{socket.gethostname()}:{os.getppid()}"
        pipe = executor.client.pipeline(transaction=False)
        pipe.exists(executor.keys.draining(store.owner))
        pipe.exists(executor.keys.draining(parent))
        if any(pipe.execute()):
            executor.draining.set()
    if executor.draining.is_set():
        for ownership in list(store.owned.values()):
            if ownership.stop is not None:
                ownership.stop(Handoff)
    store.renew_all()
    executor.client.hset(executor.keys.workers, store.owner, json.dumps({
        "host": socket.gethostname(), "pid": os.getpid(), "runs": sorted(store.owned),
        "draining": executor.draining.is_set(), "seen_at": time.time(),
    }))


def reap(executor: Executor) -> None:
    """Runs whose lease deadline passed: re-enqueue each whose lease key is really gone."""
    client, keys = executor.client, executor.keys
    expired = client.zrangebyscore(keys.leases, "-inf", round(time.time() * 1000), start=0, num=100)
    for raw in expired:
        run_id = raw.decode() if isinstance(raw, bytes) else raw
        if reap_one(executor, run_id, expected_lease=None):
            client.zrem(keys.leases, run_id)
        elif client.hmget(keys.run(run_id), "state", "spread") != [b"running", None]:
            # Finished or moved on, or a spread run (its agents hold the leases): nothing to watch.
            client.zrem(keys.leases, run_id)


_sweeps = 0
HOUSEKEEPING_EVERY = 60  # sweeps between tidying the indexes that only grow: workers ever seen, runs ever made
WORKER_FORGOTTEN_S = 3600.0


def housekeeping(executor: Executor) -> None:
    """Forget workers not seen for an hour, and index entries of runs whose keys expired."""
    client, keys = executor.client, executor.keys
    now = time.time()
    for owner, raw in client.hgetall(keys.workers).items():
        try:
            seen = float(json.loads(raw).get("seen_at", 0))
        except (ValueError, TypeError):
            seen = 0.0
        if now - seen > WORKER_FORGOTTEN_S:
            client.hdel(keys.workers, owner)
    oldest = client.zrange(keys.runs, 0, 99)
    if oldest:
        pipe = client.pipeline(transaction=False)
        for run_id in oldest:
            pipe.exists(keys.run(run_id.decode() if isinstance(run_id, bytes) else run_id))
        gone = [r for r, exists in zip(oldest, pipe.execute(), strict=True) if not exists]
        if gone:
            client.zrem(keys.runs, *gone)


def sweep(executor: Executor) -> None:
    global _sweeps
    _sweeps += 1
    if _sweeps % HOUSEKEEPING_EVERY == 1:
        housekeeping(executor)
    client, keys = executor.client, executor.keys
    active = [r.decode() if isinstance(r, bytes) else r for r in client.smembers(keys.active)]
    if not active:
        return
    spread = _check(executor, active)
    if spread:
        # The agents of spread runs are units of their own: the same checks, one level down.
        pipe = client.pipeline(transaction=False)
        for run_id in spread:
            pipe.smembers(keys.units(run_id))
        units = [u.decode() if isinstance(u, bytes) else u for members in pipe.execute() for u in members]
        if units:
            _check(executor, units)
        _settle_spread(executor, spread)


ENDING_GRACE_MS = 5000  # an agent that ended its run announces it within ms; after this, it died doing so


def _settle_spread(executor: Executor, runs: list[str]) -> None:
    """What a spread run's agents could not finish because their worker died: the run's own task that died
    starting or waking agents (enqueued again), and an end that was decided but not written (written now)."""
    from playbooks_worker.cluster.spread import finish_run

    client, keys = executor.client, executor.keys
    pipe = client.pipeline(transaction=False)
    for run_id in runs:
        pipe.hmget(keys.run(run_id), "state", "starting", "ended")
        pipe.exists(keys.lease(run_id))
    pipe.time()
    replies = pipe.execute()
    seconds, micros = replies[-1]
    now_ms = seconds * 1000 + micros // 1000
    for i, run_id in enumerate(runs):
        (state, starting, ended), leased = replies[2 * i], replies[2 * i + 1]
        if state not in (b"running", b"queued", b"waiting"):
            continue
        if starting and not leased:
            if client.set(keys.stale(run_id), "1", nx=True, px=round(STALE_QUEUED_S * 1000)):
                log.warning("run %s: its task died while starting its agents; re-enqueued", run_id)
                executor.enqueue(run_id)
        elif ended and now_ms - int(ended) > ENDING_GRACE_MS and finish_run(executor, run_id):
            log.warning("run %s: the agent that ended it died first; ended it", run_id)


def _check(executor: Executor, units: list[str]) -> list[str]:
    """Fix what the reaper cannot see in each unit (a run, or an agent of a spread run); returns the runs
    among them that are spread."""
    client, keys = executor.client, executor.keys
    pipe = client.pipeline(transaction=False)
    for unit in units:
        pipe.hmget(keys.run(unit), "state", "queued_at", "spread")
        pipe.get(keys.lease(unit))
    pipe.time()
    replies = pipe.execute()
    seconds, micros = replies[-1]
    now_ms = seconds * 1000 + micros // 1000
    host = socket.gethostname()
    spread = []
    for i, unit in enumerate(units):
        (state, queued_at, is_spread), lease = replies[2 * i], replies[2 * i + 1]
        if is_spread == b"1":
            spread.append(unit)
            if state == b"running":
                continue  # its agents hold the leases
        if state is None:
            if not is_agent_unit(unit):
                client.srem(keys.active, unit)  # expired or deleted
        elif state == b"queued" and queued_at and now_ms - int(queued_at) > STALE_QUEUED_S * 1000:
            if client.set(keys.stale(unit), "1", nx=True, px=round(STALE_QUEUED_S * 1000)):
                client.hset(keys.run(unit), "queued_at", now_ms)
                executor.enqueue(unit)
        elif state == b"running" and lease is None:
            reap_one(executor, unit, expected_lease=None)  # expired with no index entry (older worker)
        elif state == b"running" and lease is not None:
            owner = lease.decode().split(" ")[0]
            owner_host, _, pid = owner.rpartition(":")
            if owner_host == host and pid.isdigit() and not process_alive(int(pid)):
                reap_one(executor, unit, expected_lease=lease.decode())
    return spread


def reap_one(executor: Executor, run_id: str, *, expected_lease: str | None, enqueue: bool = True) -> bool:
    keys = executor.keys
    why = "its worker process died" if expected_lease else "its lease expired"
    what = f"Agent {run_id}" if is_agent_unit(run_id) else f"Run {run_id}"
    event = json.dumps({"type": "status", "text": f"⚠️  {what} lost its worker ({why}): failing over"})
    guard_ms = max(1000, executor.store.lease_ms)
    done = executor.store.scripts.reap(
        keys=[keys.run(run_id), keys.lease(run_id), keys.requeue(run_id), keys.events(unit_run(run_id))],
        args=[guard_ms, event, expected_lease or ""],
    )
    if done:
        metrics.failovers.inc()
        log.warning("run %s: %s; re-enqueued", run_id, why, extra={"run_id": run_id})
        if enqueue:
            executor.enqueue(run_id)
    return bool(done)


def process_alive(pid: int) -> bool:
    """Whether a process on this host is alive; a zombie (killed, not yet reaped by its pool) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True
