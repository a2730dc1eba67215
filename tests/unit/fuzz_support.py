"""Shared by the fuzz tests (test_fuzz_*.py): their Hypothesis settings, and a fix for how failures are reported.

When a Hypothesis test fails, its pytest plugin imports `hypothesis.extra._patching` (and with it libcst, which
uses the deprecated `mypy_extensions.TypedDict`) inside a reporting hook. Under this suite's `-W error` that
DeprecationWarning turns the report of a falsifying example into an INTERNALERROR that hides it. Importing the
module here first, with that one warning ignored, makes the plugin's import a no-op.
"""

from __future__ import annotations

import contextlib
import warnings

from hypothesis import HealthCheck, settings

with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.filterwarnings("ignore", "mypy_extensions.TypedDict is deprecated", DeprecationWarning)
    import hypothesis.extra._patching  # noqa: F401


def fuzz(max_examples: int) -> settings:
    """No deadline (some hostile inputs take a while to refuse), a bounded number of examples, and no example
    database written into the repository: a failure prints its falsifying example instead."""
    return settings(deadline=None, max_examples=max_examples, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])  # 100 programs per batch
