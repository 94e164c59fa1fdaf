"""Import layering (DESIGN.md section 2): a module imports only from its own layer or layers above it
(lower numbers), so components stay reusable and heavy stacks stay out of light ones."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rlaif"

LAYERS = {
    "rlaif": 0,
    "rlaif.errors": 0,
    "rlaif.records": 0,
    "rlaif.config": 0,
    "rlaif.prompts": 0,
    "rlaif.tiny_model": 0,
    "rlaif.progress": 0,
    "rlaif.processes": 0,
    "rlaif.files": 0,
    "rlaif.plugins": 0,
    "rlaif.model_import": 0,
    "rlaif.instructions": 0,
    "rlaif.engines": 1,
    "rlaif.sandbox": 1,
    "rlaif.generation": 1,  # 1.5: between engines and judges; may import engines, never judges
    "rlaif.judges": 2,
    "rlaif.tasks": 2,
    "rlaif.code": 2,
    "rlaif.feedback": 3,
    "rlaif.pairs": 3,
    "rlaif.train": 4,
    "rlaif.pipeline": 5,
    "rlaif.demo": 5,
    "rlaif.commands": 6,
    "rlaif.cli": 6,
}


def layer_of(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in LAYERS:
            return LAYERS[name]
    raise AssertionError(f"module {module} has no layer: add it to LAYERS")


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__")
        yield name, path


def test_every_import_respects_the_layers():
    violations = []
    for name, path in modules():
        own = layer_of(name)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                if target == "rlaif" or target.startswith("rlaif."):
                    if layer_of(target) > own:
                        violations.append(f"{name} (layer {own}) imports {target} (layer {layer_of(target)})")
    assert not violations, "\n".join(violations)


def _module_names() -> set[str]:
    return {name for name, _ in modules()}


def _import_targets(name: str, path: Path, known: set[str]) -> set[str]:
    """Every rlaif module ``name`` imports, at module level or inside a function (both run sometime).

    ``from pkg import sub`` counts as importing the submodule when ``sub`` is one; a relative import is
    resolved against the importing module's package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    out = set()
    for target in found:
        while target and target not in known:  # `import rlaif.x.y` of a name inside a module
            target = target.rpartition(".")[0]
        if target and target != name and not target.startswith(name + "."):  # own submodules: no cycle
            out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    known = _module_names()
    return {name: _import_targets(name, path, known) for name, path in modules()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycle_between_rlaif_modules():
    """A cycle hidden by a function-level import is still a cycle: the two modules cannot be understood,
    tested or moved apart. Only a package importing its own submodules (from ``__init__``) is allowed."""
    cycles = import_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle_through_function_level_imports():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


NEVER = [
    # the demo is a plug-in (rlaif.tasks.catalog): the pipeline reads its problem set and corpus by name
    ("rlaif.pipeline", "rlaif.demo"),
    # trainers get rewards as functions (rlaif.tasks.rewards), never from the code machinery itself
    ("rlaif.train", "rlaif.code"),
]


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def never_violations(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{name} imports {target} ({src} must never import {dst})"
        for name, targets in sorted(graph.items())
        for target in sorted(targets)
        for src, dst in NEVER
        if _within(name, src) and _within(target, dst)
    ]


def test_never_rules_hold_for_module_and_function_level_imports():
    violations = never_violations(import_graph())
    assert not violations, "\n".join(violations)


def test_the_never_rules_catch_a_forbidden_import():
    graph = {"rlaif.pipeline.stages": {"rlaif.demo.tasks"}, "rlaif.train.grpo": {"rlaif.tasks.rewards"}}
    assert never_violations(graph) == [
        "rlaif.pipeline.stages imports rlaif.demo.tasks (rlaif.pipeline must never import rlaif.demo)"
    ]
