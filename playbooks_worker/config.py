"""Settings: `playbooks.toml`, then `PLAYBOOKS_<SECTION>__<KEY>` environment variables, then overrides.

Loaded once into frozen dataclasses (DESIGN §8). Every bad value is a ConfigError that names where it came
from (the file and `[section] key`, or the environment variable), what is wrong and what to write instead.
URL passwords never reach a message: every string value shown passes through `redact_url`.

Precedence, lowest first: defaults < file < PLAYBOOKS_BROKER_URL < PLAYBOOKS_<SECTION>__<KEY> < overrides.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from playbooks_worker.errors import ConfigError

CONFIG_FILE_NAME = "playbooks.toml"
ENV_PREFIX = "PLAYBOOKS_"


@dataclass(frozen=True, kw_only=True)
class DurabilitySettings:
    enabled: bool = False
    storage: str = "filesystem"  # filesystem | redis
    storage_path: str = ".checkpoints"  # relative to the working directory; resolved where it is used
    max_checkpoint_size_mb: float = 10
    keep_last_n: int = 10  # finished runs whose checkpoints are kept, per program


@dataclass(frozen=True, kw_only=True, repr=False)
class ClusterSettings:
    broker_url: str = ""  # non-empty = cluster mode
    redis_url: str = ""  # checkpoint store; empty = broker_url
    queue: str = "playbooks"
    lease_seconds: float = 3.0
    key_prefix: str = "pbw"  # every Redis key of playbooks-worker starts with it (cluster/keys.py)
    finished_ttl_s: float = 7 * 24 * 3600  # a finished run's keys expire this long after it ends
    # Run each agent of a multi-agent program as its own task, on any worker (DESIGN §5). Programs whose agents
    # call each other's playbooks keep their agents together in one task.
    spread_agents: bool = True
    # How long an agent waiting for a message keeps its worker before parking (freeing the worker; the
    # message re-enqueues it): a conversation stays hot without holding workers while nobody talks.
    message_linger_s: float = 1.0

    @property
    def effective_redis_url(self) -> str:
        """Where checkpoints and run records live: `redis_url`, or the broker's URL when that is empty."""
        return self.redis_url or self.broker_url

    def __repr__(self) -> str:
        # Settings get logged; the dataclass repr would print the broker's password.
        return (
            f"ClusterSettings(broker_url={redact_url(self.broker_url)!r}, "
            f"redis_url={redact_url(self.redis_url)!r}, queue={redact_url(self.queue)!r}, "
            f"lease_seconds={self.lease_seconds!r})"
        )


@dataclass(frozen=True, kw_only=True)
class LLMSettings:
    provider: str = ""  # "" (none configured) | openai | anthropic | scripted
    model: str = "gpt-4o-mini"
    base_url: str = ""
    script: str = ""  # responses file for the scripted provider
    timeout_s: float = 60
    max_llm_calls: int = 100


@dataclass(frozen=True, kw_only=True)
class Settings:
    durability: DurabilitySettings = field(default_factory=DurabilitySettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    config_file: Path | None = None  # the file that was read, if any

    @property
    def cluster_mode(self) -> bool:
        return bool(self.cluster.broker_url)


SECTIONS: dict[str, type] = {"durability": DurabilitySettings, "cluster": ClusterSettings, "llm": LLMSettings}

# (section, key) -> (check, what the value must be). Type checks come first; these are the range/choice rules.
_RULES: dict[tuple[str, str], tuple[Callable[[Any], bool], str]] = {
    ("durability", "storage"): (lambda v: v in ("filesystem", "redis"), 'must be "filesystem" or "redis"'),
    ("durability", "max_checkpoint_size_mb"): (lambda v: v > 0, "must be a number > 0"),
    ("durability", "keep_last_n"): (lambda v: v >= 1, "must be an integer >= 1"),
    ("cluster", "lease_seconds"): (lambda v: v > 0, "must be a number > 0"),
    ("cluster", "message_linger_s"): (lambda v: v >= 0, "must be a number >= 0"),
    ("cluster", "finished_ttl_s"): (lambda v: v > 0, "must be a number > 0"),
    ("cluster", "key_prefix"): (lambda v: bool(v) and ":" not in v and "{" not in v,
                                "must be a non-empty word without ':' or '{'"),
    ("cluster", "queue"): (lambda v: v != "", "must be a non-empty queue name"),
    ("llm", "provider"): (
        lambda v: v in ("", "openai", "anthropic", "scripted"),
        'must be "openai", "anthropic" or "scripted" (or "" for none)',
    ),
    ("llm", "timeout_s"): (lambda v: v > 0, "must be a number > 0"),
    ("llm", "max_llm_calls"): (lambda v: v >= 1, "must be an integer >= 1"),
}

# Upper bounds, checked after _RULES: past them a value overflows where it is used (Redis millisecond TTLs,
# a byte count, a socket timeout) and would fail there with a traceback instead of here with the key's name.
_MAXIMA: dict[tuple[str, str], tuple[float, str]] = {
    ("durability", "max_checkpoint_size_mb"): (1024 * 1024, "must be at most 1048576 (1 TB)"),
    ("cluster", "lease_seconds"): (24 * 3600, "must be at most 86400 (a day)"),
    ("cluster", "finished_ttl_s"): (10 * 365 * 24 * 3600, "must be at most 315360000 (ten years)"),
    ("cluster", "message_linger_s"): (3600, "must be at most 3600 (an hour)"),
    ("llm", "timeout_s"): (24 * 3600, "must be at most 86400 (a day)"),
}

_TYPE_PROBLEM = {
    bool: "must be true or false",
    int: "must be an integer",
    float: "must be a number",
    str: "must be a string (in quotes)",
}
_ENV_BOOLS = {"true": True, "1": True, "yes": True, "on": True}
_ENV_BOOLS |= {"false": False, "0": False, "no": False, "off": False}


def _field_types(cls: type) -> dict[str, type]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


_FIELDS: dict[str, dict[str, type]] = {name: _field_types(cls) for name, cls in SECTIONS.items()}


# `scheme://user:password@`: the password runs to the last `@` of the word (an unencoded `@` may sit in it).
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s:/@]*):(?P<password>\S*)@")
_QUERY = re.compile(r"(?i)([?&](?:password|passwd|pwd)=)[^&#\s]*")


def redact_url(text: str) -> str:
    """`redis://:s3cret@host:6379/0` -> `redis://:***@host:6379/0`, and `?password=***`, anywhere in `text`:
    a URL, or a message or traceback that contains one (the logs' last line of defence uses it too)."""
    if "://" not in text and "=" not in text:
        return text
    return _QUERY.sub(r"\1***", _USERINFO.sub(r"\g<scheme>\g<user>:***@", text))


def _show(value: Any) -> str:
    """A value as TOML would spell it, with any URL password hidden."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + redact_url(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "{…}"
    if isinstance(value, list | tuple):  # element by element: `broker_url = ["redis://:pw@h"]` hides pw too
        return "[" + ", ".join("[…]" if isinstance(item, list | tuple) else _show(item) for item in value) + "]"
    return redact_url(repr(value))


def _suggest(word: str, choices: list[str], fmt: str) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    close = close or [c for c in choices if word and c.startswith(word)][:1]  # `lease` -> `lease_seconds`
    if close:
        return f"(did you mean {fmt.format(close[0])}?)"
    return "(valid: " + ", ".join(fmt.format(c) for c in choices) + ")"


def _check_typed(kind: type, value: Any) -> tuple[bool, Any]:
    """A value from TOML or a typed override: its type must match (an int is fine where a float is wanted)."""
    if kind is bool:
        return isinstance(value, bool), value
    if isinstance(value, bool):  # bool is an int subclass: `keep_last_n = true` is still wrong
        return False, value
    if kind is int:
        return isinstance(value, int), value
    if kind is float:
        ok = isinstance(value, int | float) and math.isfinite(value)
        return ok, float(value) if ok else value
    return isinstance(value, str), value


def _parse_text(kind: type, text: str) -> tuple[bool, Any]:
    """A value from the environment or a command-line flag: always text, parsed by the field's type."""
    if kind is bool:
        parsed = _ENV_BOOLS.get(text.strip().lower())
        return parsed is not None, parsed
    if kind is int:
        try:
            return True, int(text.strip())
        except ValueError:
            return False, None
    if kind is float:
        try:
            number = float(text.strip())
        except ValueError:
            return False, None
        return math.isfinite(number), number
    return True, text


class _Builder:
    """Collects values per section, checking each one where it comes from so the error can name its source."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}

    def set(self, section: str, key: str, value: Any, *, from_text: bool, where: str) -> None:
        kind = _FIELDS[section][key]
        ok, parsed = _parse_text(kind, value) if from_text else _check_typed(kind, value)
        if not ok:
            problem = _TYPE_PROBLEM[kind]
            if from_text and kind is bool:
                problem += " (or 1/0, yes/no, on/off)"
            raise ConfigError(f"{where}: {problem}")
        rule = _RULES.get((section, key))
        if rule is not None and not rule[0](parsed):
            raise ConfigError(f"{where}: {rule[1]}")
        maximum = _MAXIMA.get((section, key))
        if maximum is not None and parsed > maximum[0]:
            raise ConfigError(f"{where}: {maximum[1]}")
        self.values[section][key] = parsed

    def build(self, config_file: Path | None) -> Settings:
        parts = {name: cls(**self.values[name]) for name, cls in SECTIONS.items()}
        return Settings(config_file=config_file, **parts)


def _read_file(path: Path, label: str, builder: _Builder) -> None:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:  # its message carries "(at line N, column M)"
        raise ConfigError(f"{label}: invalid TOML: {e}") from None
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1
        raise ConfigError(f"{label}:{line}: not UTF-8 text (byte 0x{e.object[e.start]:02x})",
                          hint="save the file as UTF-8") from None
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise ConfigError(f"{label}: invalid TOML: arrays or inline tables nested too deeply") from None
    except OSError as e:
        raise ConfigError(f"{label}: cannot read: {e.strerror}") from None
    for section, table in data.items():
        if section not in SECTIONS:
            if not isinstance(table, dict):
                raise ConfigError(
                    f"{label}: key {section!r} is outside any section; put it under "
                    + ", ".join(f"[{s}]" for s in SECTIONS)
                )
            hint = _suggest(section, list(SECTIONS), "[{}]")
            raise ConfigError(f"{label}: unknown section [{section}] {hint}")
        if not isinstance(table, dict):
            raise ConfigError(f"{label}: {section} = {_show(table)}: must be a section, written [{section}]")
        for key, value in table.items():
            if key not in _FIELDS[section]:
                hint = _suggest(key, list(_FIELDS[section]), "'{}'")
                raise ConfigError(f"{label}: [{section}] unknown key {key!r} {hint}")
            where = f"{label}: [{section}] {key} = {_show(value)}"
            builder.set(section, key, value, from_text=False, where=where)


def _env_target(name: str) -> tuple[str, str] | None:
    """`PLAYBOOKS_DURABILITY__KEEP_LAST_N` -> ("durability", "keep_last_n"); None for other names."""
    section, sep, key = name[len(ENV_PREFIX) :].partition("__")
    if not sep:
        return None  # PLAYBOOKS_SECRET_KEY, PLAYBOOKS_BROKER_URL…: not a section key
    section, key = section.lower(), key.lower()
    if section not in SECTIONS:
        hint = _suggest(section, list(SECTIONS), "{}")
        raise ConfigError(f"environment variable {name}: unknown section {section!r} {hint}")
    if key not in _FIELDS[section]:
        hint = _suggest(key, list(_FIELDS[section]), "{}")
        raise ConfigError(f"environment variable {name}: [{section}] has no key {key!r} {hint}")
    return section, key


def _env_where(name: str, text: str) -> str:
    return f"{name}={redact_url(text)!r}"


def load_settings(
    config_file: str | Path | None = None,
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read `playbooks.toml` (or `config_file`), the environment and `overrides` into one Settings.

    `overrides` map "section.key" to a value (typed, or text from a command-line flag, parsed like the
    environment); None values are skipped so an unset flag changes nothing.
    """
    base = cwd if cwd is not None else Path.cwd()
    env = os.environ if environ is None else environ
    builder = _Builder()

    path: Path | None
    if config_file is None:
        label = CONFIG_FILE_NAME
        path = base / CONFIG_FILE_NAME
        if not path.is_file():
            path = None  # no playbooks.toml here: defaults
    else:
        label = str(config_file)
        explicit = Path(config_file)
        path = explicit if explicit.is_absolute() else base / explicit
        if not path.is_file():
            raise ConfigError(f"{label}: config file not found (check the --config path)")
    if path is not None:
        _read_file(path, label, builder)

    # The short name first so that the sectioned one, set after it, wins.
    if text := env.get("PLAYBOOKS_BROKER_URL"):
        where = _env_where("PLAYBOOKS_BROKER_URL", text)
        builder.set("cluster", "broker_url", text, from_text=True, where=where)
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and (target := _env_target(name)) is not None:
            builder.set(*target, env[name], from_text=True, where=_env_where(name, env[name]))

    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        if section not in SECTIONS or key not in _FIELDS[section]:
            raise ConfigError(f"unknown setting {dotted!r} (expected SECTION.KEY, e.g. cluster.broker_url)")
        where = f"{dotted} = {_show(value)} (command line)"
        builder.set(section, key, value, from_text=isinstance(value, str), where=where)

    return builder.build(path)
