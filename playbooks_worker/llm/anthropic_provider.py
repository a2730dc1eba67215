"""Anthropic's Messages API (Claude).

    [llm]
    provider = "anthropic"
    model = "claude-sonnet-4-5"
    base_url = "https://api.anthropic.com"     # optional; else ANTHROPIC_BASE_URL; else this

The key comes from ANTHROPIC_API_KEY only. Streaming is `POST {base_url}/v1/messages` with `stream: true`;
the answer is complete at `message_stop`; an `error` event (`overloaded_error`…) before any text is retried.
Why plain HTTP and not the `anthropic` SDK: see streaming.py.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from playbooks_worker.errors import ConfigError
from playbooks_worker.llm.provider import LLMRequest
from playbooks_worker.llm.streaming import Answer, BrokenStream, HTTPProvider, RetryPolicy, ServerError, json_object

if TYPE_CHECKING:
    from playbooks_worker.config import Settings

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"


class AnthropicProvider(HTTPProvider):
    name = "anthropic"
    label = "Anthropic API"
    key_variable = "ANTHROPIC_API_KEY"

    @classmethod
    def from_settings(cls, settings: Settings, environ: Mapping[str, str] | None = None,
                      retry: RetryPolicy | None = None) -> AnthropicProvider:
        env = os.environ if environ is None else environ
        api_key = env.get("ANTHROPIC_API_KEY", "").strip()
        if not api_key:
            raise ConfigError('[llm] provider = "anthropic" needs an API key: ANTHROPIC_API_KEY is not set',
                              hint="export ANTHROPIC_API_KEY=sk-ant-…")
        model = settings.llm.model
        if model.startswith(("gpt-", "o1", "o3", "o4")):
            raise ConfigError(f'[llm] provider = "anthropic" with model = "{model}", an OpenAI model',
                              hint='set [llm] model to a Claude model, e.g. model = "claude-sonnet-4-5"')
        base_url = settings.llm.base_url or env.get("ANTHROPIC_BASE_URL", "").strip() or DEFAULT_BASE_URL
        return cls(model=model, api_key=api_key, base_url=base_url, timeout_s=settings.llm.timeout_s, retry=retry)

    def build(self, request: LLMRequest, stream: bool) -> tuple[str, dict[str, str], dict[str, Any]]:
        headers = {"x-api-key": self._key, "anthropic-version": API_VERSION}
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        body: dict[str, Any] = {
            "model": request.model or self.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "messages": [{"role": m["role"], "content": m["content"]} for m in request.messages
                         if m["role"] != "system"],
        }
        if system:
            body["system"] = system
        if stream:
            body["stream"] = True
        path = "/messages" if self.base_url.endswith("/v1") else "/v1/messages"
        return self.base_url + path, headers, body

    async def read_events(self, events: AsyncIterator[tuple[str, str]], answer: Answer) -> AsyncIterator[str]:
        stopped = False
        async for event, data in events:
            payload = json_object(data)
            kind = payload.get("type") or event
            if kind == "content_block_delta":
                delta = payload.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield delta["text"]
            elif kind == "message_start":
                message = payload.get("message") or {}
                answer.model = message.get("model") or answer.model
                answer.prompt_tokens = (message.get("usage") or {}).get("input_tokens", answer.prompt_tokens)
            elif kind == "message_delta":
                answer.completion_tokens = (payload.get("usage") or {}).get("output_tokens", answer.completion_tokens)
            elif kind == "message_stop":
                stopped = True  # read on to the end of the body, so the connection goes back to the pool
            elif kind == "error":
                error = payload.get("error") or {}
                raise ServerError(str(error.get("message") or error), kind=str(error.get("type") or ""))
        if not stopped:
            raise BrokenStream("the stream ended before its message_stop event")

    def read_whole(self, body: dict[str, Any], answer: Answer) -> str:
        answer.model = body.get("model") or answer.model
        usage = body.get("usage") or {}
        answer.prompt_tokens = usage.get("input_tokens")
        answer.completion_tokens = usage.get("output_tokens")
        return "".join(block.get("text", "") for block in body.get("content") or () if block.get("type") == "text")
