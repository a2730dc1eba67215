"""Runtime overhead per LLM call: what the interpreter, provider and durability add to each model call.

A program whose Main (a code playbook) calls an LLM playbook N times runs in-process through
`playbooks_worker.api.Playbooks`, with the OpenAI-compatible provider against the fake server of
tests/llm_fake_server.py: a real HTTP server on loopback, in its own process (so it does not compete with the
runtime for this interpreter's GIL; `--server-in-thread` runs it in a thread here instead). Each call is one
short streamed answer with one Say and a Return: request, SSE stream, statement-by-statement execution, and
the journal's two records (the Say and the LLM call), pickled and signed. The server measures the time it
spends answering each request, from its request line read to the last byte written, so

    overhead per call = ((t_N - t_0) - server time) / N

where t_N is the whole run with N calls and t_0 the same run with none (program load, run record, lock: not
per-call costs). Ratio: that overhead to the server's own time per answer.

The figure is taken with the checkpoints kept in memory (`durability.enabled = false`: the same runtime,
pickling and signing, no disk), so it is the LLM layer's cost. The same run with the filesystem store is
reported beside it: it adds two checkpoint file writes (write, fsync, rename) per call, which is the disk's
cost and is judged by bench/checkpoint_cost.py. Goal <= 2 ms per call; must be <= 20 ms (a real model answers
in hundreds of milliseconds to seconds).

    python bench/llm_overhead.py [--quick] [--json] [--profile] [--server-in-thread] [--n N] [--rounds R]
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # the fake LLM server

from _common import Figure, emit, fmt_range, isolated_env, parse_args, profile  # noqa: E402
from llm_fake_server import FakeLLMServer  # noqa: E402

FAKE_SERVER = HERE.parent / "tests" / "llm_fake_server.py"

GOAL_MS = 2.0
MUST_MS = 20.0

PROGRAM = '''\
# Echo
Says a number back.

## Main($n: int)

```python
for i in range(n):
    await Echo(i)
```

## Echo(i: int) -> int
### Steps
- Tell the user the number
- Return it
'''

ANSWER = '```python\nawait Say("user", f"number {i}")\nawait Return(i)\n```'


class ServerProcess:
    """The fake server in a child process; its counters come from `GET /_fake/stats`."""

    def __init__(self, answer: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(FAKE_SERVER), answer], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base_url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}/v1"

    def stats(self) -> tuple[int, float]:
        with urllib.request.urlopen(self.base_url.removesuffix("/v1") + "/_fake/stats", timeout=10) as reply:
            data = json.load(reply)
        return data["requests"], data["busy_s"]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


class ServerThread:
    def __init__(self, answer: str) -> None:
        self.server = FakeLLMServer(responder=lambda body: answer, chunk_chars=16).start()
        self.base_url = self.server.base_url

    def stats(self) -> tuple[int, float]:
        return len(self.server.requests), self.server.busy_s

    def close(self) -> None:
        self.server.stop()


Server = ServerProcess | ServerThread


async def timed_run(program: Path, storage: Path, server: Server, n: int, *, durable: bool) -> dict[str, float]:
    from playbooks_worker.api import Playbooks
    from playbooks_worker.config import load_settings

    settings = load_settings(overrides={
        "durability.enabled": durable,
        "durability.storage_path": str(storage),
        "durability.keep_last_n": 1000,
        "llm.provider": "openai",
        "llm.base_url": server.base_url,
        "llm.model": "fake-gpt",
        "llm.max_llm_calls": max(n, 1) + 1,
    }, environ={})
    playbooks = Playbooks(program, settings=settings)
    await playbooks.initialize()
    asked, busy = server.stats()
    start = time.perf_counter()
    outcome = await playbooks.run({"n": n})
    total = time.perf_counter() - start
    if outcome.status != "succeeded":
        raise SystemExit(f"the run {outcome.status}: {outcome.error!r}")
    asked_after, busy_after = server.stats()
    if asked_after - asked != n or len(playbooks.reporter.output) != n:  # type: ignore[attr-defined]
        raise SystemExit(f"expected {n} LLM calls and lines, got {asked_after - asked} calls")
    return {"total": total, "server": busy_after - busy}


async def bench(args: Any, root: Path) -> Figure:
    program = root / "echo.pb"
    program.write_text(PROGRAM, encoding="utf-8")
    n = args.n
    cols: dict[str, list[float]] = {k: [] for k in (
        "overhead_ms", "ratio_to_server", "server_ms_per_call", "call_ms", "durable_overhead_ms", "setup_ms")}
    server: Server = ServerThread(ANSWER) if args.server_in_thread else ServerProcess(ANSWER)
    try:
        # Warm-up: imports (httpx), code caches, the first connections.
        await timed_run(program, root / "warm", server, min(n, 20), durable=True)
        await timed_run(program, root / "warm-mem", server, min(n, 20), durable=False)
        for r in range(args.rounds):
            where = root / f"round{r}"
            got: dict[str, dict[str, float]] = {}
            # Alternate the order so a slow phase of the machine does not always hit the same measurement.
            order = ("empty", "memory", "durable") if r % 2 == 0 else ("durable", "memory", "empty")
            for what in order:
                got[what] = await timed_run(program, where / what, server, 0 if what == "empty" else n,
                                            durable=what != "memory")
            empty, memory, durable = got["empty"], got["memory"], got["durable"]
            overhead = (memory["total"] - empty["total"] - memory["server"]) / n
            server_per_call = memory["server"] / n
            cols["overhead_ms"].append(overhead * 1000)
            cols["ratio_to_server"].append(overhead / server_per_call)
            cols["server_ms_per_call"].append(server_per_call * 1000)
            cols["call_ms"].append((memory["total"] - empty["total"]) / n * 1000)
            cols["durable_overhead_ms"].append((durable["total"] - empty["total"] - durable["server"]) / n * 1000)
            cols["setup_ms"].append(empty["total"] * 1000)
        if args.profile:
            await profile(f"run, N={n}", lambda: timed_run(program, root / "prof", server, n, durable=False))
    finally:
        server.close()

    values = cols.pop("overhead_ms")
    return Figure(
        benchmark="llm_overhead",
        figure="runtime overhead per LLM call (wall time - fake server's answering time)",
        unit="ms",
        direction="<=",
        goal=GOAL_MS,
        must=MUST_MS,
        values=values,
        details={**cols, "n": n, "rounds_count": args.rounds, "answer_chars": len(ANSWER),
                 "server": "thread" if args.server_in_thread else "process"},
    )


def report(fig: Figure) -> str:
    d = fig.details
    return "\n".join([
        f"llm_overhead: N={d['n']} LLM calls per run (one short streamed answer each: a Say and a Return), "
        f"{d['rounds_count']} interleaved rounds, fake OpenAI-compatible server on loopback (in a {d['server']})",
        "",
        "per LLM call, ms (median over rounds):",
        f"  runtime overhead (the figure)            {fmt_range(fig.values, digits=3)}",
        f"  fake server answering                    {fmt_range(d['server_ms_per_call'], digits=3)}",
        f"  whole call, all in                       {fmt_range(d['call_ms'], digits=3)}",
        f"  overhead with the filesystem store       {fmt_range(d['durable_overhead_ms'], digits=3)}"
        "  (+2 checkpoint writes: bench/checkpoint_cost.py)",
        f"overhead / server time per answer          {fmt_range(d['ratio_to_server'])} x",
        f"run set-up without LLM calls (subtracted)  {statistics.median(d['setup_ms']):.1f} ms",
        "",
    ])


def main() -> int:
    in_thread = "--server-in-thread" in sys.argv
    if in_thread:
        sys.argv.remove("--server-in-thread")
    args = parse_args(__doc__.splitlines()[0], {"n": 200, "rounds": 7}, {"n": 60, "rounds": 3})
    args.server_in_thread = in_thread
    if args.n < 1:
        raise SystemExit("--n must be at least 1")
    with isolated_env("pbw-bench-llm-") as root:
        os.environ["OPENAI_API_KEY"] = "bench-key"
        fig = asyncio.run(bench(args, root))
    return emit(fig, args.json, lambda: report(fig))


if __name__ == "__main__":
    sys.exit(main())
