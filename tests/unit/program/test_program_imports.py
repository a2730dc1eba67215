"""`!import`, shebang, frontmatter, sources, digest: and every location names the file the user wrote."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from playbooks_worker.errors import ProgramError
from playbooks_worker.program import SourceLocation, load_program, parse_text

Write = Callable[[str, str], Path]  # the `write` fixture (conftest.py)


def _refused(path: Path | str) -> ProgramError:
    with pytest.raises(ProgramError) as info:
        load_program(path)
    return info.value


def test_import_inlines_steps_with_the_directive_indentation(write: Write) -> None:
    write("steps.pb", "- Ask the user for their $name\n- Greet them by $name\n")
    program = load_program(
        write(
            "main.pb",
            """
            # Greeter

            ## Main
            ### Steps
            - Say hello
              !import steps.pb
            - End program
            """,
        )
    )
    [step] = [s for s in program.agent("Greeter").playbooks["Main"].steps if s.text == "Say hello"]
    assert [c.text for c in step.children] == ["Ask the user for their $name", "Greet them by $name"]
    assert [c.location for c in step.children] == [
        SourceLocation("steps.pb", 1),
        SourceLocation("steps.pb", 2),
    ]
    end = program.agent("Greeter").playbooks["Main"].steps[-1]
    assert (end.text, end.location) == ("End program", SourceLocation("main.pb", 7))


def test_imported_python_block_keeps_its_own_file_and_lines(write: Write) -> None:
    write(
        "lib/tools.pb",
        """
        Helpers for the orders agent.

        ```python
        @playbook
        async def FetchOrders() -> list:
            return []
        ```
        """,
    )
    program = load_program(
        write(
            "main.pb",
            """
            # MyAgent
            !import lib/tools.pb  # the shared tools

            ## Main
            ```python
            orders = await FetchOrders()
            ```
            """,
        )
    )
    agent = program.agent("MyAgent")
    assert agent.code_blocks[0].location == SourceLocation(os.path.join("lib", "tools.pb"), 4)
    assert agent.playbooks["FetchOrders"].location == SourceLocation(os.path.join("lib", "tools.pb"), 5)
    assert agent.playbooks["Main"].location == SourceLocation("main.pb", 4)
    assert agent.playbooks["Main"].code is not None
    assert agent.playbooks["Main"].code.location == SourceLocation("main.pb", 6)


def test_error_inside_an_imported_file_names_that_file_and_line(write: Write) -> None:
    write(
        "lib/tools.pb",
        """
        ```python
        @playbook
        async def FetchOrders() -> list:
            return [
        ```
        """,
    )
    write("main.pb", "# MyAgent\n\n!import lib/tools.pb\n\n## Main\n- Do it\n")
    error = _refused("main.pb")
    assert error.message.startswith(f"{os.path.join('lib', 'tools.pb')}:4: invalid Python")


def test_nested_imports_resolve_relative_to_the_importing_file(write: Write) -> None:
    write("lib/a.pb", "!import sub/b.pb\n")
    write("lib/sub/b.pb", "## Hello\nSays hello.\n")
    program = load_program(write("main.pb", "# A\n!import lib/a.pb\n"))
    hello = program.agent("A").playbooks["Hello"]
    assert hello.location == SourceLocation(os.path.join("lib", "sub", "b.pb"), 1)
    assert hello.description == "Says hello."
    assert list(program.sources) == [os.path.abspath(p) for p in ("main.pb", "lib/a.pb", "lib/sub/b.pb")]


def test_missing_import_is_an_error_at_the_directive(write: Write) -> None:
    write("main.pb", "# A\n\n## Main\n### Steps\n- One\n  !import nowhere.pb\n")
    error = _refused("main.pb")
    assert error.message.startswith("main.pb:6: cannot import 'nowhere.pb': no such file nowhere.pb")
    assert error.hint


def test_circular_import_names_the_chain(write: Write) -> None:
    write("a.pb", "!import b.pb\n")
    write("b.pb", "Words.\n!import a.pb\n")
    write("main.pb", "# A\n!import a.pb\n## Main\n")
    error = _refused("main.pb")
    assert error.message == "b.pb:2: circular import: a.pb -> b.pb -> a.pb"


def test_a_file_importing_itself_is_circular(write: Write) -> None:
    error = _refused(write("main.pb", "# A\n## Main\n!import main.pb\n"))
    assert error.message == "main.pb:3: circular import: main.pb -> main.pb"


def test_imports_deeper_than_ten_are_refused(write: Write) -> None:
    for i in range(12):
        write(f"d{i}.pb", f"!import d{i + 1}.pb\n")
    write("d12.pb", "## Deep\n")
    write("main.pb", "# A\n!import d0.pb\n")
    error = _refused("main.pb")
    assert error.message.startswith("d9.pb:1: imports nested more than 10 deep: main.pb -> d0.pb")


def test_imports_ten_deep_are_fine(write: Write) -> None:
    for i in range(9):
        write(f"d{i}.pb", f"!import d{i + 1}.pb\n")
    write("d9.pb", "## Deep\n")
    program = load_program(write("main.pb", "# A\n!import d0.pb\n"))
    assert program.agent("A").playbooks["Deep"].location == SourceLocation("d9.pb", 1)


def test_a_diamond_is_not_a_cycle(write: Write) -> None:
    write("common.pb", "Shared words.\n")
    write("a.pb", "!import common.pb\n")
    write("b.pb", "!import common.pb\n")
    program = load_program(write("main.pb", "# A\n!import a.pb\n!import b.pb\n## Main\n"))
    assert program.agent("A").description == "Shared words.\nShared words."
    assert len(program.sources) == 4


def test_imports_are_not_processed_in_pbasm(write: Write) -> None:
    program = load_program(write("main.pbasm", "# A\n!import missing.pb\n\n## Main() -> None\n"))
    assert program.agent("A").description == "!import missing.pb"


def test_absolute_and_file_url_imports(write: Write, tmp_path: Path) -> None:
    write("lib/p.pb", "## Hello\n")
    absolute = tmp_path / "lib" / "p.pb"
    program = load_program(write("main.pb", f"# A\n!import {absolute}\n# B\n!import file://{absolute}\n"))
    assert program.agent("A").playbooks["Hello"].location == SourceLocation(str(absolute), 1)
    assert "Hello" in program.agent("B").playbooks


def test_http_imports_are_refused(write: Write) -> None:
    error = _refused(write("main.pb", "# A\n!import https://example.com/x.pb\n## Main\n"))
    assert error.message.startswith("main.pb:2: cannot import 'https://example.com/x.pb'")


def test_import_of_a_directory_is_refused(write: Write) -> None:
    write("lib/x.pb", "")
    error = _refused(write("main.pb", "# A\n!import lib\n## Main\n"))
    assert error.message == "main.pb:2: cannot import 'lib': lib is a directory"


def test_frontmatter_and_shebang(write: Write) -> None:
    program = load_program(
        write(
            "main.pb",
            """
            #!/usr/bin/env pb
            ---
            title: Orders
            tags: [a, b]
            ---
            # A
            ## Main
            """,
        )
    )
    assert program.frontmatter == {"title": "Orders", "tags": ["a", "b"]}
    assert program.agent("A").location == SourceLocation("main.pb", 6)
    assert program.agent("A").description == ""


def test_frontmatter_yaml_error_names_its_line(write: Write) -> None:
    error = _refused(write("main.pb", "---\ntitle: x\ntags: [a, b\n---\n# A\n## Main\n"))
    assert error.message.startswith("main.pb:3: invalid YAML in frontmatter")


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("---\ntitle: x\n# A\n## Main\n", "main.pb:1: frontmatter opened here is never closed"),
        ("---\n- a\n- b\n---\n# A\n## Main\n", "main.pb:2: frontmatter must be a YAML mapping"),
    ],
)
def test_bad_frontmatter(write: Write, text: str, what: str) -> None:
    assert _refused(write("main.pb", text)).message.startswith(what)


def test_sources_and_digest(write: Write) -> None:
    write("steps.pb", "- Two\n")
    path = write("main.pb", "# A\n## Main\n### Steps\n- One\n!import steps.pb\n")
    program = load_program(path)
    main, steps = os.path.abspath("main.pb"), os.path.abspath("steps.pb")
    assert program.path == Path(main)
    assert program.sources == {main: path.read_text(), steps: "- Two\n"}
    expected = hashlib.sha256()
    for name, text in program.sources.items():
        expected.update(name.encode() + b"\0" + text.encode())
    assert program.digest == expected.hexdigest()
    assert load_program(path).digest == program.digest
    write("steps.pb", "- Three\n")
    assert load_program(path).digest != program.digest


def test_parse_text_resolves_imports_relative_to_path(write: Write) -> None:
    write("sub/steps.pb", "- Imported\n")
    program = parse_text("# A\n## Main\n### Steps\n!import steps.pb\n", "sub/main.pb")
    [step] = program.agent("A").playbooks["Main"].steps
    assert step.location == SourceLocation(os.path.join("sub", "steps.pb"), 1)
    assert program.sources[os.path.abspath("sub/main.pb")].startswith("# A")


def test_crlf_and_bom_are_read(write: Write) -> None:
    Path("main.pb").write_bytes(b"\xef\xbb\xbf# A\r\n\r\n## Main\r\n### Steps\r\n- One\r\n")
    program = load_program("main.pb")
    assert program.agent("A").playbooks["Main"].steps[0].location == SourceLocation("main.pb", 5)


@pytest.mark.parametrize("name", ["missing.pb", "adir"])
def test_unreadable_program_file(write: Write, name: str) -> None:
    Path("adir").mkdir()
    error = _refused(name)
    assert error.message.startswith(f"{name}: cannot read program: ")
    assert error.hint


def test_non_utf8_program_names_the_line(write: Write) -> None:
    Path("main.pb").write_bytes(b"# A\n## Main\nCaf\xe9\n")
    error = _refused("main.pb")
    assert error.message == "main.pb:3: not UTF-8 text (byte 0xe9)"


def test_non_utf8_import_names_the_imported_file(write: Write) -> None:
    Path("bad.pb").write_bytes(b"ok\n\xff\n")
    write("main.pb", "# A\n!import bad.pb\n## Main\n")
    assert _refused("main.pb").message.startswith("bad.pb:2: not UTF-8 text")


def test_parse_sources_matches_load_program_without_touching_disk(tmp_path: Path) -> None:
    """A worker parses the run's stored files: same digest, and imports come from the stored dict."""
    from playbooks_worker.program import load_program, parse_sources

    (tmp_path / "lib.pb").write_text("```python\n@playbook\nasync def Tool() -> int:\n    return 1\n```\n")
    main = tmp_path / "main.pb"
    main.write_text("# A\n\n!import lib.pb\n\n## Main\n\n```python\nawait Tool()\n```\n")
    program = load_program(main)
    (tmp_path / "lib.pb").unlink()
    again = parse_sources(str(program.path), program.sources, "main.pb")
    assert again.digest == program.digest
    assert list(again.agents[0].playbooks) == list(program.agents[0].playbooks)
