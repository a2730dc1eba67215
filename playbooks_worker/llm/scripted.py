"""Responses from a file: the Nth LLM call an agent makes in a run gets the Nth response listed for it.

    # responses.yaml
    Greeter:                      # the agent's class (or "*" for any agent)
      - |
        await Step("Main:01:QUE")
        await Say("user", "Hello!")
      - await Return("done")

JSON with the same shape works too. Deterministic and resumable: on resume the calls already made are
replayed from the journal, so the next live call gets the next response, as it would have.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from playbooks_worker.errors import ConfigError
from playbooks_worker.llm.provider import LLMError, LLMRequest, LLMResponse, OnText

if TYPE_CHECKING:
    from playbooks_worker.config import Settings


class ScriptedProvider:
    name = "scripted"

    def __init__(self, responses: dict[str, list[str]], source: str = "<script>", chunk_chars: int = 24) -> None:
        self.responses = responses
        self.source = source
        self.chunk_chars = chunk_chars

    @classmethod
    def from_settings(cls, settings: Settings) -> ScriptedProvider:
        script = settings.llm.script
        if not script:
            raise ConfigError("[llm] provider = \"scripted\" needs [llm] script: the responses file",
                              hint='e.g. script = "responses.yaml" (relative to the working directory)')
        return cls.from_file(Path(script))

    @classmethod
    def from_file(cls, path: Path) -> ScriptedProvider:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"[llm] script: cannot read {path}: {exc.strerror or exc}") from None
        try:
            data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
        if not isinstance(data, dict) or not all(
                isinstance(v, list) and all(isinstance(r, str) for r in v) for v in data.values()):
            raise ConfigError(f"{path}: expected a mapping of agent class -> list of responses (strings)")
        return cls({str(k): list(v) for k, v in data.items()}, str(path))

    async def complete(self, request: LLMRequest, on_text: OnText | None = None) -> LLMResponse:
        started = time.perf_counter()
        listed = self.responses.get(request.agent) or self.responses.get("*") or []
        if request.call_index > len(listed):
            raise LLMError(f"{self.source}: agent {request.agent} made LLM call #{request.call_index}, but the "
                           f"script lists {len(listed)} response(s) for it",
                           hint="add the missing responses to the script")
        text = listed[request.call_index - 1]
        if on_text is not None:
            for i in range(0, len(text), self.chunk_chars):
                await on_text(text[i:i + self.chunk_chars])
                await asyncio.sleep(0)
        return LLMResponse(text=text, model="scripted",
                           usage={"prompt_tokens": sum(len(m["content"]) for m in request.messages) // 4,
                                  "completion_tokens": len(text) // 4},
                           latency_ms=(time.perf_counter() - started) * 1000)
