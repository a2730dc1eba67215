"""Throughput: trivial one-step runs per second through real workers, as a ratio to raw Celery no-op tasks
executed by the same worker processes in the same run.

Part 1. Two `playbooks worker -c 8` processes (threads pool, default settings) on a private redis-server.
The workers are started through bench/_cluster.py's launcher, which registers one extra Celery task,
`bench.noop` (INCR of a Redis counter), with the worker's own app before running the unchanged
`playbooks worker` command: same app, same configuration (JSON, acks_late, prefetch 1, task events), same
processes and threads, so the only difference between the two figures is what a task does. Per round
(alternating order), with the workers paused (SIGSTOP) while a batch is queued and the clock started when
they are resumed (SIGCONT) — so the figures are the workers' rates, not the one client thread's submit rate
(reported apart):

- runs: R runs of a one-step program queued with ClusterClient.submit (no follow); time until every run is
  finished (the active set is empty), then check none failed (a run whose record is gone succeeded and was
  pruned: each success keeps only the newest keep_last_n finished runs of its program);
- no-ops: M `bench.noop` tasks queued with send_task; time until the counter reaches M.

Ratio = runs/s ÷ no-ops/s; goal ≥ 0.5x (no must bound was set: the figure is reported, not enforced).
Where the time goes: worker CPU (/proc) and Redis commands (INFO, including those run inside Lua scripts)
per run and per no-op.

Part 2. One plain `playbooks worker -c 500` (threads) alone; S runs each awaiting a tool that sleeps 2 s
(`await asyncio.sleep(2)`), all queued while the worker is paused. Reported: the wall time until all
finished (ideal: 2 s plus overhead) — or, if some never finish, the states after waiting at most
SLOW_DEADLINE_S (20 s with --quick), or SLOW_STALL_S without progress — the peak number of runs `running`
at once, the worker's CPU time, its oldest heartbeat, and what its log says went wrong.

    python bench/throughput.py [--quick] [--json] [--runs R] [--noops M] [--rounds N] [--slow S]
"""

from __future__ import annotations

import collections
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _cluster import NOOP_COUNTER, NOOP_TASK, Cluster, cpu_seconds
from _common import Figure, fmt_range, isolated_env, parse_args

GOAL = 0.5
WORKERS = 2
CONCURRENCY = 8
SLOW_CONCURRENCY = 500
SLOW_TOOL_S = 2.0
BATCH_TIMEOUT_S = 60.0
SLOW_DEADLINE_S = 45.0
SLOW_DEADLINE_QUICK_S = 20.0
SLOW_STALL_S = 8.0
FINAL = frozenset({b"succeeded", b"failed", b"cancelled"})
LOG_SIGNS = {  # what the worker's log says went wrong, and how often
    "redis pool exhausted (MaxConnectionsError)": "Too many connections",
    "lease expired, run re-enqueued": "its lease expired; re-enqueued",
    "heartbeat failed": "heartbeat failed",
    "task raised": "raised unexpected",
}

TRIVIAL = '''\
# Trivial:AI
One step.

```python
@playbook
async def Tick() -> int:
    return 1
```

## Main

```python
await Tick()
```
'''

SLOW = f'''\
# Sleeper:AI
One slow step: a tool waiting on I/O for {SLOW_TOOL_S:g} s.

```python
@playbook
async def Slow() -> float:
    await asyncio.sleep({SLOW_TOOL_S})
    return {SLOW_TOOL_S}
```

## Main

```python
await Slow()
```
'''


def wait_until(what: str, condition: Any, timeout_s: float = BATCH_TIMEOUT_S, every_s: float = 0.005) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


class Part1:
    def __init__(self, cluster: Cluster, root: Path) -> None:
        from playbooks_worker.cluster.app import app_for
        from playbooks_worker.cluster.client import ClusterClient
        from playbooks_worker.program import load_program

        self.cluster = cluster
        self.settings = cluster.settings()
        self.client = ClusterClient(self.settings)
        self.app = app_for(self.settings)
        path = root / "trivial.pb"
        path.write_text(TRIVIAL, encoding="utf-8")
        self.program = load_program(path)
        self.workers = [cluster.start_worker(concurrency=CONCURRENCY, noop=True) for _ in range(WORKERS)]
        cluster.wait_ready(*self.workers)

    def cpu(self) -> float:
        return sum(cpu_seconds(w.pid) or 0.0 for w in self.workers)

    def pause(self) -> None:
        for worker in self.workers:
            self.cluster.kill(worker, signal.SIGSTOP, wait=False)

    def resume(self) -> float:
        start = time.perf_counter()
        for worker in self.workers:
            self.cluster.kill(worker, signal.SIGCONT, wait=False)
        return start

    def runs(self, count: int) -> dict[str, float]:
        r = self.cluster.client
        active = self.client.keys.active
        if r.scard(active):
            raise RuntimeError("runs left over from an earlier batch")
        self.pause()
        try:
            t = time.perf_counter()
            ids = [self.client.submit(self.program, "trivial.pb").run_id for _ in range(count)]
            submitted = time.perf_counter() - t
            cpu0, cmds0 = self.cpu(), self.cluster.redis_commands()
            reads0 = self.cluster.redis_calls("hgetall")
        finally:
            start = self.resume()
        wait_until(f"{count} runs to finish", lambda: r.scard(active) == 0)
        elapsed = time.perf_counter() - start
        cpu, cmds = self.cpu() - cpu0, self.cluster.redis_commands() - cmds0
        reads = self.cluster.redis_calls("hgetall") - reads0
        pipe = r.pipeline(transaction=False)
        for run_id in ids:
            pipe.hget(self.client.keys.run(run_id), "state")
        states = pipe.execute()
        # No record left means succeeded, then pruned: each success keeps only the newest keep_last_n (10)
        # finished runs of its program, and failed runs are never pruned.
        bad = [s for s in states if s not in (b"succeeded", None)]
        if bad:
            raise RuntimeError(f"{len(bad)} of {count} runs did not succeed: {sorted(set(bad))}")
        return {"rate": count / elapsed, "submit_rate": count / submitted, "cpu_ms": 1000 * cpu / count,
                "cmds": cmds / count, "record_reads": reads / count}

    def noops(self, count: int) -> dict[str, float]:
        r = self.cluster.client
        r.delete(NOOP_COUNTER)
        self.pause()
        try:
            t = time.perf_counter()
            for _ in range(count):
                self.app.send_task(NOOP_TASK, args=[NOOP_COUNTER], queue=self.settings.cluster.queue)
            submitted = time.perf_counter() - t
            cpu0, cmds0 = self.cpu(), self.cluster.redis_commands()
        finally:
            start = self.resume()
        wait_until(f"{count} no-op tasks", lambda: int(r.get(NOOP_COUNTER) or 0) >= count)
        elapsed = time.perf_counter() - start
        cpu, cmds = self.cpu() - cpu0, self.cluster.redis_commands() - cmds0
        return {"rate": count / elapsed, "submit_rate": count / submitted, "cpu_ms": 1000 * cpu / count,
                "cmds": cmds / count}


def part1(args: Any, root: Path) -> dict[str, list[float]]:
    cols: dict[str, list[float]] = {k: [] for k in (
        "ratio", "runs_per_s", "noops_per_s", "run_submit_per_s", "noop_submit_per_s", "run_cpu_ms",
        "noop_cpu_ms", "run_redis_cmds", "noop_redis_cmds", "run_record_reads")}
    with Cluster(root / "part1", budget_s=150) as cluster:
        p = Part1(cluster, root)
        p.runs(max(10, args.runs // 5))  # warm-up: imports, program parse, script loads, connections
        p.noops(max(50, args.noops // 5))
        for r in range(args.rounds):
            got: dict[str, dict[str, float]] = {}
            for what in (("runs", "noops") if r % 2 == 0 else ("noops", "runs")):
                got[what] = p.runs(args.runs) if what == "runs" else p.noops(args.noops)
            runs, noops = got["runs"], got["noops"]
            cols["ratio"].append(runs["rate"] / noops["rate"])
            cols["runs_per_s"].append(runs["rate"])
            cols["noops_per_s"].append(noops["rate"])
            cols["run_submit_per_s"].append(runs["submit_rate"])
            cols["noop_submit_per_s"].append(noops["submit_rate"])
            cols["run_cpu_ms"].append(runs["cpu_ms"])
            cols["noop_cpu_ms"].append(noops["cpu_ms"])
            cols["run_redis_cmds"].append(runs["cmds"])
            cols["noop_redis_cmds"].append(noops["cmds"])
            cols["run_record_reads"].append(runs["record_reads"])
    return cols


def part2(args: Any, root: Path) -> dict[str, Any]:
    from playbooks_worker.cluster.client import ClusterClient
    from playbooks_worker.program import load_program

    wait_s = SLOW_DEADLINE_QUICK_S if args.quick else SLOW_DEADLINE_S
    with Cluster(root / "part2", budget_s=30 + wait_s + 30) as cluster:
        worker = cluster.start_worker(concurrency=SLOW_CONCURRENCY)
        cluster.wait_ready(worker)
        client = ClusterClient(cluster.settings())
        path = root / "slow.pb"
        path.write_text(SLOW, encoding="utf-8")
        program = load_program(path)
        r, keys = cluster.client, client.keys

        client.submit(program, "slow.pb")  # warm-up: the first run pays imports and the program parse
        wait_until("the warm-up run", lambda: r.scard(keys.active) == 0, every_s=0.05)
        log_at = worker.log.stat().st_size
        cluster.kill(worker, signal.SIGSTOP, wait=False)  # all runs queued before the worker sees one
        try:
            t = time.perf_counter()
            ids = [client.submit(program, "slow.pb").run_id for _ in range(args.slow)]
            submitted = time.perf_counter() - t
            cpu0, cmds0 = cpu_seconds(worker.pid) or 0.0, cluster.redis_commands()
        finally:
            start = time.perf_counter()
            cluster.kill(worker, signal.SIGCONT, wait=False)
        peak, peak_at, first_running, beat_age = 0, 0.0, 0.0, 0.0
        deadline = start + wait_s
        last_change, last_states = start, None
        while True:
            pipe = r.pipeline(transaction=False)
            for run_id in ids:
                pipe.hget(keys.run(run_id), "state")
            pipe.hget(keys.workers, worker.owner)
            *raw, beat = pipe.execute()
            states = [b"succeeded" if x is None else x for x in raw]  # None: succeeded, then pruned
            now = time.perf_counter()
            running = states.count(b"running")
            if running and not first_running:
                first_running = now - start
            if running > peak:
                peak, peak_at = running, now - start
            if beat:
                beat_age = max(beat_age, time.time() - json.loads(beat)["seen_at"])
            if states != last_states:
                last_states, last_change = states, now
            if all(x in FINAL for x in states):
                break
            # Runs left `queued` with no task message never start: stop waiting once nothing moves.
            if now > deadline or (not running and now - last_change > SLOW_STALL_S):
                break
            time.sleep(0.02)
        wall = now - start
        cpu = (cpu_seconds(worker.pid) or 0.0) - cpu0
        cmds = cluster.redis_commands() - cmds0
        pipe = r.pipeline(transaction=False)
        for run_id in ids:
            pipe.hget(keys.run(run_id), "failovers")
        failovers = sum(int(f or 0) for f in pipe.execute())  # of the runs not pruned yet
        lease_s = client.settings.cluster.lease_seconds
        with open(worker.log, "rb") as f:
            f.seek(log_at)
            log = f.read().decode(errors="replace")
    counts = collections.Counter(x.decode() for x in states)
    return {"slow_runs": args.slow, "slow_wall_s": wall, "slow_all_finished": all(x in FINAL for x in states),
            "slow_submit_s": submitted, "slow_peak_running": peak, "slow_peak_at_s": peak_at,
            "slow_first_running_s": first_running, "slow_states": dict(counts), "slow_failovers": failovers,
            "slow_worker_cpu_s": cpu, "slow_redis_cmds_per_run": cmds / args.slow,
            "slow_max_heartbeat_age_s": beat_age, "lease_seconds": lease_s,
            "slow_log": {what: log.count(needle) for what, needle in LOG_SIGNS.items()},
            "slow_tool_s": SLOW_TOOL_S, "slow_concurrency": SLOW_CONCURRENCY}


def report(fig: Figure) -> str:
    d = fig.details
    med = statistics.median
    lines = [
        f"throughput: {WORKERS} workers × {CONCURRENCY} threads, {d['rounds_count']} interleaved rounds of "
        f"{d['runs']} one-step runs and {d['noops']} no-op Celery tasks (same worker processes)",
        "",
        "part 1: runs/s ÷ no-op tasks/s (median over rounds):",
        f"  ratio                          {fmt_range(fig.values)} x",
        f"  one-step runs per s            {fmt_range(d['runs_per_s'], digits=0)}",
        f"  no-op tasks per s (baseline)   {fmt_range(d['noops_per_s'], digits=0)}",
        f"  submitted per s: runs {med(d['run_submit_per_s']):.0f}, no-ops {med(d['noop_submit_per_s']):.0f} "
        "(one client thread)",
        "  where the time goes, per task (median):",
        f"    worker CPU                   run {med(d['run_cpu_ms']):.2f} ms, no-op {med(d['noop_cpu_ms']):.2f} ms "
        f"({med(d['run_cpu_ms']) / med(d['noop_cpu_ms']):.1f}x)",
        f"    Redis commands (all clients, incl. inside Lua) run {med(d['run_redis_cmds']):.1f}, "
        f"no-op {med(d['noop_redis_cmds']):.1f}",
        f"    of which run records read (HGETALL) per run: {med(d['run_record_reads']):.1f}",
        "",
    ]
    if "slow_runs" not in d:
        return "\n".join(lines)
    states = d["slow_states"]
    finished = f"all finished after {d['slow_wall_s']:.2f} s" if d["slow_all_finished"] else \
        f"NOT all finished: stopped waiting after {d['slow_wall_s']:.2f} s"
    lines += [
        f"part 2: {d['slow_runs']} runs each awaiting a {d['slow_tool_s']:g} s tool, all queued at once, one "
        f"worker -c {d['slow_concurrency']} (threads):",
        f"  {finished} (ideal ≈ {d['slow_tool_s']:g} s + overhead)",
        f"  peak runs `running` at once    {d['slow_peak_running']} of {d['slow_runs']} "
        f"(at {d['slow_peak_at_s']:.2f} s; first running at {d['slow_first_running_s']:.2f} s)",
        "  states at the end              " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())),
        f"  failovers recorded             {d['slow_failovers']} (on runs not pruned yet; the log counts all)",
        f"  worker CPU                     {d['slow_worker_cpu_s']:.2f} s "
        f"({1000 * d['slow_worker_cpu_s'] / d['slow_runs']:.1f} ms per run), "
        f"{d['slow_redis_cmds_per_run']:.1f} Redis commands per run; oldest heartbeat seen "
        f"{d['slow_max_heartbeat_age_s']:.2f} s (lease {d['lease_seconds']:g} s)",
        "  worker log                     " + ", ".join(f"{k}: {v}" for k, v in d["slow_log"].items()),
        f"  (the client took {d['slow_submit_s']:.2f} s to queue them, not counted)",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], {"runs": 300, "noops": 1500, "rounds": 5, "slow": 500},
                      {"runs": 60, "noops": 300, "rounds": 3, "slow": 100})
    import json

    with isolated_env("pbw-bench-throughput-") as root:
        cols = part1(args, root)
        slow = part2(args, root) if args.slow else {}
    ratios = cols.pop("ratio")
    fig = Figure(benchmark="throughput", figure="one-step runs/s / no-op Celery tasks/s on the same workers",
                 unit="x", direction=">=", goal=GOAL, must=0.0, values=ratios,
                 details={**cols, **slow, "runs": args.runs, "noops": args.noops, "rounds_count": args.rounds})
    if args.json:
        print(json.dumps(fig.to_json()))
    else:
        print(report(fig))
        print(f"goal   ≥ {GOAL:g} x: {'PASS' if fig.passes(GOAL) else 'FAIL'}")
        print("must   none set: reported, not enforced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
