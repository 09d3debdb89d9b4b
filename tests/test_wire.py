"""One home for the wire: the snippet's table of wire names (``const WIRE =
{...}`` at the top of snippet/reload.js) agrees with sigreload/contract/wire.py,
and no Python module spells a wire name itself."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sigreload.contract import wire

ROOT = Path(__file__).resolve().parent.parent
SNIPPET = ROOT / "snippet" / "reload.js"
PACKAGE = ROOT / "sigreload"
TABLE = re.compile(r"\bconst\s+WIRE\s*=\s*(?:Object\.freeze\(\s*)?\{(?P<body>[^}]*)\}")
STRING = r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'"
ENTRY = re.compile(rf"(?P<key>[A-Za-z_$][\w$]*|{STRING})\s*:\s*(?P<value>{STRING})?")


def names() -> dict[str, str]:
    """wire.py's constants: {NAME: value}."""
    return {k: v for k, v in vars(wire).items() if k.isupper() and isinstance(v, str)}


def table() -> dict[str, str] | None:
    """The snippet's WIRE table ({key: value}), or None when it has none yet."""
    found = TABLE.search(SNIPPET.read_text())
    if found is None:
        return None
    body = re.sub(r"//[^\n]*", "", found["body"])  # comments: one per entry, as in wire.py
    entries = {}
    for entry in ENTRY.finditer(body):
        key = entry["key"].strip("\"'")
        assert entry["value"] is not None, f"WIRE.{key} in snippet/reload.js is not a string literal"
        entries[key] = ast.literal_eval(entry["value"])
    return entries


def test_snippet_table_agrees_with_wire_py() -> None:
    """Every key of the snippet's table is a wire.py constant with the same value."""
    snippet = table()
    assert snippet, "snippet/reload.js has no `const WIRE = {...}` table, or an empty one"
    ours = names()
    missing = sorted(set(snippet) - set(ours))
    assert not missing, f"in the snippet's WIRE table, not in sigreload/contract/wire.py: {missing}"
    differ = {k: (v, ours[k]) for k, v in snippet.items() if not same(k, v, ours[k])}
    assert not differ, f"WIRE values that differ (snippet, wire.py): {differ}"


def same(key: str, snippet: str, ours: str) -> bool:
    """Whether the snippet's value is wire.py's (a header's name in any case: HTTP's are case-insensitive)."""
    return snippet.lower() == ours.lower() if key.endswith("_HEADER") else snippet == ours


def test_table_parser_reads_a_table() -> None:
    """The parser above reads keys, both quotes and comments (so the first test cannot pass by reading nothing)."""
    text = """const WIRE = Object.freeze({
      PREFIX: "/_sigreload/", // everything under it is sigreload's
      'EDIT_COOKIE': 'sigreload-edit',
    });"""
    found = TABLE.search(text)
    assert found is not None
    body = re.sub(r"//[^\n]*", "", found["body"])
    assert {e["key"].strip("\"'"): ast.literal_eval(e["value"]) for e in ENTRY.finditer(body)} == {
        "PREFIX": "/_sigreload/", "EDIT_COOKIE": "sigreload-edit"}


def spelled(value: str) -> bool:
    """Whether a string in code is a wire name spelled out (paths, headers, cookies; not bare words)."""
    ours = {v for v in names().values() if v.startswith(("/", "X-")) or "sigreload-" in v}
    return value in ours or value.startswith(wire.PREFIX)


def test_python_spells_no_wire_name_itself() -> None:
    """Outside wire.py, no module's code holds a wire path, header or cookie name as a string."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "contract" / "wire.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        found += [f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and id(node) not in docstrings and spelled(node.value)]
    assert not found, "wire names spelled outside sigreload/contract/wire.py:\n" + "\n".join(found)
