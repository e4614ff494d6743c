import configparser
import json
import os
import stat
import threading

import jwt
import pytest

from dlaas_hub.server.files import (
    CredentialError,
    CredentialFile,
    RucioSettings,
    build_bundle,
    ensure_private_dir,
    eos_token_content,
    remove_private_dir,
    rucio_cfg,
    rucio_jupyterlab_config,
    rucio_token_content,
    write_private_file,
)

USERINFO = "https://iam-escape.cloud.cnaf.infn.it/userinfo"
RUCIO = RucioSettings(rucio_host="https://escape-rucio.cern.ch", auth_host="https://escape-rucio-auth.cern.ch",
                      oidc_issuer="escape", oidc_audience="rucio", ca_cert="/etc/grid-security/certificates",
                      destination_rse="EULAKE-1", rse_mount_path="/eos/eulake_1", webui_url="https://escape-rucio-webui.cern.ch",
                      site_name="CERN")


def token(aud="eos", exp=2_000_000_000):
    return jwt.encode({"aud": aud, "exp": exp, "sub": "u"}, "k" * 32)


def test_eos_token_format_matches_eosxd():
    t = token()
    content = eos_token_content(t, USERINFO)
    assert content == f"oauth2:{t}:iam-escape.cloud.cnaf.infn.it/userinfo"
    assert not content.endswith("\n")


def test_rucio_token_is_the_raw_jwt():
    t = token("rucio")
    assert rucio_token_content(t) == t


@pytest.mark.parametrize("bad", ["", "not a jwt", "a.b.c\n", "a.b.c:extra", None])
def test_non_jwts_are_refused(bad):
    with pytest.raises(CredentialError) as info:
        eos_token_content(bad, USERINFO)
    assert str(bad) not in str(info.value) or bad in ("", None)


def test_rucio_cfg_parses_and_points_at_the_token_file():
    text = rucio_cfg(RUCIO, account="MariaSKA", token_path="/var/run/dlaas/tokens/rucio-token")
    cfg = configparser.ConfigParser()
    cfg.read_string(text)
    client = cfg["client"]
    assert client["auth_type"] == "oidc"
    assert client["account"] == "MariaSKA"
    assert client["auth_token_file_path"] == "/var/run/dlaas/tokens/rucio-token"
    assert client["oidc_issuer"] == "escape"  # the IAM's name in Rucio's idpsecrets, not its URL
    assert client["oidc_audience"] == "rucio"
    assert client["ca_cert"] == "/etc/grid-security/certificates"
    assert client["rucio_host"] == "https://escape-rucio.cern.ch"
    assert "vo" not in client


def test_rucio_cfg_leaves_unset_ca_and_issuer_to_the_client_and_the_server():
    # A fixed ca_cert path that the image lacks breaks every HTTPS call; an empty one lets the client
    # use $X509_CERT_DIR or certifi. No oidc_issuer: the server uses its admin_issuer.
    text = rucio_cfg(RucioSettings(rucio_host="https://r", auth_host="https://a"), account="alice", token_path="/t")
    cfg = configparser.ConfigParser()
    cfg.read_string(text)
    assert "ca_cert" not in cfg["client"] and "oidc_issuer" not in cfg["client"]
    [instance] = rucio_jupyterlab_config(RucioSettings(rucio_host="https://r", auth_host="https://a"),
                                         mode="download", token_path="/t")["RucioConfig"]["instances"]
    assert "rucio_ca_cert" not in instance


@pytest.mark.parametrize("account", ["evil\n[client]\nrucio_host=x", "", "a" * 65, "sp ace", "maria\n"])
def test_untrusted_account_cannot_inject_config(account):
    with pytest.raises(CredentialError):
        rucio_cfg(RUCIO, account=account, token_path="/t")


def test_rucio_extension_replica_mode():
    config = rucio_jupyterlab_config(RUCIO, mode="replica", token_path="/t/rucio-token")["RucioConfig"]
    [instance] = config["instances"]
    assert config["default_instance"] == "escape" and config["default_auth_type"] == "oidc"
    assert instance["mode"] == "replica" and instance["oidc_auth"] == "file"
    assert instance["oidc_file_name"] == "/t/rucio-token"
    assert instance["destination_rse"] == "EULAKE-1" and instance["rse_mount_path"] == "/eos/eulake_1"
    assert instance["rucio_base_url"] == "https://escape-rucio.cern.ch"
    assert instance["rucio_webui_url"] == "https://escape-rucio-webui.cern.ch"


def test_rucio_extension_download_mode_needs_the_ca():
    [instance] = rucio_jupyterlab_config(RUCIO, mode="download", token_path="/t")["RucioConfig"]["instances"]
    assert instance["mode"] == "download" and instance["rucio_ca_cert"] == RUCIO.ca_cert
    assert "destination_rse" not in instance


def test_replica_mode_without_rse_is_an_error():
    with pytest.raises(CredentialError, match="destination_rse"):
        rucio_jupyterlab_config(RucioSettings("h", "a"), mode="replica", token_path="/t")


def test_private_file_is_0600_and_replaced_atomically(tmp_path):
    ensure_private_dir(str(tmp_path / "c"))
    d = str(tmp_path / "c")
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    path = write_private_file(d, "eos-token", "one")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.stat(path).st_uid == os.getuid()
    write_private_file(d, "eos-token", "two")
    assert open(path).read() == "two"
    assert os.listdir(d) == ["eos-token"]  # no temporary file left behind


def test_readers_never_see_a_partial_file(tmp_path):
    d = str(tmp_path)
    big = ["x" * 200_000, "y" * 200_000]
    write_private_file(d, "f", big[0])
    seen, stop = set(), threading.Event()

    def reader():
        while not stop.is_set():
            with open(os.path.join(d, "f")) as f:
                seen.add(f.read())

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(200):
        write_private_file(d, "f", big[i % 2])
    stop.set()
    thread.join()
    assert seen <= set(big)


def test_private_dir_is_tightened(tmp_path):
    d = tmp_path / "c"
    d.mkdir(mode=0o755)
    ensure_private_dir(str(d))
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_symlinked_credentials_dir_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(CredentialError):
        ensure_private_dir(str(tmp_path / "link"))


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", ""])
def test_file_names_are_plain(tmp_path, name):
    with pytest.raises(CredentialError):
        write_private_file(str(tmp_path), name, "x")


def auth_state(**extra):
    return {
        "access_token": "BROAD-ACCESS", "refresh_token": "REFRESH-SECRET", "iam_username": "MariaSKA",
        "exchanged": {"eos": {"access_token": token("eos-eulake", 1900), "expires_at": 1900},
                      "rucio": {"access_token": token("rucio", 1800), "expires_at": 1800}},
        "exchange_errors": {}, **extra,
    }


def test_bundle_has_files_env_and_expiry():
    bundle = build_bundle(auth_state(), directory="/var/run/dlaas/tokens", userinfo_url=USERINFO, rucio=RUCIO)
    names = [f.name for f in bundle.files]
    assert names == ["eos-token", "eos-bearer-token", "rucio-token", "rucio.cfg", "jupyter_server_config.json"]
    assert bundle.env == {
        "OAUTH2_TOKEN": "FILE:/var/run/dlaas/tokens/eos-token",
        "DLAAS_EOS_TOKEN_FILE": "/var/run/dlaas/tokens/eos-bearer-token",
        "RUCIO_CONFIG": "/var/run/dlaas/tokens/rucio.cfg",
        "JUPYTER_CONFIG_PATH": "/var/run/dlaas/tokens",
        "DLAAS_STATE_FILE": "/var/run/dlaas/tokens/datalake-state.json",  # the agent's record, no token
    }
    # Rucio's client reads BEARER_TOKEN_FILE before its own token file: it must not name the EOS token.
    assert "BEARER_TOKEN_FILE" not in bundle.env
    assert bundle.files[1].content == bundle.files[0].content.split(":")[1]  # the bare EOS token
    assert bundle.expires_at() == 1800
    config = json.loads(bundle.files[4].content)
    assert config["RucioConfig"]["instances"][0]["oidc_file_name"] == "/var/run/dlaas/tokens/rucio-token"
    for f in bundle.files:
        assert "REFRESH-SECRET" not in f.content and "BROAD-ACCESS" not in f.content
        assert "REFRESH-SECRET" not in repr(f) and token("eos-eulake", 1900) not in repr(f)


def test_bundle_without_optional_target_says_why():
    state = auth_state(exchange_errors={"rucio": {"error": "invalid_scope"}})
    del state["exchanged"]["rucio"]
    bundle = build_bundle(state, directory="/d", userinfo_url=USERINFO, rucio=RUCIO)
    assert [f.name for f in bundle.files] == ["eos-token", "eos-bearer-token", "jupyter_server_config.json"]
    assert "RUCIO_CONFIG" not in bundle.env
    assert bundle.missing == {"rucio": "the token exchange failed (invalid_scope)"}


def test_bundle_without_rucio_site_has_no_rucio_files():
    bundle = build_bundle(auth_state(), directory="/d", userinfo_url=USERINFO, rucio=None)
    assert [f.name for f in bundle.files] == ["eos-token", "eos-bearer-token", "jupyter_server_config.json"]
    assert bundle.missing == {}
    assert_only_the_state_extension(bundle)


def assert_only_the_state_extension(bundle):
    # The data lake's state reaches JupyterLab's status bar in every server, with Rucio or not.
    config = json.loads(next(f.content for f in bundle.files if f.name == "jupyter_server_config.json"))
    assert config == {"ServerApp": {"jpserver_extensions": {"dlaas_hub.server.labstate": True}}}
    assert bundle.env["JUPYTER_CONFIG_PATH"] == "/d"


def test_bundle_rucio_extension_can_be_off():
    bundle = build_bundle(auth_state(), directory="/d", userinfo_url=USERINFO, rucio=RUCIO, rucio_enabled=False)
    assert_only_the_state_extension(bundle)


def test_credential_file_json_round_trip_and_validation():
    f = CredentialFile("eos-token", "content", 5)
    assert CredentialFile.from_json(f.to_json()) == f
    with pytest.raises(CredentialError):
        CredentialFile.from_json({"name": "../../etc/passwd", "content": "x"})
    with pytest.raises(CredentialError):
        CredentialFile.from_json({"name": "ok", "content": 3})


def test_rucio_cfg_tells_datalake_upload_the_scratch_rse_only_when_there_is_one():
    settings = RucioSettings(rucio_host="https://r", auth_host="https://a", destination_rse="EULAKE-1",
                             scratch_rse="JUPYTER-SCRATCHDISK", scratch_root="/scratch",
                             scratch_pfn="file://localhost/scratch", webui_url="https://w")
    cfg = configparser.ConfigParser()
    cfg.read_string(rucio_cfg(settings, account="alice", token_path="/t"))
    assert dict(cfg["dlaas"]) == {"scratch_rse": "JUPYTER-SCRATCHDISK", "scratch_root": "/scratch",
                                  "scratch_pfn": "file://localhost/scratch", "destination": "EULAKE-1",
                                  "webui_url": "https://w"}
    cfg = configparser.ConfigParser()
    cfg.read_string(rucio_cfg(RucioSettings(rucio_host="https://r", auth_host="https://a"), account="a",
                              token_path="/t"))
    assert not cfg.has_section("dlaas")


def test_removing_a_credentials_dir_never_follows_a_link_out_of_it(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    d = tmp_path / "c"
    ensure_private_dir(str(d))
    (d / "sub").mkdir()
    (d / "sub" / "f").write_text("x")
    (d / "link-to-dir").symlink_to(outside)
    (d / "link-to-file").symlink_to(outside / "precious")
    remove_private_dir(str(d))
    assert not d.exists()
    assert (outside / "precious").read_text() == "keep me"


def test_a_linked_credentials_dir_is_neither_tightened_nor_removed(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o755)
    os.chmod(real, 0o755)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(CredentialError):
        ensure_private_dir(str(tmp_path / "link"), uid=os.getuid())
    with pytest.raises(CredentialError):
        remove_private_dir(str(tmp_path / "link"))
    assert stat.S_IMODE(real.stat().st_mode) == 0o755 and real.exists()
