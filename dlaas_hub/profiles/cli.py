"""``dlaas-hub profiles validate``: what an experiment runs before registering a profile.

There is no ``render``: the hub reads the profiles folder itself (``profiles_dir``), with groups,
Rucio mode and mounts that no kubespawner ``profileList`` can carry.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .catalog import load_directory


def main(args) -> int:
    profiles, errors = load_directory(Path(args.directory))
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    print(f"{len(profiles)} valid profile(s), {len(errors)} error(s) in {args.directory}")
    return 1 if errors else 0
