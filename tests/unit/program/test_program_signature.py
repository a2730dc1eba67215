from __future__ import annotations

import pytest

from playbooks_worker.errors import ProgramError
from playbooks_worker.program.model import Param, SourceLocation
from playbooks_worker.program.signature import camel_case, parse_signature

HERE = SourceLocation("main.pb", 7)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Order Support Agent", "OrderSupportAgent"),
        ("Magi_Gaspar", "MagiGaspar"),
        ("HelloWorld", "HelloWorld"),
        ("Hello world demo", "HelloWorldDemo"),
        ("Tax accountant", "TaxAccountant"),
        ("hello-world", "HelloWorld"),
        ("getHTTPStatus", "GetHTTPStatus"),
    ],
)
def test_camel_case(text: str, name: str) -> None:
    assert camel_case(text) == name


@pytest.mark.parametrize(
    ("text", "name", "params", "returns"),
    [
        ("Main", "Main", [], None),
        ("Main()", "Main", [], None),
        ("Main() -> None", "Main", [], "None"),
        ("Hello world demo", "HelloWorldDemo", [], None),
        ("Get tax rate($gross_income)", "GetTaxRate", [Param("gross_income", is_state=True)], None),
        (
            "Name($a, b: int = 10, $c:str) -> float",
            "Name",
            [Param("a", is_state=True), Param("b", "int", "10"), Param("c", "str", is_state=True)],
            "float",
        ),
        ("X($num:int=10) -> str", "X", [Param("num", "int", "10", is_state=True)], "str"),
        ("ProcessMe($report: str) -> int", "ProcessMe", [Param("report", "str", is_state=True)], "int"),
        (
            "Pick(options: dict = {'a': 1, 'b': 2}, sep: str = \", \")",
            "Pick",
            [Param("options", "dict", "{'a': 1, 'b': 2}"), Param("sep", "str", '", "')],
            None,
        ),
        (
            "Lookup(items: list[str], n=3,)",
            "Lookup",
            [Param("items", "list[str]"), Param("n", None, "3")],
            None,
        ),
        ("Summarize -> str", "Summarize", [], "str"),
    ],
)
def test_parse_signature(text: str, name: str, params: list[Param], returns: str | None) -> None:
    assert parse_signature(text, HERE) == (name, params, returns)


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("Main(", "unbalanced parentheses"),
        ("Main(a b)", "cannot read parameter 'a b'"),
        ("Main(a, a)", "parameter 'a' appears twice"),
        ("Main() returns", "unexpected 'returns'"),
        ("Main() ->", "without a return type"),
        ("123 go", "does not make a name"),
        ("Café", "does not make a name"),
        ("(x)", "needs a name"),
    ],
)
def test_bad_signatures_name_the_line(text: str, what: str) -> None:
    with pytest.raises(ProgramError) as info:
        parse_signature(text, HERE)
    assert info.value.message.startswith("main.pb:7: ")
    assert what in info.value.message
    assert info.value.hint
