"""Markdown → a small heading tree: a heading owns what follows it, up to a heading of its level or higher.

Line numbers here are 0-based indexes into the combined text; `Source.locate` turns them into file:line.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Literal

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

BlockKind = Literal["paragraph", "list", "fence", "hr", "html", "quote", "code", "other"]

_KINDS: dict[str, BlockKind] = {
    "paragraph": "paragraph",
    "bullet_list": "list",
    "ordered_list": "list",
    "fence": "fence",
    "hr": "hr",
    "html_block": "html",
    "blockquote": "quote",
    "code_block": "code",
}


@dataclass
class ListItem:
    text: str  # the item's own paragraphs, as written
    start: int
    children: list[ListItem] = field(default_factory=list)  # items of its nested lists


@dataclass
class Block:
    kind: BlockKind
    start: int
    end: int  # exclusive
    raw: str  # the source lines, dedented (for a fence: its content)
    info: str = ""  # a fence's language, e.g. "python" or "public.json"
    items: list[ListItem] = field(default_factory=list)
    closed: bool = True  # False for a fence that runs to the end of the text

    @property
    def language(self) -> str:
        return self.info.split()[0].lower() if self.info.split() else ""


@dataclass
class Section:
    level: int  # 0 for the root (text before the first heading)
    title: str
    start: int
    blocks: list[Block] = field(default_factory=list)
    children: list[Section] = field(default_factory=list)


def _parser() -> MarkdownIt:
    # Setext headings off: in Playbooks `---` always ends a metadata block, it never underlines a heading.
    return MarkdownIt("commonmark").disable("lheading")


def parse_markdown(lines: list[str]) -> Section:
    """The heading tree of `lines` (one string per line, no newlines)."""
    root = Section(level=0, title="", start=0)
    stack = [root]
    tree = SyntaxTreeNode(_parser().parse("\n".join(lines)))
    for node in tree.children:
        start, end = _span(node)
        if node.type == "heading":
            level = int(node.tag[1:])
            while stack[-1].level >= level:
                stack.pop()
            section = Section(level=level, title=_inline_text(node), start=start)
            stack[-1].children.append(section)
            stack.append(section)
        else:
            stack[-1].blocks.append(_block(node, lines, start, end))
    return root


def _block(node: SyntaxTreeNode, lines: list[str], start: int, end: int) -> Block:
    kind = _KINDS.get(node.type, "other")
    if kind == "fence":
        return Block(
            kind, start, end, node.content, info=node.info.strip(), closed=_fence_closed(node, lines)
        )
    raw = textwrap.dedent("\n".join(lines[start:end])).strip("\n").rstrip()
    items = _items(node) if kind == "list" else []
    return Block(kind, start, end, raw, items=items)


def _items(list_node: SyntaxTreeNode) -> list[ListItem]:
    items: list[ListItem] = []
    for item in list_node.children:
        paragraphs = [_inline_text(c) for c in item.children if c.type == "paragraph"]
        nested = [i for c in item.children if c.type in ("bullet_list", "ordered_list") for i in _items(c)]
        items.append(ListItem("\n\n".join(paragraphs).strip(), _span(item)[0], nested))
    return items


def _fence_closed(node: SyntaxTreeNode, lines: list[str]) -> bool:
    """markdown-it lets an unclosed fence swallow the rest of the file; we want to say so instead."""
    _, end = _span(node)
    if end - _span(node)[0] < 2 or end > len(lines):
        return False
    last = lines[end - 1].strip()
    char = node.markup[:1]
    return len(last) >= len(node.markup) and set(last) == {char}


def _inline_text(node: SyntaxTreeNode) -> str:
    return "".join(c.content for c in node.children if c.type == "inline").strip()


def _span(node: SyntaxTreeNode) -> tuple[int, int]:
    start, end = node.map or (0, 0)
    return start, end
