"""Settings: defaults, playbooks.toml, PLAYBOOKS_* variables, overrides, their precedence and every error."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from playbooks_worker.config import (
    ClusterSettings,
    DurabilitySettings,
    LLMSettings,
    Settings,
    load_settings,
    redact_url,
)
from playbooks_worker.errors import ConfigError

DESIGN_TOML = """\
[durability]
enabled = true
storage = "filesystem"          # local mode: or "redis"; cluster mode always keeps checkpoints in Redis
storage_path = ".checkpoints"
max_checkpoint_size_mb = 10
keep_last_n = 10

[cluster]
broker_url = "redis://localhost:6379/0"   # or PLAYBOOKS_BROKER_URL; absent = local mode
redis_url = ""                  # checkpoint store; defaults to broker_url
queue = "playbooks"
lease_seconds = 3               # failover goal: kill -9 to next step elsewhere <= 3 s median

[llm]
provider = "openai"             # openai | anthropic | scripted
model = "gpt-4o-mini"
"""


def load(tmp_path: Path, toml: str | None = None, env: dict[str, str] | None = None, **kw: Any) -> Settings:
    if toml is not None:
        (tmp_path / "playbooks.toml").write_text(toml)
    return load_settings(cwd=tmp_path, environ=env or {}, **kw)


def error(tmp_path: Path, toml: str | None = None, env: dict[str, str] | None = None, **kw: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, toml, env, **kw)
    return str(caught.value)


# -- where values come from ---------------------------------------------------------------------------------


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = load(tmp_path)

    assert settings == Settings()
    assert settings.durability == DurabilitySettings(
        enabled=False,
        storage="filesystem",
        storage_path=".checkpoints",
        max_checkpoint_size_mb=10,
        keep_last_n=10,
    )
    assert settings.cluster == ClusterSettings(broker_url="", redis_url="", queue="playbooks", lease_seconds=3.0)
    assert settings.llm == LLMSettings(
        provider="", model="gpt-4o-mini", base_url="", script="", timeout_s=60, max_llm_calls=100
    )
    assert settings.config_file is None
    assert settings.cluster_mode is False


def test_the_design_example_file(tmp_path: Path) -> None:
    settings = load(tmp_path, DESIGN_TOML)

    assert settings.durability.enabled is True
    assert settings.cluster.broker_url == "redis://localhost:6379/0"
    assert settings.cluster.effective_redis_url == "redis://localhost:6379/0"  # redis_url "" = the broker
    assert settings.cluster.lease_seconds == 3.0 and isinstance(settings.cluster.lease_seconds, float)
    assert settings.llm.provider == "openai"
    assert settings.cluster_mode is True
    assert settings.config_file == tmp_path / "playbooks.toml"


def test_the_guides_file_and_a_relative_storage_path(tmp_path: Path) -> None:
    settings = load(tmp_path, '[durability]\nenabled = true\nstorage_path = "var/ckpt"\nkeep_last_n = 20\n')

    assert settings.durability.enabled is True
    assert settings.durability.storage_path == "var/ckpt"  # resolved where it is used, not here
    assert settings.durability.keep_last_n == 20
    assert settings.durability.max_checkpoint_size_mb == 10


def test_an_explicit_config_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "prod.toml").write_text("[cluster]\nqueue = 'prod'\n")
    (tmp_path / "playbooks.toml").write_text("[cluster]\nqueue = 'ignored'\n")

    assert load(tmp_path, config_file="conf/prod.toml").cluster.queue == "prod"
    absolute = load_settings(tmp_path / "conf" / "prod.toml", environ={})
    assert absolute.cluster.queue == "prod"
    assert absolute.config_file == tmp_path / "conf" / "prod.toml"


def test_an_explicit_config_file_that_does_not_exist(tmp_path: Path) -> None:
    assert error(tmp_path, config_file="nope.toml") == "nope.toml: config file not found (check the --config path)"


def test_the_working_directory_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "playbooks.toml").write_text("[durability]\nenabled = true\n")
    assert load_settings(environ={}).durability.enabled is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[("true", True), ("TRUE", True), ("1", True), ("yes", True), ("On", True)],
        *[("false", False), ("0", False), ("no", False), ("OFF", False), (" false ", False)],
    ],
)
def test_environment_booleans(tmp_path: Path, text: str, expected: bool) -> None:
    assert load(tmp_path, env={"PLAYBOOKS_DURABILITY__ENABLED": text}).durability.enabled is expected


def test_environment_values_are_parsed_by_type(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        env={
            "PLAYBOOKS_CLUSTER__LEASE_SECONDS": "2",
            "PLAYBOOKS_DURABILITY__KEEP_LAST_N": "5",
            "PLAYBOOKS_DURABILITY__MAX_CHECKPOINT_SIZE_MB": "0.5",
            "PLAYBOOKS_LLM__MODEL": "claude-sonnet",
            "PLAYBOOKS_SECRET_KEY": "not a setting: ignored here",
            "PLAYBOOKS_SECRET_KEY_FILE": "/also/ignored",
            "OTHER__THING": "not ours",
        },
    )
    assert settings.cluster.lease_seconds == 2.0
    assert settings.durability.keep_last_n == 5
    assert settings.durability.max_checkpoint_size_mb == 0.5
    assert settings.llm.model == "claude-sonnet"


def test_the_real_environment_is_read_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("PLAYBOOKS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PLAYBOOKS_DURABILITY__ENABLED", "true")
    assert load_settings(cwd=tmp_path).durability.enabled is True


def test_precedence_file_then_broker_url_then_sectioned_variable_then_overrides(tmp_path: Path) -> None:
    toml = '[cluster]\nbroker_url = "redis://file"\nqueue = "from-file"\n'
    short = {"PLAYBOOKS_BROKER_URL": "redis://short"}
    both = short | {"PLAYBOOKS_CLUSTER__BROKER_URL": "redis://sectioned"}

    assert load(tmp_path, toml).cluster.broker_url == "redis://file"
    assert load(tmp_path, toml, short).cluster.broker_url == "redis://short"
    assert load(tmp_path, toml, both).cluster.broker_url == "redis://sectioned"
    overridden = load(tmp_path, toml, both, overrides={"cluster.broker_url": "redis://flag", "cluster.queue": None})
    assert overridden.cluster.broker_url == "redis://flag"
    assert overridden.cluster.queue == "from-file"  # a None override (an unset flag) changes nothing


def test_overrides_take_typed_values_or_text(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        env={"PLAYBOOKS_CLUSTER__LEASE_SECONDS": "9"},
        overrides={"cluster.lease_seconds": 2, "durability.enabled": "yes", "durability.keep_last_n": "3"},
    )
    assert settings.cluster.lease_seconds == 2.0
    assert settings.durability.enabled is True
    assert settings.durability.keep_last_n == 3


def test_settings_are_frozen_and_keyword_only() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.durability.enabled = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        DurabilitySettings(True)  # type: ignore[call-arg]


# -- errors -------------------------------------------------------------------------------------------------


def test_an_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    assert (
        error(tmp_path, "[durability]\nenabeld = true\n")
        == "playbooks.toml: [durability] unknown key 'enabeld' (did you mean 'enabled'?)"
    )


def test_an_unknown_key_without_a_close_one_lists_the_keys(tmp_path: Path) -> None:
    valid = ", ".join(f"'{field.name}'" for field in dataclasses.fields(ClusterSettings))
    assert valid.startswith("'broker_url', 'redis_url', 'queue', 'lease_seconds'")
    assert error(tmp_path, "[cluster]\ncolour = 1\n") == (
        f"playbooks.toml: [cluster] unknown key 'colour' (valid: {valid})"
    )


def test_an_unknown_section(tmp_path: Path) -> None:
    assert (
        error(tmp_path, "[durabilty]\nenabled = true\n")
        == "playbooks.toml: unknown section [durabilty] (did you mean [durability]?)"
    )
    assert error(tmp_path, "[tool]\nx = 1\n") == (
        "playbooks.toml: unknown section [tool] (valid: [durability], [cluster], [llm])"
    )


def test_a_key_outside_any_section(tmp_path: Path) -> None:
    assert error(tmp_path, "enabled = true\n") == (
        "playbooks.toml: key 'enabled' is outside any section; put it under [durability], [cluster], [llm]"
    )
    assert error(tmp_path, "durability = true\n") == (
        "playbooks.toml: durability = true: must be a section, written [durability]"
    )


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('[durability]\nenabled = "true"', '[durability] enabled = "true": must be true or false'),
        ("[durability]\nkeep_last_n = true", "[durability] keep_last_n = true: must be an integer"),
        ("[durability]\nkeep_last_n = 2.5", "[durability] keep_last_n = 2.5: must be an integer"),
        ('[cluster]\nlease_seconds = "3"', '[cluster] lease_seconds = "3": must be a number'),
        ("[cluster]\nqueue = 5", "[cluster] queue = 5: must be a string (in quotes)"),
        ("[llm]\nmodel = [1]", "[llm] model = [1]: must be a string (in quotes)"),
        ("[llm]\nbase_url = {a = 1}", "[llm] base_url = {…}: must be a string (in quotes)"),
        ("[cluster]\nlease_seconds = inf", "[cluster] lease_seconds = inf: must be a number"),
    ],
)
def test_toml_types_must_match(tmp_path: Path, line: str, problem: str) -> None:
    assert error(tmp_path, line + "\n") == f"playbooks.toml: {problem}"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (
            "[durability]\nmax_checkpoint_size_mb = -1",
            "[durability] max_checkpoint_size_mb = -1: must be a number > 0",
        ),
        (
            "[durability]\nmax_checkpoint_size_mb = 0",
            "[durability] max_checkpoint_size_mb = 0: must be a number > 0",
        ),
        ("[durability]\nkeep_last_n = 0", "[durability] keep_last_n = 0: must be an integer >= 1"),
        ('[durability]\nstorage = "s3"', '[durability] storage = "s3": must be "filesystem" or "redis"'),
        ("[cluster]\nlease_seconds = 0", "[cluster] lease_seconds = 0: must be a number > 0"),
        ("[cluster]\nlease_seconds = -2.5", "[cluster] lease_seconds = -2.5: must be a number > 0"),
        ('[cluster]\nqueue = ""', '[cluster] queue = "": must be a non-empty queue name'),
        (
            '[llm]\nprovider = "gemini"',
            '[llm] provider = "gemini": must be "openai", "anthropic" or "scripted" (or "" for none)',
        ),
        ("[llm]\ntimeout_s = 0", "[llm] timeout_s = 0: must be a number > 0"),
        ("[llm]\nmax_llm_calls = 0", "[llm] max_llm_calls = 0: must be an integer >= 1"),
    ],
)
def test_values_out_of_range(tmp_path: Path, line: str, problem: str) -> None:
    assert error(tmp_path, line + "\n") == f"playbooks.toml: {problem}"


def test_an_explicit_file_is_named_as_given(tmp_path: Path) -> None:
    (tmp_path / "ops.toml").write_text("[durability]\nkeep_last_n = 0\n")
    assert error(tmp_path, config_file="ops.toml") == "ops.toml: [durability] keep_last_n = 0: must be an integer >= 1"


def test_a_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    message = error(tmp_path, "[durability]\nenabled = true\nkeep_last_n 10\n")
    assert message.startswith("playbooks.toml: invalid TOML: ")
    assert "line 3" in message


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("PLAYBOOKS_DURABILITY__KEEP_LAST_N", "x", "must be an integer"),
        ("PLAYBOOKS_DURABILITY__KEEP_LAST_N", "0", "must be an integer >= 1"),
        ("PLAYBOOKS_DURABILITY__ENABLED", "enabled", "must be true or false (or 1/0, yes/no, on/off)"),
        ("PLAYBOOKS_CLUSTER__LEASE_SECONDS", "soon", "must be a number"),
        ("PLAYBOOKS_CLUSTER__LEASE_SECONDS", "nan", "must be a number"),
        ("PLAYBOOKS_CLUSTER__LEASE_SECONDS", "-1", "must be a number > 0"),
        ("PLAYBOOKS_DURABILITY__STORAGE", "s3", 'must be "filesystem" or "redis"'),
    ],
)
def test_bad_environment_values_name_the_variable(tmp_path: Path, name: str, value: str, problem: str) -> None:
    assert error(tmp_path, env={name: value}) == f"{name}={value!r}: {problem}"


def test_the_exact_keep_last_n_message(tmp_path: Path) -> None:
    message = error(tmp_path, env={"PLAYBOOKS_DURABILITY__KEEP_LAST_N": "x"})
    assert message == "PLAYBOOKS_DURABILITY__KEEP_LAST_N='x': must be an integer"


def test_unknown_sectioned_variables_are_errors(tmp_path: Path) -> None:
    assert error(tmp_path, env={"PLAYBOOKS_DURABILTY__ENABLED": "1"}) == (
        "environment variable PLAYBOOKS_DURABILTY__ENABLED: unknown section 'durabilty' (did you mean durability?)"
    )
    assert error(tmp_path, env={"PLAYBOOKS_CLUSTER__LEASE": "1"}) == (
        "environment variable PLAYBOOKS_CLUSTER__LEASE: [cluster] has no key 'lease' (did you mean lease_seconds?)"
    )
    valid = ", ".join(field.name for field in dataclasses.fields(LLMSettings))
    assert error(tmp_path, env={"PLAYBOOKS_LLM__TEMPERATURE": "1"}) == (
        f"environment variable PLAYBOOKS_LLM__TEMPERATURE: [llm] has no key 'temperature' (valid: {valid})"
    )


def test_unknown_overrides_are_errors(tmp_path: Path) -> None:
    assert error(tmp_path, overrides={"cluster.broker": "redis://x"}) == (
        "unknown setting 'cluster.broker' (expected SECTION.KEY, e.g. cluster.broker_url)"
    )
    assert error(tmp_path, overrides={"cluster.lease_seconds": 0}) == (
        "cluster.lease_seconds = 0 (command line): must be a number > 0"
    )


# -- secrets ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:secret@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:secret@host:6379/0", "redis://user:***@host:6379/0"),
        ("rediss://default:p@ss:w0rd@host", "rediss://default:***@host"),
        ("amqp://guest@host//", "amqp://guest@host//"),
        ("redis://host:6379/0?password=secret&db=1", "redis://host:6379/0?password=***&db=1"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("", ""),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_secrets_never_appear_in_errors_or_reprs(tmp_path: Path) -> None:
    from_file = error(tmp_path, '[durability]\nstorage = "redis://:hunter2@db:6379/0"\n')
    (tmp_path / "playbooks.toml").unlink()
    from_env = error(tmp_path, env={"PLAYBOOKS_CLUSTER__LEASE_SECONDS": "redis://:hunter2@db"})
    from_flag = error(tmp_path, overrides={"durability.storage": "redis://u:hunter2@db"})
    settings = load(tmp_path, env={"PLAYBOOKS_BROKER_URL": "redis://:hunter2@db:6379/0"})

    for text in (from_file, from_env, from_flag, repr(settings), repr(settings.cluster)):
        assert "hunter2" not in text
    assert (
        from_file == 'playbooks.toml: [durability] storage = "redis://:***@db:6379/0": must be "filesystem" or "redis"'
    )
    assert "redis://:***@db:6379/0" in repr(settings)
    assert settings.cluster.broker_url == "redis://:hunter2@db:6379/0"  # the value itself is intact
