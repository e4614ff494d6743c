"""The data lake's status-bar item is shipped prebuilt: the build in dlaas_hub/labextension is what
labextension/ builds to, a wheel carries it where JupyterLab looks, and JupyterLab in the servers'
environment lists it as enabled and loadable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
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


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> Path:
    """labextension/ built afresh in a temporary copy; returns the copy's parent."""
    require(SOURCE / "node_modules" / "@jupyterlab" / "builder",
            "./scripts/test (or npm ci in labextension/) installs it")
    require(SINGLEUSER / "bin" / "python", "./scripts/test installs it")
    # The same layout (webpack's module ids come from paths): the build lands in
    # <parent>/dlaas_hub/labextension. Hard links keep the copy of node_modules quick.
    parent = tmp_path_factory.mktemp("rebuilt")
    work = parent / "labextension"
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
    return parent


def test_the_shipped_build_is_what_the_source_builds_to(rebuilt):
    fresh, shipped = files_of(rebuilt / "dlaas_hub" / "labextension"), files_of(BUILT)
    assert set(fresh) == set(shipped), "run ./scripts/build-labextension and commit dlaas_hub/labextension"
    changed = [name for name in fresh if fresh[name] != shipped[name]]
    assert not changed, f"{changed} differ from the source's build: run ./scripts/build-labextension and commit"


NOW = 1_800_000_000  # 2027-01-15 08:00:00 UTC


def token(target, expires_in, state="valid"):
    return {"target": target, "state": state, "expires_at": NOW + expires_in if expires_in is not None else None,
            "last_renewal": NOW - 60, "last_error_at": None}


def clock(at):
    return time.strftime("%H:%M", time.gmtime(at))


def views(rebuilt, states: list[dict]) -> list[dict]:
    """What the item shows for each state: the compiled src/state.ts, run by Node in UTC."""
    module = rebuilt / "state.mjs"
    shutil.copy(rebuilt / "labextension" / "lib" / "state.js", module)
    script = (f"import {{ describe }} from {json.dumps(str(module))};\n"
              f"const states = {json.dumps(states)};\n"
              f"console.log(JSON.stringify(states.map(s => describe(s, {NOW}))));")
    result = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "TZ": "UTC"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_what_the_item_says_of_each_state(rebuilt):
    url = "/hub/dlaas/sign-in-again?next=%2Fuser%2Fmaria%2Flab"
    both = [token("eos", 600), token("rucio", 1800)]
    fresh, due, missing, failing, failing_out, expired, unknown, off, one, other = views(rebuilt, [
        {"renewal": "ok", "tokens": both, "updated_at": NOW - 10, "sign_in_url": url},
        {"renewal": "ok", "tokens": [token("eos", 30), token("rucio", 1800)], "sign_in_url": url},
        {"renewal": "ok", "tokens": [token("eos", 600), token("rucio", None, "missing")], "sign_in_url": url},
        {"renewal": "failing", "since": NOW - 300, "reason": "the hub could not be reached", "tokens": both,
         "sign_in_url": url},
        {"renewal": "failing", "since": NOW - 3600, "tokens": [token("eos", -60, "expired")], "sign_in_url": url},
        {"renewal": "sign_in_expired", "since": NOW - 120, "tokens": both, "sign_in_url": url},
        {"renewal": "unknown", "tokens": [], "sign_in_url": url},
        {"renewal": "off", "tokens": [], "sign_in_url": url},
        {"renewal": "ok", "tokens": [token("eos", 600)], "sign_in_url": url},
        {"renewal": "ok", "tokens": [token("eos", 600), token("dcache", 900), token("rucio", 1200)],
         "sign_in_url": url},
    ])
    assert (fresh["level"], fresh["text"]) == ("ok", f"Data lake: EOS and Rucio fresh until {clock(NOW + 600)}")
    assert f"last checked at {clock(NOW - 10)}" in fresh["title"]
    assert (due["level"], due["text"]) == ("busy", "Data lake: renewing EOS and Rucio tokens")
    assert missing["level"] == "busy"
    assert (failing["level"], failing["text"]) == ("warning", f"Data lake: renewal failing since {clock(NOW - 300)}")
    assert "(the hub could not be reached)" in failing["title"] and "keeps trying" in failing["title"]
    assert f"keep working until {clock(NOW + 600)}" in failing["title"]
    assert "have expired" in failing_out["title"]
    assert (expired["level"], expired["text"]) == ("error", "Data lake: sign-in expired")
    assert f"since {clock(NOW - 120)}" in expired["title"] and "sign in again" in expired["title"]
    assert (unknown["level"], unknown["text"]) == ("busy", "Data lake: waiting for tokens")
    assert off["level"] == "hidden"
    assert one["text"] == f"Data lake: EOS fresh until {clock(NOW + 600)}"
    assert other["text"] == f"Data lake: EOS, dcache and Rucio fresh until {clock(NOW + 600)}"


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
