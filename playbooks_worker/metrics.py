"""Prometheus metrics of a worker (or of any process that runs playbooks and calls `serve`/`enable`).

Until `enable()` every metric below is a shared no-op object, so a local `playbooks run` neither imports
prometheus_client (40 ms) nor pays for a metric; `serve()` — `playbooks worker --metrics-port N` — enables
them and starts the HTTP endpoint. Hooks therefore read the metric through this module at call time
(`metrics.checkpoints_written.inc()`), never `from playbooks_worker.metrics import checkpoints_written`,
which would keep the no-op forever.

    playbooks_runs{state}                        gauge: queued, running and waiting runs of the cluster, read
                                                 from Redis (P:runs:active) on each scrape — the same on
                                                 every worker, so aggregate with max(), not sum()
    playbooks_runs_executed_total{outcome}       attempts ended here: succeeded, failed, waiting, cancelled,
                                                 handed_off, interrupted, diverged, fenced
    playbooks_checkpoints_written_total          checkpoints written (one per live await)
    playbooks_checkpoint_write_seconds           histogram: one checkpoint write (sign + store), 100 µs … 1 s
    playbooks_replayed_checkpoints_total         checkpoints replayed instead of executed
    playbooks_replay_seconds                     histogram: an agent's replay, from its start to its first
                                                 live call (observed once per resumed agent)
    playbooks_failovers_total                    runs this worker's reaper re-enqueued (lease expired, or its
                                                 process died)
    playbooks_handoffs_total                     runs stopped here and handed to another worker (SIGTERM)
    playbooks_fenced_writes_total                checkpoint / run-record writes refused: another worker owns
                                                 the run now (a stale fencing epoch)
    playbooks_llm_calls_total                    LLM calls answered (replayed ones cost nothing: not counted)
    playbooks_llm_tokens_total{kind}             prompt and completion tokens of those calls

Why a collector for runs by state, not counters of transitions: a run's transitions happen in different
processes (a client queues it, one worker runs it, another's reaper fails it over, `send` wakes it), so no
process could count them all, and a gauge built from counters drifts with every restart. The run store is
the truth; reading `P:runs:active` (a set of the unfinished runs) plus one pipelined HGET per run costs one
round trip per scrape. Finished runs expire after `finished_ttl_s`, so they are counted as they end, by
`playbooks_runs_executed_total{outcome}`.

Prefork pools: runs execute in the pool's child processes, and the endpoint serves the main process only —
unless PROMETHEUS_MULTIPROC_DIR names an empty directory writable by the worker, in which case every
process of the worker writes its metrics there and the endpoint serves their sum (prometheus_client's
multiprocess mode). The threads pool (the default) runs everything in one process and needs neither.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger("playbooks_worker.metrics")

WRITE_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
REPLAY_BUCKETS_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
OUTCOMES = ("succeeded", "failed", "waiting", "cancelled", "handed_off", "interrupted", "diverged", "fenced")


class _Noop:
    """Stands in for every metric until `enable()`: each call is one attribute lookup and a return."""

    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass

    def labels(self, *values: str, **labels: str) -> _Noop:
        return self


NOOP = _Noop()

checkpoints_written: Any = NOOP
checkpoint_write_seconds: Any = NOOP
replayed_checkpoints: Any = NOOP
replay_seconds: Any = NOOP
failovers: Any = NOOP
handoffs: Any = NOOP
fenced_writes: Any = NOOP
llm_calls: Any = NOOP
llm_tokens: Any = NOOP
runs_executed: Any = NOOP

_NAMES = ("checkpoints_written", "checkpoint_write_seconds", "replayed_checkpoints", "replay_seconds", "failovers",
          "handoffs", "fenced_writes", "llm_calls", "llm_tokens", "runs_executed")
_enabled_on: Any = None
_made_for: dict[int, tuple[Any, dict[str, Any]]] = {}  # id(registry) -> (registry, its metrics)


def enable(registry: Any = None) -> Any:
    """Create the real metrics on `registry` (default: prometheus_client's); returns the registry.

    Idempotent for one registry. Tests pass a fresh `CollectorRegistry()` and call `disable()` after.
    """
    global _enabled_on
    import prometheus_client as prom

    registry = prom.REGISTRY if registry is None else registry
    if _enabled_on is registry:
        return registry
    if id(registry) in _made_for:  # enabled before, then disabled: the same metrics (they cannot register twice)
        globals().update(_made_for[id(registry)][1])
        _enabled_on = registry
        return registry
    ns = {"namespace": "playbooks", "registry": registry}
    made = {
        "checkpoints_written": prom.Counter("checkpoints_written", "Checkpoints written (one per live await).",
                                           **ns),
        "checkpoint_write_seconds": prom.Histogram(
            "checkpoint_write_seconds", "Time to write one checkpoint (sign and store).", buckets=WRITE_BUCKETS_S,
            **ns),
        "replayed_checkpoints": prom.Counter("replayed_checkpoints", "Checkpoints replayed instead of executed.",
                                             **ns),
        "replay_seconds": prom.Histogram(
            "replay_seconds", "An agent's replay: from its start to its first live call.", buckets=REPLAY_BUCKETS_S,
            **ns),
        "failovers": prom.Counter("failovers", "Runs this worker's reaper re-enqueued after their worker was lost.",
                                  **ns),
        "handoffs": prom.Counter("handoffs", "Runs handed off to another worker at shutdown.", **ns),
        "fenced_writes": prom.Counter("fenced_writes", "Writes refused: another worker owns the run (stale epoch).",
                                      **ns),
        "llm_calls": prom.Counter("llm_calls", "LLM calls answered (replayed calls are not counted).", **ns),
        "llm_tokens": prom.Counter("llm_tokens", "Tokens of answered LLM calls.", ["kind"], **ns),
        "runs_executed": prom.Counter("runs_executed", "Attempts of runs that ended in this process, by outcome.",
                                      ["outcome"], **ns),
    }
    for kind in ("prompt", "completion"):
        made["llm_tokens"].labels(kind)  # exported as 0 before the first call, so rate() has a start
    for outcome in OUTCOMES:
        made["runs_executed"].labels(outcome)
    globals().update(made)
    _made_for[id(registry)] = (registry, made)
    _enabled_on = registry
    return registry


def disable() -> None:
    """Back to no-ops (the metrics stay registered where they were)."""
    global _enabled_on
    globals().update(dict.fromkeys(_NAMES, NOOP))
    _enabled_on = None


def llm_answered(usage: dict[str, int] | None) -> None:
    """One live LLM call answered, with the token counts the provider reported (any may be missing)."""
    llm_calls.inc()
    usage = usage or {}
    llm_tokens.labels("prompt").inc(usage.get("prompt_tokens") or 0)
    llm_tokens.labels("completion").inc(usage.get("completion_tokens") or 0)


class RunStateCollector:
    """`playbooks_runs{state}` from Redis on each scrape: the unfinished runs of the cluster by state."""

    STATES = ("queued", "running", "waiting")

    def __init__(self, client: Any, keys: Any) -> None:
        self.client = client
        self.keys = keys

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("playbooks_runs", "Unfinished runs of the cluster by state (from Redis).",
                                   labels=["state"])
        try:
            counts = self.counts()
        except Exception as exc:  # Redis away for a moment: no sample rather than a failed scrape
            log.warning("metrics: cannot read run states from Redis: %s", exc)
            return
        for state, n in counts.items():
            family.add_metric([state], n)
        yield family

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.STATES, 0)
        active = list(self.client.smembers(self.keys.active))
        if not active:
            return counts
        pipe = self.client.pipeline(transaction=False)
        for run_id in active:
            pipe.hget(self.keys.run(run_id.decode() if isinstance(run_id, bytes) else run_id), "state")
        for state in pipe.execute():
            name = state.decode() if isinstance(state, bytes) else state
            if name in counts:
                counts[name] += 1
        return counts


def serve(port: int, *, addr: str = "0.0.0.0", redis_client: Any = None, keys: Any = None) -> None:
    """Enable the metrics and serve them on http://ADDR:PORT/metrics from a daemon thread of this process.

    With `redis_client` and `keys` (cluster mode), `playbooks_runs{state}` is read from Redis on each scrape.
    """
    import prometheus_client as prom

    registry: Any = prom.REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        enable()  # values go to the directory's files; the served registry sums every process's files
        registry = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        enable(registry)
    if redis_client is not None and keys is not None:
        registry.register(RunStateCollector(redis_client, keys))
    prom.start_http_server(port, addr=addr, registry=registry)
