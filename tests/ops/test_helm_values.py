"""The Zero-to-JupyterHub values, through the real chart: accepted by Helm, rendered into objects valid for
Kubernetes 1.29 to 1.33, and a deploy with them really offers and starts the profiles.

A deploy goes the way the chart goes: ``helm template`` of the z2jh 4.4.0 chart with our values and the
docs' secrets file; the hub's config is what the chart's own ``jupyterhub_config.py`` makes of the
rendered Secret and ConfigMap (tests/z2jh.py runs it as the hub pod does); JupyterHub resolves the entry
points, and the authenticator and spawner are built from that.
"""

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import kubernetes_validate
import pytest
import respx
import yaml
from jupyterhub.app import JupyterHub
from kubernetes_asyncio.client import ApiClient

from dlaas_hub.errors import ConfigError
from dlaas_hub.ops.cli import main
from dlaas_hub.profiles.catalog import load_directory
from dlaas_hub.spawners import DLaaSKubeSpawner
from dlaas_hub.spawners.mixin import check_spawner_config

from .. import z2jh
from ..fakeiam import FakeHandler, FakeIAM
from ..spawner_fixtures import FakeUser, fake_hub

ROOT = Path(__file__).resolve().parents[2]
VALUES_FILE = ROOT / "helm-values" / "values.yaml"
VALUES = yaml.safe_load(VALUES_FILE.read_text())
IMAGE_PROFILES = "/usr/local/share/dlaas-hub/profiles"  # where hub-image/Dockerfile copies profiles/
CRYPT_KEYS = ["c" * 64]


def docs_secrets() -> dict:
    """The secrets file of docs/operators/deploy.md ("Write the values and the secrets"), filled in."""
    guide = (ROOT / "docs" / "operators" / "deploy.md").read_text()
    block = next(yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", guide, re.S) if "CryptKeeper" in b)
    config = block["hub"]["config"]
    assert config["DLaaSAuthenticator"]["client_secret"].startswith("<") and config["CryptKeeper"]["keys"][0][0] == "<"
    config["DLaaSAuthenticator"]["client_secret"] = "from-secrets-yaml"
    config["CryptKeeper"]["keys"] = CRYPT_KEYS
    return block


SECRETS = docs_secrets()
KUBERNETES = ["1.29", "1.30", "1.31", "1.32", "1.33"]
RELEASE, NAMESPACE = "dlaas", "dlaas"  # as docs/operators/deploy.md installs


@dataclass
class Chart:
    helm: Path
    directory: Path


@pytest.fixture(scope="module")
def chart() -> Chart:
    try:
        return Chart(z2jh.find_helm(), z2jh.find_chart_dir())
    except z2jh.ChartNotFound as e:
        if os.environ.get("DLAAS_REQUIRE_Z2JH"):
            pytest.fail(str(e))
        pytest.skip(str(e))


def values_files(directory: Path, *layers: dict) -> list[Path]:
    """Our values, the operator's secrets, then ``layers``: the files given to ``helm -f``, in order."""
    directory.mkdir(parents=True, exist_ok=True)
    files = [VALUES_FILE]
    for number, layer in enumerate((SECRETS, *layers)):
        path = directory / f"values-{number}.yaml"
        path.write_text(yaml.safe_dump(layer))
        files.append(path)
    return files


@dataclass
class Deploy:
    objects: list[dict]
    app: JupyterHub
    values_file: Path  # the merged values, where the hub pod has them (the chart's Secret)


def deploy(chart: Chart, directory: Path, *layers: dict) -> Deploy:
    """What the chart creates from our values and ``layers``, and the hub application its config makes."""
    objects = z2jh.render(chart.helm, chart.directory, values_files(directory / "values", *layers),
                          release=RELEASE, namespace=NAMESPACE)
    root = directory / "hub-pod"
    config = z2jh.hub_config_from_render(objects, root)
    mounted = root / z2jh.HUB_ROOT.lstrip("/") / "secret" / "values.yaml"
    config.DLaaSKubeSpawner.chart_values_file = str(mounted)  # the chart's mount, under root
    return Deploy(objects, JupyterHub(config=config), mounted)


# -- the values themselves ---------------------------------------------------------------------------

def test_helm_lints_the_chart_with_our_values_strictly(chart, tmp_path):
    args = ["lint", "--strict", str(chart.directory), "--namespace", NAMESPACE]
    for path in values_files(tmp_path):
        args += ["-f", str(path)]
    result = z2jh.helm_run(chart.helm, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_every_rendered_object_is_valid_for_kubernetes_1_29_to_1_33(chart, tmp_path):
    objects = deploy(chart, tmp_path).objects
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Secret", "ConfigMap", "Service", "NetworkPolicy"} <= kinds
    for version in KUBERNETES:
        for obj in objects:
            kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("layer, finding", [
    ({"singleuser": {"profileList": [{"display_name": "Chart's own", "kubespawner_override": {}}]}},
     "error: singleuser.profileList: must stay empty"),
    ({"hub": {"config": {"DLaaSAuthenticator": {"allowed_group": ["/escape"]}}}},
     "error: DLaaSAuthenticator.allowed_group: DLaaSAuthenticator has no such setting"),
])
def test_check_config_refuses_what_helm_renders_without_a_word(chart, tmp_path, capsys, layer, finding):
    deploy(chart, tmp_path, layer)  # Helm renders it: the chart's schema leaves hub.config and profiles open
    files = values_files(tmp_path / "check", layer)
    assert main(["check-config", *map(str, files), "--profiles", str(ROOT / "profiles")]) == 1
    assert finding in capsys.readouterr().out


def keycloak_settings() -> dict:
    """The hub settings of docs/operators/keycloak.md ("The hub's settings")."""
    page = (ROOT / "docs" / "operators" / "keycloak.md").read_text()
    return next(yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", page, re.S) if "exchange_targets" in b)


def test_the_keycloak_pages_settings_deploy_over_our_values(chart, tmp_path, capsys):
    layer = {"hub": {"config": {"DLaaSAuthenticator": keycloak_settings()}}}
    config = deploy(chart, tmp_path, layer).app.config.DLaaSAuthenticator
    assert config.oidc_issuer == "https://keycloak.example.org/realms/escape"
    assert {name: (t["audience"], t["scope"]) for name, t in config.exchange_targets.items()} == {
        "eos": ("eos-eulake", "openid eos-eulake"), "rucio": ("rucio", "openid rucio")}
    files = values_files(tmp_path / "check", layer)
    assert main(["check-config", *map(str, files), "--profiles", str(ROOT / "profiles")]) == 0, \
        capsys.readouterr().out


@pytest.mark.parametrize("typo, why", [
    ({"hub": {"loadroles": {"user": {"scopes": ["self"]}}}}, "loadroles"),
    ({"singleuser": {"uid": "1000"}}, "uid"),
    ({"singleuser": {"uidd": 1000}}, "uidd"),
])
def test_helm_refuses_values_the_chart_does_not_know(chart, tmp_path, typo, why):
    with pytest.raises(z2jh.HelmError, match=why):
        deploy(chart, tmp_path, typo)


def test_hub_config_sets_up_dlaas():
    config = VALUES["hub"]["config"]
    assert config["JupyterHub"] == {"authenticator_class": "dlaas", "spawner_class": "dlaas-kube",
                                    "tornado_settings": {"slow_spawn_timeout": 0,
                                                         "cookie_options": {"samesite": "Lax"}}}
    assert "custom:dlaas:tokens!user" in VALUES["hub"]["loadRoles"]["user"]["scopes"]
    assert "client_secret" not in config["DLaaSAuthenticator"], "secrets belong in a separate values file"
    from dlaas_hub.authenticator import DLaaSAuthenticator
    for cls in (DLaaSAuthenticator, DLaaSKubeSpawner):
        unknown = set(config[cls.__name__]) - set(cls.class_trait_names(config=True))
        assert not unknown, f"{cls.__name__} has no settings {unknown}"


def test_hub_image_ships_the_profiles_where_the_values_look():
    dockerfile = (ROOT / "helm-values" / "hub-image" / "Dockerfile").read_text()
    assert f"COPY profiles {IMAGE_PROFILES}" in dockerfile
    assert VALUES["hub"]["config"]["DLaaSKubeSpawner"]["profiles_dir"] == IMAGE_PROFILES
    profiles, errors = load_directory(ROOT / "profiles")
    assert profiles and not errors


# -- a deploy, built the chart's way -----------------------------------------------------------------

# The hub image holds profiles/ at IMAGE_PROFILES; here that is the checkout's folder.
AS_IN_THE_IMAGE = {"hub": {"config": {"DLaaSKubeSpawner": {"profiles_dir": str(ROOT / "profiles")}}}}
CHART_DEFAULT_STORAGE = {"singleuser": {"storage": {"type": "dynamic"}}}
EVERYONE = ["minimal", "root", "root-xcache", "micromega", "agnpy", "reana"]
MEMBERS = {
    "escape": (["/escape"], EVERYONE),
    "ska": (["/escape", "/escape/ska"], EVERYONE + ["ska-sdc1"]),
}


async def sign_in(app, groups) -> tuple[object, dict]:
    """The authenticator of the deploy, and the auth model of a login by a member of ``groups``."""
    issuer = app.config.DLaaSAuthenticator.oidc_issuer
    authenticator = app.authenticator_class(parent=app)
    with respx.mock(assert_all_called=False) as router:
        iam = FakeIAM(router, issuer=issuer)
        iam.id_token_claims = {"aud": app.config.DLaaSAuthenticator.client_id}
        iam.user["wlcg.groups"] = groups
        model = await authenticator.authenticate(FakeHandler())
    assert await authenticator.check_allowed(model["name"], model)
    return authenticator, model


async def pod_for(app, authenticator, model, slug, server="") -> dict:
    user = FakeUser(name=model["name"], groups=model["groups"], state=model["auth_state"])
    orm_spawner = SimpleNamespace(name=server, server=None, user_options={}) if server else None
    spawner = app.spawner_class(_mock=True, config=app.config, user=user, hub=fake_hub(),
                                authenticator=authenticator, orm_spawner=orm_spawner)
    spawner.api_token = "server-token"
    form = await spawner.get_options_form()
    spawner.user_options = spawner.run_options_from_form({"profile": [slug]})
    await spawner.run_pre_spawn_hook()
    await spawner.load_user_options()
    async with ApiClient() as api:
        pod = api.sanitize_for_serialization(await spawner.get_pod_manifest())
    return form, pod


@pytest.mark.parametrize("storage", ["shipped", "chart-default"])
@pytest.mark.parametrize("member", sorted(MEMBERS))
async def test_a_deploy_offers_and_starts_every_profile_a_member_may_use(chart, storage, member, crypt_key,
                                                                         tmp_path):
    layers = [AS_IN_THE_IMAGE] + ([CHART_DEFAULT_STORAGE] if storage == "chart-default" else [])
    app = deploy(chart, tmp_path, *layers).app
    assert app.spawner_class is DLaaSKubeSpawner
    check_spawner_config(app)  # what the authenticator runs when the hub starts
    groups, expected = MEMBERS[member]
    authenticator, model = await sign_in(app, groups)
    try:
        for slug in expected:
            form, pod = await pod_for(app, authenticator, model, slug)
            offered = re.findall(r'name="profile"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="profile"', form)
            assert sorted(filter(None, sum(offered, ()))) == sorted(expected)
            for version in KUBERNETES:
                kubernetes_validate.validate(pod, version, strict=True)
            notebook = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
            mounts = {m["mountPath"]: m for m in notebook["volumeMounts"]}
            assert {"/eos/eulake_1", "/scratch", "/var/run/dlaas"} <= set(mounts)
            init = [c["name"] for c in pod["spec"]["initContainers"]]
            assert init == ["block-cloud-metadata", "dlaas-token-agent"]
            if storage == "chart-default":
                assert mounts["/home/jovyan"]["name"] == pod["spec"]["volumes"][0]["name"]
                assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"].startswith("claim-")
            serialized = json.dumps(pod)
            assert model["auth_state"]["access_token"] not in serialized
            assert model["auth_state"]["refresh_token"] not in serialized
    finally:
        await authenticator.iam_client.aclose()


async def test_the_shipped_values_turn_on_named_servers_each_with_its_pod_and_volume(chart, crypt_key, tmp_path):
    app = deploy(chart, tmp_path, AS_IN_THE_IMAGE, CHART_DEFAULT_STORAGE).app
    assert app.allow_named_servers is True and app.named_server_limit_per_user == 3
    assert app.tornado_settings["cookie_options"] == {"samesite": "Lax"}  # through the chart's hub.config
    authenticator, model = await sign_in(app, ["/escape", "/escape/ska"])
    try:
        pods = {server: (await pod_for(app, authenticator, model, slug, server))[1]
                for server, slug in (("", "minimal"), ("root", "root"), ("xcache", "root-xcache"))}
    finally:
        await authenticator.iam_client.aclose()
    assert len({pod["metadata"]["name"] for pod in pods.values()}) == 3
    claims = {pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] for pod in pods.values()}
    assert len(claims) == 3  # each server its own home volume
    for server, pod in pods.items():
        for version in KUBERNETES:
            kubernetes_validate.validate(pod, version, strict=True)
        agent = next(c for c in pod["spec"]["initContainers"] if c["name"] == "dlaas-token-agent")
        assert {"name": "JUPYTERHUB_SERVER_NAME", "value": server} in agent["env"]


async def agent_image_of_a_new_server(app) -> str:
    check_spawner_config(app)
    authenticator, model = await sign_in(app, ["/escape"])
    try:
        _, pod = await pod_for(app, authenticator, model, "root")
    finally:
        await authenticator.iam_client.aclose()
    notebook = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
    agent = next(c for c in pod["spec"]["initContainers"] if c["name"] == "dlaas-token-agent")
    assert agent["image"] != notebook["image"]  # never the profile's image, which has no dlaas-hub
    return agent["image"]


def hub_image(objects) -> str:
    return z2jh.find(objects, "Deployment", "hub")["spec"]["template"]["spec"]["containers"][0]["image"]


async def test_the_shipped_values_run_the_token_agent_in_the_hubs_own_image(chart, crypt_key, tmp_path):
    assert "token_agent_image" not in VALUES["hub"]["config"]["DLaaSKubeSpawner"]
    deployed = deploy(chart, tmp_path, AS_IN_THE_IMAGE)
    assert await agent_image_of_a_new_server(deployed.app) == hub_image(deployed.objects) == (
        f"{VALUES['hub']['image']['name']}:{VALUES['hub']['image']['tag']}")


async def test_the_documented_upgrade_moves_new_servers_agents_to_the_new_image(chart, crypt_key, tmp_path):
    # docs/operators/deploy.md, "Upgrading": a new hub.image.tag, then helm upgrade with the same files.
    before = deploy(chart, tmp_path / "before", AS_IN_THE_IMAGE)
    after = deploy(chart, tmp_path / "after", AS_IN_THE_IMAGE, {"hub": {"image": {"tag": "0.2.0"}}})
    assert hub_image(before.objects).endswith(":0.1.0") and hub_image(after.objects).endswith(":0.2.0")
    assert await agent_image_of_a_new_server(before.app) == hub_image(before.objects)
    assert await agent_image_of_a_new_server(after.app) == hub_image(after.objects)


def pulled_ahead(objects) -> dict[str, set]:
    """Images each pre-puller DaemonSet pulls on every node (its init containers)."""
    return {ds["metadata"]["name"]: {c["image"] for c in ds["spec"]["template"]["spec"]["initContainers"]}
            for ds in objects if ds["kind"] == "DaemonSet" and "image-puller" in ds["metadata"]["name"]}


def test_every_node_pulls_the_token_agents_image_ahead_and_an_upgraded_file_moves_it(chart, tmp_path):
    # The documented upgrade edits hub.image.tag in the values file: the YAML anchor carries it to the
    # pre-puller, so that nodes pull the new agent before servers need it.
    upgraded = tmp_path / "values.yaml"
    upgraded.write_text(VALUES_FILE.read_text().replace('tag: "0.1.0"', 'tag: "0.2.0"'))
    for values, tag in ((VALUES_FILE, "0.1.0"), (upgraded, "0.2.0")):
        objects = z2jh.render(chart.helm, chart.directory, [values, *values_files(tmp_path / tag)[1:]],
                              release=RELEASE, namespace=NAMESPACE)
        pullers = pulled_ahead(objects)
        assert set(pullers) == {"hook-image-puller", "continuous-image-puller"}
        for images in pullers.values():
            assert hub_image(objects) == f"registry.example.org/dlaas/dlaas-hub:{tag}" and hub_image(objects) in images


async def test_a_pinned_agent_image_stays_behind_an_upgrade(chart, crypt_key, tmp_path):
    # What the values shipped before did: the hub moves, every new server's agent stays on the old image.
    old = "registry.example.org/dlaas/dlaas-hub:0.1.0"
    pinned = {"hub": {"image": {"tag": "0.2.0"}, "config": {"DLaaSKubeSpawner": {"token_agent_image": old}}}}
    after = deploy(chart, tmp_path, AS_IN_THE_IMAGE, pinned)
    assert await agent_image_of_a_new_server(after.app) == old
    assert hub_image(after.objects).endswith(":0.2.0")


async def test_no_known_image_for_the_token_agent_is_a_start_up_error_naming_it(chart, crypt_key, tmp_path):
    app = deploy(chart, tmp_path, AS_IN_THE_IMAGE).app
    app.config.DLaaSKubeSpawner.chart_values_file = str(tmp_path / "not-mounted.yaml")
    with pytest.raises(ConfigError, match=r"DLaaSKubeSpawner\.token_agent_image: not set, and the hub's own image"):
        check_spawner_config(app)


async def test_a_chart_profile_list_is_a_start_up_error_naming_it(chart, crypt_key, tmp_path):
    listed = {"singleuser": {"profileList": [{"display_name": "Chart's own", "kubespawner_override": {}}]}}
    app = deploy(chart, tmp_path, AS_IN_THE_IMAGE, listed).app
    with pytest.raises(ConfigError, match=r"singleuser\.profileList"):
        check_spawner_config(app)


async def test_a_missing_profiles_dir_is_a_start_up_error_naming_it(chart, crypt_key, tmp_path):
    app = deploy(chart, tmp_path).app  # the image's path, which this machine does not have
    with pytest.raises(ConfigError, match=r"DLaaSKubeSpawner\.profiles_dir: /usr/local/share/dlaas-hub/profiles"):
        check_spawner_config(app)


# -- finding the chart -------------------------------------------------------------------------------

def chart_dir(path: Path) -> Path:
    (path / "templates").mkdir(parents=True, exist_ok=True)
    for name in ("Chart.yaml", "values.yaml", "values.schema.json"):
        (path / name).write_text("{}\n")
    return path


def no_download(url, into):
    return False


def test_chart_found_through_the_environment_first(tmp_path):
    env_dir, shared = chart_dir(tmp_path / "env"), chart_dir(tmp_path / "shared")
    found = z2jh.find_chart_dir({z2jh.CHART_ENV: str(env_dir)}, shared=shared, cache=tmp_path / "c",
                                download=no_download)
    assert found == env_dir
    assert z2jh.find_chart_dir({}, shared=shared, cache=tmp_path / "c", download=no_download) == shared


def test_chart_env_pointing_nowhere_says_so(tmp_path):
    with pytest.raises(z2jh.ChartNotFound, match=z2jh.CHART_ENV):
        z2jh.find_chart_dir({z2jh.CHART_ENV: str(tmp_path)}, shared=tmp_path, cache=tmp_path, download=no_download)


def test_chart_downloaded_once_into_the_cache(tmp_path):
    calls = []

    def download(url, into):
        calls.append(url)
        chart_dir(into)
        return True

    cache = tmp_path / "cache"
    assert z2jh.find_chart_dir({}, shared=tmp_path / "none", cache=cache, download=download) == cache
    assert z2jh.find_chart_dir({}, shared=tmp_path / "none", cache=cache, download=download) == cache
    assert calls == [z2jh.CHART_URL]


def test_no_chart_anywhere_tells_how_to_provide_one(tmp_path):
    with pytest.raises(z2jh.ChartNotFound) as info:
        z2jh.find_chart_dir({}, shared=tmp_path / "none", cache=tmp_path / "c", download=no_download)
    assert z2jh.CHART_ENV in str(info.value) and "helm pull" in str(info.value)


def test_no_helm_tells_how_to_provide_one(tmp_path):
    with pytest.raises(z2jh.ChartNotFound) as info:
        z2jh.find_helm({z2jh.HELM_ENV: str(tmp_path / "helm")})
    assert "./scripts/test installs it" in str(info.value) and z2jh.HELM_ENV in str(info.value)
