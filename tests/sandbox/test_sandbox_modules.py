"""The sandbox package's own structure: no import cycle inside it (function-level and TYPE_CHECKING
imports included), and the modules that run in the worker, the zygote and the test processes load
only the standard library -- the zygote and the test processes never ``ctypes``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "rlaif" / "sandbox"
PREFIX = "rlaif.sandbox"
# what the pool's worker process and the zygote import: standard library only (see their docstrings)
STDLIB_ONLY = {"cgroup", "codec", "confine", "frames", "harness", "jail", "jail_paths", "reports", "runner",
               "syscalls", "trusted", "calls", "worker", "zygote"}  # fmt: skip


# the isolation modules the worker imports (and nothing the zygote loads: they use ctypes)
STDLIB_ONLY |= {"landlock", "seccomp", "userns"}


def _module_name(path: Path) -> str:
    return PREFIX if path.stem == "__init__" else f"{PREFIX}.{path.stem}"


def _imports(path: Path) -> set[str]:
    """Every module this file imports anywhere (module level, in functions, under TYPE_CHECKING);
    ``from rlaif.sandbox import x`` counts as importing the submodule ``x`` where there is one."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
            for alias in node.names:
                if (
                    (PACKAGE_DIR.parent.parent / (node.module + "." + alias.name).replace(".", "/"))
                    .with_suffix(".py")
                    .exists()
                ):
                    out.add(f"{node.module}.{alias.name}")
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE_DIR.glob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_inside_the_sandbox_package():
    graph = _graph()
    assert f"{PREFIX}.harness" in graph and f"{PREFIX}.codec" in graph[f"{PREFIX}.harness"]
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_worker_and_zygote_modules_import_only_the_standard_library():
    problems = []
    for stem in sorted(STDLIB_ONLY):
        for target in _imports(PACKAGE_DIR / f"{stem}.py"):
            top = target.split(".")[0]
            if target == PREFIX:
                continue  # the package itself: its __init__ imports nothing at run time (lazy names)
            if target.startswith(PREFIX + "."):
                if target.split(".")[2] not in STDLIB_ONLY:
                    problems.append(f"{stem} imports {target}, which is not standard-library-only")
            elif top not in sys.stdlib_module_names and top != "__future__":
                problems.append(f"{stem} imports {target}")
    assert not problems, "\n".join(problems)


def test_the_zygote_loads_neither_ctypes_nor_third_party_packages():
    """What the zygote imports is in every test process's memory: run the import for real."""
    root = str(PACKAGE_DIR.parent.parent)
    code = (
        f"import sys; sys.path.insert(0, {root!r}); import rlaif.sandbox.zygote, rlaif.sandbox.harness; "
        "print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    # -S: without the site module, so what is loaded is what these modules import (not .pth hooks)
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    loaded = set(out.stdout.split())
    assert "rlaif" in loaded
    assert "ctypes" not in loaded and "_ctypes" not in loaded
    third_party = sorted(
        m for m in loaded if m not in sys.stdlib_module_names and m not in ("rlaif", "__main__")
    )
    assert not third_party, third_party
