"""Per-await checkpoint cost: what durability adds to one `await Tool()`, as a ratio to a raw atomic write.

A program whose Main awaits N trivial tools (`@playbook async def Tick(i): return i`) runs in-process through
`playbooks_worker.api.Playbooks` twice per round: durable (filesystem store: every await signs, writes,
fsyncs and renames one checkpoint file) and not durable (memory store: the same runtime, the same pickling
and signing, no disk). The per-await durable cost is their difference per await:

    (t_durable - t_nondurable) / N

timed over the steady-state loop (from the first checkpoint to the last, via the reporter's on_checkpoint
hook), so run set-up (run record, lock, program load) does not count as per-await cost; the end-to-end
difference of the two whole runs is printed too.

Baseline, in the same round and on the same filesystem: a raw open + write + fsync + close + os.replace of
the same bytes (one of the checkpoint files the durable run wrote), per write, to a new name each time as
the store does. Goal: per-await cost <= 1.5x the raw write; must be <= 3x.

    python bench/checkpoint_cost.py [--quick] [--json] [--profile] [--n N] [--rounds R]
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

from _common import TICKER_PROGRAM, Figure, clock_io, emit, fmt_range, isolated_env, parse_args, profile

GOAL = 1.5
MUST = 3.0
OLD_CLAIM_MS = (5.0, 10.0)  # the old framework's documented cost of one checkpoint

PROGRAM = TICKER_PROGRAM

_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


async def timed_run(program: Path, storage: Path, n: int, *, durable: bool) -> dict[str, float]:
    from playbooks_worker.api import Playbooks
    from playbooks_worker.config import load_settings

    settings = load_settings(overrides={
        "durability.enabled": durable,
        "durability.storage_path": str(storage),
        "durability.keep_last_n": 1000,  # no pruning inside the timed run
    })
    io = clock_io()
    playbooks = Playbooks(program, settings=settings, reporter=io)
    await playbooks.initialize()
    start = time.perf_counter()
    outcome = await playbooks.run({"n": n})
    total = time.perf_counter() - start
    if outcome.status != "succeeded":
        raise SystemExit(f"the {'durable' if durable else 'non-durable'} run {outcome.status}: {outcome.error!r}")
    if io.count != n:
        raise SystemExit(f"expected {n} checkpoints, saw {io.count}")
    return {"total": total, "loop_per_await": (io.last - io.first) / (n - 1)}


def raw_writes(data: bytes, directory: Path, n: int) -> float:
    """Seconds per atomic write of `data`: open, write, fsync, close, rename to a new final name."""
    directory.mkdir(parents=True)
    base = str(directory)
    start = time.perf_counter()
    for i in range(n):
        tmp = f"{base}{os.sep}.raw_{i}.tmp"
        fd = os.open(tmp, _WRITE_FLAGS, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, f"{base}{os.sep}raw_{i}.pkl")
    return (time.perf_counter() - start) / n


def sample_checkpoint(storage: Path, n: int) -> bytes:
    """The bytes of the middle checkpoint the durable run wrote."""
    agents = [p for p in storage.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(agents) != 1:
        raise SystemExit(f"expected one agent directory under {storage}, found {agents}")
    agent = agents[0]
    return (agent / f"{agent.name}_ckpt_{max(1, n // 2)}.pkl").read_bytes()


async def bench(args: Any, root: Path) -> Figure:
    program = root / "ticker.pb"
    program.write_text(PROGRAM, encoding="utf-8")
    n = args.n

    # Warm-up (imports, code caches, the first directory creations); also yields the baseline's bytes.
    await timed_run(program, root / "warm" / "mem", n, durable=False)
    await timed_run(program, root / "warm" / "ckpt", n, durable=True)
    data = sample_checkpoint(root / "warm" / "ckpt", n)
    raw_writes(data, root / "warm" / "raw", min(n, 100))

    cols: dict[str, list[float]] = {k: [] for k in (
        "ratio", "ratio_end_to_end", "durable_cost_us", "durable_cost_end_to_end_us", "raw_write_us",
        "durable_await_us", "nondurable_await_us")}
    for r in range(args.rounds):
        where = root / f"round{r}"
        # Alternate the order so a slow phase of the machine does not always hit the same measurement.
        order = ("mem", "ckpt", "raw") if r % 2 == 0 else ("raw", "ckpt", "mem")
        got: dict[str, Any] = {}
        for what in order:
            if what == "raw":
                got["raw"] = raw_writes(data, where / "raw", n)
            else:
                got[what] = await timed_run(program, where / what, n, durable=what == "ckpt")
        mem, ckpt, raw = got["mem"], got["ckpt"], got["raw"]
        cost = ckpt["loop_per_await"] - mem["loop_per_await"]
        cost_e2e = (ckpt["total"] - mem["total"]) / n
        cols["ratio"].append(cost / raw)
        cols["ratio_end_to_end"].append(cost_e2e / raw)
        cols["durable_cost_us"].append(cost * 1e6)
        cols["durable_cost_end_to_end_us"].append(cost_e2e * 1e6)
        cols["raw_write_us"].append(raw * 1e6)
        cols["durable_await_us"].append(ckpt["loop_per_await"] * 1e6)
        cols["nondurable_await_us"].append(mem["loop_per_await"] * 1e6)

    if args.profile:
        await profile(f"durable run, N={n}", lambda: timed_run(program, root / "prof" / "ckpt", n, durable=True))
        await profile(f"non-durable run, N={n}",
                      lambda: timed_run(program, root / "prof" / "mem", n, durable=False))

    ratios = cols.pop("ratio")
    return Figure(
        benchmark="checkpoint_cost",
        figure="per-await durable cost / raw write+fsync+rename of the same bytes",
        unit="x",
        direction="<=",
        goal=GOAL,
        must=MUST,
        values=ratios,
        details={**cols, "n": n, "rounds_count": args.rounds, "checkpoint_bytes": len(data),
                 "old_claim_ms": {"low": OLD_CLAIM_MS[0], "high": OLD_CLAIM_MS[1]}},
    )


def report(fig: Figure) -> str:
    d = fig.details
    med = statistics.median
    await_ms = med(d["durable_await_us"]) / 1000
    lines = [
        f"checkpoint_cost: N={d['n']} trivial tool awaits per run, {d['rounds_count']} interleaved rounds, "
        f"checkpoint file {d['checkpoint_bytes']} bytes",
        "",
        "per-await durable cost / raw write+fsync+rename of the same bytes (median over rounds):",
        f"  ratio                                    {fmt_range(fig.values)} x",
        f"  ratio, whole runs end to end             {fmt_range(d['ratio_end_to_end'])} x",
        "absolute, µs per await:",
        f"  durable cost (durable - non-durable)     {fmt_range(d['durable_cost_us'], digits=1)}",
        f"  raw write+fsync+rename (baseline)        {fmt_range(d['raw_write_us'], digits=1)}",
        f"  durable cost, whole runs end to end      {fmt_range(d['durable_cost_end_to_end_us'], digits=1)}",
        f"  durable await, all in                    {fmt_range(d['durable_await_us'], digits=1)}",
        f"  non-durable await (runtime+pickle+sign)  {fmt_range(d['nondurable_await_us'], digits=1)}",
        f"old framework's claim: {OLD_CLAIM_MS[0]:g}–{OLD_CLAIM_MS[1]:g} ms per checkpoint; here a whole durable "
        f"await takes {await_ms:.3f} ms ({OLD_CLAIM_MS[0] / await_ms:.1f}–{OLD_CLAIM_MS[1] / await_ms:.1f}x less)",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], {"n": 500, "rounds": 11}, {"n": 200, "rounds": 7})
    if args.n < 2:
        raise SystemExit("--n must be at least 2")
    with isolated_env("pbw-bench-ckpt-") as root:
        fig = asyncio.run(bench(args, root))
    return emit(fig, args.json, lambda: report(fig))


if __name__ == "__main__":
    sys.exit(main())
