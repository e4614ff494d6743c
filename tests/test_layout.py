"""The package's layout: the names operators use keep working, and the parts import each other
without cycles and without imports hidden in functions."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dlaas_hub"
# Imported inside functions on purpose, and why: never to dodge a cycle.
LAZY = {
    "dlaas_hub.ops.cli": "each command loads only what it runs (the token agent's sidecar starts without JupyterHub)",
}


def test_the_entry_points_load_the_classes():
    from dlaas_hub.auth.authenticator import DLaaSAuthenticator
    from dlaas_hub.ops.cli import main
    from dlaas_hub.spawners import DLaaSKubeSpawner, DLaaSLocalSpawner

    def load(group, name):
        return next(e for e in entry_points(group=group) if e.name == name).load()

    assert load("jupyterhub.authenticators", "dlaas") is DLaaSAuthenticator
    assert load("jupyterhub.spawners", "dlaas-kube") is DLaaSKubeSpawner
    assert load("jupyterhub.spawners", "dlaas-local") is DLaaSLocalSpawner
    assert load("console_scripts", "dlaas-hub") is main


def test_the_import_paths_the_docs_and_values_show_keep_working():
    import dlaas_hub.authenticator as old
    import dlaas_hub.spawners as spawners
    from dlaas_hub.auth import authenticator

    assert old.DLaaSAuthenticator is authenticator.DLaaSAuthenticator
    assert old.AUTH_STATE_VERSION == authenticator.AUTH_STATE_VERSION
    assert spawners.DLaaSKubeSpawner.__module__ == "dlaas_hub.spawners.kube"
    assert spawners.DLaaSLocalSpawner.__module__ == "dlaas_hub.spawners.local"


@pytest.mark.parametrize("args", [["dlaas-hub", "--help"], [sys.executable, "-m", "dlaas_hub.ops.cli", "--help"]])
def test_the_command_runs(args):
    if args[0] == "dlaas-hub":
        args[0] = str(Path(sys.executable).with_name("dlaas-hub"))
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "token-agent" in result.stdout, result.stderr


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(modules of dlaas_hub imported at module level, those imported inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    top, lazy = set(), set()
    tree = ast.parse(path.read_text())
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inner = {id(n) for f in functions for n in ast.walk(f) if n is not f}
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if (PACKAGE.parent / f"{base}.{a.name}".replace(".", "/")).with_suffix(
                ".py").exists() or (PACKAGE.parent / f"{base}.{a.name}".replace(".", "/")).is_dir() else base
                for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            if target == "dlaas_hub" or target.startswith("dlaas_hub."):
                (lazy if id(node) in inner else top).add(target)
    return top, lazy


def test_no_import_cycles_and_no_hidden_imports():
    graph, hidden = {}, {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "demo_config.py":  # a JupyterHub configuration file, not a module
            continue
        top, lazy = _imports(path)
        graph[_module_name(path)] = top
        if lazy:
            hidden[_module_name(path)] = lazy
    assert set(hidden) <= set(LAZY), f"imports inside functions: {hidden}"
    # Depth-first search for a cycle among module-level imports.
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            if nxt in graph and not state.get(nxt):
                visit(nxt, trail + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if not state.get(module):
            visit(module, [module])
    assert "dlaas_hub.auth.authenticator" in graph and graph["dlaas_hub.auth.authenticator"]


# Which parts may import which: a part never imports one above it (the authenticator imports the
# spawners for its start-up check, so the spawners import nothing of the authenticator).
NEVER_IMPORTS = {
    "dlaas_hub.spawners": ("dlaas_hub.auth", "dlaas_hub.authenticator", "dlaas_hub.ops", "dlaas_hub.dev"),
    "dlaas_hub.tokens": ("dlaas_hub.auth", "dlaas_hub.spawners", "dlaas_hub.hubapi", "dlaas_hub.server"),
    "dlaas_hub.hubapi": ("dlaas_hub.auth", "dlaas_hub.spawners"),
    "dlaas_hub.server": ("dlaas_hub.auth", "dlaas_hub.spawners", "dlaas_hub.hubapi"),
    "dlaas_hub.profiles": ("dlaas_hub.auth", "dlaas_hub.spawners", "dlaas_hub.hubapi"),
    "dlaas_hub.display": ("dlaas_hub.",),
}


def test_no_part_imports_one_above_it():
    found = []
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        for part, forbidden in NEVER_IMPORTS.items():
            if module == part or module.startswith(part + "."):
                top, lazy = _imports(path)
                found += [f"{module} imports {t}" for t in sorted(top | lazy) if t.startswith(forbidden)]
    assert not found, "imports running up the layers: " + "; ".join(found)
