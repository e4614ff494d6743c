"""``dlaas-hub profiles validate|render``."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from .catalog import load_directory


def main(args) -> int:
    profiles, errors = load_directory(Path(args.directory))
    if args.profiles_command == "validate":
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        print(f"{len(profiles)} valid profile(s), {len(errors)} error(s) in {args.directory}")
        return 1 if errors else 0
    for error in errors:
        print(f"# skipped: {error}", file=sys.stderr)
    values = {"singleuser": {"profileList": [p.to_kubespawner() for p in profiles]}}
    yaml.safe_dump(values, sys.stdout, sort_keys=False, width=100)
    return 1 if errors else 0
