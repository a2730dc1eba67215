"""Any OpenAI-compatible chat completions server: OpenAI, Azure OpenAI's v1 endpoint, Ollama, vLLM, OpenRouter…

    [llm]
    provider = "openai"
    model = "gpt-4o-mini"
    base_url = "http://localhost:11434/v1"     # optional; else OPENAI_BASE_URL; else OpenAI's

The key comes from OPENAI_API_KEY only (a local server that needs none still wants a value: any will do).
Streaming is `POST {base_url}/chat/completions` with `stream: true`; the answer is complete at `data: [DONE]`
or a `finish_reason`, so a connection cut in the middle is told apart from the end. Why plain HTTP and not
the `openai` SDK: see streaming.py.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from playbooks_worker.errors import ConfigError
from playbooks_worker.llm.provider import LLMRequest
from playbooks_worker.llm.streaming import Answer, BrokenStream, HTTPProvider, RetryPolicy, ServerError, json_object

if TYPE_CHECKING:
    from playbooks_worker.config import Settings

DEFAULT_BASE_URL = "https://api.openai.com/v1"
KEY_HINT = ("export OPENAI_API_KEY=… (a local server that needs no key, such as Ollama or vLLM, takes any value: "
            "OPENAI_API_KEY=none)")


class OpenAIProvider(HTTPProvider):
    name = "openai"
    label = "OpenAI-compatible server"
    key_variable = "OPENAI_API_KEY"

    @classmethod
    def from_settings(cls, settings: Settings, environ: Mapping[str, str] | None = None,
                      retry: RetryPolicy | None = None) -> OpenAIProvider:
        env = os.environ if environ is None else environ
        api_key = env.get("OPENAI_API_KEY", "").strip()
        if not api_key:
            raise ConfigError('[llm] provider = "openai" needs an API key: OPENAI_API_KEY is not set', hint=KEY_HINT)
        base_url = settings.llm.base_url or env.get("OPENAI_BASE_URL", "").strip() or DEFAULT_BASE_URL
        return cls(model=settings.llm.model, api_key=api_key, base_url=base_url, timeout_s=settings.llm.timeout_s,
                   retry=retry)

    def build(self, request: LLMRequest, stream: bool) -> tuple[str, dict[str, str], dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self._key}"}
        if (urlsplit(self.base_url).hostname or "").endswith(".azure.com"):
            headers["api-key"] = self._key  # Azure OpenAI takes its keys in this header
        body: dict[str, Any] = {"model": request.model or self.model, "messages": request.messages,
                                "temperature": request.temperature, "max_tokens": request.max_tokens}
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return f"{self.base_url}/chat/completions", headers, body

    async def read_events(self, events: AsyncIterator[tuple[str, str]], answer: Answer) -> AsyncIterator[str]:
        finished = False
        async for _event, data in events:
            if data.strip() == "[DONE]":
                finished = True
                continue  # read on to the end of the body, so the connection goes back to the pool
            chunk = json_object(data)
            if chunk.get("error"):
                error = chunk["error"]
                message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
                kind = error.get("type", "") if isinstance(error, dict) else ""
                raise ServerError(str(message), kind=str(kind or ""))
            self._note(chunk, answer)
            for choice in chunk.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue
                content = (choice.get("delta") or {}).get("content")
                if content:
                    yield content
                finished = finished or bool(choice.get("finish_reason"))
        if not finished:
            raise BrokenStream("the stream ended before the answer was complete (no [DONE] and no finish_reason)")

    def read_whole(self, body: dict[str, Any], answer: Answer) -> str:
        self._note(body, answer)
        choices = body.get("choices") or [{}]
        return str((choices[0].get("message") or {}).get("content") or "")

    @staticmethod
    def _note(chunk: dict[str, Any], answer: Answer) -> None:
        answer.model = chunk.get("model") or answer.model
        usage = chunk.get("usage")
        if usage:
            answer.prompt_tokens = usage.get("prompt_tokens", answer.prompt_tokens)
            answer.completion_tokens = usage.get("completion_tokens", answer.completion_tokens)
