"""The cluster benchmarks in bench/ run against real redis-server and worker processes, print their figures
as JSON, and stay within their "must" bounds.

Each runs in its --quick form in a subprocess (together about a minute, hence `slow`). Only the must bound
is asserted, not the goal; throughput has no must bound: it has to complete and report both rates.
"""

from __future__ import annotations

import functools
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server on PATH"),
]


@functools.cache  # failover's result serves two tests: run it once
def run_quick(script: str, timeout_s: float) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", "--json"],
        capture_output=True, text=True, timeout=timeout_s,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, f"{script} printed nothing (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    result = json.loads(lines[-1])
    assert result["benchmark"] == script.removesuffix(".py")
    return result


def check_rounds(result: dict[str, Any]) -> None:
    value = result["value"]
    assert isinstance(value, (int, float)) and value > 0
    assert len(result["rounds"]) >= 3
    assert min(result["rounds"]) <= value <= max(result["rounds"])


# (script, timeout, must bound): pinned here so a bound cannot be loosened in the script alone.
@pytest.mark.parametrize(("script", "timeout_s", "must"), [
    ("failover.py", 90, 5.0),
    ("redis_checkpoint_cost.py", 60, 3.0),
], ids=["failover", "redis_checkpoint_cost"])
def test_bench_quick_meets_must_bound(script: str, timeout_s: float, must: float) -> None:
    result = run_quick(script, timeout_s)
    check_rounds(result)
    assert result["direction"] == "<="
    assert result["must"] == must
    detail = f"{script}: {result['figure']} = {result['value']:.3g} {result['unit']} (rounds {result['rounds']})"
    assert result["value"] <= must, f"{detail}, over the must bound {must:g}"
    assert result["pass_must"] is True


def test_failover_reports_where_the_time_goes() -> None:
    result = run_quick("failover.py", 90)
    details = result["details"]
    assert details["lease_seconds"] > 0
    assert details["p95_s"] >= result["value"]
    for part in ("lease_left_s", "reaper_lag_s", "pickup_s", "replay_s", "ratio_to_lease"):
        assert len(details[part]["rounds"]) == len(result["rounds"]), part


def test_throughput_quick_reports_both_rates() -> None:
    result = run_quick("throughput.py", 60)
    check_rounds(result)
    details = result["details"]
    assert details["runs_per_s"]["median"] > 0
    assert details["noops_per_s"]["median"] > 0
    ratios = [r / n for r, n in zip(details["runs_per_s"]["rounds"], details["noops_per_s"]["rounds"], strict=True)]
    assert result["value"] == pytest.approx(statistics.median(ratios))
    assert details["slow_runs"] > 0 and details["slow_peak_running"] > 0
    assert sum(details["slow_states"].values()) == details["slow_runs"]


def test_agent_messaging_quick_measures_agents_on_two_workers() -> None:
    result = run_quick("agent_messaging.py", 90)
    check_rounds(result)
    details = result["details"]
    pids = details["pids"]
    assert all(p != q for p, q in zip(pids["pinger"], pids["ponger"], strict=True))  # never the same process
    assert details["period"]["median"] > 0 and details["raw"]["median"] > 0
    assert result["goal"] == 3.0 and result["direction"] == "<="
