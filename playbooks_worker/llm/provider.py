"""The provider interface: one async call that streams text and returns the whole response.

Implementations: `openai` (any OpenAI-compatible server), `anthropic`, and `scripted` (responses from a file,
for tests, demos and offline runs). Keys come only from the environment and never appear in messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from playbooks_worker.errors import ConfigError, PlaybooksError

if TYPE_CHECKING:
    from playbooks_worker.config import Settings

OnText = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class LLMRequest:
    model: str
    messages: list[dict[str, str]]  # [{"role": "system" | "user" | "assistant", "content": ...}]
    agent: str  # the agent's class: the scripted provider's key
    call_index: int  # 1-based: the Nth LLM call this agent makes in the run (replayed ones count)
    temperature: float = 0.2
    max_tokens: int = 4096


@dataclass
class LLMResponse:
    text: str
    model: str = ""
    usage: dict[str, int] = field(default_factory=dict)  # prompt_tokens, completion_tokens
    latency_ms: float = 0.0

    def to_record(self) -> dict[str, Any]:
        return {"response": self.text, "model": self.model, "usage": dict(self.usage),
                "latency_ms": round(self.latency_ms, 3)}


class LLMError(PlaybooksError):
    """The model could not be reached or answered with an error after retries."""


class LLMProvider(Protocol):
    name: str

    async def complete(self, request: LLMRequest, on_text: OnText | None = None) -> LLMResponse: ...


def make_provider(settings: Settings) -> LLMProvider:
    kind = settings.llm.provider
    if kind == "scripted":
        from playbooks_worker.llm.scripted import ScriptedProvider

        return ScriptedProvider.from_settings(settings)
    if kind == "openai":
        from playbooks_worker.llm.openai_provider import OpenAIProvider

        return OpenAIProvider.from_settings(settings)
    if kind == "anthropic":
        from playbooks_worker.llm.anthropic_provider import AnthropicProvider

        return AnthropicProvider.from_settings(settings)
    raise ConfigError(no_llm_message(), hint=NO_LLM_HINT)


def no_llm_message() -> str:
    return "no LLM is configured ([llm] provider is empty)"


NO_LLM_HINT = ('add to playbooks.toml:  [llm] provider = "openai" and model = "gpt-4o-mini" (with OPENAI_API_KEY in '
               'the environment; base_url for another OpenAI-compatible server), or provider = "anthropic" (with '
               'ANTHROPIC_API_KEY), or provider = "scripted" with script = "responses.yaml" to run offline')


def require_llm(program: Any, settings: Settings) -> None:
    """Refuse, before anything runs, a program with LLM playbooks when no LLM is configured."""
    if settings.llm.provider:
        return
    for agent in program.agents:
        for playbook in agent.playbooks.values():
            if playbook.kind == "llm":
                raise ConfigError(
                    f"{playbook.location}: {agent.name}.{playbook.name} is an LLM playbook (natural-language "
                    f"steps), and {no_llm_message()}", hint=NO_LLM_HINT)
