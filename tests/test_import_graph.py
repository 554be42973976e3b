"""Layers point one way: every import inside the package goes down the layer stack, and no modules
import each other in a circle, counting the imports made inside functions (the lazy ones too).

Layers, low to high (a module may import its own layer and the ones below):

====  =====================================================================
0     ``version.py``
1     ``core/``
2     ``models/`` and ``installer/`` (peers; the installer imports only ``core/``)
3     ``earthengine/`` and ``inference/`` (peers: neither imports the other)
4     ``training/``
5     ``diagnostics.py`` (reports on models and Earth Engine)
6     ``cli/``, ``__main__.py``
7     ``provider/settings.py`` (and the ``provider`` package itself)
8     ``algorithms/``
9     ``provider/provider.py`` (registers the algorithms)
10    ``plugin.py``, ``__init__.py``
====  =====================================================================

The imports are read with :mod:`ast` from the source, so nothing is imported (no QGIS, no torch).
The architecture table names its builders as ``"module:function"`` strings (imported when a network
is built): each counts as an import of the builder's module by the table's module.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "satvision"
#: folders that are not part of the package (besides hidden ones and __pycache__)
SKIPPED = {"tests", "benchmarks", "scripts", "resources", "demo-output", "requirements", "__pycache__"}

#: (path prefix, layer, group); the first matching prefix wins, so longer ones come first.
#: Modules of the same layer but another group are peers and must not import each other.
LAYERS = [
    ("version", 0, "version"),
    ("core", 1, "core"),
    ("models", 2, "models"),
    ("installer", 2, "installer"),  # installs packages from QGIS; imports only core/, used by provider and algorithms
    ("earthengine", 3, "earthengine"),
    ("inference", 3, "inference"),
    ("training", 4, "training"),
    ("diagnostics", 5, "diagnostics"),
    ("cli", 6, "cli"),
    ("__main__", 6, "cli"),
    ("provider.settings", 7, "provider.settings"),
    ("provider.provider", 9, "provider.provider"),
    ("provider", 7, "provider.settings"),  # the package's __init__: a docstring
    ("algorithms", 8, "algorithms"),
    ("plugin", 10, "plugin"),
    ("", 10, "plugin"),  # the package root, __init__.py
]

#: Imports allowed against the rules: (importing module, imported module) -> why.
#: QGIS needs the provider to register the algorithms, and the algorithms read the provider's
#: settings; that is not a circle as long as the two halves of the provider stay in separate
#: modules (settings.py below the algorithms, provider.py above them), so no exception is needed.
#: Add one here only with the reason; an exception that matches no import fails the test.
EXCEPTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    source: str  # dotted module name without the package prefix ("" for the root)
    target: str
    path: str  # file relative to the repository root
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} -> {display(self.target)}"


def display(module: str) -> str:
    return f"{PACKAGE}.{module}" if module else PACKAGE


def package_modules() -> dict[str, Path]:
    """Dotted name (without ``satvision.``) -> file, for every module of the package."""
    modules: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if any(part in SKIPPED or part.startswith(".") for part in parts[:-1]):
            continue
        names = list(parts[:-1]) + ([] if parts[-1] == "__init__.py" else [path.stem])
        modules[".".join(names)] = path
    return modules


def layer_of(module: str) -> tuple[int, str]:
    for prefix, layer, group in LAYERS:
        if module == prefix or (prefix and module.startswith(prefix + ".")):
            return layer, group
    raise AssertionError(f"no layer for {display(module)}: add it to LAYERS")


def _strip_package(name: str) -> str | None:
    """``satvision.x.y`` -> ``x.y``; ``None`` for other packages."""
    if name == PACKAGE:
        return ""
    if name.startswith(PACKAGE + "."):
        return name[len(PACKAGE) + 1:]
    return None


def _join(*parts: str | None) -> str:
    return ".".join(part for part in parts if part)


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> tuple[list[Import], list[str]]:
    """The package's modules that ``module`` imports anywhere in its file, and the imports that
    name no module of the package (reported as unresolved)."""
    found: list[Import] = []
    unresolved: list[str] = []
    relative_path = path.relative_to(ROOT).as_posix()
    is_package = path.name == "__init__.py"
    here = module.split(".") if module else []
    package = here if is_package else here[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [name for name in (_strip_package(alias.name) for alias in node.names) if name is not None]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 > len(package):
                    unresolved.append(f"{relative_path}:{node.lineno} -> {'.' * node.level}{node.module or ''} (above the package)")
                    continue
                base = _join(".".join(package[:len(package) - node.level + 1]), node.module)
            else:
                base = _strip_package(node.module or "")
                if base is None:
                    continue
            # ``from package import name``: the submodule when there is one, else the package itself
            targets = [_join(base, alias.name) if _join(base, alias.name) in modules else base for alias in node.names]
        for target in dict.fromkeys(targets):
            if target not in modules:
                unresolved.append(f"{relative_path}:{node.lineno} -> {display(target)}")
            elif target != module:
                found.append(Import(module, target, relative_path, node.lineno))
    return found, unresolved


def builder_imports(modules: dict[str, Path]) -> tuple[list[Import], list[str]]:
    """The architecture table's builders (``ArchitectureSpec(id, task, description, ".segmentation:build_unet", ...)``
    in ``models/architectures.py``): imports of their modules by the table's module (the builder must exist)."""
    table = modules.get("models.architectures")
    if table is None:
        return [], []
    where = table.relative_to(ROOT).as_posix()
    found: list[Import] = []
    unresolved: list[str] = []
    for node in ast.walk(ast.parse(table.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "ArchitectureSpec"):
            continue
        named = {keyword.arg: keyword.value for keyword in node.keywords}
        builder = named.get("builder", node.args[3] if len(node.args) > 3 else None)
        if not (isinstance(builder, ast.Constant) and isinstance(builder.value, str) and ":" in builder.value):
            unresolved.append(f"{where}:{node.lineno} -> builder not named as a literal \"module:function\"")
            continue
        module_name, _, function = builder.value.partition(":")
        target = _join("models", module_name.lstrip(".")) if module_name.startswith(".") else _strip_package(module_name)
        functions = set()
        if target in modules:
            tree = ast.parse(modules[target].read_text(encoding="utf-8"))
            functions = {definition.name for definition in tree.body if isinstance(definition, ast.FunctionDef)}
        if function not in functions:
            unresolved.append(f"{where}:{builder.lineno} -> builder {builder.value!r} (no such function)")
        else:
            found.append(Import("models.architectures", target, where, builder.lineno))
    return found, unresolved


def import_graph() -> tuple[list[Import], list[str]]:
    modules = package_modules()
    edges, unresolved = builder_imports(modules)
    for module, path in modules.items():
        found, missing = imports_of(module, path, modules)
        edges += found
        unresolved += missing
    return edges, unresolved


def strongly_connected(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative, so deep chains need no recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(edges.get(successor, ())))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
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


def _checked_edges() -> list[Import]:
    edges, _ = import_graph()
    return [edge for edge in edges if (edge.source, edge.target) not in EXCEPTIONS]


def test_every_import_names_a_module_of_the_package():
    """An import the graph cannot place would slip past the rules below."""
    _, unresolved = import_graph()
    assert not unresolved, "imports of the package that name no module of it:\n  " + "\n  ".join(unresolved)


def test_every_exception_is_still_needed():
    edges, _ = import_graph()
    present = {(edge.source, edge.target) for edge in edges}
    stale = [f"{display(source)} -> {display(target)}" for source, target in EXCEPTIONS if (source, target) not in present]
    assert not stale, "exceptions that match no import any more (remove them):\n  " + "\n  ".join(stale)


def test_imports_point_down_the_layers():
    offending = []
    for edge in sorted(_checked_edges(), key=lambda edge: (edge.path, edge.line)):
        source_layer, source_group = layer_of(edge.source)
        target_layer, target_group = layer_of(edge.target)
        if target_layer > source_layer or (target_layer == source_layer and target_group != source_group):
            kind = "peer" if target_layer == source_layer else "upward"
            offending.append(f"{edge}  ({kind}: {source_group} [layer {source_layer}] imports {target_group} [layer {target_layer}])")
    assert not offending, f"{len(offending)} import(s) against the layers:\n  " + "\n  ".join(offending)


def test_no_import_circles():
    edges = _checked_edges()
    successors: dict[str, set[str]] = {}
    for edge in edges:
        successors.setdefault(edge.source, set()).add(edge.target)
    circles = [component for component in strongly_connected(sorted(package_modules()), successors) if len(component) > 1]
    lines = []
    for component in circles:
        members = set(component)
        lines.append("circle of " + ", ".join(display(module) for module in component) + ":")
        inside = [edge for edge in edges if edge.source in members and edge.target in members]
        lines += [f"    {edge}" for edge in sorted(inside, key=lambda edge: (edge.path, edge.line))]
    assert not circles, f"{len(circles)} import circle(s):\n  " + "\n  ".join(lines)


def test_the_graph_sees_lazy_and_relative_imports():
    """The parser finds what the rules rely on: a function-level relative import of a submodule
    (the provider loads the algorithms inside ``loadAlgorithms``), a package-level one and the
    architecture table's builders."""
    edges, _ = import_graph()
    pairs = {(edge.source, edge.target) for edge in edges}
    assert ("provider.provider", "algorithms") in pairs
    assert ("algorithms", "algorithms.diagnose") in pairs
    assert ("provider.provider", "provider.settings") in pairs
    assert ("models.architectures", "models.segmentation") in pairs  # a builder named in the table
    assert all(layer_of(module) for module in package_modules())
