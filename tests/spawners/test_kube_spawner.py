"""Real kubespawner pods for every shipped profile, validated against the Kubernetes 1.33 schemas."""

import json
import re
from pathlib import Path
from types import SimpleNamespace

import kubernetes_validate
import pytest
from kubernetes_asyncio.client import ApiClient
from tornado import web
from traitlets.config import Config

from dlaas_hub.spawners import DLaaSKubeSpawner, terminal

from ..spawner_fixtures import RUCIO_CONFIG, FakeUser, auth_state, exchanged_token, fake_authenticator, fake_hub

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
SLUGS = sorted(p.stem.split("-", 1)[1] for p in PROFILES.glob("*.yaml"))
HUB_API_TOKEN = "hub-api-token-for-this-server"


def make_spawner(user=None, name="", **settings):
    config = Config()
    config.DLaaSKubeSpawner.profiles_dir = str(PROFILES)
    if "token_agent_image" not in settings:
        config.DLaaSKubeSpawner.token_agent_image = "quay.io/dlaas-hub/hub:0.1.0"
    config.DLaaSKubeSpawner.uid = 1000
    config.DLaaSKubeSpawner.fs_gid = 100
    config.DLaaSKubeSpawner.cmd = ["jupyterhub-singleuser"]  # z2jh's singleuser.cmd
    for key, value in {**RUCIO_CONFIG, **settings}.items():
        config.DLaaSKubeSpawner[key] = value
    # JupyterHub gives a spawner its server's name through its database row.
    orm_spawner = SimpleNamespace(name=name, server=None, user_options={}) if name else None
    spawner = DLaaSKubeSpawner(_mock=True, config=config, user=user or FakeUser(), hub=fake_hub(),
                               authenticator=fake_authenticator(), orm_spawner=orm_spawner)
    spawner.api_token = HUB_API_TOKEN
    return spawner


async def build_pod(spawner, slug=None) -> dict:
    spawner.user_options = {"profile": slug} if slug else {}
    await spawner.run_pre_spawn_hook()
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    async with ApiClient() as api:
        return api.sanitize_for_serialization(pod)


def container(pod, name):
    return next(c for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", []) if c["name"] == name)


EVERY_GROUP = ["/escape", "/escape/ska", "/escape/magic", "/escape/cta"]


@pytest.mark.parametrize("slug", SLUGS)
async def test_every_profile_gives_a_valid_pod(slug):
    spawner = make_spawner(user=FakeUser(groups=EVERY_GROUP))
    pod = await build_pod(spawner, slug)
    assert pod["kind"] == "Pod"
    kubernetes_validate.validate(pod, "1.33", strict=True)

    notebook = container(pod, "notebook")
    profile = next(p for p in spawner.all_profiles() if p.slug == slug)
    assert notebook["image"] == profile.image

    mounts = {m["mountPath"]: m for m in notebook["volumeMounts"]}
    assert mounts["/eos/eulake_1"]["readOnly"] is True
    assert mounts["/eos/eulake_1"]["mountPropagation"] == "HostToContainer"
    assert mounts["/scratch"]["readOnly"] is False
    assert mounts["/scratch"]["mountPropagation"] == "HostToContainer"
    assert mounts["/var/run/dlaas"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["datalake-eos"]["hostPath"] == {"path": "/eos/eulake_1", "type": "Directory"}
    assert volumes["dlaas-credentials"]["emptyDir"]["medium"] == "Memory"

    env = {e["name"]: e.get("value") for e in notebook["env"]}
    assert env["SCRATCH"] == "/scratch/mariaska"
    assert env["OAUTH2_TOKEN"] == "FILE:/var/run/dlaas/tokens/eos-token"
    assert env["RUCIO_CONFIG"] == "/var/run/dlaas/tokens/rucio.cfg"
    assert env["JUPYTER_CONFIG_PATH"] == "/var/run/dlaas/tokens"
    assert "BEARER_TOKEN_FILE" not in env  # rucio-clients would read it before its own token file
    assert env["DLAAS_EOS_TOKEN_FILE"] == "/var/run/dlaas/tokens/eos-bearer-token"
    # JupyterLab's status bar reads the state the agent records in the folder it writes (its --dir).
    assert env["DLAAS_STATE_FILE"] == "/var/run/dlaas/tokens/datalake-state.json"
    assert notebook["args"] == ["jupyterhub-singleuser", terminal.server_arg()]  # terminals keep the PATH
    for key, value in profile.env.items():
        assert env[key] == value

    agent = container(pod, "dlaas-token-agent")
    assert agent["restartPolicy"] == "Always"  # a native sidecar
    assert agent["command"][agent["command"].index("--dir") + 1] == "/var/run/dlaas/tokens"
    # A thousand pods reserve what one asks: 32Mi (it holds about 17 MiB, benchmarks/token_agent.py).
    assert agent["resources"] == {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "32Mi"}}
    assert agent["startupProbe"]["exec"]["command"] == ["test", "-e", "/var/run/dlaas/tokens/.dlaas-ready"]
    assert agent["securityContext"]["runAsUser"] == notebook["securityContext"]["runAsUser"] == 1000
    assert agent["securityContext"]["allowPrivilegeEscalation"] is False
    assert agent["securityContext"]["readOnlyRootFilesystem"] is True
    assert agent["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"mountPath": "/var/run/dlaas", "name": "dlaas-credentials"} in agent["volumeMounts"]
    # The agent creates $SCRATCH on the node's scratch mount, as the user, with the EOS token file.
    assert agent["command"][-2:] == ["--make-dir", "/scratch/mariaska"]
    assert {"name": "datalake-scratch", "mountPath": "/scratch",
            "mountPropagation": "HostToContainer"} in agent["volumeMounts"]
    assert {"name": "OAUTH2_TOKEN", "value": "FILE:/var/run/dlaas/tokens/eos-token"} in agent["env"]
    assert notebook["securityContext"]["allowPrivilegeEscalation"] is False

    serialized = json.dumps(pod)
    state = auth_state()
    for secret in [state["access_token"], state["refresh_token"], state["id_token"]] + [
            t["access_token"] for t in state["exchanged"].values()]:
        assert secret not in serialized, "a token is in the pod spec"


async def test_profile_resources_reach_the_pod():
    pod = await build_pod(make_spawner(), "ska-sdc1")
    resources = container(pod, "notebook")["resources"]
    # kubespawner reads memory units as powers of 1024
    assert resources["limits"] == {"cpu": 8.0, "memory": 16 * 1024**3}
    assert resources["requests"] == {"cpu": 2.0, "memory": 8 * 1024**3}


async def test_default_profile_when_none_chosen():
    pod = await build_pod(make_spawner())
    assert container(pod, "notebook")["image"].endswith("datalake-singleuser:v1.3.2")


async def test_profile_dropping_a_mount(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "slug: noscratch\ndisplay_name: No scratch\ndescription: d\nimage: quay.io/x/y:1\n"
        "mounts:\n  drop: [scratch]\n  add: [{name: cvmfs, host_path: /cvmfs, mount_path: /cvmfs, read_only: true}]\n")
    pod = await build_pod(make_spawner(profiles_dir=str(tmp_path)), "noscratch")
    kubernetes_validate.validate(pod, "1.33", strict=True)
    notebook = container(pod, "notebook")
    paths = {m["mountPath"] for m in notebook["volumeMounts"]}
    assert "/scratch" not in paths and "/cvmfs" in paths and "/eos/eulake_1" in paths
    assert "SCRATCH" not in {e["name"] for e in notebook["env"]}
    agent = container(pod, "dlaas-token-agent")
    assert "--make-dir" not in agent["command"]
    assert {m["mountPath"] for m in agent["volumeMounts"]} == {"/var/run/dlaas"}


async def test_download_mode_profile_configures_the_extension():
    spawner = make_spawner()
    await build_pod(spawner, "root-xcache")
    bundle = await spawner.credential_bundle()
    config = json.loads(next(f.content for f in bundle.files if f.name == "jupyter_server_config.json"))
    assert config["RucioConfig"]["instances"][0]["mode"] == "download"


async def test_restarts_do_not_pile_up_volumes():
    spawner = make_spawner()
    first = await build_pod(spawner, "root")
    second = await build_pod(spawner, "minimal")
    assert len(second["spec"]["volumes"]) == len(first["spec"]["volumes"])
    assert len(second["spec"]["initContainers"]) == 1


async def test_forbidden_profile_is_refused_with_403():
    spawner = make_spawner(user=FakeUser(name="alice", groups=["/escape"]))
    spawner.user_options = {"profile": "ska-sdc1"}
    with pytest.raises(web.HTTPError) as info:
        await spawner.run_pre_spawn_hook()
    assert info.value.status_code == 403
    # JupyterHub's form shows jupyterhub_message; without it, str() reads "HTTP 403: error (...)".
    assert info.value.jupyterhub_message == (
        "You may not use the profile 'ska-sdc1': it is reserved to other groups. "
        "Ask your experiment's IAM administrator for access.")


async def test_unknown_profile_is_refused_with_400_naming_valid_ones():
    spawner = make_spawner(user=FakeUser(name="alice", groups=["/escape"]))
    spawner.user_options = {"profile": "nope"}
    with pytest.raises(web.HTTPError) as info:
        await spawner.run_pre_spawn_hook()
    assert info.value.status_code == 400
    message = info.value.jupyterhub_message
    assert "'nope'" in message and "minimal" in message and "ska-sdc1" not in message


async def test_options_form_lists_only_allowed_profiles():
    alice = make_spawner(user=FakeUser(name="alice", groups=["/escape"]))
    maria = make_spawner()
    alice_form = await alice._render_options_form_dynamically(alice)
    maria_form = await maria._render_options_form_dynamically(maria)
    assert 'value="minimal"' in alice_form and 'value="ska-sdc1"' not in alice_form
    assert 'value="ska-sdc1"' in maria_form
    assert 'value="gcc-magic-cta"' not in maria_form


async def test_a_hostile_profile_value_is_shown_printable_and_short():
    spawner = make_spawner(user=FakeUser(name="alice", groups=["/escape"]))
    spawner.user_options = {"profile": "\x1b[2J<script>" + "x" * 500}
    with pytest.raises(web.HTTPError) as info:
        await spawner.run_pre_spawn_hook()
    message = info.value.jupyterhub_message
    assert "\x1b" not in message and "\\x1b" in message and len(message) < 300


async def test_user_without_any_allowed_profile_is_refused(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "slug: ska\ndisplay_name: S\ndescription: d\nimage: quay.io/x/y:1\nallowed_groups: [/escape/ska]\n")
    spawner = make_spawner(user=FakeUser(name="alice", groups=["/escape"]), profiles_dir=str(tmp_path))
    with pytest.raises(web.HTTPError) as info:
        await spawner.run_pre_spawn_hook()
    assert info.value.status_code == 403


async def test_server_token_gets_the_tokens_scope():
    assert "custom:dlaas:tokens!user" in make_spawner().server_token_scopes


async def test_missing_optional_token_leaves_its_env_out(caplog):
    state = auth_state(exchange_errors={"rucio": {"error": "invalid_scope"}})
    del state["exchanged"]["rucio"]
    pod = await build_pod(make_spawner(user=FakeUser(state=state)), "minimal")
    env = {e["name"] for e in container(pod, "notebook")["env"]}
    assert "OAUTH2_TOKEN" in env and "RUCIO_CONFIG" not in env
    assert "starts without its rucio token" in caplog.text


REG = "gitlab-registry.cern.ch/escape-wp2/docker-images"
OPTIONS_PROFILE = f"""
slug: root-versions
display_name: ROOT, your version
description: Pick a ROOT release.
image: {REG}/datalake-singleuser-root:v1.3.2
profile_options:
  release:
    display_name: ROOT release
    choices:
      r630:
        display_name: ROOT 6.30
        default: true
        kubespawner_override: {{image: "{REG}/datalake-singleuser-root:v1.3.2"}}
      r628:
        display_name: ROOT 6.28
        kubespawner_override: {{image: "{REG}/datalake-singleuser-root:v1.2.0"}}
    unlisted_choice:
      enabled: true
      display_name: Other image tag
      validation_regex: "^v[0-9.]+$"
      kubespawner_override: {{image: "{REG}/datalake-singleuser-root:{{value}}"}}
"""


async def test_profile_options_and_unlisted_choices_keep_working(tmp_path):
    (tmp_path / "p.yaml").write_text(OPTIONS_PROFILE)
    spawner = make_spawner(profiles_dir=str(tmp_path))
    form = await spawner._render_options_form_dynamically(spawner)
    assert "ROOT 6.28" in form and "Other image tag" in form
    # the form posts profile-option-<slug>--<option>, which kubespawner turns into user_options
    options = spawner.options_from_form({"profile": ["root-versions"],
                                         "profile-option-root-versions--release": ["r628"]})
    assert options == {"profile": "root-versions", "release": "r628"}
    spawner.user_options = options
    await spawner.run_pre_spawn_hook()
    await spawner.load_user_options()
    assert spawner.image.endswith(":v1.2.0")

    other = make_spawner(profiles_dir=str(tmp_path))
    other.user_options = {"profile": "root-versions", "release--unlisted-choice": "v1.1.7"}
    await other.run_pre_spawn_hook()
    await other.load_user_options()
    assert other.image.endswith(":v1.1.7")

    bad = make_spawner(profiles_dir=str(tmp_path))
    bad.user_options = {"profile": "root-versions", "release--unlisted-choice": "latest; rm -rf"}
    await bad.run_pre_spawn_hook()
    with pytest.raises(ValueError, match="validation regex"):
        await bad.load_user_options()


# -- the Rucio account ---------------------------------------------------------------------------------

def rucio_account_in(bundle) -> str | None:
    import configparser

    cfg = next((f.content for f in bundle.files if f.name == "rucio.cfg"), None)
    if cfg is None:
        return None
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(cfg)
    return parser["client"]["account"]


CLAIMS = {"sub": "3f9e", "preferred_username": "MariaSKA", "rucio_account": "maria_ska"}


@pytest.mark.parametrize("setting,expected", [
    ("", "MariaSKA"),  # the provider's spelling, not the hub's lower-cased name
    ("rucio_account", "maria_ska"),  # a claim
    (lambda spawner, claims: claims["preferred_username"].lower(), "mariaska"),  # a callable
])
async def test_operators_map_the_iam_user_to_the_rucio_account(setting, expected):
    spawner = make_spawner(user=FakeUser(state=auth_state(oauth_user=CLAIMS)), rucio_account=setting)
    await build_pod(spawner, "minimal")
    assert rucio_account_in(await spawner.credential_bundle()) == expected


async def test_an_async_account_callable_is_awaited():
    async def lookup(spawner, claims):
        return "svc-" + spawner.user.name

    spawner = make_spawner(user=FakeUser(state=auth_state(oauth_user=CLAIMS)), rucio_account=lookup)
    await build_pod(spawner, "minimal")
    assert rucio_account_in(await spawner.credential_bundle()) == "svc-mariaska"


@pytest.mark.parametrize("hostile", ["evil\n[client]\nrucio_host = x", "maria\n", "sp ace", None, ""])
async def test_an_unsafe_account_leaves_rucio_out_and_says_why(hostile, caplog):
    claims = {**CLAIMS, "rucio_account": hostile}
    spawner = make_spawner(user=FakeUser(state=auth_state(oauth_user=claims)), rucio_account="rucio_account")
    pod = await build_pod(spawner, "minimal")
    bundle = await spawner.credential_bundle()
    assert rucio_account_in(bundle) is None
    assert "not a safe account name" in bundle.missing["rucio"]
    assert "RUCIO_CONFIG" not in {e["name"] for e in container(pod, "notebook")["env"]}
    assert "starts without its rucio token" in caplog.text


async def test_volumes_given_as_dicts_are_kept_and_extended():
    # Zero-to-JupyterHub 4 gives the home storage as dicts, which kubespawner orders by key.
    home = {"name": "volume-x", "persistentVolumeClaim": {"claimName": "claim-x"}}
    spawner = make_spawner(volumes={"10-home": home, "00-first": {"name": "first", "emptyDir": {}}},
                           volume_mounts={"10-home": {"name": "volume-x", "mountPath": "/home/jovyan"}})
    for _ in range(2):  # and a restart does not pile them up
        pod = await build_pod(spawner, "minimal")
    kubernetes_validate.validate(pod, "1.33", strict=True)
    names = [v["name"] for v in pod["spec"]["volumes"]]
    assert names == ["first", "volume-x", "datalake-eos", "datalake-scratch", "dlaas-credentials"]
    mounts = [m["mountPath"] for m in container(pod, "notebook")["volumeMounts"]]
    assert mounts[0] == "/home/jovyan" and "/eos/eulake_1" in mounts


async def test_named_servers_get_their_own_pods_profiles_and_agents():
    user = FakeUser()
    pods = {name: await build_pod(make_spawner(user=user, name=name), slug)
            for name, slug in (("root", "root"), ("xcache", "root-xcache"))}
    default = await build_pod(make_spawner(user=user))
    names = {pod["metadata"]["name"] for pod in [*pods.values(), default]}
    assert len(names) == 3, names  # kubespawner's pod names carry the server's name
    for name, pod in pods.items():
        kubernetes_validate.validate(pod, "1.33", strict=True)
        agent_env = {e["name"]: e.get("value") for e in container(pod, "dlaas-token-agent")["env"]}
        assert agent_env["JUPYTERHUB_SERVER_NAME"] == name
        assert any(v["name"] == "dlaas-credentials" and v["emptyDir"]["medium"] == "Memory"
                   for v in pod["spec"]["volumes"])  # in the pod, gone with it
    redirectors = {name: {e["name"]: e.get("value") for e in container(pod, "notebook")["env"]}
                   .get("XCACHE_REDIRECTOR") for name, pod in pods.items()}
    assert redirectors == {"root": None, "xcache": "root://xcache-redirector.cern.ch"}  # each its profile


def checked(form: str) -> list[str]:
    return re.findall(r'value="([^"]+)"\s+checked', form)


async def test_the_form_preselects_the_default_even_after_a_refused_choice():
    alice = make_spawner(user=FakeUser(name="alice", groups=["/escape"]))
    assert checked(await alice.get_options_form()) == ["minimal"]
    alice.user_options = {"profile": "ska-sdc1"}  # kept from a refused start
    assert checked(await alice.get_options_form()) == ["minimal"]
    alice.user_options = {"profile": "root"}  # a choice she may use stays selected
    assert checked(await alice.get_options_form()) == ["root"]


async def test_a_user_whose_catalogue_default_is_closed_to_them_gets_their_first_profile(tmp_path):
    for slug, groups, default in (("ska", "[/escape/ska]", "true"), ("open", "[]", "false"),
                                  ("later", "[]", "false")):
        (tmp_path / f"{slug}.yaml").write_text(
            f"slug: {slug}\ndisplay_name: {slug}\ndescription: d\nimage: quay.io/x/y:1\n"
            f"allowed_groups: {groups}\ndefault: {default}\n")
    alice = make_spawner(user=FakeUser(name="alice", groups=["/escape"]), profiles_dir=str(tmp_path))
    assert [p.slug for p in alice.allowed_profiles()] == ["later", "open"]  # in file-name order
    assert checked(await alice.get_options_form()) == ["later"]
    assert [p["slug"] for p in alice.dlaas_profile_list() if p["default"]] == ["later"]


async def test_the_form_shows_each_profiles_cpu_memory_and_image():
    form = await make_spawner().get_options_form()
    assert ('<p class="dlaas-profile-resources"><small>CPU: 2 cores guaranteed, up to 8 cores · Memory: 8 GiB '
            'guaranteed, up to 16 GiB · Image: gitlab-registry.cern.ch/escape-wp2/docker-images/'
            'datalake-singleuser-ska-sdc1:v1.1.0</small></p>') in form
    assert form.count('class="dlaas-profile-resources"') == len(make_spawner().allowed_profiles())


async def test_the_hubs_image_is_read_from_the_charts_values(tmp_path):
    from dlaas_hub.spawners.kube import hub_image_from_chart

    values = tmp_path / "values.yaml"
    values.write_text("hub:\n  image:\n    name: registry.example.org/dlaas/dlaas-hub\n    tag: '0.2.0'\n")
    assert hub_image_from_chart(str(values)) == "registry.example.org/dlaas/dlaas-hub:0.2.0"
    spawner = make_spawner(token_agent_image="", chart_values_file=str(values))  # empty: as if unset
    assert spawner.startup_problems() == []
    pod = await build_pod(spawner, "root")
    assert container(pod, "dlaas-token-agent")["image"] == "registry.example.org/dlaas/dlaas-hub:0.2.0"
    for broken in ("hub: [", "hub:\n  image: nope\n", "[]"):
        values.write_text(broken)
        assert hub_image_from_chart(str(values)) == ""
    assert hub_image_from_chart(str(tmp_path / "missing.yaml")) == ""


async def test_without_a_token_agent_image_the_hub_refuses_to_start(tmp_path):
    spawner = make_spawner(token_agent_image="", chart_values_file=str(tmp_path / "missing.yaml"))
    [problem] = spawner.startup_problems()
    assert problem.startswith("DLaaSKubeSpawner.token_agent_image: not set")
    assert make_spawner(token_agent_image="", token_agent_enabled=False,
                        chart_values_file=str(tmp_path / "missing.yaml")).startup_problems() == []


async def test_datalake_upload_learns_the_scratch_rse_as_the_pod_sees_it():
    spawner = make_spawner(rucio_scratch_rse="JUPYTER-SCRATCHDISK")
    await build_pod(spawner, "minimal")
    settings = spawner.rucio_settings()
    assert (settings.scratch_rse, settings.scratch_root, settings.scratch_pfn) == (
        "JUPYTER-SCRATCHDISK", "/scratch", "file://localhost/scratch")


async def test_the_served_bundle_is_rendered_again_only_when_the_stored_state_changes():
    user = FakeUser()
    user.encrypted_auth_state = b"first"
    loads = []
    real = user.get_auth_state

    async def counted():
        loads.append(1)
        return await real()

    user.get_auth_state = counted
    spawner = make_spawner(user=user)
    await build_pod(spawner, "root-xcache")
    loads.clear()
    first = await spawner.served_bundle()
    assert await spawner.served_bundle() is first and len(loads) == 1  # a storm decrypts once
    renewed_token = exchanged_token("eos-eulake", exp=2_000_000_600)
    user._state["exchanged"]["eos"]["access_token"] = renewed_token
    user.encrypted_auth_state = b"second"  # a renewal stored a new auth_state
    renewed = await spawner.served_bundle()
    assert len(loads) == 2 and any(renewed_token in f.content for f in renewed.files)


async def test_without_a_command_the_images_cmd_runs_and_no_argument_is_dropped(caplog):
    spawner = make_spawner(cmd=None)
    pod = await build_pod(spawner, "minimal")
    assert "args" not in container(pod, "notebook") or not container(pod, "notebook")["args"]
    assert "Ignoring arguments" not in caplog.text


async def test_an_operators_own_terminal_command_wins():
    own = '--ServerApp.terminado_settings={"shell_command": ["/bin/zsh"]}'
    spawner = make_spawner(args=[own])
    pod = await build_pod(spawner, "minimal")
    assert container(pod, "notebook")["args"] == ["jupyterhub-singleuser", own]
