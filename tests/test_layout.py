"""The package's boundaries, as docs/ARCHITECTURE.md draws them.

- ``lapo.core`` (and ``lapo.methods``) is pure: importing it loads no torch, TRL or transformers;
- the import graph of lapo's modules, lazy imports inside functions included, has no cycle;
- each layer imports only the layers below it (evaluation never imports training, the core imports only
  the core and the error type).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import lapo

PACKAGE = Path(lapo.__file__).resolve().parent
HEAVY = ("torch", "trl", "transformers", "accelerate", "datasets", "peft")

# layer -> the lapo packages and modules it may import (itself always). Commands on top may import anything.
ALLOWED = {
    "lapo.core": {"lapo.errors"},
    "lapo.methods": {"lapo.core", "lapo.errors"},
    "lapo.tasks": {"lapo.errors"},
    "lapo.data": {"lapo.core", "lapo.errors", "lapo.tasks"},
    "lapo.models": {"lapo.core", "lapo.errors"},
    "lapo.eval": {"lapo.core", "lapo.data", "lapo.models", "lapo.methods", "lapo.tasks", "lapo.errors"},
    "lapo.train": {"lapo.core", "lapo.data", "lapo.models", "lapo.methods", "lapo.tasks", "lapo.errors"},
}


def module_files() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = "lapo." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def lapo_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every lapo module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("lapo"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lapo")}
    return {m for m in found if m in modules}


def layer_of(module: str) -> str | None:
    return next((layer for layer in ALLOWED if module == layer or module.startswith(layer + ".")), None)


def test_importing_the_core_loads_no_torch_trl_or_transformers():
    pure = sorted(m for m in module_files() if layer_of(m) in ("lapo.core", "lapo.methods"))
    assert "lapo.core.checker" in pure and "lapo.core.length" in pure
    code = "; ".join(f"import {m}" for m in pure) + f"; import sys; print([m for m in {HEAVY!r} if m in sys.modules])"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer):
    modules = module_files()
    bad = []
    for name, path in modules.items():
        if layer_of(name) != layer:
            continue
        for target in lapo_imports(path, modules):
            allowed = ALLOWED[layer] | {layer}
            if target != "lapo" and not any(target == a or target.startswith(a + ".") for a in allowed):
                bad.append(f"{name} imports {target}")
    assert bad == []


def test_the_import_graph_has_no_cycle():
    modules = module_files()
    graph = {name: lapo_imports(path, modules) - {name, "lapo"} for name, path in modules.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    cycles = [c for n in sorted(graph) if n not in state and (c := visit(n, [n]))]
    assert cycles == []


def test_reading_a_recipe_writes_nothing_into_the_environment(tmp_path, monkeypatch):
    from lapo.train.config import load_run_config

    monkeypatch.delenv("LAPO_TEST_RECIPE_ENV", raising=False)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model_name_or_path: x\nuse_cpu: true\nbf16: false\nenv:\n  LAPO_TEST_RECIPE_ENV: '1'\n")
    run = load_run_config(recipe, [f"output_dir={tmp_path / 'run'}"])
    assert "LAPO_TEST_RECIPE_ENV" not in os.environ
    assert run.env == {"LAPO_TEST_RECIPE_ENV": "1"}
