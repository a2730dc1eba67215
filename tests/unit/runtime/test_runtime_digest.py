"""Argument digests are part of every journal on disk: if they changed, old runs could not resume."""

from __future__ import annotations

import subprocess
import sys

import pytest

from playbooks_worker.runtime.digest import digest_args

PINNED = [
    ((5,), None, "a4fd92d5d9ea16c5"),
    (("abc", 7), None, "5295fa07e4cf2db5"),
    (([1, {"a": {2, 1}}],), {"x": None}, "5b6ed95174dba931"),
    ((), None, "e4a6a0577479b2b4"),
    ((1.5, True, b"x"), None, "011bca5278f793f4"),
]


@pytest.mark.parametrize(("args", "kwargs", "expected"), PINNED)
def test_digests_are_pinned(args: tuple, kwargs: dict | None, expected: str) -> None:
    assert digest_args(args, kwargs) == expected


def test_a_set_of_strings_digests_the_same_in_every_process() -> None:
    """String hashing is salted per process; set order follows it. The digest must not."""
    code = "from playbooks_worker.runtime.digest import digest_args; print(digest_args(({'pear','apple','fig'},)))"
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": str(seed), "PATH": ""}).stdout for seed in (1, 2, 3)}
    assert len(seen) == 1


def test_different_arguments_differ() -> None:
    assert digest_args((1,)) != digest_args(("1",))
    assert digest_args((1, 2)) != digest_args((12,))
