"""Agent state: `self.state.x`, tracked so that writes made inside a tool are replayed with its record."""

from __future__ import annotations

from typing import Any

from playbooks_worker.runtime.callpath import current_writes


class _Deleted:
    def __reduce__(self) -> str:
        return "DELETED"  # unpickles as this module's singleton

    def __repr__(self) -> str:
        return "<deleted>"


DELETED = _Deleted()


class AgentState:
    """Attribute-style variables. Mutating a value in place (`state.items.append(x)`) inside a tool is not
    tracked; assign it (`state.items = items + [x]`) so the write is journaled with the tool's result."""

    __slots__ = ("_owner", "_values")

    def __init__(self, values: dict[str, Any] | None = None, owner: str = "") -> None:
        object.__setattr__(self, "_values", dict(values or {}))
        object.__setattr__(self, "_owner", owner)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"agent state has no variable {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._values[name] = value
        writes = current_writes.get()
        if writes is not None:
            writes.setdefault(self._owner, {})[name] = value

    def __delattr__(self, name: str) -> None:
        if name not in self._values:
            raise AttributeError(f"agent state has no variable {name!r}")
        del self._values[name]
        writes = current_writes.get()
        if writes is not None:
            writes.setdefault(self._owner, {})[name] = DELETED

    __getitem__ = __getattr__
    __setitem__ = __setattr__

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def apply(self, writes: dict[str, Any]) -> None:
        """Replay recorded writes of this agent's variables."""
        for name, value in writes.items():
            if value is DELETED or isinstance(value, _Deleted):
                self._values.pop(name, None)
            else:
                self._values[name] = value

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def __repr__(self) -> str:
        return f"AgentState({self._values!r})"
