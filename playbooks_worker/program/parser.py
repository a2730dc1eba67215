"""Build a `Program` from Playbooks markdown: H1 = agent, H2 = playbook, H3 = Triggers / Steps / Notes.

The grammar and the original framework's rules are in the project's reference notes (§1); where they disagree
with DESIGN.md §2, the design wins.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path
from typing import Any, Literal

import yaml

from ..errors import ProgramError
from .imports import YAML_ERRORS, Source, build_source, read_program_file, stored_sources
from .markdown import Block, ListItem, Section, parse_markdown
from .model import AgentDef, CodeBlock, PlaybookDef, Program, StepDef
from .python_blocks import LineLocator, PyUnit, parse_python, python_playbooks
from .signature import checked_name, parse_signature
from .validate import validate

_AGENT_KINDS: dict[str, Literal["AI", "Human"]] = {"": "AI", "ai": "AI", "human": "Human"}
_LEGACY_PUBLIC = re.compile(r"^\s*public\s*:\s*", re.IGNORECASE)
_DESCRIPTION_KINDS = ("paragraph", "list", "hr", "quote", "code", "other")  # not fences, not HTML comments


def load_program(path: str | Path) -> Program:
    """Read `path` and every file it imports, parse and validate; any problem is a ProgramError."""
    display = os.fspath(path)
    return _build(read_program_file(Path(path), display), Path(path), display)


def parse_text(text: str, path: str | Path) -> Program:
    """Like `load_program`, with the main file's text given; imports are resolved relative to `path`."""
    return _build(text, Path(path), os.fspath(path))


def parse_sources(main: str, sources: dict[str, str], display: str | None = None) -> Program:
    """Parse a program from its stored files (absolute path -> text), never touching the disk.

    The digest and sources come out identical to `load_program` on the machine that read the files.
    """
    token = stored_sources.set(sources)
    try:
        return _build(sources[main], Path(main), display or main)
    finally:
        stored_sources.reset(token)


def _build(text: str, path: Path, display: str) -> Program:
    src = build_source(text, path, display)
    program, units = build_program(src, Path(os.path.abspath(path)))
    validate(program, units)
    return program


def build_program(src: Source, path: Path) -> tuple[Program, list[PyUnit]]:
    """The Program, and its Python (agent blocks and code playbook bodies) for the validator."""
    root = parse_markdown(src.lines)
    agents: list[AgentDef] = []
    units: list[PyUnit] = []
    for section in root.children:
        if section.level == 1:
            agent, agent_units = _agent(section, src)
            twin = next((a for a in agents if a.name == agent.name), None)
            if twin is not None:
                raise ProgramError(
                    f"{agent.location}: agent {agent.name!r} is defined twice (first at {twin.location})",
                    hint="rename one of the two agents",
                )
            agents.append(agent)
            units.extend(agent_units)
        elif section.level == 2:
            raise ProgramError(
                f"{src.locate(section.start)}: playbook '## {section.title}' is not inside an agent",
                hint="put an agent heading such as '# MyAgent' above it",
            )
    if not agents:
        raise ProgramError(
            f"{src.main}:1: no agents: a program needs at least one '# AgentName' heading",
            hint="start the program with a heading such as '# MyAgent'",
        )
    program = Program(
        path=path, agents=agents, sources=dict(src.sources), frontmatter=src.frontmatter, digest=src.digest()
    )
    return program, units


def _agent(section: Section, src: Source) -> tuple[AgentDef, list[PyUnit]]:
    where = src.locate(section.start)
    name_text, _, kind_text = section.title.partition(":")
    kind_key = kind_text.strip().lower()
    if kind_key == "mcp":
        raise ProgramError(
            f"{where}: MCP agents are not supported yet ('# {section.title}')",
            hint="write the tools as @playbook functions in a ```python block of an AI agent",
        )
    if kind_key not in _AGENT_KINDS:
        raise ProgramError(
            f"{where}: unknown agent type {kind_text.strip()!r} in '# {section.title}'",
            hint="write '# Name', '# Name:AI' or '# Name:Human'",
        )
    metadata, description = _metadata_and_description(section.blocks, src)
    if "remote" in metadata:
        raise ProgramError(
            f"{where}: remote (MCP) agents are not supported yet (metadata 'remote')",
            hint="remove the 'remote:' metadata and define the agent's playbooks locally",
        )
    agent = AgentDef(
        name=checked_name(name_text, where, "agent"),
        kind=_AGENT_KINDS[kind_key],
        location=where,
        description=description,
        metadata=metadata,
    )

    units: list[PyUnit] = []
    found: list[tuple[int, PlaybookDef]] = []  # (combined line, playbook): source order across both kinds
    for block in _python_fences(section.blocks, src):
        locate = _locator(src, block)
        code = CodeBlock(block.raw, locate(1))
        tree = parse_python(block.raw, locate, body=False, what=f"a python block of agent {agent.name}")
        agent.code_blocks.append(code)
        units.append(PyUnit(agent, code, tree, locate, order=block.start + 1))
        found.extend((block.start + line, pb) for line, pb in python_playbooks(tree, block.raw, locate))
    for child in section.children:
        if child.level == 2:  # an H3 directly under the H1 belongs to no playbook; ignored like other prose
            playbook, unit = _playbook(child, agent, src)
            found.append((child.start, playbook))
            if unit is not None:
                units.append(unit)

    for _, playbook in sorted(found, key=lambda pair: pair[0]):
        first = agent.playbooks.get(playbook.name)
        if first is not None:
            raise ProgramError(
                f"{playbook.location}: playbook {playbook.name!r} is defined twice in agent {agent.name} "
                f"(first at {first.location})",
                hint="rename or remove one of them",
            )
        agent.playbooks[playbook.name] = playbook
    if agent.kind == "AI" and not agent.playbooks:
        raise ProgramError(
            f"{where}: agent {agent.name} has no playbooks",
            hint="add a playbook heading such as '## Main' with '### Steps', "
            "or a ```python block with an @playbook function",
        )
    return agent, units


def _playbook(section: Section, agent: AgentDef, src: Source) -> tuple[PlaybookDef, PyUnit | None]:
    where = src.locate(section.start)
    # Older compiled files mark public playbooks in the heading: `## public: GetCountryPopulation($country)`.
    legacy_public = _LEGACY_PUBLIC.match(section.title)
    title = section.title[legacy_public.end() :] if legacy_public else section.title
    name, params, returns = parse_signature(title, where)
    metadata, description = _metadata_and_description(section.blocks, src)
    if legacy_public:
        metadata.setdefault("public", True)
    parts: dict[str, Section] = {}
    for child in section.children:
        if child.level == 3:
            parts.setdefault(child.title.strip().lower(), child)
    playbook = PlaybookDef(
        name=name,
        kind="llm",
        location=where,
        signature=section.title.strip(),
        params=params,
        returns=returns,
        description=description,
        metadata=metadata,
    )
    triggers = parts.get("triggers") or parts.get("trigger")  # sources write both; compiled files the plural
    if triggers is not None:
        playbook.triggers = [t for t in _texts(triggers, nested=False) if t]
    if "notes" in parts:
        playbook.notes = [n for n in _texts(parts["notes"], nested=True) if n]
    if "steps" in parts:
        # A python block beside `### Steps` is not a body: the LLM runs the steps (DESIGN §2).
        items = [item for block in parts["steps"].blocks if block.kind == "list" for item in block.items]
        playbook.steps = _steps(items, src)
        return playbook, None
    # The body may follow `### Triggers` (or `### Notes`): markdown puts it inside that subsection, but it
    # is still the playbook's code when the playbook has no steps.
    fences = _python_fences(section.blocks, src)
    for part in ("triggers", "trigger", "notes"):
        if part in parts:
            fences += _python_fences(parts[part].blocks, src)
    if not fences:
        return playbook, None  # no steps, no code: a react-style LLM playbook
    if len(fences) > 1:
        raise ProgramError(
            f"{src.locate(fences[1].start)}: playbook {name} has a second ```python block "
            f"(the first, at {src.locate(fences[0].start)}, is its body)",
            hint="a code playbook has one body: merge the blocks, or move helpers under the agent heading",
        )
    fence = fences[0]
    locate = _locator(src, fence)
    playbook.kind = "code"
    playbook.code = CodeBlock(fence.raw, locate(1))
    tree = parse_python(fence.raw, locate, body=True, what=f"playbook {name}")
    return playbook, PyUnit(agent, playbook.code, tree, locate, order=fence.start + 1, playbook=playbook)


def _python_fences(blocks: list[Block], src: Source) -> list[Block]:
    fences = [b for b in blocks if b.kind == "fence" and b.language == "python"]
    for fence in fences:
        if not fence.closed:
            raise ProgramError(
                f"{src.locate(fence.start)}: the ```python block opened here is never closed",
                hint="end it with a line holding only ```",
            )
    return fences


def _locator(src: Source, fence: Block) -> LineLocator:
    # Line n of the code is combined line fence.start + n: a fence's content maps line for line.
    return lambda line: src.locate(fence.start + line)


def _metadata_and_description(blocks: list[Block], src: Source) -> tuple[dict[str, Any], str]:
    """A description, and the `metadata:` YAML that may open it, ended by the first `---`."""
    blocks = [b for b in blocks if b.kind in _DESCRIPTION_KINDS]
    metadata: dict[str, Any] = {}
    if blocks and blocks[0].kind == "paragraph" and blocks[0].raw.startswith("metadata:"):
        hr = next((i for i, b in enumerate(blocks) if b.kind == "hr"), None)
        stop = blocks[hr].start if hr is not None else blocks[-1].end
        metadata = _yaml_metadata(src, blocks[0].start, stop)
        blocks = blocks[hr + 1 :] if hr is not None else []
    return metadata, "\n\n".join(b.raw for b in blocks).strip()


def _yaml_metadata(src: Source, start: int, stop: int) -> dict[str, Any]:
    # Parsed from the source lines, not the paragraph text, so a YAML error's line is the line in the file.
    text = textwrap.dedent("\n".join(src.lines[start:stop]))
    try:
        data = yaml.safe_load(text)
    except YAML_ERRORS as exc:
        mark = getattr(exc, "problem_mark", None)
        where = src.locate(start + (mark.line if mark is not None else 0))
        problem = getattr(exc, "problem", None) or str(exc) or "cannot parse"
        raise ProgramError(
            f"{where}: invalid YAML in metadata: {problem}",
            hint="indent the keys under 'metadata:' and end the block with a '---' line",
        ) from None
    value = data.get("metadata") if isinstance(data, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProgramError(
            f"{src.locate(start)}: metadata must be a YAML mapping",
            hint="e.g. 'metadata:' then '  public: true' on the next line",
        )
    return value


def _texts(section: Section, *, nested: bool) -> list[str]:
    """List items (nested ones too if asked) and paragraph lines of a Triggers or Notes section."""
    texts: list[str] = []
    for block in section.blocks:
        if block.kind == "list":
            texts.extend(_flatten(block.items) if nested else [item.text for item in block.items])
        elif block.kind == "paragraph":
            texts.extend(line.strip() for line in block.raw.splitlines())
    return texts


def _flatten(items: list[ListItem]) -> list[str]:
    return [text for item in items for text in [item.text, *_flatten(item.children)]]


def _steps(items: list[ListItem], src: Source) -> list[StepDef]:
    return [StepDef(item.text, src.locate(item.start), _steps(item.children, src)) for item in items]
