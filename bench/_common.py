"""Shared plumbing for the benchmarks in bench/: an isolated environment, repeated rounds, the report.

Every figure is a ratio to a baseline measured in the same run (absolute times on a shared, noisy VM mean
little), taken over several interleaved rounds; the report gives the median and the spread (min..max).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_KEY = "bench-secret-key-0123456789abcdef0123456789abcdef"


def parse_args(description: str, defaults: dict[str, int], quick: dict[str, int]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=f"a ~10 s version (sizes {quick})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    parser.add_argument("--profile", action="store_true", help="also cProfile one extra round and print it")
    for name, value in defaults.items():
        parser.add_argument(f"--{name}", type=int, default=None, help=f"default {value} ({quick[name]} with --quick)")
    args = parser.parse_args()
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick[name] if args.quick else value)
    return args


@contextlib.contextmanager
def isolated_env(prefix: str) -> Iterator[Path]:
    """A temp dir as cwd, a known signing key, XDG_CONFIG_HOME inside it, no other PLAYBOOKS_* settings."""
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        root = Path(tmp)
        for name in list(os.environ):
            if name.startswith("PLAYBOOKS_"):
                del os.environ[name]
        os.environ["PLAYBOOKS_SECRET_KEY"] = BENCH_KEY
        os.environ["XDG_CONFIG_HOME"] = str(root / "xdg")
        os.chdir(root)
        try:
            yield root
        finally:
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)


@dataclass
class Figure:
    """One benchmark's result: per-round values of the judged figure and of the numbers around it."""

    benchmark: str
    figure: str  # what `value` is, e.g. "per-await checkpoint cost / raw write+fsync+rename"
    unit: str
    direction: str  # "<=": lower is better (goal and must are upper bounds); ">=": higher is better
    goal: float
    must: float
    values: list[float]
    details: dict[str, Any] = field(default_factory=dict)  # name -> per-round list, or a plain value

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def passes(self, bound: float) -> bool:
        return self.median <= bound if self.direction == "<=" else self.median >= bound

    def to_json(self) -> dict[str, Any]:
        details = {k: summarize(v) if isinstance(v, list) else v for k, v in self.details.items()}
        return {
            "benchmark": self.benchmark,
            "figure": self.figure,
            "unit": self.unit,
            "value": self.median,
            "min": min(self.values),
            "max": max(self.values),
            "spread_pct": spread_pct(self.values),
            "rounds": self.values,
            "direction": self.direction,
            "goal": self.goal,
            "must": self.must,
            "pass_goal": self.passes(self.goal),
            "pass_must": self.passes(self.must),
            "details": details,
        }


def summarize(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "rounds": values}


def spread_pct(values: list[float]) -> float:
    """(max - min) / median, in percent: how far apart the rounds were."""
    med = statistics.median(values)
    return 100.0 * (max(values) - min(values)) / med if med else 0.0


def fmt_range(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    med = statistics.median(values) * scale
    return (f"{med:.{digits}f} (min {min(values) * scale:.{digits}f}, max {max(values) * scale:.{digits}f}, "
            f"spread {spread_pct(values):.0f}%)")


def verdict(fig: Figure) -> str:
    op = "≤" if fig.direction == "<=" else "≥"
    goal = "PASS" if fig.passes(fig.goal) else "FAIL"
    must = "PASS" if fig.passes(fig.must) else "FAIL"
    return (f"goal   {op} {fig.goal:g} {fig.unit}: {goal}\n"
            f"must   {op} {fig.must:g} {fig.unit}: {must}")


def emit(fig: Figure, as_json: bool, report: Callable[[], str]) -> int:
    if as_json:
        print(json.dumps(fig.to_json()))
    else:
        print(report())
        print(verdict(fig))
    return 0 if fig.passes(fig.must) else 1


async def profile(label: str, run: Callable[[], Awaitable[Any]], *, limit: int = 25, stream: Any = None) -> None:
    """cProfile one awaited call of `run` and print the top functions by own time and by cumulative time."""
    out = stream or sys.stderr
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        await run()
    finally:
        profiler.disable()
    print(f"\n===== profile: {label} =====", file=out)
    for key in ("tottime", "cumulative"):
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(key).print_stats(limit)


def clock_io() -> Any:
    """A quiet reporter that times the first and the last live checkpoint of a run (per-await cost)."""
    from playbooks_worker.api import CollectingIO

    class ClockIO(CollectingIO):
        """Times the first and the last live checkpoint of the run."""

        def __init__(self) -> None:
            super().__init__()
            self.first = self.last = 0.0
            self.count = 0

        def on_checkpoint(self, agent: Any, record: dict[str, Any], replayed: bool) -> None:
            now = time.perf_counter()
            if not replayed:
                if not self.count:
                    self.first = now
                self.last = now
                self.count += 1

    return ClockIO()


# The per-await cost benches' program: a tight loop of trivial tool calls, every await a checkpoint.
TICKER_PROGRAM = '''\
# Ticker:AI
A tight loop of trivial tool calls: every await is a checkpoint.

```python
@playbook
async def Tick(i):
    return i
```

## Main($n: int)

```python
for i in range(n):
    await Tick(i)
```
'''
