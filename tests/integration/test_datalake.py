"""`datalake upload` from inside a server started by the hub, against the real Rucio server."""

import configparser
import json
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from . import rucio_fixtures
from .conftest import browser_login
from .rucio_fixtures import as_root, rucio_cli
from .test_spawn import server_environ, start

pytestmark = pytest.mark.integration
rucio, hub = rucio_fixtures.rucio, rucio_fixtures.hub


@pytest.fixture(scope="module")
def maria(hub):
    browser_login(hub, "MariaSKA")
    server = start(hub, "mariaska", "minimal")
    return server_environ(server)


def datalake(env, *args):
    return rucio_cli(env, "upload", *args, command="datalake")


def rucio_get(rucio, env, path, accept="application/x-json-stream"):
    """A Rucio REST call with the user's own token, as the server holds it."""
    token = open(_cfg(env)["client"]["auth_token_file_path"]).read()
    return httpx.get(f"{rucio.url}{path}", follow_redirects=True,
                     headers={"X-Rucio-Auth-Token": token, "Accept": accept})


def _cfg(env):
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(env["RUCIO_CONFIG"])
    return cfg


def test_files_and_folders_of_scratch_are_registered_and_replicated(maria, rucio):
    scratch = Path(maria["SCRATCH"])
    (scratch / "run1").mkdir()
    (scratch / "run1" / "a.txt").write_text("alpha\n")
    (scratch / "run1" / "b.txt").write_text("beta\n")
    (scratch / "notes.txt").write_text("notes\n")
    result = datalake(maria, "-s", "user.mariaska", "-p", "t1.", "-t", "7", str(scratch / "notes.txt"),
                      str(scratch / "run1"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == ("3 file(s) registered on JUPYTER-SCRATCHDISK and replicating to EULAKE-1 for 7 day(s); "
                         "Rucio removes the scratch copies once replicated")
    rules = {line.split("  rule ")[0]: line.split("  rule ")[1].split()[0] for line in lines[:-1]}
    webui = "https://escape-rucio-webui.cern.ch"  # the hub's rucio_instance names the web UI
    assert any(f"{webui}/did?scope=user.mariaska&name=t1.run1.a.txt" in line for line in lines)
    assert set(rules) == {"user.mariaska:t1.notes.txt", "user.mariaska:t1.run1.a.txt", "user.mariaska:t1.run1.b.txt"}

    # What Rucio holds: the scratch replica at the file's own path, size and checksum, a rule to EULAKE-1
    answer = rucio_get(rucio, maria, "/replicas/user.mariaska/t1.run1.a.txt")
    replicas = answer.text
    assert replicas, (answer.status_code, answer.headers)
    replica = json.loads(replicas.splitlines()[0])
    assert replica["bytes"] == 6 and replica["adler32"]
    assert replica["rses"]["JUPYTER-SCRATCHDISK"] == ["file://localhost/scratch/mariaska/run1/a.txt"]
    answer = rucio_get(rucio, maria, f"/rules/{rules['user.mariaska:t1.run1.a.txt']}", accept="application/json")
    assert answer.status_code == 200, (answer.status_code, answer.text, rules)
    rule = answer.json()
    assert rule["rse_expression"] == "EULAKE-1" and rule["account"] == "mariaska"
    assert rule["state"] == "REPLICATING"  # no transfer service here: it stays so
    assert rule["expires_at"]
    assert (scratch / "run1" / "a.txt").exists()  # the command never deletes


def test_paths_outside_scratch_and_links_leading_out_are_refused(maria, tmp_path):
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("x")
    result = datalake(maria, "-s", "user.mariaska", str(outside))
    assert result.returncode == 1 and f"{outside} is not in your scratch space" in result.stderr
    link = Path(maria["SCRATCH"]) / "sneaky"
    link.symlink_to(outside)
    result = datalake(maria, "-s", "user.mariaska", str(link))
    assert result.returncode == 1 and "it is a link leading out of it" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_name_clash_is_refused_before_anything_is_registered(maria):
    scratch = Path(maria["SCRATCH"])
    (scratch / "clash.txt").write_text("first\n")
    assert datalake(maria, "-s", "user.mariaska", "-p", "c.", str(scratch / "clash.txt")).returncode == 0
    (scratch / "clash.txt").write_text("second, different\n")
    result = datalake(maria, "-s", "user.mariaska", "-p", "c.", str(scratch / "clash.txt"))
    assert result.returncode == 1
    assert "1 name(s) already taken in scope user.mariaska by other content: c.clash.txt" in result.stderr


def test_no_quota_leaves_an_explained_registration_that_a_second_run_completes(maria, rucio):
    scratch = Path(maria["SCRATCH"])
    (scratch / "q.txt").write_text("quota\n")
    as_root(rucio, "client.set_local_account_limit('mariaska', 'DESY-DCACHE', 1)")
    result = datalake(maria, "-s", "user.mariaska", "-p", "q.", "--rse", "DESY-DCACHE", str(scratch / "q.txt"))
    assert result.returncode == 1, result.stdout
    assert "your Rucio quota is too small" in result.stderr
    assert "registered on JUPYTER-SCRATCHDISK without a rule to DESY-DCACHE; run the same command again" in \
        result.stderr
    as_root(rucio, "client.set_local_account_limit('mariaska', 'DESY-DCACHE', 10**9)")
    result = datalake(maria, "-s", "user.mariaska", "-p", "q.", "--rse", "DESY-DCACHE", str(scratch / "q.txt"))
    assert result.returncode == 0, result.stderr


def test_a_missing_permission_is_named_as_such(maria, tmp_path):
    # Users may add replicas only on scratch-like RSEs: pretend the hub named EULAKE-1 as the scratch RSE.
    cfg = _cfg(maria)
    cfg["dlaas"]["scratch_rse"] = "EULAKE-1"
    with (tmp_path / "rucio.cfg").open("w") as f:
        cfg.write(f)
    (Path(maria["SCRATCH"]) / "p.txt").write_text("perm\n")
    result = datalake({**maria, "RUCIO_CONFIG": str(tmp_path / "rucio.cfg")}, "-s", "user.mariaska", "-p", "p.",
                      str(Path(maria["SCRATCH"]) / "p.txt"))
    assert result.returncode == 1
    assert "Rucio refused" in result.stderr and "permission" in result.stderr
    assert "Please use your internet browser" not in result.stdout + result.stderr  # never an interactive sign-in


def test_an_expired_token_is_said_before_anything_is_sent(maria, tmp_path):
    import jwt

    cfg = _cfg(maria)
    expired = tmp_path / "expired-token"
    expired.write_text(jwt.encode({"sub": "x", "exp": int(time.time()) - 60}, "k" * 32))
    cfg["client"]["auth_token_file_path"] = str(expired)
    with (tmp_path / "rucio.cfg").open("w") as f:
        cfg.write(f)
    (Path(maria["SCRATCH"]) / "e.txt").write_text("exp\n")
    result = datalake({**maria, "RUCIO_CONFIG": str(tmp_path / "rucio.cfg")}, "-s", "user.mariaska",
                      str(Path(maria["SCRATCH"]) / "e.txt"))
    assert result.returncode == 1 and "your Rucio token expired" in result.stderr


def test_delay_deletion_keeps_the_scratch_copy_two_days_by_a_rule(maria, rucio):
    scratch = Path(maria["SCRATCH"])
    (scratch / "keep.txt").write_text("keep me a while\n")
    result = datalake(maria, "-s", "user.mariaska", "-p", "d.", "--delay-deletion", str(scratch / "keep.txt"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith("; the scratch copies stay 2 days")
    rules = json.loads(as_root(rucio, "import json\nprint(json.dumps([{'rse': r['rse_expression'], 'expires': "
                                      "str(r['expires_at'])} for r in client.list_did_rules('user.mariaska', "
                                      "'d.keep.txt')]))"))
    assert {r["rse"] for r in rules} == {"EULAKE-1", "JUPYTER-SCRATCHDISK"}
    [keep] = [r for r in rules if r["rse"] == "JUPYTER-SCRATCHDISK"]
    days = (datetime.fromisoformat(keep["expires"].replace(" ", "T")) - datetime.utcnow()).total_seconds() / 86400
    assert 1.9 < days <= 2.0


def test_running_it_again_is_safe_and_extends_a_folder(maria, rucio):
    """The documented command, run twice, and again after a file joined the folder: what is there is said
    to be there, the new file is registered and ruled, and nothing fails."""
    scratch = Path(maria["SCRATCH"])
    (scratch / "again").mkdir()
    (scratch / "again" / "one.txt").write_text("one\n")
    (scratch / "again" / "two.txt").write_text("two\n")
    command = ["-s", "user.mariaska", "-p", "r.", "-t", "30", str(scratch / "again")]
    first = datalake(maria, *command)
    assert first.returncode == 0, first.stderr
    rules = {line.split("  rule ")[0]: line.split("  rule ")[1].split()[0] for line in first.stdout.splitlines()[:-1]}

    second = datalake(maria, *command)
    assert second.returncode == 0, second.stderr
    assert "UNIQUE constraint" not in second.stderr
    for line in second.stdout.splitlines()[:-1]:
        name, rest = line.split("  rule ")
        assert rest.split()[0] == rules[name] and "(already there)" in rest, line
    assert "(2 of them already were, by an earlier run)" in second.stdout.splitlines()[-1]

    (scratch / "again" / "three.txt").write_text("three\n")
    third = datalake(maria, *command)
    assert third.returncode == 0, third.stderr
    lines = {line.split("  rule ")[0]: line for line in third.stdout.splitlines()[:-1]}
    assert "(already there)" not in lines["user.mariaska:r.again.three.txt"]
    assert all("(already there)" in lines[name] for name in rules)
    assert third.stdout.splitlines()[-1].startswith("3 file(s) registered on JUPYTER-SCRATCHDISK and replicating "
                                                    "to EULAKE-1 (2 of them already were, by an earlier run)")
    listed = json.loads(as_root(rucio, "import json\nprint(json.dumps([r['rse_expression'] for r in "
                                       "client.list_did_rules('user.mariaska', 'r.again.three.txt')]))"))
    assert listed == ["EULAKE-1"]
