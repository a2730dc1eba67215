"""Memory and disk sizing: bytes per checkpoint and the fixed bytes per run, in Redis and on local disk.

Redis (cluster mode): a private redis-server and one real `playbooks worker`; each program runs to completion
through the real CLI (`playbooks run PROGRAM.pb`), then every key of the run (cluster/keys.py: `run`, `epoch`,
`agents`, `events`, `inbox`, one `journal:{agent}` per agent) is measured with `MEMORY USAGE key SAMPLES 0`,
plus what the run added to the `runs` index. AOF growth is read from `INFO persistence` (aof_current_size;
AOF switched on with CONFIG SET), minus the heartbeat's own writes at the idle rate measured first.

Local mode: the same programs with `playbooks run` in a directory whose playbooks.toml enables durability;
sizes of the files under `.checkpoints/` (apparent bytes, and the blocks the filesystem allocated).

Programs: `loop` awaits a trivial tool N and 2N times (one checkpoint per await), `loop-1k` the same with
each tool returning a 1 KiB string (what a larger result adds), `says` N `Say` calls (a checkpoint and an
output event each), and examples/orders.pb (the guide's program). Bytes per checkpoint = the journal's bytes
/ its checkpoints; fixed bytes per run = every other key of the run (the run record, which carries the
program's source, the epoch, the agent set, the event stream) and its entry in the `runs` index. The AOF
figures are the slope and intercept between the N and 2N loops.

    python bench/memory_sizing.py [--quick] [--json] [--awaits N]

Manual equivalents (with a worker running against redis://127.0.0.1:PORT/0):

    playbooks run loop.pb                       # prints "Submitted run RUN_ID"
    redis-cli -p PORT --scan --pattern 'pbw:{RUN_ID}:*'
    redis-cli -p PORT MEMORY USAGE 'pbw:{RUN_ID}:journal:AGENT_ID' SAMPLES 0
    redis-cli -p PORT HLEN 'pbw:{RUN_ID}:journal:AGENT_ID'             # checkpoints of that agent
    du -sb .checkpoints; du -sk .checkpoints; find .checkpoints -name '*.pkl' | wc -l
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _cluster import Cluster, playbooks_command
from _common import isolated_env

ROOT = Path(__file__).resolve().parents[1]
ORDERS = ROOT / "examples" / "orders.pb"
BUDGET_S = 240.0
RUN_TIMEOUT_S = 120.0
PAYLOAD_BYTES = 1024

LOOP = '''\
# Counter:AI
Adds numbers with a tool: every await is one checkpoint.

```python
@playbook
async def Add(total: int, n: int):
    return {result}
```

## Main

```python
total = 0
for n in range({n}):
    total = await Add(total, n)
await Say("user", "done")
```
'''

SAYS = '''\
# Talker:AI
Says N lines: every Say is a checkpoint and an output event.

## Main

```python
for n in range({n}):
    await Say("user", f"line {{n}} of the output, about as long as a status line")
```
'''


def loop_program(n: int, payload: int = 0) -> str:
    result = "total + n" if payload == 0 else f'"x" * {payload}'
    return LOOP.format(n=n, result=result)


@dataclass
class RedisRun:
    program: str
    awaits: int
    run_id: str
    checkpoints: int
    source_bytes: int
    keys: dict[str, int]  # key kind -> MEMORY USAGE bytes (journals summed)
    runs_index_bytes: int  # what the run added to P:runs
    total_bytes: int
    used_memory_delta: int  # INFO memory, before/after: a cross-check, includes allocator noise
    aof_bytes: int  # AOF growth during the run, minus the heartbeats' idle rate
    seconds: float


@dataclass
class DiskRun:
    program: str
    awaits: int
    checkpoints: int
    checkpoint_bytes: int  # apparent size of the *.pkl files
    checkpoint_allocated_bytes: int  # st_blocks * 512
    run_record_bytes: int  # .checkpoints/.runs/RUN.json (+ its lock file)
    total_bytes: int  # files only
    total_allocated_bytes: int  # files and the agent directory
    sizes: list[int] = field(default_factory=list)


def cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*playbooks_command(), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"`playbooks {' '.join(args)}` exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done


# -- Redis ------------------------------------------------------------------------------------------------


def aof_size(client: Any) -> int:
    return int(client.info("persistence").get("aof_current_size", 0))


def wait_aof_ready(client: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = client.info("persistence")
        if info.get("aof_enabled") == 1 and not info.get("aof_rewrite_in_progress") and \
                not info.get("aof_rewrite_scheduled"):
            return
        time.sleep(0.05)
    raise RuntimeError("AOF did not switch on")


def redis_run(cluster: Cluster, workdir: Path, name: str, source: str | Path, awaits: int,
              idle_aof_rate: float) -> RedisRun:
    from playbooks_worker.cluster.keys import Keys

    keys = Keys(cluster.settings().cluster.key_prefix)
    client = cluster.client
    if isinstance(source, Path):
        path = source
    else:
        path = workdir / f"{name}.pb"
        path.write_text(source, encoding="utf-8")
    runs_before = client.memory_usage(keys.runs, samples=0) or 0
    used_before = int(client.info("memory")["used_memory"])
    aof_before = aof_size(client)
    started = time.monotonic()
    done = cli(["run", str(path)], cwd=workdir)
    seconds = time.monotonic() - started
    aof_after = aof_size(client)
    match = re.search(r"Submitted run (\w+)", done.stderr)
    if not match:
        raise RuntimeError(f"no run id in:\n{done.stderr}")
    run_id = match.group(1)
    time.sleep(0.2)  # the worker's last writes (run record, TTLs) land right after the end event
    sizes: dict[str, int] = {}
    for kind in ("run", "epoch", "agents", "events", "inbox"):
        sizes[kind] = client.memory_usage(getattr(keys, kind)(run_id), samples=0) or 0
    agents = [a.decode() for a in client.smembers(keys.agents(run_id))]
    sizes["journal"] = sum(client.memory_usage(keys.journal(run_id, a), samples=0) or 0 for a in agents)
    checkpoints = sum(int(client.hlen(keys.journal(run_id, a))) for a in agents)
    runs_index = (client.memory_usage(keys.runs, samples=0) or 0) - runs_before
    used_after = int(client.info("memory")["used_memory"])
    return RedisRun(
        program=name, awaits=awaits, run_id=run_id, checkpoints=checkpoints,
        source_bytes=len(path.read_bytes()), keys=sizes, runs_index_bytes=runs_index,
        total_bytes=sum(sizes.values()) + runs_index, used_memory_delta=used_after - used_before,
        aof_bytes=round(aof_after - aof_before - idle_aof_rate * seconds), seconds=round(seconds, 3),
    )


def measure_redis(root: Path, n: int) -> tuple[list[RedisRun], dict[str, Any]]:
    with Cluster(root / "cluster", budget_s=BUDGET_S) as cluster:
        client = cluster.client
        client.config_set("appendonly", "yes")
        client.config_set("appendfsync", "everysec")  # the sizes are the same as with `always`
        wait_aof_ready(client)
        worker = cluster.start_worker(concurrency=2)
        cluster.wait_ready(worker)
        time.sleep(1.0)
        idle_from, t0 = aof_size(client), time.monotonic()
        time.sleep(3.0)
        idle_rate = (aof_size(client) - idle_from) / (time.monotonic() - t0)  # heartbeats of one idle worker
        workdir = root / "redis-client"
        workdir.mkdir()
        runs = [
            redis_run(cluster, workdir, f"loop{n}", loop_program(n), n, idle_rate),
            redis_run(cluster, workdir, f"loop{2 * n}", loop_program(2 * n), 2 * n, idle_rate),
            redis_run(cluster, workdir, f"loop{n}-1k", loop_program(n, PAYLOAD_BYTES), n, idle_rate),
            redis_run(cluster, workdir, f"says{n}", SAYS.format(n=n), n, idle_rate),
            redis_run(cluster, workdir, "orders", ORDERS, 0, idle_rate),
        ]
        beat = max((client.hstrlen(cluster.settings().cluster.key_prefix + ":workers", w.owner)
                    for w in cluster.workers), default=0)
        return runs, {"heartbeat_aof_bytes_per_s_per_idle_worker": round(idle_rate, 1),
                      "workers_hash_entry_bytes": int(beat)}


# -- local disk -------------------------------------------------------------------------------------------


def disk_run(workdir: Path, name: str, source: str | Path, awaits: int) -> DiskRun:
    path = workdir / f"{name}.pb"
    path.write_text(source.read_text(encoding="utf-8") if isinstance(source, Path) else source, encoding="utf-8")
    store = workdir / ".checkpoints"
    before = set(store.rglob("*")) if store.exists() else set()
    cli(["run", str(path)], cwd=workdir)
    new = [p for p in store.rglob("*") if p not in before]  # files, and the agent's new directory
    ckpts = [p for p in new if p.suffix == ".pkl"]
    records = [p for p in new if p.parent.name == ".runs"]
    return DiskRun(
        program=name, awaits=awaits, checkpoints=len(ckpts),
        checkpoint_bytes=sum(p.stat().st_size for p in ckpts),
        checkpoint_allocated_bytes=sum(p.stat().st_blocks * 512 for p in ckpts),
        run_record_bytes=sum(p.stat().st_size for p in records),
        total_bytes=sum(p.stat().st_size for p in new if p.is_file()),
        total_allocated_bytes=sum(p.stat().st_blocks * 512 for p in new),
        sizes=sorted(p.stat().st_size for p in ckpts),
    )


def measure_disk(root: Path, n: int) -> list[DiskRun]:
    workdir = root / "local"
    workdir.mkdir()
    (workdir / "playbooks.toml").write_text("[durability]\nenabled = true\nkeep_last_n = 100\n", encoding="utf-8")
    env_broker = os.environ.pop("PLAYBOOKS_BROKER_URL", None)  # local mode
    try:
        return [
            disk_run(workdir, f"loop{n}", loop_program(n), n),
            disk_run(workdir, f"loop{2 * n}", loop_program(2 * n), 2 * n),
            disk_run(workdir, f"loop{n}-1k", loop_program(n, PAYLOAD_BYTES), n),
            disk_run(workdir, f"says{n}", SAYS.format(n=n), n),
            disk_run(workdir, "orders", ORDERS, 0),
        ]
    finally:
        if env_broker is not None:
            os.environ["PLAYBOOKS_BROKER_URL"] = env_broker


# -- report -----------------------------------------------------------------------------------------------


def aof_slope(a: RedisRun, b: RedisRun) -> tuple[float, float]:
    """AOF bytes (per checkpoint, fixed per run) from two runs of one program with different lengths."""
    per = (b.aof_bytes - a.aof_bytes) / (b.checkpoints - a.checkpoints)
    return per, a.aof_bytes - per * a.checkpoints


def summarize(redis_runs: list[RedisRun], extra: dict[str, Any], disk_runs: list[DiskRun]) -> dict[str, Any]:
    """Per checkpoint: journal bytes / checkpoints (the larger loop: a hash's memory grows in steps, so a
    slope between two sizes is noisy); fixed per run: every other key of the run, and its `runs` entry."""
    small, large, payload, says, orders = redis_runs
    aof_per, aof_fixed = aof_slope(small, large)
    _d_small, d_large, d_payload, d_says, d_orders = disk_runs
    return {
        "benchmark": "memory_sizing",
        "redis": {
            "bytes_per_checkpoint": round(large.keys["journal"] / large.checkpoints),
            "bytes_per_checkpoint_shorter_run": round(small.keys["journal"] / small.checkpoints),
            "bytes_per_checkpoint_with_1k_result": round(payload.keys["journal"] / payload.checkpoints),
            "bytes_per_say": round((says.keys["journal"] + says.keys["events"]) / says.awaits),
            "fixed_bytes_per_run": large.total_bytes - large.keys["journal"],
            "orders_pb_total_bytes": orders.total_bytes,
            "orders_pb_fixed_bytes": orders.total_bytes - orders.keys["journal"],
            "orders_pb_checkpoints": orders.checkpoints,
            "aof_bytes_per_checkpoint": round(aof_per),
            "aof_fixed_bytes_per_run": round(aof_fixed),
            **extra,
            "runs": [asdict(r) for r in redis_runs],
        },
        "disk": {
            "bytes_per_checkpoint": round(d_large.checkpoint_bytes / d_large.checkpoints),
            "allocated_bytes_per_checkpoint": round(d_large.checkpoint_allocated_bytes / d_large.checkpoints),
            "bytes_per_checkpoint_with_1k_result": round(d_payload.checkpoint_bytes / d_payload.checkpoints),
            "bytes_per_say": round(d_says.checkpoint_bytes / d_says.awaits),
            "fixed_bytes_per_run": d_large.total_bytes - d_large.checkpoint_bytes,
            "fixed_allocated_bytes_per_run": d_large.total_allocated_bytes - d_large.checkpoint_allocated_bytes,
            "orders_pb_total_bytes": d_orders.total_bytes,
            "orders_pb_allocated_bytes": d_orders.total_allocated_bytes,
            "orders_pb_checkpoints": d_orders.checkpoints,
            "runs": [{k: v for k, v in asdict(r).items() if k != "sizes"} for r in disk_runs],
        },
    }


def report(result: dict[str, Any]) -> str:
    r, d = result["redis"], result["disk"]
    lines = ["Redis (cluster mode): MEMORY USAGE of each key of the run (bytes)"]
    for run in r["runs"]:
        parts = ", ".join(f"{k} {v}" for k, v in run["keys"].items())
        lines.append(f"  {run['program']:<10} {run['checkpoints']:>4} checkpoints  total {run['total_bytes']:>7}: "
                     f"{parts}, runs index {run['runs_index_bytes']}  (program {run['source_bytes']} B; "
                     f"used_memory +{run['used_memory_delta']}; AOF +{run['aof_bytes']})")
    lines += [
        f"  per checkpoint: {r['bytes_per_checkpoint']} B ({r['bytes_per_checkpoint_shorter_run']} B in the "
        f"shorter run); with a 1 KiB result: {r['bytes_per_checkpoint_with_1k_result']} B; "
        f"per Say (checkpoint + event): {r['bytes_per_say']} B",
        f"  fixed per run: {r['fixed_bytes_per_run']} B ({r['orders_pb_fixed_bytes']} B for orders.pb: "
        f"the run record carries the program source)",
        f"  AOF: {r['aof_bytes_per_checkpoint']} B per checkpoint, {r['aof_fixed_bytes_per_run']} B per run; "
        f"an idle worker's heartbeats add {r['heartbeat_aof_bytes_per_s_per_idle_worker']} B/s until a rewrite",
        "Local disk (.checkpoints/): new files per run (bytes)",
    ]
    for run in d["runs"]:
        lines.append(f"  {run['program']:<10} {run['checkpoints']:>4} files  {run['total_bytes']:>7} "
                     f"(allocated {run['total_allocated_bytes']}; run record {run['run_record_bytes']})")
    lines += [
        f"  per checkpoint: {d['bytes_per_checkpoint']} B ({d['allocated_bytes_per_checkpoint']} B allocated: "
        f"one file each); with a 1 KiB result: {d['bytes_per_checkpoint_with_1k_result']} B; "
        f"per Say: {d['bytes_per_say']} B",
        f"  fixed per run: {d['fixed_bytes_per_run']} B ({d['fixed_allocated_bytes_per_run']} B allocated: "
        f"run record, lock file, the agent's directory)",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=textwrap.dedent(__doc__.split("\n\n", 1)[1]))
    parser.add_argument("--awaits", type=int, default=None, help="awaits of the shorter loop (default 100)")
    parser.add_argument("--quick", action="store_true", help="20 awaits instead of 100")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    args = parser.parse_args()
    n = args.awaits or (20 if args.quick else 100)
    with isolated_env("pbw-memory-") as root:
        redis_runs, extra = measure_redis(root, n)
        disk_runs = measure_disk(root, n)
    result = summarize(redis_runs, extra, disk_runs)
    print(json.dumps(result) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
