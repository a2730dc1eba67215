"""The heading tree the parser builds on: setext headings off, 0-based lines, fences and lists kept."""

from __future__ import annotations

import playbooks_worker.program as program_api
from playbooks_worker.program.markdown import parse_markdown


def test_dash_lines_are_rules_never_setext_headings() -> None:
    root = parse_markdown(["# A", "metadata:", "  public: true", "---", "Words", "---", "## B"])
    [agent] = root.children
    assert (agent.level, agent.title, agent.start) == (1, "A", 0)
    assert [(b.kind, b.start, b.end) for b in agent.blocks] == [
        ("paragraph", 1, 3),
        ("hr", 3, 4),
        ("paragraph", 4, 5),
        ("hr", 5, 6),
    ]
    assert [(c.level, c.title) for c in agent.children] == [(2, "B")]


def test_headings_own_what_follows_until_the_same_level() -> None:
    root = parse_markdown(["intro", "# A", "## P", "### Steps", "- s", "## Q", "# B", "text"])
    assert [b.raw for b in root.blocks] == ["intro"]
    a, b = root.children
    assert [s.title for s in a.children] == ["P", "Q"]
    assert [s.title for s in a.children[0].children] == ["Steps"]
    assert a.children[0].children[0].blocks[0].items[0].text == "s"
    assert b.blocks[0].raw == "text"


def test_fences_keep_language_content_and_whether_they_close() -> None:
    root = parse_markdown(
        ["```python title", "x = 1", "```", "~~~public.json", "[]", "~~~", "```python", "y"]
    )
    closed, public, unclosed = root.blocks
    assert (closed.language, closed.raw, closed.closed) == ("python", "x = 1\n", True)
    assert (public.language, public.closed) == ("public.json", True)
    assert (unclosed.language, unclosed.closed) == ("python", False)


def test_list_items_nest() -> None:
    [block] = parse_markdown(["- a", "  continued", "  - b", "    - c", "- d"]).blocks
    assert [(i.text, i.start) for i in block.items] == [("a\ncontinued", 0), ("d", 4)]
    assert block.items[0].children[0].text == "b"
    assert block.items[0].children[0].children[0].start == 3


def test_public_api() -> None:
    assert sorted(program_api.__all__) == sorted(
        [
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
    )
