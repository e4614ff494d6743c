"""DLaaSLocalSpawner without a hub: credential files, environment, mounts and the image command."""

import json
import os
import re
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from dlaas_hub.spawners import DLaaSLocalSpawner

from ..spawner_fixtures import RUCIO_CONFIG, FakeUser, auth_state, fake_authenticator, fake_hub

PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def make(tmp_path, user=None, name="", **settings):
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
    # JupyterHub gives a spawner its server's name through its database row.
    orm_spawner = SimpleNamespace(name=name, server=None, user_options={}) if name else None
    return DLaaSLocalSpawner(config=config, user=user or FakeUser(), hub=fake_hub(), orm_spawner=orm_spawner,
                             authenticator=fake_authenticator())


async def test_pre_spawn_writes_private_files_and_env(tmp_path):
    spawner = make(tmp_path)
    spawner.user_options = {"profile": "root-xcache"}
    await spawner.run_pre_spawn_hook()
    directory = tmp_path / "credentials" / "mariaska" / "default"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(directory.parent.stat().st_mode) == 0o711  # the hub's: the user cannot swap its folders
    names = sorted(os.listdir(directory))
    assert names == ["eos-bearer-token", "eos-token", "jupyter_server_config.json", "rucio-token", "rucio.cfg"]
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
    directory = tmp_path / "credentials" / "mariaska" / "default"
    assert sorted(os.listdir(directory)) == ["eos-bearer-token", "eos-token", "jupyter_server_config.json"]
    assert "RucioConfig" not in json.loads((directory / "jupyter_server_config.json").read_text())


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


async def test_named_servers_each_have_their_own_files_and_profile(tmp_path):
    user = FakeUser()
    root = make(tmp_path, user=user, name="root")
    xcache = make(tmp_path, user=user, name="root-xcache")
    root.user_options, xcache.user_options = {"profile": "root"}, {"profile": "root-xcache"}
    await root.run_pre_spawn_hook()
    await xcache.run_pre_spawn_hook()
    assert root.credentials_dir != xcache.credentials_dir
    assert sorted(os.listdir(tmp_path / "credentials" / "mariaska")) == ["named-root", "named-root-xcache"]
    for spawner, mode in ((root, "replica"), (xcache, "download")):
        env = spawner.get_env()
        assert env["RUCIO_CONFIG"].startswith(spawner.credentials_dir + "/")
        config = json.loads(Path(spawner.credentials_dir, "jupyter_server_config.json").read_text())
        assert config["RucioConfig"]["instances"][0]["mode"] == mode
    assert root.get_env()["SCRATCH"] == xcache.get_env()["SCRATCH"]  # one scratch area per user


@pytest.mark.parametrize("name,key", [("My Server", "named-_4dy_20_53erver"), ("my server", "named-my_20server"),
                                      ("ÿ/..", "named-_c3_bf_2f.."),
                                      ("a_b", "named-a_5fb")])
async def test_server_names_become_distinct_safe_path_segments(tmp_path, name, key):
    assert make(tmp_path, name=name).server_key() == key


async def test_stopping_a_server_removes_its_files_and_leaves_the_others(tmp_path):
    user = FakeUser()
    first, second = make(tmp_path, user=user, name="a"), make(tmp_path, user=user, name="b")
    for spawner in (first, second):
        spawner.token_agent_enabled = False
        await spawner.run_pre_spawn_hook()
    first.pid = 0  # never started: LocalProcessSpawner's stop has no process to signal
    await first.stop()
    assert not os.path.exists(first.credentials_dir)
    assert sorted(os.listdir(second.credentials_dir)) == ["eos-bearer-token", "eos-token", "jupyter_server_config.json",
                                                         "rucio-token", "rucio.cfg"]
    second.pid = 0
    await second.stop()
    assert not (tmp_path / "credentials" / "mariaska").exists()


async def test_no_profile_chosen_starts_the_default_and_records_it(tmp_path):
    spawner = make(tmp_path, user=FakeUser(name="alice", groups=["/escape"]))
    spawner.user_options = {}
    await spawner.run_pre_spawn_hook()
    assert spawner.user_options == {"profile": "minimal"}
    assert spawner.running_profile().slug == "minimal"


def test_after_a_hub_restart_the_recorded_profile_is_looked_up_once_per_choice(tmp_path, monkeypatch):
    # A hub restart keeps user_options, not attributes: the agent's every request finds the profile.
    spawner = make(tmp_path, user=FakeUser(name="alice", groups=["/escape"]))
    reads = []
    catalogue = spawner.all_profiles
    monkeypatch.setattr(spawner, "all_profiles", lambda: reads.append(1) or catalogue())
    spawner.user_options = {}
    assert spawner.running_profile() is None and reads == []  # no choice recorded: nothing to look up
    spawner.user_options = {"profile": "minimal"}
    assert [spawner.running_profile().slug for _ in range(3)] == ["minimal"] * 3
    assert len(reads) == 1
    spawner.user_options = {"profile": "no-such-profile"}
    assert spawner.running_profile() is None and spawner.running_profile() is None
    assert len(reads) == 3  # a choice not in the catalogue is looked for again: it may be added back


async def test_a_refused_choice_is_not_kept_for_the_next_start(tmp_path):
    from tornado import web

    orm_spawner = SimpleNamespace(name="", server=None, user_options={"profile": "ska-sdc1"})
    spawner = make(tmp_path, user=FakeUser(name="alice", groups=["/escape"]))
    spawner.orm_spawner = orm_spawner
    spawner.user_options = {"profile": "ska-sdc1"}
    with pytest.raises(web.HTTPError):
        await spawner.run_pre_spawn_hook()
    assert orm_spawner.user_options == {} and spawner.user_options == {}
    await spawner.run_pre_spawn_hook()  # the next start without a choice: her default
    assert spawner.running_profile().slug == "minimal" and orm_spawner.user_options == {"profile": "minimal"}


async def test_a_datalake_link_of_the_users_is_never_followed(tmp_path, caplog):
    # A user who makes ~/datalake a link elsewhere must not get the hub (root) to create or replace
    # eos and scratch links there.
    elsewhere = tmp_path / "someone-elses"
    elsewhere.mkdir()
    (elsewhere / "eos").symlink_to("/their/own/target")
    home = tmp_path / "home" / "mariaska"
    home.mkdir(parents=True)
    (home / "datalake").symlink_to(elsewhere)
    spawner = make(tmp_path)
    spawner.user_options = {"profile": "minimal"}
    await spawner.run_pre_spawn_hook()
    assert sorted(os.listdir(elsewhere)) == ["eos"] and os.readlink(elsewhere / "eos") == "/their/own/target"
    assert (home / "datalake").is_symlink()  # the user's link is left as it is
    assert "datalake is not a folder of theirs" in caplog.text
    assert (tmp_path / "credentials" / "mariaska" / "default" / "eos-token").exists()  # the server still starts


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the folder to another account")
async def test_a_datalake_folder_of_another_account_is_left_alone(tmp_path, caplog):
    links = tmp_path / "home" / "mariaska" / "datalake"
    links.mkdir(parents=True)
    os.chown(links, 54321, 54321)
    spawner = make(tmp_path)
    spawner.user_options = {"profile": "minimal"}
    await spawner.run_pre_spawn_hook()
    assert os.listdir(links) == [] and "datalake is not a folder of theirs" in caplog.text


async def test_the_users_own_entries_in_datalake_are_kept_and_stale_links_replaced(tmp_path):
    links = tmp_path / "home" / "mariaska" / "datalake"
    links.mkdir(parents=True)
    (links / "eos").symlink_to("/old/mount/point")
    (links / "scratch").mkdir()  # the user's own folder of that name
    spawner = make(tmp_path)
    spawner.user_options = {"profile": "minimal"}
    await spawner.run_pre_spawn_hook()
    assert os.readlink(links / "eos") == str(tmp_path / "eos")
    assert (links / "scratch").is_dir() and not (links / "scratch").is_symlink()


@pytest.mark.parametrize("options", [{"profile": ["minimal"]}, {"profile": {"slug": "minimal"}},
                                     {"profile": "minimal", "image": 3}, {"profile": 7}])
async def test_options_of_the_wrong_type_are_a_400_in_words_and_the_page_keeps_working(tmp_path, options):
    from tornado import web

    orm_spawner = SimpleNamespace(name="t1", server=None, user_options=dict(options))
    spawner = make(tmp_path, user=FakeUser(name="alice", groups=["/escape"]), name="t1")
    spawner.orm_spawner = orm_spawner
    spawner.user_options = dict(options)
    with pytest.raises(web.HTTPError) as refused:
        await spawner.run_pre_spawn_hook()
    assert refused.value.status_code == 400
    assert "must be a string" in refused.value.jupyterhub_message and "{\"profile\": \"minimal\"}" in \
        refused.value.jupyterhub_message
    assert all(isinstance(v, str) for v in orm_spawner.user_options.values())  # what JupyterHub keeps
    spawner.user_options = dict(options)  # as a hub restart would load them, before the fix above
    form = await spawner.get_options_form()
    form = await form(spawner) if callable(form) else form
    assert 'value="minimal"' in form


async def test_a_link_with_a_profile_shows_the_form_with_that_profile_selected(tmp_path):
    from dlaas_hub.errors import FormNotice

    spawner = make(tmp_path, user=FakeUser(name="maria", groups=["/escape", "/escape/ska"]))
    with pytest.raises(FormNotice, match="a server starts only from this page"):
        spawner.options_from_query({"profile": ["ska-sdc1"]})
    form = await spawner.options_form(spawner)
    selected = [m for m in re.findall(r'<input[^>]*name="profile"[^>]*>', form) if "checked" in m]
    assert len(selected) == 1 and 'value="ska-sdc1"' in selected[0], selected
    with pytest.raises(FormNotice):
        spawner.options_from_query({"profile": [["not", "a", "slug"]], "x": ["1"]})
    assert 'value="ska-sdc1"' in await spawner.options_form(spawner)
