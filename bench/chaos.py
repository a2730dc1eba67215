"""Chaos: many runs on 3 workers while a driver kills, pauses and stops workers and restarts Redis itself.

Loopback only. A private redis-server with `--appendonly yes --appendfsync always` (so a restart of Redis loses
nothing), 3 `playbooks worker` processes (default settings: threads pool, lease_seconds = 3), -c 8, each in its
own process group. M runs of a 10-step program are submitted, spread over the fault window; each step is a tool
that sleeps 0.1–0.3 s and appends "run_id step n pid time" to a shared log, then a `Say`.

The driver (seeded RNG, the seed is printed) injects at random intervals, at most K faults within the time limit:

- kill:    SIGKILL a worker's process group, then start a replacement;
- stop:    SIGSTOP a worker's group for lease_seconds + 1 s (its leases expire, others take its runs), SIGCONT;
- term:    SIGTERM a worker (handoff: its runs continue elsewhere at once), then start a replacement;
- redis:   restart Redis: `SHUTDOWN` (fsyncs the AOF; never NOSAVE), then start it again on the same port and
           directory, so the AOF is reloaded.

At the end (all runs finished, or a deadline) it checks and prints, per run:

- completed exactly once: state succeeded and exactly one `end` event, of state succeeded, in `pbw:{RUN}:events`;
- every tool step ran, once — except an in-flight one, at most twice, and no more re-runs in a run than the run
  was taken over (its epoch - 1);
- every Say delivered exactly once, in order (the `say` events of the stream are exactly step 1..N);
- no checkpoint lost: each agent's journal counters are 1..n without a gap, and the run's last record is the final
  step's Say.

Exit 0 only if every invariant holds for every run and at least one fault was injected. Every process this
started (each in its own group) is stopped on exit, also on failure, Ctrl+C or the time budget running out.

    python bench/chaos.py [--quick] [--json] [--runs M] [--faults K] [--duration S] [--seed N]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _cluster import Cluster, Worker
from _common import isolated_env

STEPS = 10
CONCURRENCY = 8
WORKERS = 3
KINDS = ("kill", "stop", "term", "redis")
TERM_WAIT_S = 30.0

PROGRAM = f'''\
# Chaos:AI
Ten steps; each logs where it ran, then says so.

```python
import importlib
import os

_wall = importlib.import_module("time")  # the real clock: `import time` in playbook code is journaled


@playbook
async def Step(run: str, n: int, log: str) -> int:
    await asyncio.sleep(0.1 + 0.2 * ((n * 7 + len(run)) % 5) / 4)
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"{{run}} step {{n}} {{os.getpid()}} {{_wall.time():.6f}}\\n")
    return n
```

## Main($run: str, $log: str)

```python
for n in range(1, {STEPS} + 1):
    await Step(run, n, log)
    await Say("user", f"step {{n}}")
```
'''


class ChaosCluster(Cluster):
    """bench/_cluster.Cluster with a durable Redis (AOF, fsync always) that can be restarted in place."""

    def _start_redis(self) -> None:
        import redis

        data = self.root / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self.redis_proc = self._spawn(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(data), "--protected-mode", "yes", "--maxclients", "4096"],
            log=data / f"redis-{self._started}.log")
        if self.client is None:
            self.client = redis.Redis.from_url(self.redis_url, socket_timeout=10)
        deadline = time.monotonic() + 15
        while True:
            try:
                self.client.ping()
                if self.client.info("persistence").get("loading", 0) == 0:
                    return
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                pass
            if self.redis_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start:\n"
                                   + "\n".join(p.read_text(errors="replace")[-1500:] for p in data.glob("*.log")))
            time.sleep(0.02)

    def restart_redis(self) -> float:
        """SHUTDOWN (the AOF is fsynced; no NOSAVE), then start again on the same port and dir; seconds down."""
        assert self.redis_proc is not None
        t0 = time.monotonic()
        # Sent raw: redis-py retries a command whose connection closes, and SHUTDOWN always closes it.
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"SHUTDOWN\r\n")
            with contextlib.suppress(OSError):
                sock.recv(64)
        try:
            self.redis_proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.redis_proc.terminate()  # SIGTERM: also a clean shutdown that flushes the AOF
            self.redis_proc.wait(timeout=10)
        self.client.connection_pool.disconnect()
        self._start_redis()
        return time.monotonic() - t0


def read_log(log: Path) -> list[tuple[str, int, int, float]]:
    """(run_id, step, pid, time) of every step execution."""
    rows = []
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 5 and parts[1] == "step":
                rows.append((parts[0], int(parts[2]), int(parts[3]), float(parts[4])))
    return rows


def retrying(what: Any, attempts: int = 100) -> Any:
    """A read of the bench's own client that rides out a Redis restart."""
    import redis

    for i in range(attempts):
        try:
            return what()
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            if i == attempts - 1:
                raise
            time.sleep(0.1)
    return None


class Driver:
    def __init__(self, cluster: ChaosCluster, rng: random.Random, lease_s: float, say: Any) -> None:
        self.cluster = cluster
        self.rng = rng
        self.lease_s = lease_s
        self.say = say
        self.faults: list[dict[str, Any]] = []
        self.pending = list(rng.sample(KINDS, len(KINDS)))  # every kind early, then at random

    def start_worker(self) -> Worker:
        worker = self.cluster.start_worker(concurrency=CONCURRENCY)
        self.cluster.wait_ready(worker)
        return worker

    def victim(self) -> Worker:
        """A live worker, preferably one holding leases (so the fault hits running work)."""
        live = self.cluster.live_workers()
        holders = collections.Counter()
        for key in retrying(lambda: list(self.cluster.client.scan_iter(match="pbw:{*}:lease", count=1000))):
            value = retrying(lambda k=key: self.cluster.client.get(k))
            if value:
                holders[value.decode().split(" ")[0]] += 1
        busy = [w for w in live if holders[w.owner]]
        return self.rng.choice(busy or live)

    def inject(self) -> None:
        kind = self.pending.pop(0) if self.pending else self.rng.choice(KINDS)
        t0 = time.time()
        fault: dict[str, Any] = {"kind": kind, "t": t0}
        if kind == "redis":
            fault["down_s"] = round(self.cluster.restart_redis(), 3)
        else:
            worker = self.victim()
            fault["worker"] = worker.owner
            if kind == "kill":
                self.cluster.kill(worker)
                self.start_worker()
            elif kind == "stop":
                self.cluster.kill(worker, signal.SIGSTOP, wait=False)
                time.sleep(self.lease_s + 1)
                self.cluster.kill(worker, signal.SIGCONT, wait=False)
            elif kind == "term":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGTERM)
                try:
                    worker.popen.wait(timeout=TERM_WAIT_S)
                    fault["clean_exit"] = worker.popen.returncode == 0
                except subprocess.TimeoutExpired:
                    fault["clean_exit"] = False
                    self.cluster.kill(worker)
                self.cluster.kill(worker)  # the rest of its group, if anything is left
                self.start_worker()
        fault["recovered_at"] = time.time()
        self.faults.append(fault)
        self.say(f"  fault {len(self.faults)}: {kind} {fault.get('worker', '')} at +{t0 - START:.1f} s")


START = time.time()


def check_run(cluster: ChaosCluster, provider: Any, run_id: str, executions: collections.Counter) -> dict[str, Any]:
    client = cluster.client
    run_key = f"pbw:{{{run_id}}}"
    state = retrying(lambda: client.hget(f"{run_key}:run", "state"))
    state = state.decode() if state else None
    events = [json.loads(f[b"event"]) for _, f in retrying(lambda: client.xrange(f"{run_key}:events"))]
    ends = [e.get("state") for e in events if e.get("type") == "end"]
    says = [e.get("message") for e in events if e.get("type") == "say"]
    epoch = int(retrying(lambda: client.get(f"{run_key}:epoch")) or 0)
    counts = [executions[(run_id, n)] for n in range(1, STEPS + 1)]
    reruns = sum(c - 1 for c in counts if c > 1)
    steps_ok = all(1 <= c <= 2 for c in counts) and reruns <= max(0, epoch - 1)
    journal_ok, last = True, None
    agents = sorted(a.decode() for a in retrying(lambda: client.smembers(f"{run_key}:agents")))
    if not agents:
        journal_ok = False
    records: list[dict[str, Any]] = []
    for agent in agents:
        counters = sorted(int(c) for c in retrying(lambda a=agent: client.hkeys(f"{run_key}:journal:{a}")))
        if counters != list(range(1, len(counters) + 1)):
            journal_ok = False
        records.extend(provider.read_journal_sync(agent))
    if records:
        final = max(records, key=lambda r: r["metadata"].get("seq", 0))
        meta = final["metadata"]
        last = {k: meta.get(k) for k in ("counter", "seq", "kind", "name", "call")}
        # The final step: the last record is the Say of step N, and no record follows it.
        if meta.get("name") != "Say" or f"step {STEPS}" not in repr(final):
            journal_ok = False
    else:
        journal_ok = False
    step_records = [r for r in records if r["metadata"].get("name") == "Step"]
    say_records = [r for r in records if r["metadata"].get("name") == "Say"]
    if len(step_records) != STEPS or len(say_records) != STEPS:
        journal_ok = False
    return {
        "run_id": run_id, "state": state, "ends": ends, "epoch": epoch, "executions": counts, "reruns": reruns,
        "completed_once": state == "succeeded" and ends == ["succeeded"],
        "steps_ok": steps_ok,
        "say_ok": says == [f"step {n}" for n in range(1, STEPS + 1)],
        "journal_ok": journal_ok, "last_record": last, "records": len(records),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 runs, 5 faults, 45 s")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the counts")
    parser.add_argument("--runs", type=int, help="runs to submit (default 30; 8 with --quick)")
    parser.add_argument("--faults", type=int, help="at most this many faults (default 12; 5 with --quick)")
    parser.add_argument("--duration", type=float, help="fault window, s (default 150; 45 with --quick)")
    parser.add_argument("--wait", type=float, help="deadline for the runs to finish after it, s (default 60)")
    parser.add_argument("--seed", type=int, help="RNG seed (default: random, printed)")
    args = parser.parse_args()
    runs_n = args.runs or (8 if args.quick else 30)
    max_faults = args.faults if args.faults is not None else (5 if args.quick else 12)
    duration = args.duration or (45.0 if args.quick else 150.0)
    wait_s = args.wait or (40.0 if args.quick else 60.0)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)
    quiet = args.json

    def say(text: str) -> None:
        print(text, file=sys.stderr if quiet else sys.stdout, flush=True)

    say(f"chaos: seed {seed}; {runs_n} runs x {STEPS} steps; {WORKERS} workers x {CONCURRENCY} threads; "
        f"at most {max_faults} faults in {duration:g} s")
    from playbooks_worker.checkpoints.redis import RedisCheckpointProvider
    from playbooks_worker.checkpoints.signing import load_secret_key
    from playbooks_worker.cluster.client import ClusterClient
    from playbooks_worker.program import load_program
    from playbooks_worker.runs import new_run_id

    result: dict[str, Any] = {"benchmark": "chaos", "seed": seed}
    with isolated_env("pbw-bench-chaos-") as root:
        program_path = root / "chaos.pb"
        program_path.write_text(PROGRAM, encoding="utf-8")
        program = load_program(program_path)
        log = root / "steps.log"
        budget = duration + wait_s + 90
        with ChaosCluster(root / "cluster", budget_s=budget, max_processes=WORKERS + max_faults + 8) as cluster:
            workers = [cluster.start_worker(concurrency=CONCURRENCY) for _ in range(WORKERS)]
            cluster.wait_ready(*workers)
            settings = cluster.settings()
            lease_s = settings.cluster.lease_seconds
            client = ClusterClient(settings)
            provider = RedisCheckpointProvider(cluster.client, secret_key=load_secret_key(create=False))
            driver = Driver(cluster, rng, lease_s, say)
            run_ids = [new_run_id() for _ in range(runs_n)]
            submit_every = duration * 0.6 / runs_n
            mean_gap = duration / (max_faults + 1) if max_faults else duration
            t_start = time.monotonic()
            next_fault = t_start + rng.uniform(0.5, 1.0) * mean_gap
            submitted = 0
            while True:
                now = time.monotonic()
                while submitted < runs_n and now >= t_start + submitted * submit_every:
                    rid = run_ids[submitted]
                    retrying(lambda r=rid: client.submit(program, "chaos.pb", {"run": r, "log": str(log)}, run_id=r))
                    submitted += 1
                if now - t_start > duration or (submitted == runs_n and len(driver.faults) >= max_faults):
                    break
                if len(driver.faults) < max_faults and now >= next_fault:
                    driver.inject()
                    next_fault = time.monotonic() + rng.uniform(0.5, 1.5) * mean_gap
                time.sleep(0.05)
            say(f"faults done ({len(driver.faults)}); waiting up to {wait_s:g} s for the runs to finish")

            def finished() -> bool:
                states = [retrying(lambda r=r: cluster.client.hget(f"pbw:{{{r}}}:run", "state")) for r in run_ids]
                return all(s in (b"succeeded", b"failed", b"cancelled") for s in states)

            deadline = time.monotonic() + wait_s
            while not finished() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)  # a late duplicate (a fenced worker's in-flight step) would show up in the log now
            executions = collections.Counter((r, n) for r, n, _pid, _t in read_log(log))
            rows = [check_run(cluster, provider, r, executions) for r in run_ids]
            step_times = sorted(t for _r, _n, _pid, t in read_log(log))
            last_step = step_times[-1] if step_times else 0.0
            for fault in driver.faults:
                # Survived: the cluster completed steps after the fault, or every run had already finished.
                fault["survived"] = any(t > fault["recovered_at"] for t in step_times) or last_step <= fault["t"]
            logs_tail = {w.owner: w.log_tail(5) for w in cluster.workers if not all(r["completed_once"] for r in rows)}

    injected = collections.Counter(f["kind"] for f in driver.faults)
    survived = collections.Counter(f["kind"] for f in driver.faults if f["survived"])
    counts = {
        "runs": runs_n,
        "completed_once": sum(r["completed_once"] for r in rows),
        "steps_exactly_once": sum(r["steps_ok"] and r["reruns"] == 0 for r in rows),
        "steps_ok": sum(r["steps_ok"] for r in rows),
        "steps_rerun": sum(r["reruns"] for r in rows),
        "say_exactly_once": sum(r["say_ok"] for r in rows),
        "journal_complete": sum(r["journal_ok"] for r in rows),
        "takeovers": sum(max(0, r["epoch"] - 1) for r in rows),
    }
    ok = (counts["completed_once"] == counts["steps_ok"] == counts["say_exactly_once"]
          == counts["journal_complete"] == runs_n and bool(driver.faults)
          and sum(survived.values()) == len(driver.faults))
    result.update({"counts": counts, "faults_injected": dict(injected), "faults_survived": dict(survived),
                   "faults": driver.faults, "pass": ok,
                   "bad_runs": [r for r in rows if not (r["completed_once"] and r["steps_ok"] and r["say_ok"]
                                                         and r["journal_ok"])]})
    if args.json:
        print(json.dumps(result))
    else:
        print(f"runs completed exactly once:              {counts['completed_once']}/{runs_n}")
        print(f"runs whose tool steps ran once (in-flight at most twice, re-runs <= takeovers): "
              f"{counts['steps_ok']}/{runs_n}  (no re-run at all: {counts['steps_exactly_once']}; "
              f"re-run steps: {counts['steps_rerun']}; takeovers: {counts['takeovers']})")
        print(f"runs whose Say output was delivered exactly once, in order: {counts['say_exactly_once']}/{runs_n}")
        print(f"runs with no checkpoint lost (1..n, last = final Say): {counts['journal_complete']}/{runs_n}")
        print("faults injected / survived: " + ", ".join(f"{k} {injected[k]}/{survived[k]}" for k in KINDS)
              + f"  (total {len(driver.faults)}/{sum(survived.values())})")
        for row in result["bad_runs"]:
            print(f"  BAD {json.dumps(row)}")
        for owner, tail in logs_tail.items():
            print(f"  --- {owner}\n{tail}")
        print(f"chaos (seed {seed}): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
