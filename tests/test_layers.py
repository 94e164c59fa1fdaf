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
    "rlaif.judges": 2,
    "rlaif.feedback": 3,
    "rlaif.pairs": 3,
    "rlaif.code": 3,
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
