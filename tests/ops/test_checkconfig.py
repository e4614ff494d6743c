"""``dlaas-hub check-config`` finds what a deploy lacks or contradicts, and names the setting."""

import os
from pathlib import Path

import pytest
import yaml

from dlaas_hub.ops.cli import main

from .. import z2jh

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "helm-values" / "values.yaml"
PROFILES = str(ROOT / "profiles")
DEMO_CONFIG = ROOT / "dlaas_hub" / "dev" / "demo_config.py"


@pytest.fixture
def secrets(tmp_path):
    path = tmp_path / "secrets.yaml"
    path.write_text("hub:\n  config:\n    DLaaSAuthenticator:\n      client_secret: s3cret\n")
    return path


def values_file(tmp_path, change):
    values = yaml.safe_load(VALUES.read_text())
    change(values)
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def run(capsys, *argv):
    code = main(["check-config", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out


def test_the_shipped_values_with_their_secrets_pass(capsys, secrets):
    code, out = run(capsys, VALUES, secrets, "--profiles", PROFILES)
    assert code == 0, out
    assert "0 error(s), 0 warning(s)" in out


def test_missing_client_secret_is_named(capsys):
    code, out = run(capsys, VALUES, "--profiles", PROFILES)
    assert code == 1 and "error: DLaaSAuthenticator.client_secret: not set" in out


def test_an_exchange_target_without_scope(capsys, secrets, tmp_path):
    path = values_file(tmp_path, lambda v: v["hub"]["config"]["DLaaSAuthenticator"]["exchange_targets"]["eos"].pop(
        "scope"))
    code, out = run(capsys, path, secrets, "--profiles", PROFILES)
    assert code == 1 and "error: DLaaSAuthenticator.exchange_targets.eos:" in out and "scope" in out


def test_an_eos_target_without_openid_is_one_eos_refuses(capsys, secrets, tmp_path):
    path = values_file(tmp_path, lambda v: v["hub"]["config"]["DLaaSAuthenticator"]["exchange_targets"]["eos"].update(
        scope="profile storage.read:/eos"))
    code, out = run(capsys, path, secrets, "--profiles", PROFILES)
    assert code == 0, out
    assert "warning: DLaaSAuthenticator.exchange_targets.eos.scope:" in out and "EOS will refuse" in out
    assert "1 warning(s)" in out


def test_the_eos_target_is_the_spawners(capsys, secrets, tmp_path):
    def change(v):
        v["hub"]["config"]["DLaaSKubeSpawner"]["eos_target"] = "rucio"  # whose scope has openid
        v["hub"]["config"]["DLaaSAuthenticator"]["exchange_targets"]["eos"]["scope"] = "profile"
    code, out = run(capsys, values_file(tmp_path, change), secrets, "--profiles", PROFILES)
    assert code == 0 and "0 warning(s)" in out, out


def test_the_user_role_without_the_tokens_scope(capsys, secrets, tmp_path):
    path = values_file(tmp_path, lambda v: v["hub"]["loadRoles"]["user"].update(scopes=["self"]))
    code, out = run(capsys, path, secrets, "--profiles", PROFILES)
    assert code == 1 and "error: hub.loadRoles.user:" in out and "custom:dlaas:tokens!user" in out


def test_replica_mode_without_its_rse(capsys, secrets, tmp_path):
    path = values_file(tmp_path, lambda v: v["hub"]["config"]["DLaaSKubeSpawner"]["rucio_instance"].pop(
        "destination_rse"))
    code, out = run(capsys, path, secrets, "--profiles", PROFILES)
    assert code == 1 and "error: DLaaSKubeSpawner.rucio_instance:" in out and "destination_rse" in out


def test_a_profile_group_no_login_can_carry(capsys, secrets, tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "p.yaml").write_text("slug: ska\ndisplay_name: S\ndescription: d\nimage: quay.io/x/y:1\n"
                                     "allowed_groups: [escape/ska]\n")  # IAM's name, but the claim gives paths
    code, out = run(capsys, VALUES, secrets, "--profiles", profiles)
    assert code == 1
    assert "error: p.yaml: allowed_groups: 'escape/ska' can never match: groups_claim 'wlcg.groups'" in out


def test_a_chart_profile_list(capsys, secrets, tmp_path):
    path = values_file(tmp_path, lambda v: v["singleuser"].update(profileList=[{"display_name": "x"}]))
    code, out = run(capsys, path, secrets, "--profiles", PROFILES)
    assert code == 1 and "error: singleuser.profileList: must stay empty" in out


def test_a_jupyterhub_config_py_without_crypt_key(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY", raising=False)
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        "c.JupyterHub.authenticator_class = 'dlaas'\n"
        "c.JupyterHub.spawner_class = 'dlaas-local'\n"
        "c.DLaaSAuthenticator.oidc_issuer = 'https://iam.example/'\n"
        "c.DLaaSAuthenticator.client_id = 'hub'\n"
        "c.DLaaSAuthenticator.client_secret = 's'\n"
        "c.DLaaSAuthenticator.exchange_targets = {'eos': {'audience': 'eos', 'scope': 'openid offline_access'}}\n"
        f"c.DLaaSLocalSpawner.profiles_dir = {PROFILES!r}\n"
        "c.JupyterHub.load_roles = [{'name': 'user', 'scopes': ['self', 'custom:dlaas:tokens!user']}]\n")
    code, out = run(capsys, config)
    assert code == 1
    assert "error: CryptKeeper.keys: no auth_state encryption key" in out and "openssl rand -hex 32" in out
    assert "error: DLaaSAuthenticator.exchange_targets.eos:" in out and "offline_access" in out
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", "a" * 64)
    code, out = run(capsys, config)
    assert "CryptKeeper.keys" not in out


def test_the_demo_configuration_passes(capsys, tmp_path, monkeypatch):
    (tmp_path / "settings.json").write_text(
        '{"hub_url": "http://127.0.0.1:8000", "hub_internal_port": 8081, "proxy_api_port": 8001, '
        '"chp_command": ["chp"], "state_dir": "%s", "issuer": "http://127.0.0.1:8180/", "client_id": "c", '
        '"client_secret": "s", "crypt_key": "%s", "singleuser_command": ["x"]}' % (tmp_path, "a" * 64))
    monkeypatch.setenv("DLAAS_DEMO_STATE", str(tmp_path))
    code, out = run(capsys, DEMO_CONFIG)
    assert code == 0, out


def test_unreadable_input_is_a_clear_error(capsys, tmp_path):
    assert run(capsys, tmp_path / "nope.yaml")[0] == 2
    broken = tmp_path / "v.yaml"
    broken.write_text("hub: [unclosed\n")
    code = main(["check-config", str(broken)])
    err = capsys.readouterr().err
    assert code == 2 and f"cannot read the configuration: {broken}: not valid YAML" in err, err


def test_the_token_agent_image_may_be_left_to_the_hubs_own(capsys, tmp_path, secrets):
    assert "token_agent_image" not in yaml.safe_load(VALUES.read_text())["hub"]["config"]["DLaaSKubeSpawner"]
    code, out = run(capsys, values_file(tmp_path, lambda values: None), secrets, "--profiles", PROFILES)
    assert code == 0 and "0 error(s), 0 warning(s)" in out, out

    def no_image_at_all(values):
        del values["hub"]["image"]

    code, out = run(capsys, values_file(tmp_path, no_image_at_all), secrets, "--profiles", PROFILES)
    assert code == 1 and "error: hub.image: not set, so the hub runs the chart's stock image" in out, out


def test_an_agent_image_other_than_the_hubs_is_a_warning_that_upgrades_leave_it_behind(capsys, tmp_path, secrets):
    def pinned(image):
        def change(values):
            values["hub"]["image"]["tag"] = "0.2.0"
            values["hub"]["config"]["DLaaSKubeSpawner"]["token_agent_image"] = image
        return change

    code, out = run(capsys, values_file(tmp_path, pinned("registry.example.org/dlaas/dlaas-hub:0.1.0")), secrets,
                    "--profiles", PROFILES)
    assert code == 0 and "warning: DLaaSKubeSpawner.token_agent_image: registry.example.org/dlaas/dlaas-hub:0.1.0 " \
        "is not the hub's image (registry.example.org/dlaas/dlaas-hub:0.2.0)" in out, out
    code, out = run(capsys, values_file(tmp_path, pinned("registry.example.org/dlaas/dlaas-hub:0.2.0")), secrets,
                    "--profiles", PROFILES)
    assert code == 0 and "0 error(s), 0 warning(s)" in out, out


def test_misspelled_settings_and_classes_are_errors_naming_the_intended_one(capsys, tmp_path, secrets):
    def typos(values):
        config = values["hub"]["config"]
        config["DLaaSAuthenticator"]["allowed_group"] = ["/escape"]
        config["DLaaSAuthenticator"]["exchange_target"] = {}
        config["DLaaSKubeSpawner"]["profile_dir"] = "/x"
        config["DLaaSKubeSpawner"]["rucio_hots"] = "https://rucio.example"
        config["DLaaSAuthenticatr"] = {"client_id": "x"}

    code, out = run(capsys, values_file(tmp_path, typos), secrets, "--profiles", PROFILES)
    assert code == 1, out
    for line in ("error: DLaaSAuthenticator.allowed_group: DLaaSAuthenticator has no such setting: did you mean "
                 "allowed_groups?", "error: DLaaSAuthenticator.exchange_target: DLaaSAuthenticator has no such "
                 "setting: did you mean exchange_targets?", "error: DLaaSKubeSpawner.profile_dir: "
                 "DLaaSKubeSpawner has no such setting: did you mean profiles_dir?",
                 "error: DLaaSKubeSpawner.rucio_hots: DLaaSKubeSpawner has no such setting: did you mean rucio_host?",
                 "error: DLaaSAuthenticatr: no such class: did you mean DLaaSAuthenticator?"):
        assert line in out, out


def test_wrong_types_name_the_setting_and_a_lone_group_is_read_as_the_hub_reads_it(capsys, tmp_path, secrets):
    def wrong(values):
        config = values["hub"]["config"]
        config["DLaaSAuthenticator"]["exchange_targets"] = ["eos"]
        config["DLaaSAuthenticator"]["allowed_groups"] = "/myvo"
        config["DLaaSKubeSpawner"]["datalake_mounts"] = "eos"
        config["DLaaSAuthenticator"]["iam_concurrency_limit"] = 0

    code, out = run(capsys, values_file(tmp_path, wrong), secrets, "--profiles", PROFILES)
    assert code == 1, out
    assert "error: DLaaSAuthenticator.iam_concurrency_limit: The value of the 'iam_concurrency_limit' trait of a " \
           "DLaaSAuthenticator instance should not be less than 1, but a value of 0 was specified" in out
    assert "error: DLaaSAuthenticator.exchange_targets: a list where a dict is expected (The 'exchange_targets' " \
           "trait of a DLaaSAuthenticator instance expected a dict" in out
    assert "error: DLaaSKubeSpawner.datalake_mounts: a str where a list" in out
    assert "Traceback" not in out
    # "/myvo" is one group, as traitlets makes it: never four one-letter ones
    assert "'/'" not in out and "'m'" not in out
    assert "'/escape/ska' is outside DLaaSAuthenticator.allowed_groups ['/myvo']" in out


@pytest.mark.parametrize("content,expected", [
    ("- a\n- b\n", "the top level: must be a mapping of settings, not a list"),
    ("hub:\n  - config\n", "hub: must be a mapping of settings, not a list"),
    ("hub:\n  config:\n    DLaaSAuthenticator: [x]\n", "hub.config.DLaaSAuthenticator: must be a mapping"),
])
def test_a_file_that_is_no_configuration_names_the_file_and_key(capsys, tmp_path, content, expected):
    path = tmp_path / "broken.yaml"
    path.write_text(content)
    code, out = run(capsys, path)
    assert code == 1 and expected in out and "Traceback" not in out, out
    assert str(path) in out


def test_a_config_file_that_fails_to_run_is_named(capsys, tmp_path):
    path = tmp_path / "jupyterhub_config.py"
    path.write_text("import no_such_module_here\n")
    code, out = run(capsys, path)
    assert code == 1 and f"{path}: running it failed: ModuleNotFoundError" in out, out


@pytest.mark.parametrize("keys,expected", [
    (["abc123"], "error: hub.config.CryptKeeper.keys: the key is 6 characters, which JupyterHub refuses: a key is "
                 "32 bytes, written as 64 hex digits (make one with `openssl rand -hex 32`) or 44 base64 characters"),
    (["a" * 64, "z" * 64], "error: hub.config.CryptKeeper.keys: key 2 of 2 is 64 characters, which JupyterHub "
                           "refuses"),
    ("a" * 64, "error: hub.config.CryptKeeper.keys: text where a list of keys is expected: the hub would not start"),
])
def test_a_crypt_key_jupyterhub_would_refuse_is_an_error_that_never_shows_it(capsys, tmp_path, keys, expected):
    path = tmp_path / "secrets.yaml"
    path.write_text(yaml.safe_dump({"hub": {"config": {"DLaaSAuthenticator": {"client_secret": "s"},
                                                       "CryptKeeper": {"keys": keys}}}}))
    code, out = run(capsys, VALUES, path, "--profiles", PROFILES)
    assert code == 1 and expected in out, out
    assert "abc123" not in out and "z" * 64 not in out


def test_a_good_crypt_key_in_its_yaml_form_passes(capsys, tmp_path):
    path = tmp_path / "secrets.yaml"
    path.write_text("hub:\n  config:\n    DLaaSAuthenticator:\n      client_secret: s\n"
                    f"    CryptKeeper:\n      keys:\n        - \"{'0f' * 32}\"\n")
    code, out = run(capsys, VALUES, path, "--profiles", PROFILES)
    assert code == 0 and "0 error(s), 0 warning(s)" in out, out


def test_a_crypt_key_in_the_environment_is_checked_for_a_python_config(capsys, tmp_path, monkeypatch):
    config = tmp_path / "jupyterhub_config.py"
    config.write_text("c.JupyterHub.authenticator_class = 'dlaas'\n")
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", "tooshort")
    code, out = run(capsys, config)
    assert "error: JUPYTERHUB_CRYPT_KEY: the key is 8 characters, which JupyterHub refuses" in out, out
    assert "tooshort" not in out
    config.write_text("c.JupyterHub.authenticator_class = 'dlaas'\nc.CryptKeeper.keys = []\n")
    monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY")
    code, out = run(capsys, config)
    assert "error: CryptKeeper.keys: no auth_state encryption key" in out, out


@pytest.mark.parametrize("issuer,why", [
    ("http://iam.example.org/", "uses http://: the client secret and every token would cross the network in clear"),
    ("iam.example.org", "is not an https URL"),
])
def test_an_issuer_without_https_is_an_error(capsys, tmp_path, secrets, issuer, why):
    path = values_file(tmp_path, lambda v: v["hub"]["config"]["DLaaSAuthenticator"].update(oidc_issuer=issuer))
    code, out = run(capsys, path, secrets, "--profiles", PROFILES)
    assert code == 1 and f"error: DLaaSAuthenticator.oidc_issuer: {issuer!r} {why}" in out, out


def test_extra_config_settings_are_read_and_the_rest_reported_as_not_checked(capsys, tmp_path, secrets):
    def extra(values):
        del values["hub"]["config"]["DLaaSAuthenticator"]["allowed_groups"]
        values["hub"]["extraConfig"] = {
            "10-groups": "c.DLaaSAuthenticator.allowed_group = {'/escape'}\n",
            "20-issuer": "import os\n\"\"\"IAM.\"\"\"\nc.DLaaSAuthenticator.oidc_issuer = 'http://iam.example.org/'\n",
            "30-computed": "c.DLaaSKubeSpawner.rucio_host = os.environ['RUCIO']\nfor x in []:\n    pass\n",
        }

    code, out = run(capsys, values_file(tmp_path, extra), secrets, "--profiles", PROFILES)
    assert code == 1, out
    # read as the hub would run them, after hub.config
    assert "error: DLaaSAuthenticator.allowed_group: DLaaSAuthenticator has no such setting: did you mean " \
           "allowed_groups?" in out
    assert "error: DLaaSAuthenticator.oidc_issuer: 'http://iam.example.org/' uses http://" in out
    # what cannot be read without running it is named, line by line
    assert "warning: hub.extraConfig.30-computed, line 1: c.DLaaSKubeSpawner.rucio_host is computed, so its " \
           "value is not checked" in out
    assert "warning: hub.extraConfig.30-computed, line 2: not checked: only `c.Class.setting = <literal>` " \
           "lines are read" in out
    assert "20-issuer, line" not in out  # an import and a docstring set nothing


def test_extra_config_that_is_not_python_is_an_error_naming_it(capsys, tmp_path, secrets):
    path = values_file(tmp_path, lambda v: v["hub"].update(extraConfig={"dlaas": "c.X.y = (\n"}))
    code, out = run(capsys, path, secrets)
    assert code == 1 and "error: hub.extraConfig.dlaas: not valid Python at line 1: '(' was never closed; the hub " \
                         "would not start" in out, out


def test_a_rucio_issuer_given_as_a_url_is_an_error(capsys, tmp_path, secrets):
    url = "https://iam-escape.cloud.cnaf.infn.it/"
    path = values_file(tmp_path, lambda v: v["hub"]["config"]["DLaaSKubeSpawner"].update(rucio_oidc_issuer=url))
    code, out = run(capsys, path, secrets, "--profiles", PROFILES)
    assert code == 1 and f"error: DLaaSKubeSpawner.rucio_oidc_issuer: {url!r} is a URL" in out, out


def test_download_mode_without_a_ca_path_is_an_error(capsys, tmp_path, secrets):
    path = values_file(tmp_path, lambda v: v["hub"]["config"]["DLaaSKubeSpawner"].pop("rucio_ca_cert"))
    code, out = run(capsys, path, secrets, "--profiles", PROFILES)
    assert code == 1 and "error: DLaaSKubeSpawner.rucio_ca_cert: Rucio's download mode (profiles root-xcache)" in out


def test_cookies_without_samesite_and_unbounded_named_servers_are_named(capsys, tmp_path, secrets):
    def change(values):
        values["hub"]["config"]["JupyterHub"]["tornado_settings"].pop("cookie_options")
        values["hub"].pop("namedServerLimitPerUser")

    code, out = run(capsys, values_file(tmp_path, change), secrets, "--profiles", PROFILES)
    assert code == 0, out  # warnings: the hub runs
    assert "warning: JupyterHub.tornado_settings.cookie_options: no samesite" in out
    assert "warning: hub.namedServerLimitPerUser: named servers are allowed without a limit" in out
    assert "0 error(s), 2 warning(s)" in out


def test_the_shipped_values_set_samesite_and_bound_named_servers():
    values = yaml.safe_load(VALUES.read_text())
    settings = values["hub"]["config"]["JupyterHub"]["tornado_settings"]
    assert settings["cookie_options"] == {"samesite": "Lax"}
    assert settings["slow_spawn_timeout"] == 0  # the chart's own, which this key replaces
    assert values["hub"]["allowNamedServers"] and 0 < values["hub"]["namedServerLimitPerUser"] <= 5


@pytest.mark.parametrize("change, line", [
    (lambda v: v["hub"].update(loadroles=v["hub"].pop("loadRoles")),
     "error: hub.loadroles: is not a key of the Zero-to-JupyterHub 4.4.0 chart (did you mean loadRoles?)"),
    (lambda v: v["singleuser"].update(uid="1000"), "error: singleuser.uid: '1000' is not of type 'integer', 'null'"),
    (lambda v: v["proxy"]["https"].update(host="dlaas.example.org"),
     "error: proxy.https.host: is not a key of the Zero-to-JupyterHub 4.4.0 chart (did you mean hosts?)"),
])
def test_values_helm_would_refuse_are_errors_naming_the_key(capsys, tmp_path, secrets, change, line):
    # The chart's schema (as Helm applies it, over the chart's defaults): caught before any helm command.
    code, out = run(capsys, values_file(tmp_path, change), secrets, "--profiles", PROFILES)
    assert code == 1 and line in out, out


def test_the_chart_files_check_config_ships_are_the_charts_own():
    shipped = ROOT / "dlaas_hub" / "ops" / "z2jh"
    try:
        chart = z2jh.find_chart_dir()
    except z2jh.ChartNotFound as e:
        if os.environ.get("DLAAS_REQUIRE_Z2JH"):
            pytest.fail(str(e))
        pytest.skip(str(e))
    for name in ("values.yaml", "values.schema.json"):
        assert (shipped / name).read_bytes() == (chart / name).read_bytes(), name


def test_a_pre_pulled_agent_image_other_than_the_agents_is_a_warning(capsys, tmp_path, secrets):
    # helm upgrade --set hub.image.tag=0.2.0 changes the hub, not the anchor's other use: said.
    def set_tag(values):
        values["hub"]["image"] = {**values["hub"]["image"], "tag": "0.2.0"}  # not through the anchor

    code, out = run(capsys, values_file(tmp_path, set_tag), secrets, "--profiles", PROFILES)
    assert code == 0 and "warning: prePuller.extraImages.dlaas-token-agent: pulls " \
        "registry.example.org/dlaas/dlaas-hub:0.1.0 ahead, but the token agents run " \
        "registry.example.org/dlaas/dlaas-hub:0.2.0" in out, out
