"""Chaos: many runs and conversations on 3 workers while a driver kills, pauses and stops workers and restarts Redis.

Loopback only. A private redis-server with `--appendonly yes --appendfsync always` (so a restart of Redis loses
nothing), 3 `playbooks worker` processes (default settings: threads pool, lease_seconds = 3), -c 8, each in its
own process group. M runs of a 10-step program are submitted, spread over the fault window; each step is a tool
that sleeps 0.1–0.3 s and appends "run_id step n pid time" to a shared log, then a `Say`. C conversations are
submitted over the same window: spread runs (each agent a task of its own) where a Pinger and a Ponger play R
rounds of ping-pong through their mailbox streams; each Pinger round calls a tool that sleeps 0.05–0.15 s and
appends "run_id round n pid time" to another log, so faults land mid-conversation.

The driver (seeded RNG, the seed is printed) injects at random intervals, at most K faults within the time limit:

- kill:    SIGKILL a worker's process group, then start a replacement;
- stop:    SIGSTOP a worker's group for lease_seconds + 1 s (its leases expire, others take its runs), SIGCONT;
- term:    SIGTERM a worker (handoff: its runs continue elsewhere at once), then start a replacement;
- redis:   restart Redis: `SHUTDOWN` (fsyncs the AOF; never NOSAVE), then start it again on the same port and
           directory, so the AOF is reloaded.

A worker that exits on its own is started again, as the deployments' `Restart=always` would, and listed
(`worker_exits`): a finding of its own, which the verdict leaves to the runs' invariants.

At the end (all runs finished, or a deadline) it checks and prints, per run:

- completed exactly once: state succeeded and exactly one `end` event, of state succeeded, in `pbw:{RUN}:events`;
- every tool step ran, once — except an in-flight one, at most twice, and no more re-runs in a run than the run
  was taken over (its epoch - 1);
- every Say delivered exactly once, in order (the `say` events of the stream are exactly step 1..N);
- no checkpoint lost: each agent's journal counters are 1..n without a gap, and the run's last record is the final
  step's Say.

and per conversation:

- completed exactly once: as a run (state succeeded, one `end` event of state succeeded), both agents' units done;
- final counter right: the Pinger said `final R`, once (one `say` event, one Say record);
- every message exactly once: each send record's message is in the recipient's mailbox stream once, in order of
  sending, and the recipient's receive records take exactly those ids, in that order; the pings are 0..R-1 and
  `stop`, the Ponger's replies 1..R;
- no checkpoint lost: both agents' journal counters are 1..n without a gap;
- every tool round ran: each of 1..R at least once and at most 1 + faults injected, and no more re-runs in the
  conversation than its Pinger was taken over (its unit's `failovers` + its handoffs, from the events).

A fault is survived when every run and conversation in flight when it struck (submitted, not yet ended) ended
afterwards, succeeded, exactly once. Exit 0 only if every invariant holds for every run and conversation, every
fault was survived and at least one was injected. Every process this started (each in its own group) is stopped
on exit, also on failure, Ctrl+C or the time budget running out.

    python bench/chaos.py [--quick] [--json] [--runs M] [--conversations C] [--rounds R] [--faults K]
                          [--duration S] [--seed N]
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
ROUNDS = 20
TALK_CHECKS = ("completed_once", "final_ok", "messages_ok", "journal_ok", "rounds_ok")  # check_conversation's
TALK_LEAD_S = 1.0  # a conversation starts this long before a fault: it lands some rounds in (a round is ~0.15 s)

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


# Spread (the agents only talk by messages); args reach the entry agent's Main. A round's tool sleeps, then logs
# the counter it was handed, so the log shows both that every round ran and that the counter was right.
CONVERSATION = '''\
# Pinger

```python
import importlib
import os

_wall = importlib.import_module("time")


@playbook
async def Round(run: str, n: int, log: str) -> int:
    await asyncio.sleep(0.05 + 0.1 * ((n * 7 + len(run)) % 5) / 4)
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"{run} round {n} {os.getpid()} {_wall.time():.6f}\\n")
    return n
```

## Main($run: str, $log: str, $rounds: int)

```python
ponger = await CreateAgent("Ponger")
count = 0
for _ in range(rounds):
    await SendMessage(f"agent {ponger.id}", str(count))
    count = int(await WaitForMessage(f"agent {ponger.id}"))
    await Round(run, count, log)
await Say("user", f"final {count}")
await SendMessage(f"agent {ponger.id}", "stop")
```

# Ponger

## Serve

```python
while True:
    message = await WaitForMessage("*")
    if message == "stop":
        break
    await SendMessage("Pinger", str(int(message) + 1))
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


def read_log(log: Path, what: str = "step") -> list[tuple[str, int, int, float]]:
    """(run_id, n, pid, time) of every step (or conversation round) execution."""
    rows = []
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 5 and parts[1] == what:
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
        self.agents_held: collections.Counter[str] = collections.Counter()  # owner -> agent leases, at victim()
        self.ended: set[str] = set()  # workers this driver killed or terminated, or restarted after they exited
        self.exits: list[dict[str, Any]] = []  # workers that exited on their own

    def supervise(self) -> None:
        """Restart a worker that exited on its own, as the deployments' `Restart=always` would, and note the exit:
        a finding of its own (Celery 5.7 can end a worker holding an unacked task when its Redis connection breaks)."""
        for worker in list(self.cluster.workers):
            if worker.alive() or worker.owner in self.ended:
                continue
            self.ended.add(worker.owner)
            lines = worker.log_tail(1000).splitlines()
            error = next((line for line in reversed(lines) if "Unrecoverable error" in line or "CRITICAL" in line),
                         lines[-1] if lines else "")
            after = f"fault {len(self.faults)} ({self.faults[-1]['kind']})" if self.faults else "no fault"
            self.exits.append({"worker": worker.owner, "t": time.time(), "returncode": worker.popen.returncode,
                               "after": after, "error": error[:300]})
            self.say(f"  worker {worker.owner} exited on its own (exit {worker.popen.returncode}) after {after}: "
                     f"{error[:160]}; restarting it")
            self.start_worker()

    def start_worker(self) -> Worker:
        worker = self.cluster.start_worker(concurrency=CONCURRENCY)
        self.cluster.wait_ready(worker)
        return worker

    def victim(self) -> Worker:
        """A live worker, preferably one holding leases (so the fault hits running work)."""
        live = self.cluster.live_workers()
        holders = collections.Counter()
        self.agents_held.clear()
        for pattern in ("pbw:{*}:lease", "pbw:{*}:lease:*"):  # runs' leases, and spread runs' agents'
            for key in retrying(lambda p=pattern: list(self.cluster.client.scan_iter(match=p, count=1000))):
                value = retrying(lambda k=key: self.cluster.client.get(k))
                if value:
                    holders[value.decode().split(" ")[0]] += 1
                    if pattern.endswith(":*"):
                        self.agents_held[value.decode().split(" ")[0]] += 1
        if not live:
            dead = "\n".join(f"--- {w.owner} exited {w.popen.returncode}\n{w.log_tail(20)}"
                             for w in self.cluster.workers)
            raise RuntimeError(f"no live worker left to fault: the workers exited on their own\n{dead}")
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
            fault["agents_held"] = self.agents_held[worker.owner]  # conversations' agents it was running
            if kind in ("kill", "term"):
                self.ended.add(worker.owner)
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
        held = f" (holding {fault['agents_held']} conversation agents)" if fault.get("agents_held") else ""
        self.say(f"  fault {len(self.faults)}: {kind} {fault.get('worker', '')} at +{t0 - START:.1f} s{held}")


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


def ended_at(client: Any, run_id: str) -> float:
    """When the run's first `end` event was added (its stream id is Redis's clock, in ms), or infinity."""
    for entry_id, fields in retrying(lambda: client.xrange(f"pbw:{{{run_id}}}:events")):
        if json.loads(fields[b"event"]).get("type") == "end":
            return int(entry_id.split(b"-")[0]) / 1000
    return float("inf")


def diagnose(cluster: ChaosCluster, run_id: str) -> dict[str, Any]:
    """Why a run or conversation broke an invariant: its recorded error, its status and end events, and the
    worker log lines that name it (the logs go with the temporary directory)."""
    raw = retrying(lambda: cluster.client.hget(f"pbw:{{{run_id}}}:run", "json"))
    events = [(_text(i), json.loads(f[b"event"]))
              for i, f in retrying(lambda: cluster.client.xrange(f"pbw:{{{run_id}}}:events"))]
    logs = []
    for worker in cluster.workers:
        lines = worker.log_tail(100_000).splitlines()
        for i, line in enumerate(lines):
            if run_id in line:
                logs.append(f"{worker.owner}: " + "\n".join(lines[i:i + 40]))
    return {"run_id": run_id, "error": json.loads(raw).get("error") if raw else None,
            "events": [(i, e) for i, e in events if e.get("type") not in ("say", "message")], "worker_log": logs[-6:]}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def check_conversation(cluster: ChaosCluster, provider: Any, run_id: str, rounds: int, executions: collections.Counter,
                       faults: int) -> dict[str, Any]:
    """The invariants of one ping-pong conversation (a spread run), from its keys, journals and the rounds log."""
    client = cluster.client
    run_key = f"pbw:{{{run_id}}}"
    state = retrying(lambda: client.hget(f"{run_key}:run", "state"))
    state = state.decode() if state else None
    events = [json.loads(f[b"event"]) for _, f in retrying(lambda: client.xrange(f"{run_key}:events"))]
    ends = [e.get("state") for e in events if e.get("type") == "end"]
    says = [e.get("message") for e in events if e.get("type") == "say"]
    statuses = [e.get("text", "") for e in events if e.get("type") == "status"]
    units = sorted(_text(u) for u in retrying(lambda: client.smembers(f"{run_key}:units")))
    agents = retrying(lambda: provider.run_agents_sync(run_id))
    pinger = next((a for a in agents if a.startswith("pinger_")), None)
    ponger = next((a for a in agents if a.startswith("ponger_")), None)
    by_agent: dict[str, list[dict[str, Any]]] = {}
    journal_ok = bool(pinger and ponger) and sorted(agents) == units and len(agents) == 2
    for agent in agents:
        counters = sorted(int(c) for c in retrying(lambda a=agent: client.hkeys(f"{run_key}:journal:{a}")))
        if not counters or counters != list(range(1, len(counters) + 1)):
            journal_ok = False
        by_agent[agent] = retrying(lambda a=agent: provider.read_journal_sync(a))
    # Takeovers of each agent: reaped (its unit's failovers) or handed off by a worker shutting down.
    agent_info: dict[str, dict[str, Any]] = {}
    for agent in agents:
        fields = retrying(lambda a=agent: client.hmget(f"{run_key}:unit:{a}", "failovers", "state"))
        agent_info[agent] = {
            "state": _text(fields[1] or b""),
            "failovers": int(fields[0] or 0),
            "handoffs": sum(f"agent {agent} continues on another worker" in t for t in statuses),
            "resumed": sum(t == f"🔄 Found checkpoint for agent {agent}" for t in statuses),
        }
    messages_ok = journal_ok
    replies: list[int] = []
    pings: list[str] = []
    said: list[str] = []
    if journal_ok:
        assert pinger is not None and ponger is not None
        sent = {a: [r["result"] for r in records if r["metadata"].get("kind") == "send"]
                for a, records in by_agent.items()}
        got = {a: [r["result"].get("id") for r in records if r["metadata"].get("kind") == "receive"]
               for a, records in by_agent.items()}
        for sender, receiver in ((pinger, ponger), (ponger, pinger)):
            ids = [m.get("id") for m in sent[sender]]
            stream = retrying(lambda a=receiver: client.xrange(f"{run_key}:mailbox:{a}"))
            in_stream = [json.loads(fields[b"message"]).get("id") for _id, fields in stream]
            if (len(ids) != len(set(ids)) or in_stream != ids or got[receiver] != ids
                    or any(m.get("to") != receiver or m.get("from") != sender for m in sent[sender])):
                messages_ok = False
        pings = [m.get("text") for m in sent[pinger]]
        replies = [int(m["text"]) if str(m.get("text")).isdigit() else -1 for m in sent[ponger]]
        if pings != [*(str(n) for n in range(rounds)), "stop"] or replies != list(range(1, rounds + 1)):
            messages_ok = False
        # A send is a Say too (`Say('agent …', text)`): the user's lines are the records of kind "say".
        said = [repr(r) for r in by_agent[pinger] if r["metadata"].get("kind") == "say"]
    counts = [executions[(run_id, n)] for n in range(1, rounds + 1)]
    reruns = sum(c - 1 for c in counts if c > 1)
    pinger_takeovers = agent_info[pinger]["failovers"] + agent_info[pinger]["handoffs"] if pinger else 0
    return {
        "run_id": run_id, "state": state, "ends": ends, "says": says, "units": units, "agents": agent_info,
        "executions": counts, "reruns": reruns,
        "completed_once": (state == "succeeded" and ends == ["succeeded"] and bool(agent_info)
                           and all(t["state"] == "done" for t in agent_info.values())),
        "final_ok": says == [f"final {rounds}"] and len(said) == 1 and f"final {rounds}" in said[0],
        "messages_ok": messages_ok,
        "journal_ok": journal_ok, "records": {a: len(r) for a, r in by_agent.items()},
        "rounds_ok": all(1 <= c <= 1 + faults for c in counts) and reruns <= pinger_takeovers,
        "pings": pings if not messages_ok else f"0..{rounds - 1}, stop",
        "replies": replies if not messages_ok else f"1..{rounds}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 runs, 2 conversations, 5 faults, 45 s")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the counts")
    parser.add_argument("--runs", type=int, help="runs to submit (default 30; 8 with --quick)")
    parser.add_argument("--conversations", type=int,
                        help="ping-pong conversations (spread runs) to submit (default 6; 2 with --quick)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds per conversation (default {ROUNDS})")
    parser.add_argument("--faults", type=int, help="at most this many faults (default 12; 5 with --quick)")
    parser.add_argument("--duration", type=float, help="fault window, s (default 150; 45 with --quick)")
    parser.add_argument("--wait", type=float,
                        help="deadline for the runs to finish after it, s (default 60; 40 with --quick)")
    parser.add_argument("--seed", type=int, help="RNG seed (default: random, printed)")
    args = parser.parse_args()
    runs_n = args.runs or (8 if args.quick else 30)
    convs_n = args.conversations if args.conversations is not None else (2 if args.quick else 6)
    rounds = args.rounds
    max_faults = args.faults if args.faults is not None else (5 if args.quick else 12)
    duration = args.duration or (45.0 if args.quick else 150.0)
    wait_s = args.wait or (40.0 if args.quick else 60.0)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)
    quiet = args.json

    def say(text: str) -> None:
        print(text, file=sys.stderr if quiet else sys.stdout, flush=True)

    say(f"chaos: seed {seed}; {runs_n} runs x {STEPS} steps, {convs_n} conversations x {rounds} rounds; "
        f"{WORKERS} workers x {CONCURRENCY} threads; at most {max_faults} faults in {duration:g} s")
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
        (root / "conversation.pb").write_text(CONVERSATION, encoding="utf-8")
        conversation = load_program(root / "conversation.pb")
        log = root / "steps.log"
        rounds_log = root / "rounds.log"
        budget = duration + wait_s + 90
        processes = WORKERS + max_faults * (WORKERS + 1) + 8  # a Redis restart may end every worker (supervise)
        with ChaosCluster(root / "cluster", budget_s=budget, max_processes=processes) as cluster:
            workers = [cluster.start_worker(concurrency=CONCURRENCY) for _ in range(WORKERS)]
            cluster.wait_ready(*workers)
            settings = cluster.settings()
            lease_s = settings.cluster.lease_seconds
            client = ClusterClient(settings)
            provider = RedisCheckpointProvider(cluster.client, secret_key=load_secret_key(create=False))
            driver = Driver(cluster, rng, lease_s, say)
            run_ids = [new_run_id() for _ in range(runs_n)]
            conv_ids = [new_run_id() for _ in range(convs_n)]
            submit_every = duration * 0.6 / runs_n
            # Conversations over the same part of the window: each once its slot has come, TALK_LEAD_S before the
            # next fault, one per fault (a conversation is over in ~3 s: a fault at a random time seldom finds one).
            conv_every = duration * 0.6 / max(1, convs_n)
            talked_at_fault = -1
            submitted_at: dict[str, float] = {}

            def submit_conversation(rid: str) -> None:
                retrying(lambda: client.submit(conversation, "conversation.pb",
                                               {"run": rid, "log": str(rounds_log), "rounds": rounds}, run_id=rid))
                submitted_at[rid] = time.time()

            mean_gap = duration / (max_faults + 1) if max_faults else duration
            t_start = time.monotonic()
            next_fault = t_start + rng.uniform(0.5, 1.0) * mean_gap
            submitted = talks = 0
            while True:
                now = time.monotonic()
                while submitted < runs_n and now >= t_start + submitted * submit_every:
                    rid = run_ids[submitted]
                    retrying(lambda r=rid: client.submit(program, "chaos.pb", {"run": r, "log": str(log)}, run_id=r))
                    submitted_at[rid] = time.time()
                    submitted += 1
                no_more_faults = len(driver.faults) >= max_faults
                if (talks < convs_n and now >= t_start + (talks + 0.5) * conv_every
                        and (no_more_faults or (now >= next_fault - TALK_LEAD_S
                                                and talked_at_fault < len(driver.faults)))):
                    submit_conversation(conv_ids[talks])
                    talks += 1
                    talked_at_fault = len(driver.faults)
                everything = submitted == runs_n and talks == convs_n
                if now - t_start > duration or (everything and no_more_faults):
                    break
                if len(driver.faults) < max_faults and now >= next_fault:
                    driver.inject()
                    next_fault = time.monotonic() + rng.uniform(0.5, 1.5) * mean_gap
                driver.supervise()
                time.sleep(0.05)
            for rid in conv_ids[talks:]:  # their slots came, but no fault after them within the window
                submit_conversation(rid)
            say(f"faults done ({len(driver.faults)}); waiting up to {wait_s:g} s for the runs to finish")

            def finished() -> bool:
                states = [retrying(lambda r=r: cluster.client.hget(f"pbw:{{{r}}}:run", "state"))
                          for r in run_ids + conv_ids]
                return all(s in (b"succeeded", b"failed", b"cancelled") for s in states)

            deadline = time.monotonic() + wait_s
            while not finished() and time.monotonic() < deadline:
                driver.supervise()
                time.sleep(0.2)
            time.sleep(1.0)  # a late duplicate (a fenced worker's in-flight step) would show up in the log now
            executions = collections.Counter((r, n) for r, n, _pid, _t in read_log(log))
            rows = [check_run(cluster, provider, r, executions) for r in run_ids]
            round_runs = read_log(rounds_log, "round")
            played = collections.Counter((r, n) for r, n, _pid, _t in round_runs)
            talk_rows = [check_conversation(cluster, provider, r, rounds, played, len(driver.faults))
                         for r in conv_ids]
            ended = {r: ended_at(cluster.client, r) for r in run_ids + conv_ids}
            intact = {row["run_id"] for row in rows + talk_rows if row["completed_once"]}
            for fault in driver.faults:
                # Survived: every run and conversation in flight when it struck (submitted, not ended) ended
                # afterwards, succeeded, once. (Steps completed after it are no measure: the last of them may
                # fall within a fault while nothing is left to do.)
                hit = [r for r, at in submitted_at.items() if at <= fault["t"] < ended[r]]
                fault["in_flight"] = len(hit)
                fault["survived"] = all(r in intact for r in hit)
            diagnoses = [diagnose(cluster, r["run_id"]) for r in rows if not (
                r["completed_once"] and r["steps_ok"] and r["say_ok"] and r["journal_ok"])]
            diagnoses += [diagnose(cluster, r["run_id"]) for r in talk_rows if not all(r[c] for c in TALK_CHECKS)]
            logs_tail = {w.owner: w.log_tail(5) for w in cluster.workers
                         if not all(r["completed_once"] for r in rows + talk_rows)}

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
    talk_counts = {
        "conversations": convs_n,
        "rounds": rounds,
        "completed_once": sum(r["completed_once"] for r in talk_rows),
        "final_counter_once": sum(r["final_ok"] for r in talk_rows),
        "messages_exactly_once": sum(r["messages_ok"] for r in talk_rows),
        "journal_complete": sum(r["journal_ok"] for r in talk_rows),
        "rounds_ok": sum(r["rounds_ok"] for r in talk_rows),
        "rounds_exactly_once": sum(r["rounds_ok"] and r["reruns"] == 0 for r in talk_rows),
        "rounds_rerun": sum(r["reruns"] for r in talk_rows),
        "takeovers": sum(t["failovers"] + t["handoffs"] for r in talk_rows for t in r["agents"].values()),
        "conversations_taken_over": sum(any(t["failovers"] + t["handoffs"] for t in r["agents"].values())
                                        for r in talk_rows),
    }
    ok = (counts["completed_once"] == counts["steps_ok"] == counts["say_exactly_once"]
          == counts["journal_complete"] == runs_n and bool(driver.faults)
          and sum(survived.values()) == len(driver.faults)
          and all(talk_counts[c] == convs_n for c in ("completed_once", "final_counter_once", "messages_exactly_once",
                                                       "journal_complete", "rounds_ok")))
    result.update({"counts": counts, "conversations": talk_counts, "faults_injected": dict(injected),
                   "faults_survived": dict(survived), "faults": driver.faults, "worker_exits": driver.exits,
                   "pass": ok, "diagnoses": diagnoses,
                   "bad_runs": [r for r in rows if not (r["completed_once"] and r["steps_ok"] and r["say_ok"]
                                                         and r["journal_ok"])],
                   "bad_conversations": [r for r in talk_rows if not all(r[c] for c in TALK_CHECKS)]})
    if args.json:
        print(json.dumps(result))
    else:
        print(f"runs completed exactly once:              {counts['completed_once']}/{runs_n}")
        print(f"runs whose tool steps ran once (in-flight at most twice, re-runs <= takeovers): "
              f"{counts['steps_ok']}/{runs_n}  (no re-run at all: {counts['steps_exactly_once']}; "
              f"re-run steps: {counts['steps_rerun']}; takeovers: {counts['takeovers']})")
        print(f"runs whose Say output was delivered exactly once, in order: {counts['say_exactly_once']}/{runs_n}")
        print(f"runs with no checkpoint lost (1..n, last = final Say): {counts['journal_complete']}/{runs_n}")
        c, n = talk_counts, convs_n
        print(f"conversations completed exactly once:     {c['completed_once']}/{n}")
        print(f"conversations whose final counter was said once (final {rounds}): {c['final_counter_once']}/{n}")
        print(f"conversations whose every message was in its stream once and received once, in order: "
              f"{c['messages_exactly_once']}/{n}")
        print(f"conversations with no checkpoint lost (every agent's journal 1..n): {c['journal_complete']}/{n}")
        print(f"conversations whose every round ran (re-runs <= the Pinger's takeovers): {c['rounds_ok']}/{n}  "
              f"(no re-run at all: {c['rounds_exactly_once']}; re-run rounds: {c['rounds_rerun']}; agent takeovers: "
              f"{c['takeovers']}, in {c['conversations_taken_over']} conversations)")
        print("faults injected / survived: " + ", ".join(f"{k} {injected[k]}/{survived[k]}" for k in KINDS)
              + f"  (total {len(driver.faults)}/{sum(survived.values())})")
        after = collections.Counter(e["after"].partition("(")[2].rstrip(")") or "no fault" for e in driver.exits)
        print(f"workers that exited on their own (restarted, as Restart=always would): {len(driver.exits)}"
              + (f"  (after: {', '.join(f'{k} {v}' for k, v in sorted(after.items()))})" if after else ""))
        for row in result["bad_runs"] + result["bad_conversations"]:
            print(f"  BAD {json.dumps(row)}")
        for why in diagnoses:
            print(f"  WHY {why['run_id']}: error {why['error']!r}")
            for entry_id, event in why["events"]:
                print(f"    {entry_id} {json.dumps(event, ensure_ascii=False)[:400]}")
            for excerpt in why["worker_log"]:
                print("    | " + excerpt.replace("\n", "\n    | "))
        for owner, tail in logs_tail.items():
            print(f"  --- {owner}\n{tail}")
        print(f"chaos (seed {seed}): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
