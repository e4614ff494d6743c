"""Zero-to-JupyterHub values checked as Helm checks them: merged over the chart's defaults, then
validated against the chart's schema (4.4.0, shipped in ``z2jh/``). Helm refuses to render values that
fail it (``hub.loadroles``, ``singleuser.uid: "1000"``); check-config says so first, naming the key.
"""

from __future__ import annotations

import difflib
import json
import re
from functools import lru_cache
from pathlib import Path

import jsonschema
import yaml

CHART_VERSION = "4.4.0"
HERE = Path(__file__).parent / "z2jh"


@lru_cache(maxsize=1)
def chart_defaults() -> dict:
    return yaml.safe_load((HERE / "values.yaml").read_text())


@lru_cache(maxsize=1)
def chart_schema() -> dict:
    return json.loads((HERE / "values.schema.json").read_text())


def coalesce(base, override):
    """Helm's merge of values: maps merge key by key, anything else is replaced, null deletes a default."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = coalesce(base.get(key), value) if key in base else value
        return out
    return override


def _dotted(path) -> str:
    return ".".join(str(part) if not isinstance(part, int) else f"[{part}]" for part in path).replace(".[", "[")


def _unexpected(error) -> list[tuple[str, str]]:
    """An additionalProperties error as one (key, message) per unknown key, with the likely intended one."""
    allowed = list((error.schema.get("properties") or {}).keys())
    found = []
    for key in sorted(set(error.instance) - set(allowed)):
        if any(re.fullmatch(p, key) for p in (error.schema.get("patternProperties") or {})):
            continue
        close = difflib.get_close_matches(key, allowed, n=1) or [k for k in allowed if k.lower() == key.lower()]
        hint = f" (did you mean {close[0]}?)" if close else ""
        found.append((_dotted([*error.absolute_path, key]), f"is not a key of the Zero-to-JupyterHub "
                      f"{CHART_VERSION} chart{hint}: Helm refuses these values"))
    return found


def schema_problems(values: dict) -> list[tuple[str, str]]:
    """(key, why) for each place where the values, merged over the chart's defaults, break its schema."""
    merged = coalesce(chart_defaults(), values)
    validator = jsonschema.Draft7Validator(chart_schema())
    problems = []
    for error in sorted(validator.iter_errors(merged), key=lambda e: list(map(str, e.absolute_path))):
        if error.validator == "additionalProperties":
            problems += _unexpected(error)
        else:
            where = _dotted(error.absolute_path) or "(the top level)"
            problems.append((where, f"{error.message}: Helm refuses these values (the chart's schema, "
                                    f"Zero-to-JupyterHub {CHART_VERSION})"))
    return problems
