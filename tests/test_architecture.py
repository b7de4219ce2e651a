"""The house rules on structure, checked on the source with `ast` (nothing is imported).

The import graph joins every module of `bot/`, `actions/` and `bench/` to the project modules it
imports, anywhere in the file (also inside functions), except inside `if TYPE_CHECKING:` blocks.
`import a.b.c` and `from a.b import c` point at the most specific project module named (`a.b.c`
when it is a module, else `a.b`); relative imports are resolved against the importing module's
package. Checked: no import cycle; the gateway (`bot/web`) reaches no `actions` module, even
indirectly; no `bot` module imports `actions` or `bench`; no module of `bot/` or `actions/` is over
800 lines.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from bot.config import PROJECT_ROOT

PACKAGES = ("bot", "actions", "bench")
MAX_LINES = 800

Graph = Mapping[str, set[str]]


def module_name(path: Path, root: Path) -> str:
    """`bot/web/app.py` -> `bot.web.app`; `bot/web/__init__.py` -> `bot.web`."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_files(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Every project module under `root`, by dotted name."""
    files: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                files[module_name(path, root)] = path
    return files


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(nodes: Iterable[ast.AST]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements anywhere in `nodes`, skipping the bodies of `if TYPE_CHECKING:`."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _runtime_imports(node.orelse)
        else:
            yield from _runtime_imports(ast.iter_child_nodes(node))


def _package_of(module: str, is_package: bool) -> str:
    return module if is_package else module.rpartition(".")[0]


def _most_specific(name: str, modules: Iterable[str]) -> str | None:
    """`name` if it is a project module, else its longest prefix that is one, else None."""
    known = set(modules)
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


def imported_modules(module: str, path: Path, modules: Iterable[str]) -> set[str]:
    """The project modules `module` (at `path`) imports at run time."""
    known = set(modules)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _package_of(module, path.name == "__init__.py")
    targets: set[str] = set()
    for node in _runtime_imports([tree]):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names = [f"{source}.{alias.name}" for alias in node.names]
        for name in names:
            target = _most_specific(name, known)
            if target is not None and target != module:
                targets.add(target)
    return targets


def import_graph(
    root: Path = PROJECT_ROOT, packages: Iterable[str] = PACKAGES
) -> dict[str, set[str]]:
    """Each project module -> the project modules it imports at run time."""
    files = module_files(root, packages)
    return {module: imported_modules(module, path, files) for module, path in files.items()}


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's strongly connected components, each sorted (iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def _shortest_path(graph: Graph, start: str, goal: str, within: set[str]) -> list[str]:
    """Shortest path start -> ... -> goal through `within` (BFS); [] when there is none."""
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph.get(node, ())):
            if child == goal:
                path = [child, node]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])  # type: ignore[arg-type]
                return path[::-1]
            if child in within and child not in previous:
                previous[child] = node
                queue.append(child)
    return []


def tangles(graph: Graph) -> list[list[str]]:
    """The groups of modules that import each other (directly or through one another), sorted."""
    return [
        component
        for component in strongly_connected(graph)
        if len(component) > 1 or component[0] in graph.get(component[0], ())
    ]


def find_cycles(graph: Graph) -> list[list[str]]:
    """One shortest cycle per tangle, through its first module, e.g. ['a', 'b', 'a']."""
    return [_shortest_path(graph, group[0], group[0], set(group)) for group in tangles(graph)]


def reaching(graph: Graph, sources: Iterable[str], forbidden: str) -> list[list[str]]:
    """Shortest import chains from `sources` into package `forbidden`, one per module reached."""
    previous: dict[str, str | None] = dict.fromkeys(sorted(sources))
    queue = deque(previous)
    chains = []
    while queue:
        node = queue.popleft()
        for child in sorted(graph.get(node, ())):
            if child in previous:
                continue
            previous[child] = node
            if not _in_package(child, forbidden):
                queue.append(child)
                continue
            chain = [child]
            while previous[chain[-1]] is not None:
                chain.append(previous[chain[-1]])  # type: ignore[arg-type]
            chains.append(chain[::-1])
    return chains


def _in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _show(chains: Iterable[list[str]]) -> str:
    return "\n".join("  " + " -> ".join(chain) for chain in chains)


# -- the cycle finder and the graph builder on synthetic input: they can fail ---------------------


def test_cycle_finder_reports_each_cycle_once_and_nothing_on_a_dag() -> None:
    graph = {
        "a": {"b"},
        "b": {"c"},
        "c": {"a", "d"},
        "d": set(),
        "e": {"e"},
        "f": {"d", "b"},
    }
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["e", "e"]]
    assert tangles(graph) == [["a", "b", "c"], ["e"]]
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_cycle_finder_gives_the_shortest_cycle_of_a_tangle() -> None:
    graph = {"a": {"b"}, "b": {"c", "a"}, "c": {"a"}}
    assert find_cycles(graph) == [["a", "b", "a"]]
    assert tangles(graph) == [["a", "b", "c"]]


def test_graph_resolves_relative_and_from_imports_and_skips_type_checking(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from . import b\nfrom .sub import c as _c\n",
        "pkg/b.py": (
            "from typing import TYPE_CHECKING\n"
            "import json\n"
            "if TYPE_CHECKING:\n"
            "    from pkg.a import thing\n"
            "else:\n"
            "    import pkg.sub\n"
            "def later():\n"
            "    from pkg.sub.c import VALUE\n"
        ),
        "pkg/sub/__init__.py": "from ..b import later\n",
        "pkg/sub/c.py": "import pkg.sub.missing\nfrom pkg import b\n",
        "other/__init__.py": "from pkg.sub.c import VALUE\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path, ("pkg", "other"))
    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg.b", "pkg.sub.c"},
        "pkg.b": {"pkg.sub", "pkg.sub.c"},
        "pkg.sub": {"pkg.b"},
        "pkg.sub.c": {"pkg.sub", "pkg.b"},
        "other": {"pkg.sub.c"},
    }
    assert find_cycles(graph) == [["pkg.b", "pkg.sub", "pkg.b"]]
    assert reaching(graph, ["other"], "pkg.b") == [["other", "pkg.sub.c", "pkg.b"]]
    assert reaching(graph, ["pkg.a", "other"], "pkg.sub") == [
        ["other", "pkg.sub.c"],
        ["pkg.a", "pkg.b", "pkg.sub"],
    ]


# -- the project -----------------------------------------------------------------------------------


def test_no_import_cycle_between_project_modules() -> None:
    graph = import_graph()
    cycles = [
        f"{' -> '.join(cycle)}   (tangle: {', '.join(group)})"
        for cycle, group in zip(find_cycles(graph), tangles(graph), strict=True)
    ]
    assert not cycles, (
        "import cycles (break them or move type-only imports under TYPE_CHECKING):\n"
        + "\n".join("  " + cycle for cycle in cycles)
    )


def test_the_gateway_reaches_no_action_module() -> None:
    graph = import_graph()
    gateway = [module for module in graph if _in_package(module, "bot.web")]
    chains = reaching(graph, gateway, "actions")
    assert not chains, "bot/web imports the action package:\n" + _show(chains)


def test_bot_imports_neither_actions_nor_bench() -> None:
    graph = import_graph()
    wrong = [
        [module, target]
        for module, targets in sorted(graph.items())
        if _in_package(module, "bot")
        for target in sorted(targets)
        if _in_package(target, "actions") or _in_package(target, "bench")
    ]
    assert not wrong, "the product package imports a higher layer:\n" + _show(wrong)


def test_no_module_of_bot_or_actions_is_over_800_lines() -> None:
    too_long = {
        str(path.relative_to(PROJECT_ROOT)): lines
        for module, path in module_files(PROJECT_ROOT, ("bot", "actions")).items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"
