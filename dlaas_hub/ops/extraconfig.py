"""The settings that Zero-to-JupyterHub's ``hub.extraConfig`` snippets make, read without running them.

The chart runs each snippet in the hub after ``hub.config``, in the order of their keys. Most set
settings with literals (``c.DLaaSAuthenticator.allowed_groups = {"/escape"}``): those are read,
so that check-config sees the configuration the hub will run. Anything else (a computed value, a
call, a loop) is reported as not checked rather than run: check-config never executes the
operator's code outside the hub, where it may read files or environment that only the hub has.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

#: Statements that set no setting: nothing to check.
_INERT = (ast.Import, ast.ImportFrom, ast.Pass, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True)
class Unread:
    """A statement of a snippet that was not read."""

    where: str  # hub.extraConfig.<key>, line N
    why: str


class SnippetError(ValueError):
    """A snippet that is not Python: the hub would fail to start."""


def _setting(target) -> tuple[str, str] | None:
    """("Class", "name") for a ``c.Class.name`` target."""
    if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute)
            and isinstance(target.value.value, ast.Name) and target.value.value.id == "c"):
        return target.value.attr, target.attr
    return None


def _docstring(node) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def read_snippets(snippets: dict) -> tuple[dict[str, dict], list[Unread]]:
    """``{Class: {name: value}}`` set by literal assignments, and every statement not read."""
    settings: dict[str, dict] = {}
    unread: list[Unread] = []
    for key in sorted(snippets, key=str):
        source = snippets[key]
        name = f"hub.extraConfig.{key}"
        if not isinstance(source, str):
            raise SnippetError(f"{name}: must be Python code as text, not a {type(source).__name__}")
        try:
            tree = ast.parse(source, filename=name)
        except SyntaxError as e:
            raise SnippetError(f"{name}: not valid Python at line {e.lineno}: {e.msg}; the hub would not start") \
                from None
        for node in tree.body:
            if isinstance(node, _INERT) or _docstring(node):
                continue
            where = f"{name}, line {node.lineno}"
            setting = _setting(node.targets[0]) if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
            if setting is None:
                unread.append(Unread(where, "not checked: only `c.Class.setting = <literal>` lines are read"))
                continue
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                unread.append(Unread(where, f"c.{setting[0]}.{setting[1]} is computed, so its value is not checked"))
                continue
            settings.setdefault(setting[0], {})[setting[1]] = value
    return settings, unread
