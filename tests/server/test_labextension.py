"""The data lake's status-bar item is shipped prebuilt: the build in dlaas_hub/labextension is what
labextension/ builds to, a wheel carries it where JupyterLab looks, and JupyterLab in the servers'
environment lists it as enabled and loadable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "labextension"
BUILT = ROOT / "dlaas_hub" / "labextension"
SINGLEUSER = ROOT / ".venv-singleuser"
NAME = "@dlaas-hub/datalake-status"


def require(path: Path, how: str) -> None:
    """Skip (fail in CI) when ``path`` is missing, saying how to provide it."""
    if not path.exists():
        message = f"{path} is missing: {how}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def files_of(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def link_or_copy(source, destination):
    try:
        os.link(source, destination)
    except OSError:  # another file system
        shutil.copy2(source, destination)


def test_the_shipped_build_is_what_the_source_builds_to(tmp_path):
    require(SOURCE / "node_modules" / "@jupyterlab" / "builder",
            "./scripts/test (or npm ci in labextension/) installs it")
    require(SINGLEUSER / "bin" / "python", "./scripts/test installs it")
    # The same layout under tmp_path (webpack's module ids come from paths): the build lands in
    # tmp_path/dlaas_hub/labextension. Hard links keep the copy of node_modules quick.
    work = tmp_path / "labextension"
    shutil.copytree(SOURCE, work, symlinks=True, copy_function=link_or_copy,
                    ignore=lambda directory, names: {"lib", "tsconfig.tsbuildinfo"} & set(names)
                    if Path(directory) == SOURCE else set())
    core = subprocess.run([SINGLEUSER / "bin" / "python", "-c", "import jupyterlab, os; "
                           "print(os.path.join(os.path.dirname(jupyterlab.__file__), 'staging'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    for command in (["node", "node_modules/typescript/bin/tsc"],
                    ["node", "node_modules/@jupyterlab/builder/lib/build-labextension.js", "--core-path", core, "."]):
        result = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rebuilt, shipped = files_of(tmp_path / "dlaas_hub" / "labextension"), files_of(BUILT)
    assert set(rebuilt) == set(shipped), "run ./scripts/build-labextension and commit dlaas_hub/labextension"
    changed = [name for name in rebuilt if rebuilt[name] != shipped[name]]
    assert not changed, f"{changed} differ from the source's build: run ./scripts/build-labextension and commit"


def test_the_build_shares_jupyterlab_and_carries_no_copy_of_it():
    package = json.loads((BUILT / "package.json").read_text())
    load = BUILT / package["jupyterlab"]["_build"]["load"]
    assert load.exists()
    entry = load.read_text()
    for shared in ("@jupyterlab/statusbar", "@jupyterlab/apputils", "@lumino/widgets"):
        assert shared in entry  # consumed from JupyterLab (one copy, its singletons), not bundled
    size = sum(len(content) for content in files_of(BUILT).values())
    assert size < 100_000, f"{size} bytes: a bundled copy of JupyterLab's packages?"


def test_a_wheel_installs_it_where_jupyterlab_looks(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--disable-pip-version-check",
                             "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = tmp_path.glob("dlaas_hub-*.whl")
    prefix = f"dlaas_hub-{wheel.name.split('-')[1]}.data/data/share/jupyter/labextensions/{NAME}/"
    with zipfile.ZipFile(wheel) as archive:
        carried = {name[len(prefix):] for name in archive.namelist() if name.startswith(prefix)}
    assert carried == set(files_of(BUILT))


def test_jupyterlab_in_the_servers_environment_lists_it_enabled_and_ok():
    require(SINGLEUSER / "bin" / "jupyter", "./scripts/test installs it")
    result = subprocess.run([SINGLEUSER / "bin" / "jupyter", "labextension", "list"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "NO_COLOR": "1"})
    listing = result.stdout + result.stderr
    line = next((line for line in listing.splitlines() if NAME in line), "")
    assert "enabled" in line and "OK" in line, listing
