"""Playbooks programs: parse `.pb` and `.pbasm` files into a `Program` of agents, playbooks and code."""

from .model import (
    AgentDef,
    CodeBlock,
    Param,
    PlaybookDef,
    PlaybookKind,
    Program,
    SourceLocation,
    StepDef,
)
from .parser import load_program, parse_sources, parse_text
from .validate import BUILTIN_PLAYBOOKS

__all__ = [
    "BUILTIN_PLAYBOOKS",
    "AgentDef",
    "CodeBlock",
    "Param",
    "PlaybookDef",
    "PlaybookKind",
    "Program",
    "SourceLocation",
    "StepDef",
    "load_program",
    "parse_sources",
    "parse_text",
]
