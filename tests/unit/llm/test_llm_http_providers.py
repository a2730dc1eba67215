"""The OpenAI-compatible and Anthropic providers against the fake server (a real HTTP server on loopback):
streamed and not, retried while nothing was handed over, an LLMError once something was, never the key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from llm_fake_server import FakeLLMServer
from llm_support import API_KEY

from playbooks_worker.config import load_settings
from playbooks_worker.errors import ConfigError
from playbooks_worker.llm.anthropic_provider import AnthropicProvider
from playbooks_worker.llm.openai_provider import OpenAIProvider
from playbooks_worker.llm.provider import LLMError, LLMRequest, LLMResponse, make_provider
from playbooks_worker.llm.streaming import RetryPolicy

T = TypeVar("T")
FAST = RetryPolicy(base_delay_s=0.001, max_delay_s=0.01)
ANSWER = "```python\nawait Say(\"user\", \"Hello there, user!\")\nawait Return(42)\n```"
MESSAGES = [{"role": "system", "content": "You are the interpreter."}, {"role": "user", "content": "Execute Main."}]


def ask(provider: Any, *, stream: bool = True) -> tuple[LLMResponse, list[str]]:
    """One request with the test conversation; (the answer, the pieces on_text was given)."""
    chunks: list[str] = []

    async def on_text(text: str) -> None:
        chunks.append(text)

    async def go() -> LLMResponse:
        try:
            req = LLMRequest(model="", messages=MESSAGES, agent="A", call_index=1)
            return await provider.complete(req, on_text if stream else None)
        finally:
            await provider.aclose()

    return asyncio.run(go()), chunks


def fails(provider: Any) -> LLMError:
    with pytest.raises(LLMError) as info:
        ask(provider)
    return info.value


def openai(server: FakeLLMServer, **kwargs: Any) -> OpenAIProvider:
    return OpenAIProvider(model="fake-gpt", api_key=API_KEY, base_url=server.base_url, retry=FAST, **kwargs)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


# -- OpenAI-compatible ---------------------------------------------------------------------------------


def test_streamed_answer_arrives_in_pieces_with_usage(fake_llm: FakeLLMServer) -> None:
    fake_llm.add(ANSWER)
    answer, chunks = ask(openai(fake_llm))
    assert answer.text == ANSWER and "".join(chunks) == ANSWER and len(chunks) > 5
    assert answer.model == "fake-gpt"
    assert set(answer.usage) == {"prompt_tokens", "completion_tokens"} and answer.usage["completion_tokens"] > 0
    assert answer.latency_ms > 0
    [body] = fake_llm.requests
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == MESSAGES and body["model"] == "fake-gpt"
    assert fake_llm.headers[0]["authorization"] == f"Bearer {API_KEY}"


def test_not_streamed_without_on_text(fake_llm: FakeLLMServer) -> None:
    fake_llm.add(ANSWER)
    answer, chunks = ask(openai(fake_llm), stream=False)
    assert answer.text == ANSWER and chunks == []
    assert answer.usage["prompt_tokens"] > 0
    assert "stream" not in fake_llm.requests[0]


def test_429_then_success_is_retried(fake_llm: FakeLLMServer) -> None:
    fake_llm.add(ANSWER)
    fake_llm.fail(429, times=2)
    answer, chunks = ask(openai(fake_llm))
    assert answer.text == ANSWER and "".join(chunks) == ANSWER
    assert len(fake_llm.requests) == 3


@pytest.mark.parametrize("status", [500, 502, 503, 529])
def test_server_errors_are_retried_a_bounded_number_of_times(fake_llm: FakeLLMServer, status: int) -> None:
    fake_llm.add(ANSWER)
    fake_llm.fail(status, times=10, retry_after=None)
    error = fails(openai(fake_llm))
    assert len(fake_llm.requests) == 4
    assert f"HTTP {status}" in error.message and "gave up after 4 attempts" in error.message
    assert error.hint == "the server had a problem; try again later"


def test_a_drop_before_any_text_is_retried(fake_llm: FakeLLMServer) -> None:
    fake_llm.add(ANSWER)
    fake_llm.drop_after(0)
    answer, _ = ask(openai(fake_llm))
    assert answer.text == ANSWER and len(fake_llm.requests) == 2


def test_a_drop_mid_stream_is_an_error_not_a_retry(fake_llm: FakeLLMServer) -> None:
    fake_llm.add(ANSWER)
    fake_llm.drop_after(20)
    chunks: list[str] = []

    async def on_text(text: str) -> None:
        chunks.append(text)

    async def go() -> None:
        provider = openai(fake_llm)
        try:
            await provider.complete(LLMRequest(model="", messages=MESSAGES, agent="A", call_index=1), on_text)
        finally:
            await provider.aclose()

    with pytest.raises(LLMError) as info:
        run(go())
    assert len(fake_llm.requests) == 1  # a retry would have run the first statements again
    assert 0 < len("".join(chunks)) <= 20
    assert f"the answer broke off after {len(''.join(chunks))} characters: the connection broke" in info.value.message
    assert "--resume" in (info.value.hint or "")


def test_an_error_event_before_any_text_is_retried_when_transient(fake_llm: FakeLLMServer) -> None:
    fake_llm.add(ANSWER)
    fake_llm.error_event("server_error")
    answer, _ = ask(openai(fake_llm))
    assert answer.text == ANSWER and len(fake_llm.requests) == 2


def test_an_error_event_that_is_not_transient_is_not_retried(fake_llm: FakeLLMServer) -> None:
    fake_llm.add(ANSWER)
    fake_llm.error_event("invalid_request_error")
    error = fails(openai(fake_llm))
    assert "the server answered with an error: fake server: invalid_request_error" in error.message
    assert len(fake_llm.requests) == 1


def test_a_refused_key_is_not_retried_and_never_shown(fake_llm: FakeLLMServer) -> None:
    fake_llm.fail(401, body={"error": {"message": f"Incorrect API key provided: {API_KEY}.", "type": "invalid"}})
    error = fails(openai(fake_llm))
    assert len(fake_llm.requests) == 1
    assert error.message.endswith("the server refused the API key (HTTP 401)")
    assert error.hint == "check OPENAI_API_KEY (it is read from the environment)"
    assert API_KEY not in str(error) + str(error.hint) + repr(error)


def test_a_server_message_quoting_the_key_is_scrubbed(fake_llm: FakeLLMServer) -> None:
    fake_llm.fail(400, body={"error": {"message": f"bad request from key {API_KEY} (sk-other-abcdefgh)"}})
    error = fails(openai(fake_llm))
    assert "HTTP 400: bad request from key *** (sk-***)" in error.message
    assert API_KEY not in error.message
    assert "sk-other" not in error.message


def test_not_found_names_the_model(fake_llm: FakeLLMServer) -> None:
    fake_llm.fail(404, body={"error": {"message": "model not found"}})
    error = fails(openai(fake_llm))
    assert "HTTP 404 for model 'fake-gpt': model not found" in error.message
    assert error.hint == "check [llm] model and [llm] base_url"


def test_nothing_listening_is_a_clear_error() -> None:
    with FakeLLMServer() as server:
        url = server.base_url
    provider = OpenAIProvider(model="m", api_key=API_KEY, base_url=url, retry=FAST)
    error = fails(provider)
    assert f"cannot reach {url}" in error.message and "gave up after 4 attempts" in error.message
    assert error.hint == "check [llm] base_url and that the server is running"


def test_a_slow_server_times_out() -> None:
    with FakeLLMServer([ANSWER], delay_s=0.5) as server:
        provider = OpenAIProvider(model="m", api_key=API_KEY, base_url=server.base_url, timeout_s=0.1,
                                  retry=RetryPolicy(attempts=2, base_delay_s=0.001))
        error = fails(provider)
    assert "no answer within 0.1 s" in error.message and "gave up after 2 attempts" in error.message
    assert error.hint == "raise [llm] timeout_s, or check that the server is not overloaded"


def test_statements_run_while_the_stream_is_still_being_read(fake_llm: FakeLLMServer) -> None:
    # on_text that takes its time does not stop the answer from being read: the latency is the network's.
    fake_llm.add("x" * 200)

    async def slow(text: str) -> None:
        await asyncio.sleep(0.01)

    async def go() -> LLMResponse:
        provider = openai(fake_llm)
        try:
            return await provider.complete(LLMRequest(model="", messages=MESSAGES, agent="A", call_index=1), slow)
        finally:
            await provider.aclose()

    started = time.perf_counter()
    answer = run(go())
    wall_ms = (time.perf_counter() - started) * 1000
    assert answer.text == "x" * 200
    assert wall_ms >= 29 * 10  # 29 chunks, 10 ms of statements each…
    assert answer.latency_ms < wall_ms / 2  # …which the answer's latency does not include


def test_from_settings_reads_base_url_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(overrides={"llm.provider": "openai", "llm.model": "llama3", "llm.timeout_s": 5},
                             environ={})
    env = {"OPENAI_API_KEY": "k-1", "OPENAI_BASE_URL": "http://localhost:11434/v1/"}
    provider = OpenAIProvider.from_settings(settings, env)
    assert (provider.model, provider.base_url, provider.timeout_s) == ("llama3", "http://localhost:11434/v1", 5)
    assert "k-1" not in repr(provider)
    configured = load_settings(overrides={"llm.provider": "openai", "llm.base_url": "http://vllm:8000/v1"},
                               environ={})
    assert OpenAIProvider.from_settings(configured, env).base_url == "http://vllm:8000/v1"
    assert OpenAIProvider.from_settings(configured, {"OPENAI_API_KEY": "k"}).base_url == "http://vllm:8000/v1"
    default = OpenAIProvider.from_settings(settings, {"OPENAI_API_KEY": "k"})
    assert default.base_url == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    assert isinstance(make_provider(settings), OpenAIProvider)


def test_a_missing_key_names_the_variable() -> None:
    settings = load_settings(overrides={"llm.provider": "openai"}, environ={})
    with pytest.raises(ConfigError) as info:
        OpenAIProvider.from_settings(settings, {})
    assert info.value.message == '[llm] provider = "openai" needs an API key: OPENAI_API_KEY is not set'
    assert "export OPENAI_API_KEY=" in (info.value.hint or "")
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY is not set"):
        AnthropicProvider.from_settings(
            load_settings(overrides={"llm.provider": "anthropic", "llm.model": "claude-x"}, environ={}), {})


def test_azure_gets_its_key_header() -> None:
    provider = OpenAIProvider(model="m", api_key="k", base_url="https://res.openai.azure.com/openai/v1")
    url, headers, _ = provider.build(LLMRequest(model="", messages=MESSAGES, agent="A", call_index=1), True)
    assert url == "https://res.openai.azure.com/openai/v1/chat/completions"
    assert headers == {"Authorization": "Bearer k", "api-key": "k"}


# -- Anthropic -------------------------------------------------------------------------------------------


def anthropic(server: FakeLLMServer, base: str | None = None) -> AnthropicProvider:
    return AnthropicProvider(model="claude-fake", api_key=API_KEY, base_url=base or f"http://127.0.0.1:{server.port}",
                             retry=FAST)


def test_anthropic_streamed(fake_llm: FakeLLMServer) -> None:
    fake_llm.add(ANSWER)
    answer, chunks = ask(anthropic(fake_llm))
    assert answer.text == ANSWER and "".join(chunks) == ANSWER
    assert answer.model == "claude-fake" and answer.usage["prompt_tokens"] > 0
    [body] = fake_llm.requests
    assert body["system"] == "You are the interpreter."
    assert body["messages"] == [{"role": "user", "content": "Execute Main."}]
    assert body["stream"] is True and body["max_tokens"] == 4096
    headers = fake_llm.headers[0]
    assert headers["x-api-key"] == API_KEY and headers["anthropic-version"] == "2023-06-01"


def test_anthropic_not_streamed_and_base_url_with_v1(fake_llm: FakeLLMServer) -> None:
    fake_llm.add(ANSWER)
    answer, _ = ask(anthropic(fake_llm, base=fake_llm.base_url), stream=False)
    assert answer.text == ANSWER and answer.usage["completion_tokens"] > 0


def test_anthropic_overloaded_is_retried(fake_llm: FakeLLMServer) -> None:
    fake_llm.add(ANSWER)
    fake_llm.fail(529, times=1, retry_after=None)
    answer, _ = ask(anthropic(fake_llm))
    assert answer.text == ANSWER and len(fake_llm.requests) == 2


def test_anthropic_overloaded_event_before_text_is_retried_and_after_text_is_an_error(
        fake_llm: FakeLLMServer) -> None:
    fake_llm.add(ANSWER)
    fake_llm.error_event("overloaded_error")
    answer, _ = ask(anthropic(fake_llm))
    assert answer.text == ANSWER and len(fake_llm.requests) == 2
    fake_llm.error_event("overloaded_error", after_chars=10)
    error = fails(anthropic(fake_llm))
    assert "the answer broke off after 7 characters: the server answered with an error: fake server: " \
           "overloaded_error" in error.message
    assert len(fake_llm.requests) == 3


def test_anthropic_drop_mid_stream(fake_llm: FakeLLMServer) -> None:
    fake_llm.add(ANSWER)
    fake_llm.drop_after(15)
    error = fails(anthropic(fake_llm))
    assert "Anthropic API" in error.message and "the answer broke off after" in error.message
    assert len(fake_llm.requests) == 1


def test_anthropic_refuses_an_openai_model_name() -> None:
    settings = load_settings(overrides={"llm.provider": "anthropic"}, environ={})  # model defaults to gpt-4o-mini
    with pytest.raises(ConfigError) as info:
        AnthropicProvider.from_settings(settings, {"ANTHROPIC_API_KEY": "k"})
    assert "an OpenAI model" in info.value.message and "claude" in (info.value.hint or "")


def test_server_sent_events_are_parsed_by_the_spec() -> None:
    from playbooks_worker.llm.streaming import _sse

    async def lines() -> Any:
        for line in [": keep-alive", "", "event: message_start", "data: {\"a\": 1}", "", "data: one",
                     "data:two", "", "id: 7", "retry: 10", "data: last"]:
            yield line

    async def collect() -> list[tuple[str, str]]:
        return [pair async for pair in _sse(lines())]

    assert run(collect()) == [("message_start", '{"a": 1}'), ("", "one\ntwo"), ("", "last")]
