"""The package's shape (issue 17): sub-packages along the pipeline, each importing only the ones below it,
and no import cycle between modules. Read from the source (ast), so nothing is imported to check it."""

from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "nse_tf")
# bottom to top: a module may import its own sub-package and those before it
LAYERS = ("utils", "data", "space", "nets", "export", "cost", "train", "search", "zoo", "cli")


def modules() -> dict[str, str]:
    found = {}
    for dirpath, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, name), ROOT)[:-3].replace(os.sep, ".")
                found[rel.removesuffix(".__init__")] = os.path.join(dirpath, name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the nse_tf modules it imports anywhere in its body (deferred imports included)."""
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # "from nse_tf.x import y" imports the module nse_tf.x.y when there is one, else nse_tf.x
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module
                           for a in node.names]
            else:
                continue
            graph[mod].update(t for t in targets if t in mods and t != mod)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_module_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 40 and any(graph.values())  # the parse found the package and its imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_sub_packages_import_only_downward():
    def layer(module: str) -> int | None:
        if module == "nse_tf":  # the user API (create_model, ...) sits with the command lines, on top
            return LAYERS.index("cli")
        parts = module.split(".")
        return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None

    upward = sorted(f"{mod} imports {dep}" for mod, deps in import_graph().items() for dep in deps
                    if layer(mod) is not None and layer(dep) is not None and layer(dep) > layer(mod))
    assert upward == []
    assert {m.split(".")[1] for m in modules() if m.count(".") >= 1} == set(LAYERS), "a sub-package is not layered"
