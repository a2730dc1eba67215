"""Hostile `.pb` text: the parser returns a Program or a located ProgramError, never another exception.

DESIGN §2: "A program that does not parse … is refused before anything runs or is enqueued: `file:line: what
is wrong`, and a hint. Never a traceback." Hypothesis builds programs out of the pieces that break parsers —
headings of every level and prose names, fences opened and never closed, lists nested deep, `!import` lines to
missing, cyclic, absolute, oversized and device paths, YAML frontmatter and `metadata:` blocks that PyYAML
chokes on, Python blocks with syntax errors, NUL bytes, `$` spellings and absurd nesting, lone surrogates and
every line ending — and checks three layers: `parse_text`, `playbooks check` in-process (CliRunner), and the
real `playbooks check` in a subprocess on every file generated (several hundred, in one call).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fuzz_support import fuzz
from hypothesis import given
from hypothesis import strategies as st

from playbooks_cli.main import cli
from playbooks_worker.errors import ProgramError
from playbooks_worker.program import Program, parse_text

LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+): \S")

# -- the files `!import` lines may point at ---------------------------------------------------------------

FILES = {
    "lib.pb": "## Helper($x)\n### Steps\n- Say $x to the user\n",
    "tools.md": "```python\n@playbook\nasync def Tool(n: int) -> int:\n    return n\n```\n",
    "garbage.pb": "## \x01\x02 ???\n```python\ndef (:\n",
    "selfloop.pb": "!import selfloop.pb\n",
    "cycle_a.pb": "!import cycle_b.pb\n",
    "cycle_b.pb": "- item\n  !import cycle_a.pb\n",
    **{f"deep{n}.pb": f"!import deep{n + 1}.pb\n" for n in range(12)},
    "deep12.pb": "text\n",
}


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Importable files, a directory, a file over the 1 MiB import limit, one that is not UTF-8."""
    root = tmp_path_factory.mktemp("fuzz-parser")
    for name, text in FILES.items():
        (root / name).write_text(text, encoding="utf-8")
    (root / "big.pb").write_text("x" * ((1 << 20) + 10), encoding="utf-8")
    (root / "latin1.pb").write_bytes("# Caf\xe9\n".encode("latin-1"))
    (root / "folder").mkdir()
    return root


IMPORT_TARGETS = st.sampled_from([
    "lib.pb", "tools.md", "garbage.pb", "selfloop.pb", "cycle_a.pb", "deep0.pb", "big.pb", "latin1.pb",
    "folder", "main.pb", "missing.pb", "", "  ", '"lib.pb"', "'lib.pb' # a comment", "../nope/lib.pb",
    "http://example.com/lib.pb", "https://x", "file://{root}/lib.pb", "{root}/lib.pb", "{root}/folder",
    "/dev/zero", "/dev/stdin", "/dev/null", "/", "/etc/passwd", "/nonexistent/x.pb", "lib.pb\x00", "~/x.pb",
])

# -- pieces of hostile programs -------------------------------------------------------------------------

UNICODE = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)  # surrogates included
WORDS = st.sampled_from(["Main", "Agent", "Hello world demo", "x", "", " ", "123", "Ünïcødé", "名前", "A:B",
                         "Name:AI", "Name:Human", "Name:MCP", "Name:Robot", "public: Get($c)", "$", "$$x",
                         "Main()", "F($x, $y: int = 3) -> str", "F($", "F(a, a)", "F(x) y", "F ->", "-> int",
                         "G($x: dict = {'a': (1, 2)})", "G(((", "G())", "G('(')", "G(x=')')", "_", "a_b_c",
                         "🙂 Smile", "Tab\there", "Main\x00"])
TITLES = WORDS | UNICODE


@st.composite
def heading(draw: st.DrawFn) -> str:
    level = draw(st.integers(1, 7))
    gap = draw(st.sampled_from([" ", "  ", "\t", ""]))
    return "#" * level + gap + draw(TITLES) + draw(st.sampled_from(["", " #", " ##", ":AI", ":Human", ":"]))


SUBSECTION = st.sampled_from(["### Steps", "### Triggers", "### Trigger", "### Notes", "### steps", "### Other",
                              "#### Steps", "### Steps:"])
PYTHON = st.sampled_from([
    "@playbook\nasync def Tool(x: int) -> int:\n    return x",
    "@playbook(triggers=['At the beginning'], public=True)\nasync def Begin():\n    await Say('user', 'hi')",
    "@playbook(triggers=[1, 2])\ndef Bad(): pass",
    "@playbook(triggers=os.environ)\ndef Bad(): pass",
    "@playbook(triggers={'x'})\ndef Bad(): pass",
    "@playbook(public=IS_PUBLIC, **kw)\nasync def Opaque(*a, b, **k): ...",
    "@playbook\ndef Pos(a, /, b=1, *c, d, e=2, **f): pass",
    "await Say('user', 'x')", "await Missing()", "await self.Other()", "await agent.Main()",
    "x = await Return(1)", "return 5", "break", "yield 1", "$x = 1", "print($x)", "$", "def f(:", "x = (",
    "\x00", "x = '\x00'", "x = 1\x00", "x = " + "(" * 300 + ")" * 300, "x = " + "1" * 5000,
    "x = " + "-" * 100_000 + "1", "x = " + "1+" * 50_000 + "1", "import os\nfrom x import *",
    "class A:\n  pass\n def", "\tx = 1\n  y = 2", "if True:\npass", "lambda: (yield)", "nonlocal x",
    "async def f():\n    await g()\nawait f()", "x = 'unterminated", '"""', "# only a comment", "",
    "match x:\n    case {**rest}: pass", "try:\n    pass\nexcept* E as e:\n    pass",
])
YAML = st.sampled_from([
    "title: ok", "a: 2001-02-30", "a: !!timestamp 2020-99-99", "a: !!int x", "a: !!float x", "a: !!binary ?",
    "!!python/object:os.system x", "a: !!python/name:os.system", "a: " + "[" * 600, "a: " + "{a: " * 200,
    "- list\n- not a mapping", "just text", "a: [1, 2", "a: &x 1\nb: *y", "? [1]\n: 2", "a: {<<: 5}",
    "a: b: c", "\tindented: tab", "a: 1\na: 2", "%YAML 1.1\n---\na: 1", "a: !!set {[1]: null}",
    "metadata: 5", "public: [1]", "remote: x", "1: 2", "a: 1" + "0" * 5000, "a: " + "9" * 10 + "e9999",
    "a: &a [1,2]\nb: &b [*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b]",
])


@st.composite
def frontmatter(draw: st.DrawFn) -> str:
    body = draw(YAML | UNICODE)
    end = draw(st.sampled_from(["---", "...", "", "--- "]))
    return f"---\n{body}\n{end}" if end else f"---\n{body}"


@st.composite
def metadata_block(draw: st.DrawFn) -> str:
    body = draw(YAML | UNICODE)
    indent = draw(st.sampled_from(["  ", "", "\t", "    "]))
    lines = "\n".join(indent + line for line in body.split("\n"))
    return "metadata:\n" + lines + draw(st.sampled_from(["\n---", "", "\n\n---\nprose"]))


@st.composite
def fence(draw: st.DrawFn) -> str:
    opener = draw(st.sampled_from(["```python", "```", "~~~python", "````python", "```python extra", "```Python",
                                   "``` python", "```py", "```python\t", "   ```python"]))
    code = draw(st.lists(PYTHON | UNICODE, max_size=3).map("\n".join))
    closer = draw(st.sampled_from(["```", "", "~~~", "````", "``", "``` x", "   ```"]))
    return f"{opener}\n{code}\n{closer}" if closer else f"{opener}\n{code}"


@st.composite
def nested_list(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 60))
    marker = draw(st.sampled_from(["- ", "* ", "1. ", "01:QUE ", "- 01:QUE ", "+ "]))
    step = draw(st.sampled_from(["  ", "    ", "\t", " "]))
    text = draw(TITLES)
    return "\n".join(step * i + marker + f"{text} {i}" for i in range(depth))


@st.composite
def import_line(draw: st.DrawFn, root: Path) -> str:
    target = draw(IMPORT_TARGETS).replace("{root}", str(root))
    return draw(st.sampled_from(["", "  ", "\t", "- "])) + "!import " + target


def pieces(root: Path) -> st.SearchStrategy[str]:
    return st.one_of(
        heading(), SUBSECTION, fence(), nested_list(), import_line(root), metadata_block(), UNICODE,
        st.sampled_from(["---", "***", "> quote", "<!-- html -->", "<div>", "    indented code", "", "\\",
                         "\ufeff", "\u2028", "\x0c", "\x85", "#!/usr/bin/env playbooks"]),
    )


@st.composite
def chaos(draw: st.DrawFn, root: Path) -> str:
    """Pieces in any order: most of these die early (no agents, bad frontmatter), and that is tested too."""
    parts = []
    if draw(st.booleans()):
        parts.append(draw(frontmatter()))
    if draw(st.booleans()):
        parts.append("# " + draw(st.sampled_from(["Agent", "Agent:AI", "Agent:Human", "Bad Name!", "ÄI"])))
    parts += draw(st.lists(pieces(root), max_size=12))
    return "\n".join(parts)


GOOD_PYTHON = st.sampled_from([
    "@playbook\nasync def Tool{n}(x: int = 1) -> int:\n    return x",
    "@playbook(triggers=['At the beginning'])\nasync def Start{n}():\n    await Say('user', 'hi')",
    "import json\nLIMIT = 3",
    "await Say('user', 'hello')\nvalue = await Tool1(2)\nawait Return(value)",
    "for i in range(3):\n    await Step('Main:01:QUE')\nawait Yield('user')",
])


@st.composite
def playbook_section(draw: st.DrawFn, n: int, root: Path) -> str:
    good = st.sampled_from([f"Main{n}", f"Do thing {n}", f"Get{n}($x: float = 2.5) -> float",
                            f"public: Pub{n}($c)", f"Task{n}()"])
    title = draw(good | TITLES if draw(st.integers(0, 3)) == 0 else good)
    parts = [f"## {title}", draw(st.sampled_from(["", "Does something.", "A description\nover two lines."]))]
    if draw(st.booleans()):
        parts.append(draw(metadata_block() | st.just("metadata:\n  public: true\n---")))
    if draw(st.booleans()):
        parts += ["### Triggers", draw(st.sampled_from(["- At the beginning", "- T1:BGN When program starts",
                                                        "- When user says hi", ""]) | nested_list())]
    body = draw(st.sampled_from(["steps", "code", "both", "none"]))
    if body in ("steps", "both"):
        parts += ["### Steps", draw(nested_list() | st.just("- 01:QUE Say hello\n- 02:RET Return"))]
    if body in ("code", "both"):
        parts += [draw(st.builds(lambda c: f"```python\n{c}\n```", GOOD_PYTHON | PYTHON) | fence())]
    if draw(st.booleans()):
        parts += ["### Notes", draw(nested_list() | UNICODE)]
    return "\n\n".join(parts)


@st.composite
def structured(draw: st.DrawFn, root: Path) -> str:
    """A plausible program (agents, playbooks, tools) with hostile parts in it and pieces spliced in."""
    parts: list[str] = []
    if draw(st.integers(0, 4)) == 0:
        parts.append(draw(frontmatter() | st.just("---\ntitle: Demo\n---")))
    for a in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["", "", "", ":AI", ":Human", ":MCP", ":ai"]))
        name = draw(st.sampled_from([f"Agent{a}", f"Agent{a}", f"Order Desk {a}", "Agent"]) | TITLES
                    if draw(st.integers(0, 4)) == 0 else st.just(f"Agent{a}"))
        parts += [f"# {name}{kind}", "An agent that helps."]
        if draw(st.integers(0, 3)) == 0:
            parts.append(draw(metadata_block()))
        if draw(st.booleans()):
            code = draw(st.lists(GOOD_PYTHON | PYTHON, min_size=1, max_size=3).map("\n\n".join))
            parts.append("```python\n" + code.replace("{n}", str(a)) + "\n```")
        parts += [draw(playbook_section(n, root)) for n in range(draw(st.integers(0, 3)))]
    for _ in range(draw(st.integers(0, 2))):
        parts.insert(draw(st.integers(0, len(parts))), draw(pieces(root)))
    return "\n\n".join(parts).replace("{n}", "0")


@st.composite
def hostile_program(draw: st.DrawFn, root: Path) -> str:
    text = draw(structured(root) | chaos(root))
    newline = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    return text.replace("\n", newline)


# -- what every outcome must look like --------------------------------------------------------------------


def lines_of(text: str) -> int:
    return len(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def assert_located(exc: ProgramError, main: Path, text: str) -> None:
    """`file:line: what`, the file the main one or one it imports, the line inside that file."""
    message = exc.message
    assert "Traceback" not in message
    assert exc.hint is None or (isinstance(exc.hint, str) and exc.hint)
    match = LOCATED.match(message)
    if match is None:
        assert message.startswith(f"{main}: "), message  # `main.pb: cannot read program: …`
        return
    file, line = match["file"], int(match["line"])
    assert line >= 1, message
    if file == str(main):
        assert line <= lines_of(text), message
    else:
        assert os.path.isfile(file), message  # an imported file (absolute: named as main was)
        assert line <= lines_of(Path(file).read_text(encoding="utf-8", errors="replace")), message


def check_parse(text: str, main: Path) -> Program | None:
    try:
        program = parse_text(text, main)
    except ProgramError as exc:
        assert_located(exc, main, text)
        return None
    assert isinstance(program, Program)
    assert program.agents
    return program


# -- the tests --------------------------------------------------------------------------------------------


def test_each_crash_found_by_this_fuzz_is_now_a_located_error(fuzz_dir: Path) -> None:
    """The inputs that raised ValueError, RecursionError, UnicodeEncodeError or hung before the fixes (and a
    300-character agent name, whose checkpoint directory name was too long for the file system)."""
    main = fuzz_dir / "main.pb"
    cases = {
        "---\na: 2001-02-30\n---\n# A\n## Main\n": "main.pb:2: invalid YAML in frontmatter: day is out of range",
        "---\na: !!int x\n---\n# A\n": "main.pb:2: invalid YAML in frontmatter: invalid literal for int()",
        "---\na: " + "[" * 600 + "\n---\n# A\n": "main.pb:2: invalid YAML in frontmatter: maximum recursion",
        "# A\nmetadata:\n  x: 2001-02-30\n---\n## Main\n": "main.pb:2: invalid YAML in metadata: day is out",
        "# A\nmetadata:\n  x: " + "[" * 600 + "\n---\n## M\n": "main.pb:2: invalid YAML in metadata: maximum",
        "# A\n!import /dev/zero\n## Main\n": "main.pb:2: cannot import '/dev/zero': /dev/zero is not a regular",
        "# A\ud800\n## Main\n": "main.pb:1: not valid Unicode text (lone surrogate U+D800)",
        "# " + "A" * 300 + "\n## Main\n": "main.pb:1: agent name AAAAAAAAAAAAAAAAAAAA… is 300 characters long",
        "# A\n!import lib.pb\x00\n": "main.pb:2: cannot import 'lib.pb\\x00': a file name cannot contain a NUL",
        "# A\n```python\n@playbook(x=" + "-" * 100_000 + "1)\nasync def F(): pass\n```\n":
            "main.pb:3: invalid Python in a python block of agent A: nested too deeply",
    }
    for text, expected in cases.items():
        with pytest.raises(ProgramError) as caught:
            parse_text(text, main)
        assert caught.value.message.startswith(f"{fuzz_dir}/{expected}"), caught.value.message


_written = iter(range(10**9))


def write_program(root: Path, text: str, raw: bytes = b"") -> Path:
    """Keep a generated program as `gen-N.pb` beside the importable files (lone surrogates become the invalid
    UTF-8 they stand for; `raw` bytes go in front): the last test runs the real command on all of them."""
    path = root / f"gen-{next(_written)}.pb"
    path.write_bytes(raw + text.encode("utf-8", "surrogatepass"))
    return path


def generated(root: Path) -> list[Path]:
    return sorted(root.glob("gen-*.pb"), key=lambda p: int(p.stem[4:]))


@fuzz(300)
@given(data=st.data())
def test_parse_text_returns_a_program_or_a_located_error(fuzz_dir: Path, data: st.DataObject) -> None:
    text = data.draw(hostile_program(fuzz_dir), label="program")
    check_parse(text, fuzz_dir / "main.pb")
    write_program(fuzz_dir, text)


@fuzz(200)
@given(text=st.text(max_size=300) | st.text(st.sampled_from("#`-*>!:$()[]{}\n \t~=_\\aZ0"), max_size=300))
def test_any_text_at_all(fuzz_dir: Path, text: str) -> None:
    check_parse(text, fuzz_dir / "main.pb")


RAW_PREFIX = st.sampled_from([b"", b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\x80", b"# A\n\xc3(\n"])


@fuzz(150)
@given(data=st.data())
def test_playbooks_check_in_process_exits_0_or_2(fuzz_dir: Path, data: st.DataObject) -> None:
    path = write_program(fuzz_dir, data.draw(hostile_program(fuzz_dir)), data.draw(RAW_PREFIX))
    as_json = data.draw(st.booleans())
    result = CliRunner().invoke(cli, ["check", str(path), *(["--json"] if as_json else [])],
                                catch_exceptions=False)
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if as_json:
        [report] = json.loads(result.stdout)
        assert report["ok"] is (result.exit_code == 0)
    elif result.exit_code == 2:
        assert result.stderr.startswith("❌ "), result.stderr


def test_the_real_command_on_every_generated_file(fuzz_dir: Path) -> None:
    """`playbooks check` in a subprocess on the hundreds of files the tests above generated: one report per
    file, exit 0 or 2, no traceback. Run on its own, it has the two generating tests make them first."""
    if len(generated(fuzz_dir)) < 300:
        test_parse_text_returns_a_program_or_a_located_error(fuzz_dir)
        test_playbooks_check_in_process_exits_0_or_2(fuzz_dir)
    paths = [str(p) for p in generated(fuzz_dir)]
    assert len(paths) >= 300
    script = Path(sys.executable).parent / "playbooks"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "playbooks_cli.main"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYBOOKS_")}
    done = subprocess.run([*command, "check", "--json", *paths], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env=env, cwd=fuzz_dir)
    assert done.returncode in (0, 2), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    report = json.loads(done.stdout)
    assert [item["program"] for item in report] == paths
    assert done.returncode == (0 if all(item["ok"] for item in report) else 2)
    for item in report:
        if not item["ok"]:
            assert item["error"].startswith(item["program"]) or LOCATED.match(item["error"]), item
