"""The package's shape: its imports form no cycle, and each stage imports only what it should.

The import graph is read from the source (every ``import`` statement, those inside functions
included, but not those under ``if TYPE_CHECKING:``), so the test needs nothing to be importable.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "symgate"


def module_name(path: Path) -> str:
    parts = ["symgate", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(name: str) -> set[str]:
    """Every module (of the package or not) that ``name`` imports."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = ".".join(p for p in (base if node.level else "", node.module or "") if p)
            for alias in node.names:  # `from . import cache` imports the module symgate.jit.cache
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    return found


GRAPH = {name: {m for m in imports_of(name) if m in MODULES} for name in MODULES}


def closure(name: str) -> set[str]:
    """The modules ``name`` imports, directly or through package modules, third-party ones included."""
    seen, todo = set(), [name]
    while todo:
        module = todo.pop()
        for imported in imports_of(module) if module in MODULES else ():
            if imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return seen


def test_the_package_has_no_import_cycle():
    """Tarjan's strongly connected components: any with more than one module is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in GRAPH[node]:
                cycles.append(sorted(component))

    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    assert cycles == [], f"import cycles: {cycles}"


def test_the_symbolic_core_does_not_import_the_inspection_tools():
    for stage in ("symgate.frontend", "symgate.symbolic", "symgate.codegen"):
        for name in (n for n in MODULES if n == stage or n.startswith(stage + ".")):
            bad = sorted(m for m in closure(name) if m.startswith("symgate.inspect"))
            assert bad == [], f"{name} imports {bad}"


def test_the_calling_convention_and_dtypes_need_neither_sympy_nor_jinja():
    """The cache and the runtime read a kernel's interface and dtype without the symbolic stages."""
    for name in ("symgate.interface", "symgate.dtypes"):
        heavy = sorted(m for m in closure(name) if m.split(".")[0] in ("sympy", "jinja2"))
        assert heavy == [], f"{name} imports {heavy}"
        assert "symgate" not in closure(name), f"{name} imports the package (and with it every stage)"


def test_the_graph_sees_the_imports_it_should():
    """The walker itself: it finds relative, dotted and ``from . import`` imports."""
    assert "symgate.frontend.cell" in GRAPH["symgate.symbolic.derive"]
    assert "symgate.jit.sanitize" in GRAPH["symgate.jit.cache"]
    assert "symgate.interface" in GRAPH["symgate.runtime.kernel"]
