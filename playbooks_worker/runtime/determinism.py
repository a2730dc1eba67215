"""`time`, `random`, `uuid` and `datetime` as playbook code sees them: every value journaled.

Playbook code imports these modules through the agent's own `__import__`, which hands out stand-ins whose
clock and randomness are leaves: live they ask the real module and record the answer; on replay they return
the record. So plain Python (`if time.time() > deadline`, `random.choice(options)`) replays the same way.
Libraries the code calls keep the real modules: only the playbook's own source is made deterministic.
"""

from __future__ import annotations

import builtins
import datetime as _datetime
import random as _random
import time as _time
import types
import uuid as _uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playbooks_worker.runtime.agent import Agent

_RANDOM_FUNCTIONS = ("random", "randint", "randrange", "choice", "choices", "uniform", "shuffle", "sample",
                     "gauss", "normalvariate", "getrandbits", "triangular", "betavariate", "expovariate")


def _time_module(agent: Agent) -> types.ModuleType:
    module = types.ModuleType("time", "time, with time() and time_ns() journaled")
    module.__dict__.update({k: v for k, v in vars(_time).items() if not k.startswith("__")})
    module.time = lambda: agent.sync_leaf("now", "time.time", (), _time.time)  # type: ignore[attr-defined]
    module.time_ns = lambda: agent.sync_leaf("now", "time.time_ns", (), _time.time_ns)  # type: ignore[attr-defined]
    return module


def _random_module(agent: Agent) -> types.ModuleType:
    module = types.ModuleType("random", "random, each call's seed journaled")
    module.__dict__.update({k: v for k, v in vars(_random).items() if not k.startswith("__")})

    def seeded(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            # One journaled seed per call keeps each result reproducible even when concurrent branches
            # draw in a different order on replay.
            seed = agent.sync_leaf("random", f"random.{name}", (), lambda: _random.getrandbits(64))
            return getattr(_random.Random(seed), name)(*args, **kwargs)

        call.__name__ = name
        return call

    for name in _RANDOM_FUNCTIONS:
        setattr(module, name, seeded(name))
    return module


def _uuid_module(agent: Agent) -> types.ModuleType:
    module = types.ModuleType("uuid", "uuid, with uuid1() and uuid4() journaled")
    module.__dict__.update({k: v for k, v in vars(_uuid).items() if not k.startswith("__")})
    module.uuid4 = lambda: agent.sync_leaf("uuid", "uuid.uuid4", (), _uuid.uuid4)  # type: ignore[attr-defined]
    module.uuid1 = lambda *a, **k: agent.sync_leaf(  # type: ignore[attr-defined]
        "uuid", "uuid.uuid1", (), lambda: _uuid.uuid1(*a, **k))
    return module


def _datetime_module(agent: Agent) -> types.ModuleType:
    module = types.ModuleType("datetime", "datetime, with now(), utcnow() and today() journaled")
    module.__dict__.update({k: v for k, v in vars(_datetime).items() if not k.startswith("__")})

    class datetime(_datetime.datetime):
        @classmethod
        def now(cls, tz: _datetime.tzinfo | None = None) -> _datetime.datetime:  # type: ignore[override]
            return agent.sync_leaf("now", "datetime.now", (repr(tz),), lambda: _datetime.datetime.now(tz))

        @classmethod
        def utcnow(cls) -> _datetime.datetime:  # type: ignore[override]
            return agent.sync_leaf("now", "datetime.utcnow", (),
                                   lambda: _datetime.datetime.now(_datetime.UTC).replace(tzinfo=None))

        @classmethod
        def today(cls) -> _datetime.datetime:  # type: ignore[override]
            return agent.sync_leaf("now", "datetime.today", (), _datetime.datetime.today)

    class date(_datetime.date):
        @classmethod
        def today(cls) -> _datetime.date:  # type: ignore[override]
            return agent.sync_leaf("now", "date.today", (), _datetime.date.today)

    datetime.__module__ = date.__module__ = "datetime"
    module.datetime = datetime  # type: ignore[attr-defined]
    module.date = date  # type: ignore[attr-defined]
    return module


_FACTORIES = {"time": _time_module, "random": _random_module, "uuid": _uuid_module,
              "datetime": _datetime_module}


def make_import(agent: Agent) -> Callable[..., Any]:
    """An `__import__` for the agent's namespace that serves the journaled modules."""
    made: dict[str, types.ModuleType] = {}
    real_import = builtins.__import__

    def playbook_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (),
                        level: int = 0) -> Any:
        if level == 0 and name in _FACTORIES:
            if name not in made:
                made[name] = _FACTORIES[name](agent)
            return made[name]
        return real_import(name, globals, locals, fromlist, level)

    return playbook_import
