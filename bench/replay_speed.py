"""Resume speed: how fast a 10,000-await run comes back — load, verify, unpickle and replay its journal.

The journal is built for real: `playbooks run` (a subprocess) runs a program whose Main awaits a trivial
tool in a loop, and the tool kills the process (`os._exit`) at its 10,001st call, leaving an unfinished run
with 10,000 checkpoints. Then, in this process, each round times `Playbooks.resume()` from its start until
the first new (live) step is about to run — the reporter's `on_resumed` hook, which stops the run there so
the next round can resume the same journal again. That span is run lookup, lock, reading every checkpoint
file, verifying its HMAC, unpickling it, and replaying all 10,000 awaits through the program's code.

Figure: journal entries replayed per second. Goal >= 50,000/s; must be >= 20,000/s. Baseline, in the same
round: merely reading the same files' bytes (listdir, then open/read/close each); the ratio says how many
times that bare read the whole resume costs.

    python bench/replay_speed.py [--quick] [--json] [--profile] [--entries N] [--rounds R]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import Figure, emit, fmt_range, isolated_env, parse_args, profile

GOAL = 50_000.0
MUST = 20_000.0
BUILD_TIMEOUT_S = 90

PROGRAM = '''\
# Ticker:AI
A tight loop of trivial tool calls; the tool crashes the process at call number BENCH_STOP_AT.

```python
import os

STOP_AT = int(os.environ.get("BENCH_STOP_AT") or 0)


@playbook
async def Tick(i):
    if STOP_AT and i + 1 == STOP_AT:
        os._exit(137)  # a hard crash: the run stays unfinished with i checkpoints
    return i
```

## Main($n: int)

```python
for i in range(n):
    await Tick(i)
```
'''

_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC


class _Stop(BaseException):
    """Raised from on_resumed: ends the attempt before its first live step, leaving the run resumable."""


def _stop_io() -> Any:
    from playbooks_worker.api import CollectingIO

    class StopIO(CollectingIO):
        def __init__(self) -> None:
            super().__init__()
            self.first_replayed = 0.0
            self.live_at = 0.0
            self.replayed = 0

        def on_checkpoint(self, agent: Any, record: dict[str, Any], replayed: bool) -> None:
            if replayed:
                if not self.replayed:
                    self.first_replayed = time.perf_counter()
                self.replayed += 1

        def on_resumed(self, agent: Any) -> None:
            self.live_at = time.perf_counter()
            raise _Stop

    return StopIO()


def build_journal(root: Path, program: Path, entries: int) -> Path:
    """Run the program in a subprocess until it crashes at call entries+1; the agent's checkpoint directory."""
    env = {**os.environ, "BENCH_STOP_AT": str(entries + 1)}
    cmd = [sys.executable, "-c", "import sys; from playbooks_cli.main import main; sys.exit(main())",
           "run", str(program), "--n", str(entries + 1)]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    if proc.returncode != 137:
        raise SystemExit(f"building the journal: expected the crash (exit 137), got {proc.returncode}\n"
                         f"{proc.stdout}\n{proc.stderr}")
    storage = root / "ckpt"
    agents = [p for p in storage.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(agents) != 1:
        raise SystemExit(f"expected one agent directory under {storage}, found {agents}")
    files = [name for name in os.listdir(agents[0]) if "_ckpt_" in name]
    if len(files) != entries:
        raise SystemExit(f"expected {entries} checkpoint files in {agents[0]}, found {len(files)}")
    return agents[0]


async def timed_resume(program: Path, config: Path) -> dict[str, float]:
    from playbooks_worker.api import Playbooks

    io = _stop_io()
    playbooks = Playbooks(program, config_file=config, reporter=io)
    await playbooks.initialize()
    start = time.perf_counter()
    try:
        outcome = await playbooks.resume()
    except _Stop:
        pass
    else:
        raise SystemExit(f"the resume never reached a live step (status {outcome.status})")
    return {"total": io.live_at - start, "load": io.first_replayed - start,
            "replay": io.live_at - io.first_replayed, "replayed": io.replayed}


def read_files(directory: Path) -> float:
    """Seconds to list the directory and read every checkpoint file's bytes: open, read to EOF, close."""
    base = str(directory)
    start = time.perf_counter()
    total = 0
    for name in os.listdir(base):
        if "_ckpt_" not in name:
            continue
        fd = os.open(f"{base}{os.sep}{name}", _READ_FLAGS)
        try:
            while chunk := os.read(fd, 1 << 16):
                total += len(chunk)
        finally:
            os.close(fd)
    elapsed = time.perf_counter() - start
    assert total > 0
    return elapsed


async def bench(args: Any, root: Path) -> Figure:
    entries = args.entries
    program = root / "ticker.pb"
    program.write_text(PROGRAM, encoding="utf-8")
    config = root / "playbooks.toml"
    config.write_text(f'[durability]\nenabled = true\nstorage_path = "{root / "ckpt"}"\nkeep_last_n = 1000\n',
                      encoding="utf-8")
    started = time.perf_counter()
    agent_dir = build_journal(root, program, entries)
    build_s = time.perf_counter() - started

    # Warm-up: imports, code caches; both start from a warm page cache, as the files were just written.
    first = await timed_resume(program, config)
    if first["replayed"] != entries:
        raise SystemExit(f"the resume replayed {first['replayed']} entries, expected {entries}")
    read_files(agent_dir)

    cols: dict[str, list[float]] = {k: [] for k in (
        "entries_per_s", "ratio_to_read", "resume_ms", "read_ms", "load_ms", "replay_ms",
        "resume_us_per_entry", "read_us_per_entry")}
    for r in range(args.rounds):
        if r % 2 == 0:
            res = await timed_resume(program, config)
            read = read_files(agent_dir)
        else:
            read = read_files(agent_dir)
            res = await timed_resume(program, config)
        if res["replayed"] != entries:
            raise SystemExit(f"round {r}: replayed {res['replayed']} entries, expected {entries}")
        cols["entries_per_s"].append(entries / res["total"])
        cols["ratio_to_read"].append(res["total"] / read)
        cols["resume_ms"].append(res["total"] * 1e3)
        cols["read_ms"].append(read * 1e3)
        cols["load_ms"].append(res["load"] * 1e3)
        cols["replay_ms"].append(res["replay"] * 1e3)
        cols["resume_us_per_entry"].append(res["total"] / entries * 1e6)
        cols["read_us_per_entry"].append(read / entries * 1e6)

    if args.profile:
        await profile(f"resume of {entries} entries", lambda: timed_resume(program, config))

    rates = cols.pop("entries_per_s")
    return Figure(
        benchmark="replay_speed",
        figure="journal entries replayed per second (resume start -> first live step)",
        unit="entries/s",
        direction=">=",
        goal=GOAL,
        must=MUST,
        values=rates,
        details={**cols, "entries": entries, "rounds_count": args.rounds, "build_journal_s": build_s},
    )


def report(fig: Figure) -> str:
    d = fig.details
    med = statistics.median
    lines = [
        f"replay_speed: resume of an unfinished run with {d['entries']} checkpoints (built in "
        f"{d['build_journal_s']:.1f} s by a crashing `playbooks run`), {d['rounds_count']} interleaved rounds",
        "",
        f"entries replayed per second     {fmt_range(fig.values, digits=0)}",
        f"resume time / bare file read    {fmt_range(d['ratio_to_read'])} x",
        "absolute, ms for the whole journal:",
        f"  resume (start -> first live step)   {fmt_range(d['resume_ms'], digits=1)}",
        f"    of which before the first replayed await (run lookup, lock, read+verify+unpickle) "
        f"{med(d['load_ms']):.1f}",
        f"    of which replaying the awaits through the program       {med(d['replay_ms']):.1f}",
        f"  bare read of the same files (baseline) {fmt_range(d['read_ms'], digits=1)}",
        f"per entry: resume {med(d['resume_us_per_entry']):.1f} µs, bare read {med(d['read_us_per_entry']):.1f} µs",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], {"entries": 10_000, "rounds": 7}, {"entries": 3000, "rounds": 5})
    if args.entries < 1:
        raise SystemExit("--entries must be at least 1")
    with isolated_env("pbw-bench-replay-") as root:
        fig = asyncio.run(bench(args, root))
    return emit(fig, args.json, lambda: report(fig))


if __name__ == "__main__":
    sys.exit(main())
