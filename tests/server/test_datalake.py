"""`datalake upload`'s own logic, without Rucio: which files, named how, and the refusals in words.
(Against the real Rucio server: tests/integration/test_datalake.py.)"""

import time
import zlib

import jwt
import pytest

from dlaas_hub.server import datalake
from dlaas_hub.server.datalake import Settings, UploadError, collect, describe, token_problem


def test_folders_are_walked_and_named_after_their_path(tmp_path):
    (tmp_path / "run1" / "sub").mkdir(parents=True)
    (tmp_path / "run1" / "a.txt").write_text("alpha")
    (tmp_path / "run1" / "sub" / "b.txt").write_text("beta")
    files = collect([str(tmp_path / "run1")], str(tmp_path), prefix="p.")
    assert [f.name for f in files] == ["p.run1.a.txt", "p.run1.sub.b.txt"]
    assert files[0].size == 5 and files[0].adler32 == f"{zlib.adler32(b'alpha'):08x}"


def test_outside_the_scratch_space_and_links_out_of_it_are_refused(tmp_path):
    scratch, outside = tmp_path / "scratch", tmp_path / "outside.txt"
    scratch.mkdir()
    outside.write_text("x")
    with pytest.raises(UploadError, match="is not in your scratch space"):
        collect([str(outside)], str(scratch))
    (scratch / "link").symlink_to(outside)
    with pytest.raises(UploadError, match="it is a link leading out of it"):
        collect([str(scratch / "link")], str(scratch))
    (scratch / "dir").mkdir()
    (scratch / "dir" / "link").symlink_to(outside)
    with pytest.raises(UploadError, match="is a link leading out of your scratch space: nothing was uploaded"):
        collect([str(scratch / "dir")], str(scratch))
    with pytest.raises(UploadError, match="no such file"):
        collect([str(scratch / "missing")], str(scratch))


def test_two_files_that_would_share_a_name_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("1")
    (tmp_path / "a.x.txt").write_text("2")
    with pytest.raises(UploadError, match="would both be named 'a.x.txt'"):
        collect([str(tmp_path / "a"), str(tmp_path / "a.x.txt")], str(tmp_path))


def test_an_expired_or_missing_token_is_said(tmp_path):
    path = tmp_path / "token"
    path.write_text(jwt.encode({"exp": int(time.time()) - 1}, "k" * 32))
    assert "expired" in token_problem(str(path))
    path.write_text(jwt.encode({"exp": int(time.time()) + 600}, "k" * 32))
    assert token_problem(str(path)) is None
    assert "no usable Rucio token" in token_problem(str(tmp_path / "none"))


def test_a_hub_without_a_scratch_rse_is_said(tmp_path):
    cfg = tmp_path / "rucio.cfg"
    cfg.write_text("[client]\nrucio_host = https://r\n")
    with pytest.raises(UploadError, match="rucio_scratch_rse is not set"):
        Settings.from_rucio_cfg(str(cfg))
    with pytest.raises(UploadError, match="no rucio.cfg"):
        Settings.from_rucio_cfg("")


@pytest.mark.parametrize("name,expected", [
    ("AccessDenied", "your account may lack the permission"),
    ("CannotAuthenticate", "if `rucio whoami` answers, it is a permission"),
    ("InsufficientAccountLimit", "your Rucio quota is too small"),
    ("DuplicateRule", "already have a rule"),
])
def test_rucio_errors_in_words(name, expected):
    error = type(name, (Exception,), {})("Details: something")
    assert expected in describe(error)


def test_without_the_rucio_client_the_command_says_what_to_install(capsys, monkeypatch):
    monkeypatch.setattr(datalake, "Client", None)
    assert datalake.main(["upload", "-s", "user.x", "f"]) == 1
    assert "pip install 'dlaas-hub[datalake]'" in capsys.readouterr().err
