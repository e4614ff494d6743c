"""The Zero-to-JupyterHub values: accepted by chart 4.4, and a deploy with them really offers the profiles.

The deploy tests go the way the chart goes: Helm merges the chart's defaults with our values, the hub's
jupyterhub_config.py maps them to traitlets config (tests/z2jh.py does what the chart does for the keys
we touch), JupyterHub resolves the entry points, and the authenticator and spawner are built from that.
"""

import copy
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import kubernetes_validate
import pytest
import respx
import yaml
from jupyterhub.app import JupyterHub
from kubernetes_asyncio.client import ApiClient

from dlaas_hub.errors import ConfigError
from dlaas_hub.profiles.catalog import load_directory
from dlaas_hub.spawners import DLaaSKubeSpawner
from dlaas_hub.spawners.mixin import check_spawner_config

from .. import z2jh
from ..fakeiam import FakeHandler, FakeIAM
from ..spawner_fixtures import FakeUser, fake_hub

ROOT = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((ROOT / "helm-values" / "values.yaml").read_text())
IMAGE_PROFILES = "/usr/local/share/dlaas-hub/profiles"  # where hub-image/Dockerfile copies profiles/
SECRETS = {"hub": {"config": {"DLaaSAuthenticator": {"client_secret": "from-secrets-yaml"}}}}
CRYPT_KEYS = ["c" * 64]


@pytest.fixture(scope="module")
def chart():
    try:
        directory = z2jh.find_chart()
    except z2jh.ChartNotFound as e:
        if os.environ.get("DLAAS_REQUIRE_Z2JH"):
            pytest.fail(str(e))
        pytest.skip(str(e))
    return z2jh.load_chart(directory)


def deployed(chart, *layers) -> dict:
    """What Helm hands the hub: chart defaults, our values, the operator's secrets, then ``layers``."""
    defaults, schema = chart
    merged = defaults
    for layer in (VALUES, SECRETS, *layers):
        merged = z2jh.merge(merged, layer)
    jsonschema.validate(merged, schema)
    return merged


# -- the values themselves ---------------------------------------------------------------------------

def test_values_validate_against_the_chart_schema(chart):
    deployed(chart)


def test_a_typo_would_be_caught(chart):
    with pytest.raises(jsonschema.ValidationError):
        deployed(chart, {"singleuser": {"uidd": 1000}})


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


def hub_app(values, values_file: Path | None = None) -> JupyterHub:
    """JupyterHub's application with the chart's config: it resolves the entry points as a deploy does.

    With ``values_file``, the merged values are written there as the chart mounts them in the hub pod
    (its Secret's ``values.yaml``), and the spawner reads them from there.
    """
    config = z2jh.hub_config(values, crypt_keys=CRYPT_KEYS)
    if values_file is not None:
        values_file.write_text(yaml.safe_dump(values))
        config.DLaaSKubeSpawner.chart_values_file = str(values_file)
    return JupyterHub(config=config)


def without_token_agent_image(values: dict) -> dict:
    """The values as an operator writes them who leaves token_agent_image out, as the docs allow."""
    values = copy.deepcopy(values)
    del values["hub"]["config"]["DLaaSKubeSpawner"]["token_agent_image"]
    return values


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
async def test_a_deploy_offers_and_starts_every_profile_a_member_may_use(chart, storage, member, crypt_key):
    layers = [AS_IN_THE_IMAGE] + ([CHART_DEFAULT_STORAGE] if storage == "chart-default" else [])
    app = hub_app(deployed(chart, *layers))
    assert app.spawner_class is DLaaSKubeSpawner
    check_spawner_config(app)  # what the authenticator runs when the hub starts
    groups, expected = MEMBERS[member]
    authenticator, model = await sign_in(app, groups)
    try:
        for slug in expected:
            form, pod = await pod_for(app, authenticator, model, slug)
            offered = re.findall(r'name="profile"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="profile"', form)
            assert sorted(filter(None, sum(offered, ()))) == sorted(expected)
            kubernetes_validate.validate(pod, "1.33", strict=True)
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


async def test_the_shipped_values_turn_on_named_servers_each_with_its_pod_and_volume(chart, crypt_key):
    app = hub_app(deployed(chart, AS_IN_THE_IMAGE, CHART_DEFAULT_STORAGE))
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
        kubernetes_validate.validate(pod, "1.33", strict=True)
        agent = next(c for c in pod["spec"]["initContainers"] if c["name"] == "dlaas-token-agent")
        assert {"name": "JUPYTERHUB_SERVER_NAME", "value": server} in agent["env"]


async def test_the_token_agent_runs_in_the_hubs_own_image_when_none_is_set(chart, crypt_key, tmp_path):
    values = without_token_agent_image(deployed(chart, AS_IN_THE_IMAGE))
    app = hub_app(values, values_file=tmp_path / "values.yaml")
    check_spawner_config(app)
    authenticator, model = await sign_in(app, ["/escape"])
    try:
        _, pod = await pod_for(app, authenticator, model, "root")
    finally:
        await authenticator.iam_client.aclose()
    agent = next(c for c in pod["spec"]["initContainers"] if c["name"] == "dlaas-token-agent")
    hub_image = f"{VALUES['hub']['image']['name']}:{VALUES['hub']['image']['tag']}"
    assert agent["image"] == hub_image
    notebook = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
    assert notebook["image"] != hub_image


async def test_no_known_image_for_the_token_agent_is_a_start_up_error_naming_it(chart, crypt_key, tmp_path):
    app = hub_app(without_token_agent_image(deployed(chart, AS_IN_THE_IMAGE)), values_file=None)
    app.config.DLaaSKubeSpawner.chart_values_file = str(tmp_path / "not-mounted.yaml")
    with pytest.raises(ConfigError, match=r"DLaaSKubeSpawner\.token_agent_image: not set, and the hub's own image"):
        check_spawner_config(app)


async def test_a_chart_profile_list_is_a_start_up_error_naming_it(chart, crypt_key):
    listed = {"singleuser": {"profileList": [{"display_name": "Chart's own", "kubespawner_override": {}}]}}
    app = hub_app(deployed(chart, AS_IN_THE_IMAGE, listed))
    with pytest.raises(ConfigError, match=r"singleuser\.profileList"):
        check_spawner_config(app)


async def test_a_missing_profiles_dir_is_a_start_up_error_naming_it(chart, crypt_key):
    app = hub_app(deployed(chart))  # the image's path, which this machine does not have
    with pytest.raises(ConfigError, match=r"DLaaSKubeSpawner\.profiles_dir: /usr/local/share/dlaas-hub/profiles"):
        check_spawner_config(app)


# -- finding the chart -------------------------------------------------------------------------------

def chart_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "values.yaml").write_text("singleuser: {}\n")
    (path / "values.schema.json").write_text("{}")
    return path


def no_download(url, into):
    return False


def test_chart_found_through_the_environment_first(tmp_path):
    env_dir, shared = chart_dir(tmp_path / "env"), chart_dir(tmp_path / "shared")
    found = z2jh.find_chart({z2jh.CHART_ENV: str(env_dir)}, shared=shared, cache=tmp_path / "c",
                            download=no_download)
    assert found == env_dir
    assert z2jh.find_chart({}, shared=shared, cache=tmp_path / "c", download=no_download) == shared


def test_chart_env_pointing_nowhere_says_so(tmp_path):
    with pytest.raises(z2jh.ChartNotFound, match=z2jh.CHART_ENV):
        z2jh.find_chart({z2jh.CHART_ENV: str(tmp_path)}, shared=tmp_path, cache=tmp_path, download=no_download)


def test_chart_downloaded_once_into_the_cache(tmp_path):
    calls = []

    def download(url, into):
        calls.append(url)
        chart_dir(into)
        return True

    cache = tmp_path / "cache"
    assert z2jh.find_chart({}, shared=tmp_path / "none", cache=cache, download=download) == cache
    assert z2jh.find_chart({}, shared=tmp_path / "none", cache=cache, download=download) == cache
    assert calls == [z2jh.CHART_URL]


def test_no_chart_anywhere_tells_how_to_provide_one(tmp_path):
    with pytest.raises(z2jh.ChartNotFound) as info:
        z2jh.find_chart({}, shared=tmp_path / "none", cache=tmp_path / "c", download=no_download)
    assert z2jh.CHART_ENV in str(info.value) and "helm pull" in str(info.value)
