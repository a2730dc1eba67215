"""The benchmarks in bench/ run, print their figure as JSON, and stay within their "must" bounds.

Each runs in its --quick form (~10 s) in a subprocess. Only the must bound is asserted, not the goal: the
goal is what we aim for, the must bound is what a regression would break.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

# (script, direction, must bound): pinned here so a bound cannot be loosened in the script alone.
CASES = [
    ("checkpoint_cost.py", "<=", 3.0),
    ("replay_speed.py", ">=", 20_000.0),
]


def run_quick(script: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", "--json"],
        capture_output=True, text=True, timeout=60,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, f"{script} printed nothing (exit {proc.returncode}):\n{proc.stderr}"
    return json.loads(lines[-1])


@pytest.mark.parametrize(("script", "direction", "must"), CASES, ids=[c[0] for c in CASES])
def test_bench_quick_meets_must_bound(script: str, direction: str, must: float) -> None:
    result = run_quick(script)
    value = result["value"]
    assert isinstance(value, (int, float)) and value > 0
    assert result["direction"] == direction
    assert result["must"] == must
    assert len(result["rounds"]) >= 3
    assert min(result["rounds"]) <= value <= max(result["rounds"])
    detail = f"{script}: {result['figure']} = {value:.3g} {result['unit']} (rounds {result['rounds']})"
    if direction == "<=":
        assert value <= must, f"{detail}, over the must bound {must:g}"
    else:
        assert value >= must, f"{detail}, under the must bound {must:g}"
    assert result["pass_must"] is True
