"""The core's imports point one way: cells <- engines <- layers, and none of them reaches up to
models, tasks, training or cli.

Every ``import`` in rnnlab (at module level or inside a function) is read from the source; a test
fails on an import of the core that points up, or on a cycle among the core's modules.
"""
import ast
import pathlib

import rnnlab

ROOT = pathlib.Path(rnnlab.__file__).parent
#: the layers of the design, lowest first; a module of a layer imports only from its own or lower
ORDER = ("cells", "engines", "layers", "models", "tasks", "training", "cli")


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: pathlib.Path):
    """The rnnlab modules ``path`` imports (each ``from X import y`` also as X.y when that is a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            mod = (base + "." + node.module if node.module else base) if node.level else node.module
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            if t and t.split(".")[0] == "rnnlab" and t in MODULES:
                yield t


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def layer_of(module: str):
    parts = module.split(".")
    return ORDER.index(parts[1]) if len(parts) > 1 and parts[1] in ORDER else None


def test_no_import_points_up_the_layers():
    upward = []
    for name, path in MODULES.items():
        mine = layer_of(name)
        if mine is None or mine > ORDER.index("layers"):
            continue
        for target in imports_of(path):
            theirs = layer_of(target)
            if theirs is not None and theirs > mine:
                upward.append(f"{name} imports {target}")
    assert not upward, "imports pointing up cells <- engines <- layers <- ...: " + "; ".join(upward)


def test_core_modules_import_no_cycle():
    graph = {name: set(imports_of(path)) - {name} for name, path in MODULES.items()}
    # a package's __init__ re-exports its modules: an edge from a module to its own package is
    # the module reaching a sibling through the package, counted as the edges of the __init__
    state, cycle = {}, []

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if nxt.startswith(node + "."):  # a package importing its own modules
                continue
            if state.get(nxt) == 1:
                cycle.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state and layer_of(node) is not None and layer_of(node) <= ORDER.index("layers"):
            visit(node, [])
    assert not cycle, "import cycles: " + "; ".join(" -> ".join(c) for c in cycle[:5])


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rule above can fail: a cells module importing layers is found."""
    fake = ROOT / "cells" / "cell.py"
    found = [t for t in imports_of(fake)]
    assert all(layer_of(t) in (None, 0) for t in found)
    src = tmp_path / "x.py"
    src.write_text("from ..layers.recurrent_layer import RecurrentLayer\n")
    # parse the fake source as if it were rnnlab/cells/x.py
    tree_targets = []
    for node in ast.walk(ast.parse(src.read_text())):
        if isinstance(node, ast.ImportFrom):
            tree_targets.append("rnnlab." + node.module)
    assert [layer_of(t) for t in tree_targets] == [ORDER.index("layers")]
