"""The code's shape: no import cycles, no oversized modules, one home each."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("imports", "connectors", "locking")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules ``path`` imports at load time (not in functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()

    def visit(body):
        for node in body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.add(alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                submodules = {f"{module}.{alias.name}" for alias in node.names}
                # ``from package import submodule`` depends on the submodule
                # (its package is its parent, not an import of its own).
                found.update(submodules & known)
                if submodules - known:
                    found.add(module)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue  # read by type checkers only, never imported
            elif isinstance(node, ast.If | ast.Try | ast.With):
                # Module-level conditionals and try blocks run at import.
                for field in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, field, []):
                        visit(getattr(child, "body", [child]))
            elif isinstance(node, ast.ClassDef):
                visit(node.body)

    visit(tree.body)
    resolved = set()
    for module in found:
        while module and module not in known:
            module = module.rpartition(".")[0]
        if module and module != name:
            resolved.add(module)
    return resolved


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    """The checker itself sees a cycle (so a pass below means something)."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    """No module of imports/, connectors/ or locking/ imports itself back.

    A package's ``__init__`` importing its own modules is a cycle only if
    one of them imports the package back.
    """
    graph = import_graph()
    assert len(graph) > 40
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph))


def test_layers_point_one_way():
    """locking/ imports no Django nor project code; connectors/ no imports/."""
    graph = import_graph()
    for module, targets in graph.items():
        if module.startswith("locking"):
            assert all(t.startswith("locking") for t in targets), module
            source = _modules()[module].read_text()
            assert not re.search(r"^\s*(from|import) django", source, re.M), module
        if module.startswith("connectors"):
            assert not any(t.startswith("imports") for t in targets), module


@pytest.mark.parametrize("name", sorted(_modules()))
def test_module_is_small(name):
    """No module over about 400 lines: each holds one concept."""
    lines = len(_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines"


def _status_writes(tree: ast.AST) -> list[int]:
    """Lines that write a ``status``: ``.update(status=…)``, ``.create(…)``
    or a model built with one, ``x.status = …``, ``update_fields`` naming it.
    """
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = getattr(func, "attr", None) or getattr(func, "id", None)
            keywords = {k.arg for k in node.keywords}
            if called in {"update", "create", "ImportRun", "bulk_create"} and (
                "status" in keywords
            ):
                lines.append(node.lineno)
            for keyword in node.keywords:
                if keyword.arg == "update_fields" and "status" in ast.unparse(
                    keyword.value
                ):
                    lines.append(node.lineno)
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Attribute) and leaf.attr == "status":
                        lines.append(node.lineno)
    return lines


def test_the_status_write_finder_finds_writes():
    """The checker sees each shape of a status write."""
    source = (
        "runs.update(status='failed')\n"
        "run.status = 'failed'\n"
        "run.status, run.x = 'a', 1\n"
        "run.save(update_fields=['status'])\n"
        "ImportRun.objects.filter(status='queued').count()\n"
    )
    assert sorted(_status_writes(ast.parse(source))) == [1, 2, 3, 4]


def test_only_transitions_write_a_run_status():
    """Nothing but imports/services/transitions.py writes a run's status."""
    offenders = []
    for name, path in _modules().items():
        if not name.startswith("imports") or name == "imports.services.transitions":
            continue
        source = path.read_text()
        for number in _status_writes(ast.parse(source)):
            line = source.splitlines()[number - 1].strip()
            offenders.append(f"{name}:{number}: {line}")
    assert offenders == []


def test_redis_keys_are_named_in_one_place():
    """Outside imports/locks.py and locking/, no code spells a Redis key."""
    offenders = []
    pattern = re.compile(r"IMPORTHUB_REDIS_PREFIX|[\"']lock:|scan_iter")
    for name, path in _modules().items():
        if name == "imports.locks" or name.startswith("locking"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert offenders == []
