"""What a parsed Playbooks program is: agents, their playbooks and code, each with its place in the source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

PlaybookKind = Literal["code", "llm", "python"]

BEGIN_TRIGGER_WORDS = ("at the beginning", "when program starts", "when the program starts")


@dataclass(frozen=True)
class SourceLocation:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Param:
    name: str
    annotation: str | None = None
    default: str | None = None  # source text of the default, e.g. "10" or "'x'"
    is_state: bool = False  # written as `$name`: also stored in agent.state


@dataclass
class StepDef:
    text: str  # "01:QUE Say hello" or plain prose
    location: SourceLocation
    children: list[StepDef] = field(default_factory=list)


@dataclass
class CodeBlock:
    code: str
    location: SourceLocation  # where the first line of `code` is in the source


@dataclass
class PlaybookDef:
    name: str
    kind: PlaybookKind
    location: SourceLocation
    signature: str = ""  # the heading as written, e.g. "GetTaxRate($income: float) -> float"
    params: list[Param] = field(default_factory=list)
    returns: str | None = None
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    triggers: list[str] = field(default_factory=list)
    steps: list[StepDef] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    code: CodeBlock | None = None  # body of a code playbook; None for llm and python playbooks

    @property
    def public(self) -> bool:
        return bool(self.metadata.get("public", False))

    @property
    def is_begin(self) -> bool:
        for trigger in self.triggers:
            text = trigger.lower()
            if ":bgn" in text or any(word in text for word in BEGIN_TRIGGER_WORDS):
                return True
        return False


@dataclass
class AgentDef:
    name: str
    kind: Literal["AI", "Human"]
    location: SourceLocation
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    code_blocks: list[CodeBlock] = field(default_factory=list)
    playbooks: dict[str, PlaybookDef] = field(default_factory=dict)  # in source order


@dataclass
class Program:
    path: Path  # the file given on the command line, absolute
    agents: list[AgentDef]
    sources: dict[str, str]  # absolute path -> text, for every file read (imports included)
    frontmatter: dict[str, Any] = field(default_factory=dict)
    digest: str = ""  # sha256 over every source, in read order: "did the program change?"

    def agent(self, name: str) -> AgentDef:
        for agent in self.agents:
            if agent.name == name:
                return agent
        raise KeyError(name)

    def entry_points(self) -> list[tuple[AgentDef, PlaybookDef]]:
        """Begin-triggered playbooks; with none, `Main`; with none, the first playbook of the first agent
        (a `##` playbook before the tools its ```python block defines)."""
        begins = [(a, p) for a in self.agents if a.kind == "AI" for p in a.playbooks.values() if p.is_begin]
        if begins:
            return begins
        for agent in self.agents:
            if agent.kind == "AI" and "Main" in agent.playbooks:
                return [(agent, agent.playbooks["Main"])]
        for agent in self.agents:
            if agent.kind == "AI" and agent.playbooks:
                ordered = sorted(agent.playbooks.values(), key=lambda p: p.kind == "python")
                return [(agent, ordered[0])]
        return []
