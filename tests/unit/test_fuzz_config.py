"""Hostile configuration: `load_settings` returns Settings or a ConfigError naming the file or variable.

DESIGN §8: "Unknown keys and bad values are errors that name the key. Secrets never appear in output or logs."
Hypothesis writes `playbooks.toml` files — valid TOML with known and unknown sections and keys holding every
TOML type (strings, huge and negative integers, inf/nan floats, dates, arrays, inline tables), and invalid TOML
(mutated, truncated, not UTF-8, nested thousands deep) — plus PLAYBOOKS_* environment variables with any text.
Every string may carry a URL with the password `s3cr3t-pw`, which must never be shown. Then `playbooks runs`
under such a configuration exits 0 or 2, never with a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import re
import tempfile
from pathlib import Path
from typing import Any, get_type_hints

import pytest
from click.testing import CliRunner
from fuzz_support import fuzz
from hypothesis import given
from hypothesis import strategies as st

from playbooks_cli.main import cli
from playbooks_worker.config import SECTIONS, Settings, load_settings
from playbooks_worker.errors import ConfigError

SECRET = "s3cr3t-pw"
FIELDS = {name: get_type_hints(cls) for name, cls in SECTIONS.items()}




# -- values -----------------------------------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)  # TOML text cannot hold surrogates
URLS = st.sampled_from([
    f"redis://:{SECRET}@127.0.0.1:1/0", f"redis://user:{SECRET}@127.0.0.1:1/0",
    f"rediss://pbw:{SECRET}@127.0.0.1:1/0?ssl_cert_reqs=none", f"redis://127.0.0.1:1/0?password={SECRET}",
    f"redis://:{SECRET}@[::1/0", f"redis://:{SECRET}@127.0.0.1:99999/0", f"amqp://u:{SECRET}@127.0.0.1:1//",
    f"unix://:{SECRET}@/nonexistent/redis.sock", "redis://127.0.0.1:1/x", "nonsense", "",
])
WORDS = st.sampled_from(["filesystem", "redis", "openai", "anthropic", "scripted", "gemini", ".checkpoints",
                         "/dev/null", "", " ", "pbw", "a:b", "{x}", "playbooks", "true", "10", "nan", "\x00",
                         "state/ckpt", "../../etc", "\n", "é"])
STRINGS = URLS | WORDS | TEXT
SCALARS = st.one_of(
    st.booleans(), st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, -1, 2**63 - 1, 10**18]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1e-300, 1e308, 0.5, 3.0]),
    st.dates(), st.datetimes(), st.times(), STRINGS,
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                      max_leaves=6)


def toml_string(text: str) -> str:
    escaped = "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F or c in '"\\' else c for c in text)
    return f'"{escaped}"'


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


# -- documents --------------------------------------------------------------------------------------------

SECTION_NAMES = st.sampled_from([*SECTIONS, *SECTIONS, "durabilty", "Cluster", "worker", ""]) | TEXT


@st.composite
def section_keys(draw: st.DrawFn, section: str) -> dict[str, Any]:
    known = list(FIELDS.get(section, {})) or ["enabled", "queue"]
    keys = draw(st.lists(st.sampled_from(known) | st.sampled_from(["lease", "storage_pth", "x"]) | TEXT,
                         max_size=4, unique=True))
    values = {}
    for key in keys:
        kind = FIELDS.get(section, {}).get(key)
        typed = {bool: st.booleans(), int: st.integers(-5, 10**6), float: st.floats(-1, 1e6),
                 str: STRINGS}.get(kind, VALUES)  # often the right type, so range and URL checks are reached
        values[key] = draw(typed | VALUES)
    return values


@st.composite
def toml_document(draw: st.DrawFn) -> str:
    lines = []
    for key, value in draw(st.dictionaries(TEXT, SCALARS, max_size=1)).items():  # outside any section
        lines.append(f"{toml_key(key)} = {toml_value(value)}")
    for section in draw(st.lists(SECTION_NAMES, max_size=3, unique=True)):
        lines.append(draw(st.sampled_from(["[{}]", "[{}]", "[[{}]]"])).format(toml_key(section)))
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in draw(section_keys(section)).items()]
    return "\n".join(lines) + "\n"


@st.composite
def broken_document(draw: st.DrawFn) -> bytes:
    text = draw(toml_document())
    how = draw(st.sampled_from(["insert", "truncate", "garbage", "deep", "latin-1", "bom", "duplicate"]))
    if how == "insert":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(list("[]{}=\"'#\n,.\\")) | TEXT) + text[at:]
    elif how == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif how == "garbage":
        text += draw(TEXT)
    elif how == "deep":
        depth = draw(st.integers(500, 3000))
        inner = draw(st.sampled_from([("[" * depth, "]" * depth), ("{a = " * depth, "}" * depth)]))
        text += "[cluster]\nqueue = " + inner[0] + "1" + inner[1] + "\n"
    elif how == "latin-1":
        return text.encode("utf-8") + "[cluster]\nqueue = \"caf\xe9\"\n".encode("latin-1")
    elif how == "bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    else:
        text += "[durability]\nenabled = true\n[durability]\nenabled = false\n"
    return text.encode("utf-8")


CONFIG_BYTES = toml_document().map(str.encode) | broken_document()

ENV_NAMES = st.builds(
    lambda section, key: f"PLAYBOOKS_{section}__{key}",
    st.sampled_from([*(s.upper() for s in SECTIONS), "durability", "LLM", "WORKER", ""]),
    st.sampled_from([*sorted({k.upper() for f in FIELDS.values() for k in f}), "", "LEASE", "X"]),
) | st.sampled_from(["PLAYBOOKS_BROKER_URL", "PLAYBOOKS_SECRET_KEY", "PLAYBOOKS_", "PLAYBOOKS___",
                     "PLAYBOOKS_X", "PLAYBOOKS_A__B__C"])
ENV_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30)
ENV_VALUES = URLS | st.sampled_from(["true", "0", "yes", "on", "maybe", "nan", "inf", "-inf", "1e308", "1e-300",
                                     "-1", "1_000", " 3 ", "\u0663", "0x10", "9" * 5000, "", "redis"]) | ENV_TEXT
ENVIRON = st.dictionaries(ENV_NAMES, ENV_VALUES.filter(lambda v: "\x00" not in v), max_size=3)


# -- what every outcome must look like --------------------------------------------------------------------


def check_settings(result: Settings, path: Path | None) -> None:
    assert isinstance(result, Settings)
    assert result.config_file == path
    for name in SECTIONS:
        part = getattr(result, name)
        for field in dataclasses.fields(part):
            value, kind = getattr(part, field.name), FIELDS[name][field.name]
            allowed = (int, float) if kind is float else (kind,)  # a default may be `10` for a float
            assert type(value) in allowed, (name, field.name, value)  # exactly: no bool where an int goes
            if kind is float:
                assert math.isfinite(value)
    assert SECRET not in repr(result.cluster)


def check_error(exc: ConfigError, label: str, environ: dict[str, str]) -> None:
    text = exc.message + (exc.hint or "")
    assert SECRET not in text, text
    assert "Traceback" not in text
    names = tuple(environ) + tuple(f"environment variable {n}" for n in environ)
    assert exc.message.startswith((label + ":", *names)), (exc.message, label, sorted(environ))


# -- the tests --------------------------------------------------------------------------------------------


def test_each_crash_found_by_this_fuzz_is_now_a_config_error(tmp_path: Path) -> None:
    cases = {
        b"[cluster]\nqueue = " + b"[" * 3000 + b"]" * 3000: "playbooks.toml: invalid TOML: arrays or inline "
                                                          "tables nested too deeply",
        b"[cluster]\n\nqueue = \"caf\xe9\"\n": "playbooks.toml:3: not UTF-8 text (byte 0xe9)",
        b"[durability]\nmax_checkpoint_size_mb = 1e308\n":
            "playbooks.toml: [durability] max_checkpoint_size_mb = 1e+308: must be at most 1048576 (1 TB)",
        b"[cluster]\nlease_seconds = 1e300\n": "playbooks.toml: [cluster] lease_seconds = 1e+300: must be at most "
                                               "86400 (a day)",
        f'[cluster]\nbroker_url = ["redis://:{SECRET}@h/0"]\n'.encode():
            'playbooks.toml: [cluster] broker_url = ["redis://:***@h/0"]: must be a string (in quotes)',
    }
    for data, expected in cases.items():
        (tmp_path / "playbooks.toml").write_bytes(data)
        with pytest.raises(ConfigError) as caught:
            load_settings(cwd=tmp_path, environ={})
        assert caught.value.message == expected


def test_a_queue_named_like_a_url_keeps_its_password_out_of_the_settings_repr(tmp_path: Path) -> None:
    # Found by the fuzz below: every field that may hold a URL is redacted, the queue's name too.
    found = load_settings(cwd=tmp_path, environ={"PLAYBOOKS_CLUSTER__QUEUE": f"redis://:{SECRET}@127.0.0.1:1/0"})
    assert found.cluster.queue.endswith("127.0.0.1:1/0") and SECRET not in repr(found.cluster)


@fuzz(400)
@given(data=CONFIG_BYTES, environ=ENVIRON)
def test_load_settings_returns_settings_or_names_the_problem(tmp_path_factory: pytest.TempPathFactory,
                                                             data: bytes, environ: dict[str, str]) -> None:
    root = tmp_path_factory.getbasetemp() / "fuzz-config"
    root.mkdir(exist_ok=True)
    path = root / "playbooks.toml"
    path.write_bytes(data)
    try:
        result = load_settings(cwd=root, environ=environ)
    except ConfigError as exc:
        check_error(exc, "playbooks.toml", environ)
    else:
        check_settings(result, path)


@fuzz(200)
@given(overrides=st.dictionaries(
    st.sampled_from([f"{s}.{k}" for s, f in FIELDS.items() for k in f] + ["cluster", "x.y", ".", "cluster."]),
    st.none() | VALUES, max_size=3))
def test_command_line_overrides_too(tmp_path_factory: pytest.TempPathFactory, overrides: dict[str, Any]) -> None:
    root = tmp_path_factory.getbasetemp() / "fuzz-overrides"
    root.mkdir(exist_ok=True)
    try:
        result = load_settings(cwd=root, environ={}, overrides=overrides)
    except ConfigError as exc:
        assert SECRET not in exc.message
        assert exc.message.startswith(("unknown setting", *overrides)), exc.message
    else:
        check_settings(result, None)


@fuzz(150)
@given(data=CONFIG_BYTES, environ=ENVIRON, how=st.sampled_from(["cwd", "--config", "--config missing"]))
def test_playbooks_runs_exits_0_or_2_without_a_traceback(tmp_path_factory: pytest.TempPathFactory, data: bytes,
                                                         environ: dict[str, str], how: str) -> None:
    base = tmp_path_factory.getbasetemp() / "fuzz-runs"
    base.mkdir(exist_ok=True)
    runner = CliRunner()
    # Not CliRunner.isolated_filesystem: click 8.5 deprecates it (and warnings are errors here).
    with tempfile.TemporaryDirectory(dir=base) as cwd, contextlib.chdir(cwd):
        name = "playbooks.toml" if how == "cwd" else "ops.toml"
        if how != "--config missing":
            Path(cwd, name).write_bytes(data)
        env: dict[str, str | None] = {"XDG_CONFIG_HOME": str(Path(cwd, ".config")), "HOME": cwd,
                                      "PLAYBOOKS_SECRET_KEY": None, "PLAYBOOKS_BROKER_URL": None,
                                      "PLAYBOOKS_CONFIG": None}
        env.update(environ)
        args = ["runs", "--json"] + ([] if how == "cwd" else ["--config", name])
        result = runner.invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    assert SECRET not in result.output
    if result.exit_code == 2:
        assert result.stderr.startswith(("❌ ", "Usage:", "Error:")), result.stderr
