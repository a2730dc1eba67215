"""CodeBuffer: a streamed response becomes statements as soon as each is complete, whatever the chunking."""

from __future__ import annotations

import ast

import pytest

from playbooks_worker.llm.codebuffer import CodeBuffer, normalize

RESPONSE = '''```python
# execution_id: 1
# recap: starting
await Step("Main:01:QUE")
await Say("user", "Hello!")
total = sum([
    1,
    2,
])
if total > 2:
    await Say("user", "big")
elif total == 2:
    await Say("user", "two")
else:
    await Say("user", "small")
try:
    x = 1 / 0
except ZeroDivisionError:
    x = 0
finally:
    done = True
for i in range(2):
    await Step(f"Main:02.{i:02d}:EXE")
name = await Yield("user")
```'''

STATEMENTS = [
    'await Step("Main:01:QUE")',
    'await Say("user", "Hello!")',
    "total = sum([\n    1,\n    2,\n])",
    'if total > 2:\n    await Say("user", "big")\nelif total == 2:\n    await Say("user", "two")\n'
    'else:\n    await Say("user", "small")',
    "try:\n    x = 1 / 0\nexcept ZeroDivisionError:\n    x = 0\nfinally:\n    done = True",
    'for i in range(2):\n    await Step(f"Main:02.{i:02d}:EXE")',
    'name = await Yield("user")',
]


def stream(text: str, sizes: list[int]) -> list[tuple[int, str]]:
    """Feed `text` in chunks of the given sizes (cycled); (characters fed when handed out, source) per statement."""
    buffer, out, fed, i = CodeBuffer(), [], 0, 0
    while fed < len(text):
        chunk = text[fed:fed + sizes[i % len(sizes)]]
        i += 1
        fed += len(chunk)
        buffer.feed(chunk)
        out.extend((fed, source) for _, source in buffer.ready())
    buffer.finish()
    out.extend((fed, source) for _, source in buffer.ready(final=True))
    return out


@pytest.mark.parametrize("sizes", [[1], [2], [3], [5], [7], [13], [64], [len(RESPONSE)], [1, 9, 2, 40, 3]])
def test_same_statements_whatever_the_chunking(sizes: list[int]) -> None:
    assert [source for _, source in stream(RESPONSE, sizes)] == STATEMENTS


def test_a_flat_statement_is_handed_out_when_its_own_line_ends() -> None:
    got = stream(RESPONSE, [1])
    for fed, source in got:
        if source.startswith(("await Step(\"Main:01", "await Say(\"user\", \"Hello", "total =", "name =")):
            end = RESPONSE.index(source) + len(source) + 1  # its newline
            assert fed == end, (source, fed, end)


def test_a_compound_statement_waits_for_the_line_after_its_block() -> None:
    # The `if` is handed out only when `try:` arrives: until then an `elif`/`else` could still follow.
    got = dict((source.split("\n")[0], fed) for fed, source in stream(RESPONSE, [1]))
    assert got["if total > 2:"] == RESPONSE.index("try:") + len("try:\n")
    assert got["try:"] == RESPONSE.index("for i in") + len("for i in range(2):\n")


def test_else_and_except_stay_with_their_block_even_in_one_chunk_each() -> None:
    chunks = ["if a:\n    b = 1\n", "else:\n", "    b = 2\n", "c = 3\n"]
    buffer, handed = CodeBuffer(), []
    for chunk in chunks:
        buffer.feed(chunk)
        handed.append([source for _, source in buffer.ready()])
    assert handed == [[], [], [], ["if a:\n    b = 1\nelse:\n    b = 2", "c = 3"]]


def test_each_statement_is_handed_out_once() -> None:
    buffer = CodeBuffer()
    buffer.feed("a = 1\nb = 2\n")
    assert [s for _, s in buffer.ready()] == ["a = 1", "b = 2"]
    assert buffer.ready() == []
    buffer.finish()
    assert buffer.ready(final=True) == []


def test_fences_are_blanked_and_line_numbers_are_the_responses() -> None:
    buffer = CodeBuffer()
    buffer.feed("```python\nx = 1\n\ny = 2\n```\n")
    nodes = [node for node, _ in buffer.ready()]
    assert [node.lineno for node in nodes] == [2, 4]
    assert buffer.lines[0] == "" and buffer.lines[4] == ""


def test_a_leaked_language_tag_line_is_dropped() -> None:
    assert normalize("python") == ""
    assert normalize("```py") == ""
    assert normalize("  ```") == ""


def test_dollar_variables_become_agent_state() -> None:
    assert normalize("$total = $price * 2") == "self.state.total = self.state.price * 2"
    assert normalize('await Say("user", "costs $5")') == 'await Say("user", "costs $5")'
    buffer = CodeBuffer()
    buffer.feed("$name = await Yield('user')\n")
    [(node, source)] = buffer.ready()
    assert source == "self.state.name = await Yield('user')"
    assert isinstance(node, ast.Assign)


def test_a_syntax_error_is_reported_with_the_responses_line() -> None:
    buffer = CodeBuffer()
    buffer.feed('```python\nawait Say("user", "hi")\nif x\n    y = 1\n```')
    assert [s for _, s in buffer.ready()] == ['await Say("user", "hi")']
    buffer.finish()
    with pytest.raises(SyntaxError) as info:
        buffer.ready(final=True)
    assert info.value.lineno == 3


def test_an_unfinished_statement_at_the_end_is_taken_by_finish() -> None:
    buffer = CodeBuffer()
    buffer.feed("a = 1\nawait Return(a)")  # no newline after the last line
    assert [s for _, s in buffer.ready()] == ["a = 1"]
    buffer.finish()
    assert [s for _, s in buffer.ready(final=True)] == ["await Return(a)"]


def test_comments_and_blank_lines_hand_out_nothing() -> None:
    buffer = CodeBuffer()
    buffer.feed("# execution_id: 1\n\n# plan: nothing\n")
    assert buffer.ready() == []
    buffer.finish()
    assert buffer.ready(final=True) == []
