"""The connectors package's modules point one way and never at imports/."""

import ast
from pathlib import Path

import connectors

PACKAGE = Path(connectors.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.add(f"connectors.{node.module}" if node.module else "connectors")
            else:
                found.add(node.module or "")
    return found


def graph() -> dict[str, set[str]]:
    modules = {f"connectors.{p.stem}": p for p in PACKAGE.glob("*.py")}
    return {
        name: {m for m in imported_modules(path) if m in modules and m != name}
        for name, path in modules.items()
    }


def test_connectors_never_import_the_imports_app():
    """connectors/ is usable without imports/: no module of it imports one."""
    for path in PACKAGE.rglob("*.py"):
        offending = {
            m
            for m in imported_modules(path)
            if m == "imports" or m.startswith("imports.")
        }
        assert not offending, (path, offending)


def test_the_modules_form_no_cycle():
    """Following imports from any module never leads back to it."""
    edges = graph()

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in edges[start]:
            if nxt == target or (
                nxt not in seen and reaches(nxt, target, seen | {nxt})
            ):
                return True
        return False

    cycles = [name for name in edges if reaches(name, name, {name})]
    assert cycles == []


def test_the_layers():
    """messages <- exceptions <- options, secrets <- base <- connectors <-
    registry <- rest."""
    edges = graph()
    assert edges["connectors.messages"] == set()
    assert edges["connectors.exceptions"] <= {"connectors.messages"}
    assert edges["connectors.secrets"] == set()
    assert edges["connectors.base"] <= {"connectors.secrets", "connectors.exceptions"}
    for name in ("connectors.csv", "connectors.http_json", "connectors.sql"):
        assert "connectors.registry" not in edges[name]
        assert "connectors.models" not in edges[name]
