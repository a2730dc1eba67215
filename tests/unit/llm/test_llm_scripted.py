"""The scripted provider: the Nth LLM call of an agent gets the Nth response listed for its class."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from playbooks_worker.config import load_settings
from playbooks_worker.errors import ConfigError
from playbooks_worker.llm.provider import LLMError, LLMRequest, make_provider
from playbooks_worker.llm.scripted import ScriptedProvider


def request(agent: str, index: int) -> LLMRequest:
    return LLMRequest(model="m", messages=[{"role": "user", "content": "go"}], agent=agent, call_index=index)


def complete(provider: ScriptedProvider, req: LLMRequest) -> tuple[str, list[str]]:
    chunks: list[str] = []

    async def on_text(text: str) -> None:
        chunks.append(text)

    answer = asyncio.run(provider.complete(req, on_text))
    return answer.text, chunks


def test_yaml_script_by_agent_and_call_index(tmp_path: Path) -> None:
    path = tmp_path / "responses.yaml"
    path.write_text("Greeter:\n  - |\n    await Say('user', 'hi')\n  - await Return(1)\nOther: [x]\n")
    provider = ScriptedProvider.from_file(path)
    text, chunks = complete(provider, request("Greeter", 1))
    assert text == "await Say('user', 'hi')\n"
    assert "".join(chunks) == text
    assert complete(provider, request("Greeter", 2))[0] == "await Return(1)"
    assert complete(provider, request("Other", 1))[0] == "x"


def test_json_script_and_the_star_key(tmp_path: Path) -> None:
    path = tmp_path / "responses.json"
    path.write_text(json.dumps({"*": ["a" * 60, "b"], "Special": ["s"]}))
    provider = ScriptedProvider.from_file(path)
    text, chunks = complete(provider, request("Anyone", 1))
    assert text == "a" * 60 and len(chunks) == 3  # streamed in pieces of 24 characters
    assert complete(provider, request("Special", 1))[0] == "s"
    assert complete(provider, request("Else", 2))[0] == "b"


def test_usage_and_model_are_reported(tmp_path: Path) -> None:
    provider = ScriptedProvider({"A": ["x" * 40]})
    answer = asyncio.run(provider.complete(request("A", 1)))
    assert answer.model == "scripted"
    assert answer.usage == {"prompt_tokens": 0, "completion_tokens": 10}
    assert answer.to_record()["response"] == "x" * 40


def test_a_missing_response_is_an_error_that_says_which(tmp_path: Path) -> None:
    provider = ScriptedProvider({"Greeter": ["one"]}, source="responses.yaml")
    with pytest.raises(LLMError) as info:
        asyncio.run(provider.complete(request("Greeter", 2)))
    assert info.value.message == ("responses.yaml: agent Greeter made LLM call #2, but the script lists 1 "
                                  "response(s) for it")
    assert info.value.hint == "add the missing responses to the script"
    with pytest.raises(LLMError, match="agent Nobody made LLM call #1, but the script lists 0"):
        asyncio.run(provider.complete(request("Nobody", 1)))


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad.yaml", "Greeter: [unclosed\n", "not valid YAML"),
    ("bad.json", "{nope", "not valid JSON"),
    ("list.yaml", "- a\n- b\n", "expected a mapping of agent class -> list of responses"),
    ("nested.yaml", "Greeter: [{a: 1}]\n", "expected a mapping of agent class -> list of responses"),
])
def test_a_bad_script_is_a_config_error(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        ScriptedProvider.from_file(path)


def test_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"needs \[llm\] script"):
        make_provider(load_settings(overrides={"llm.provider": "scripted"}, environ={}))
    with pytest.raises(ConfigError, match=r"cannot read missing\.yaml"):
        make_provider(load_settings(overrides={"llm.provider": "scripted", "llm.script": "missing.yaml"},
                                    environ={}))
    (tmp_path / "r.yaml").write_text("A: [x]\n")
    provider = make_provider(load_settings(overrides={"llm.provider": "scripted", "llm.script": "r.yaml"},
                                           environ={}))
    assert isinstance(provider, ScriptedProvider) and provider.responses == {"A": ["x"]}


def test_no_provider_configured_names_what_to_add() -> None:
    with pytest.raises(ConfigError) as info:
        make_provider(load_settings(overrides={}, environ={}, cwd=Path("/nonexistent-dir")))
    assert "no LLM is configured" in info.value.message
    assert '[llm] provider = "openai"' in (info.value.hint or "")
