"""Per-await checkpoint cost against Redis, as a ratio to a raw fenced Lua append of the same bytes.

A program whose Main awaits N trivial tools runs in-process through `LocalRunner` (durability on) twice per
round, on a private redis-server:

- Redis: `provider=RedisCheckpointProvider(..., epoch=E)`: every await signs its record and appends it with
  the APPEND_CHECKPOINT script, which checks the run's fencing epoch (the worker's write path);
- memory: `provider=MemoryCheckpointProvider(...)`: the same runtime, runner, run store, pickling and
  signing, no Redis.

Per-await cost = (Redis loop - memory loop) / N, timed from the first live checkpoint to the last (the
reporter's on_checkpoint hook), so run set-up does not count; the end-to-end difference is printed too.

Baseline, same round, same client and server: calling the APPEND_CHECKPOINT script directly (EVALSHA through
redis-py's registered script) with the same blob bytes (one record the Redis run wrote), the same epoch
check and the same keys, N times with new counters. It is the floor of a one-round-trip design.
Rounds are short and many: a loopback round trip on this VM swings 2-3x within a second, so the three
measurements of one round are taken within a few tens of ms of each other and the ratio is per round.
Goal: per-await cost <= 1.5x the raw append; must be <= 3x.

    python bench/redis_checkpoint_cost.py [--quick] [--json] [--profile] [--n N] [--rounds R]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _cluster import Cluster
from _common import BENCH_KEY, TICKER_PROGRAM, Figure, clock_io, emit, fmt_range, isolated_env, parse_args, profile

GOAL = 1.5
MUST = 3.0
EPOCH = 7  # any value: what matters is that every write compares it with the run's epoch key

PROGRAM = TICKER_PROGRAM


def _runner_class() -> type:
    from playbooks_worker.runner import LocalRunner

    class FencedLocalRunner(LocalRunner):
        """Local mode whose run is owned at epoch EPOCH in Redis, as a worker's run is (fenced writes)."""

        client: Any = None
        keys: Any = None

        def _started(self, run: Any, runtime: Any) -> None:
            if self.client is not None:
                self.client.set(self.keys.epoch(run.run_id), str(EPOCH))

    return FencedLocalRunner


class TimedScripts:
    """The provider's scripts, with the time spent inside APPEND_CHECKPOINT calls added up (two clock reads
    per await, well under 1 µs): splits the Redis cost into the round trip and the provider's own code."""

    def __init__(self, scripts: Any) -> None:
        self.__dict__.update({k: v for k, v in vars(scripts).items() if k != "append_checkpoint"})
        self._append = scripts.append_checkpoint
        self.seconds = 0.0
        self.calls = 0

    def append_checkpoint(self, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self._append(**kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


class Bench:
    def __init__(self, cluster: Cluster, root: Path, n: int) -> None:
        from playbooks_worker.checkpoints.redis import RedisCheckpointProvider
        from playbooks_worker.cluster.keys import Keys
        from playbooks_worker.cluster.scripts import Scripts
        from playbooks_worker.program import load_program

        self.cluster = cluster
        self.root = root
        self.n = n
        self.client = cluster.client
        self.keys = Keys()
        self.scripts = Scripts(self.client)
        path = root / "ticker.pb"
        path.write_text(PROGRAM, encoding="utf-8")
        self.program = load_program(path)
        self.timed = TimedScripts(self.scripts)
        self.redis_provider = RedisCheckpointProvider(self.client, prefix=self.keys.prefix, epoch=EPOCH,
                                                      secret_key=BENCH_KEY.encode(), scripts=self.timed)
        self.runs = 0
        self.last_run_id = ""

    async def timed_run(self, *, redis: bool) -> dict[str, float]:
        from playbooks_worker.checkpoints import MemoryCheckpointProvider
        from playbooks_worker.config import load_settings

        self.runs += 1
        settings = load_settings(None, overrides={
            "durability.enabled": True,
            "durability.storage": "redis" if redis else "filesystem",
            "durability.storage_path": str(self.root / f"runs{self.runs}"),
            "durability.keep_last_n": 1000,  # no pruning
        })
        io = clock_io()
        provider = self.redis_provider if redis else MemoryCheckpointProvider(secret_key=BENCH_KEY.encode())
        runner = _runner_class()(settings, io, provider=provider)
        if redis:
            runner.client, runner.keys = self.client, self.keys
        self.timed.seconds, self.timed.calls = 0.0, 0
        start = time.perf_counter()
        outcome = await runner.start(self.program, {"n": self.n})
        total = time.perf_counter() - start
        if outcome.status != "succeeded":
            raise SystemExit(f"the {'Redis' if redis else 'memory'} run {outcome.status}: {outcome.error!r}")
        if io.count != self.n:
            raise SystemExit(f"expected {self.n} checkpoints, saw {io.count}")
        self.last_run_id = outcome.run.run_id
        script = self.timed.seconds / self.timed.calls if redis else 0.0
        return {"total": total, "loop_per_await": (io.last - io.first) / (self.n - 1), "script": script}

    def sample_blob(self) -> tuple[str, bytes]:
        """(agent id, bytes) of the middle record the last Redis run wrote."""
        from playbooks_worker.cluster.keys import Keys

        run_id = self.last_run_id
        agents = [a.decode() for a in self.client.smembers(Keys().agents(run_id))]
        if len(agents) != 1:
            raise SystemExit(f"expected one agent in run {run_id}, found {agents}")
        blob = self.client.hget(self.keys.journal(run_id, agents[0]), str(max(1, self.n // 2)))
        if blob is None:
            raise SystemExit(f"no checkpoint {self.n // 2} in run {run_id}")
        return agents[0], blob

    def raw_appends(self, agent_id: str, blob: bytes, tag: str, gap_s: float = 0.0) -> float:
        """Seconds per direct APPEND_CHECKPOINT call: fenced (epoch checked), a new counter each time.

        With `gap_s`, the client busy-waits that long before each call (not timed): calls spaced like the
        runtime's, to see whether a round trip costs more when the server is not kept busy."""
        run_id = f"raw{tag}"
        k = self.keys
        self.client.set(k.epoch(run_id), str(EPOCH))
        agent = agent_id.rsplit("_", 1)[0] + f"_{run_id}"
        keys = [k.epoch(run_id), k.journal(run_id, agent), k.agents(run_id), k.events(run_id), k.inbox(run_id)]
        epoch = str(EPOCH)
        append = self.scripts.append_checkpoint
        if gap_s:
            spent = 0.0
            for counter in range(1, self.n + 1):
                until = time.perf_counter() + gap_s
                while time.perf_counter() < until:
                    pass
                start = time.perf_counter()
                if append(keys=keys, args=[epoch, counter, blob, agent, "", "0"]) != 1:
                    raise SystemExit("the raw append was refused")
                spent += time.perf_counter() - start
            return spent / self.n
        start = time.perf_counter()
        for counter in range(1, self.n + 1):
            if append(keys=keys, args=[epoch, counter, blob, agent, "", "0"]) != 1:
                raise SystemExit("the raw append was refused")
        return (time.perf_counter() - start) / self.n


async def bench(args: Any, root: Path) -> Figure:
    with Cluster(root, budget_s=170) as cluster:
        b = Bench(cluster, root, args.n)
        # Warm-up (imports, code caches, EVALSHA script load); also yields the baseline's bytes.
        await b.timed_run(redis=False)
        await b.timed_run(redis=True)
        agent_id, blob = b.sample_blob()
        b.raw_appends(agent_id, blob, "warm")

        cols: dict[str, list[float]] = {k: [] for k in (
            "ratio", "ratio_end_to_end", "redis_cost_us", "redis_cost_end_to_end_us", "raw_append_us",
            "redis_await_us", "memory_await_us", "script_in_runtime_us", "provider_code_us",
            "raw_append_spaced_us")}
        for r in range(args.rounds):
            # Alternate the order so a slow phase of the machine does not always hit the same measurement.
            order = ("mem", "redis", "raw") if r % 2 == 0 else ("raw", "redis", "mem")
            got: dict[str, Any] = {}
            for what in order:
                if what == "raw":
                    got["raw"] = b.raw_appends(agent_id, blob, str(r))
                else:
                    got[what] = await b.timed_run(redis=what == "redis")
            mem, red, raw = got["mem"], got["redis"], got["raw"]
            cost = red["loop_per_await"] - mem["loop_per_await"]
            cost_e2e = (red["total"] - mem["total"]) / args.n
            cols["ratio"].append(cost / raw)
            cols["ratio_end_to_end"].append(cost_e2e / raw)
            cols["redis_cost_us"].append(cost * 1e6)
            cols["redis_cost_end_to_end_us"].append(cost_e2e * 1e6)
            cols["raw_append_us"].append(raw * 1e6)
            cols["redis_await_us"].append(red["loop_per_await"] * 1e6)
            cols["memory_await_us"].append(mem["loop_per_await"] * 1e6)
            cols["script_in_runtime_us"].append(red["script"] * 1e6)
            cols["provider_code_us"].append((cost - red["script"]) * 1e6)
            spaced = b.raw_appends(agent_id, blob, f"{r}spaced", gap_s=mem["loop_per_await"])
            cols["raw_append_spaced_us"].append(spaced * 1e6)

        if args.profile:
            await profile(f"Redis run, N={args.n}", lambda: b.timed_run(redis=True))
            await profile(f"memory run, N={args.n}", lambda: b.timed_run(redis=False))

    ratios = cols.pop("ratio")
    return Figure(
        benchmark="redis_checkpoint_cost",
        figure="per-await Redis checkpoint cost / raw fenced APPEND_CHECKPOINT of the same bytes",
        unit="x",
        direction="<=",
        goal=GOAL,
        must=MUST,
        values=ratios,
        details={**cols, "n": args.n, "rounds_count": args.rounds, "checkpoint_bytes": len(blob)},
    )


def report(fig: Figure) -> str:
    d = fig.details
    lines = [
        f"redis_checkpoint_cost: N={d['n']} trivial tool awaits per run, {d['rounds_count']} interleaved rounds, "
        f"record {d['checkpoint_bytes']} bytes, redis-server on loopback",
        "",
        "per-await Redis cost / raw fenced APPEND_CHECKPOINT of the same bytes (median over rounds):",
        f"  ratio                                    {fmt_range(fig.values)} x",
        f"  ratio, whole runs end to end             {fmt_range(d['ratio_end_to_end'])} x",
        "absolute, µs per await:",
        f"  Redis cost (Redis - memory provider)     {fmt_range(d['redis_cost_us'], digits=1)}",
        f"  raw APPEND_CHECKPOINT call (baseline)    {fmt_range(d['raw_append_us'], digits=1)}",
        f"  Redis cost, whole runs end to end        {fmt_range(d['redis_cost_end_to_end_us'], digits=1)}",
        f"  Redis await, all in                      {fmt_range(d['redis_await_us'], digits=1)}",
        f"  memory await (runtime+pickle+sign)       {fmt_range(d['memory_await_us'], digits=1)}",
        "where the Redis cost goes, µs per await:",
        f"  the APPEND_CHECKPOINT call, in the run   {fmt_range(d['script_in_runtime_us'], digits=1)}",
        f"  the rest (provider code, keys, args)     {fmt_range(d['provider_code_us'], digits=1)}",
        f"  raw call spaced by a memory await's time {fmt_range(d['raw_append_spaced_us'], digits=1)}",
        f"  => {statistics.median(d['redis_await_us']) / statistics.median(d['memory_await_us']):.1f}x "
        "the in-memory await; the difference is one loopback round trip",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], {"n": 200, "rounds": 41}, {"n": 100, "rounds": 21})
    if args.n < 2:
        raise SystemExit("--n must be at least 2")
    with isolated_env("pbw-bench-redis-ckpt-") as root:
        fig = asyncio.run(bench(args, root))
    return emit(fig, args.json, lambda: report(fig))


if __name__ == "__main__":
    sys.exit(main())
