"""DLaaSLocalSpawner without a hub: credential files, environment, mounts and the image command."""

import os
import stat
from pathlib import Path

import pytest
from traitlets.config import Config

from dlaas_hub.spawners import DLaaSLocalSpawner

from .spawner_fixtures import RUCIO_CONFIG, FakeUser, auth_state, fake_authenticator, fake_hub

PROFILES = Path(__file__).resolve().parent.parent / "profiles"


def make(tmp_path, user=None, **settings):
    config = Config()
    base = {
        "profiles_dir": str(PROFILES),
        "home_dir_template": str(tmp_path / "home" / "{username}"),
        "credentials_root": str(tmp_path / "credentials"),
        "datalake_mounts": [
            {"name": "eos", "host_path": str(tmp_path / "eos"), "mount_path": "/eos/eulake_1", "read_only": True},
            {"name": "scratch", "host_path": str(tmp_path / "scratch"), "mount_path": "/scratch"},
        ],
        **RUCIO_CONFIG,
        **settings,
    }
    for key, value in base.items():
        config.DLaaSLocalSpawner[key] = value
    (tmp_path / "eos").mkdir(exist_ok=True)
    (tmp_path / "scratch").mkdir(exist_ok=True)
    return DLaaSLocalSpawner(config=config, user=user or FakeUser(), hub=fake_hub(),
                             authenticator=fake_authenticator())


async def test_pre_spawn_writes_private_files_and_env(tmp_path):
    spawner = make(tmp_path)
    spawner.user_options = {"profile": "root-xcache"}
    await spawner.run_pre_spawn_hook()
    directory = tmp_path / "credentials" / "mariaska"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    names = sorted(os.listdir(directory))
    assert names == ["eos-token", "jupyter_server_config.json", "rucio-token", "rucio.cfg"]
    for name in names:
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    env = spawner.get_env()
    assert env["OAUTH2_TOKEN"] == f"FILE:{directory}/eos-token"
    assert env["RUCIO_CONFIG"] == f"{directory}/rucio.cfg"
    assert env["SCRATCH"] == str(tmp_path / "scratch" / "mariaska")
    assert env["XCACHE_REDIRECTOR"] == "root://xcache-redirector.cern.ch"
    assert os.readlink(tmp_path / "home" / "mariaska" / "datalake" / "eos") == str(tmp_path / "eos")
    assert stat.S_IMODE((tmp_path / "scratch" / "mariaska").stat().st_mode) == 0o700
    state = auth_state()
    for value in env.values():
        for secret in (state["refresh_token"], state["access_token"], state["exchanged"]["eos"]["access_token"]):
            assert secret not in value


async def test_image_is_replaced_by_the_configured_command(tmp_path):
    image = "gitlab-registry.cern.ch/escape-wp2/docker-images/datalake-singleuser-root:v1.3.2"
    spawner = make(tmp_path, image_commands={image: ["/opt/root/bin/jupyterhub-singleuser", "--debug"]})
    spawner.user_options = {"profile": "root"}
    await spawner.run_pre_spawn_hook()
    assert spawner.cmd == ["/opt/root/bin/jupyterhub-singleuser", "--debug"]
    assert spawner.mem_limit == 8 * 1024**3 and spawner.cpu_limit == 4


async def test_a_target_gone_since_last_start_leaves_no_file(tmp_path):
    spawner = make(tmp_path)
    await spawner.run_pre_spawn_hook()
    state = auth_state()
    del state["exchanged"]["rucio"]
    spawner.user = FakeUser(state=state)
    await spawner.run_pre_spawn_hook()
    assert sorted(os.listdir(tmp_path / "credentials" / "mariaska")) == ["eos-token"]


async def test_options_form_is_kubespawners(tmp_path):
    spawner = make(tmp_path, user=FakeUser(name="alice", groups=["/escape"]))
    form = await spawner.options_form(spawner)
    assert 'name="profile"' in form and 'value="minimal"' in form and "ska-sdc1" not in form
    assert spawner.options_from_form({"profile": ["root"]}) == {"profile": "root"}


async def test_forbidden_profile_writes_nothing(tmp_path):
    from tornado import web

    spawner = make(tmp_path, user=FakeUser(name="alice", groups=["/escape"]))
    spawner.user_options = {"profile": "ska-sdc1"}
    with pytest.raises(web.HTTPError):
        await spawner.run_pre_spawn_hook()
    assert not (tmp_path / "credentials" / "alice").exists()
