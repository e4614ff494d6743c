"""Spawner misconfiguration is found when the hub starts, named by its setting; per-user problems get a page."""

import os
from types import SimpleNamespace

import pytest
from tornado import web
from traitlets.config import Config

from dlaas_hub.errors import ConfigError
from dlaas_hub.spawners import DLaaSKubeSpawner, DLaaSLocalSpawner
from dlaas_hub.spawners.mixin import check_spawner_config

from ..spawner_fixtures import RUCIO_CONFIG, FakeUser, fake_authenticator, fake_hub
from .test_local_spawner import PROFILES
from .test_local_spawner import make as make_local


def app(spawner_class, **settings):
    config = Config()
    if spawner_class is DLaaSKubeSpawner:
        settings.setdefault("token_agent_image", "registry.example.org/dlaas/dlaas-hub:0.1.0")
    for key, value in {"profiles_dir": str(PROFILES), **RUCIO_CONFIG, **settings}.items():
        config[spawner_class.__name__][key] = value
    return SimpleNamespace(config=config, spawner_class=spawner_class)


@pytest.mark.parametrize("spawner_class", [DLaaSKubeSpawner, DLaaSLocalSpawner])
async def test_a_good_configuration_passes(spawner_class, tmp_path):
    check_spawner_config(app(spawner_class, home_dir_template=str(tmp_path / "{username}"))
                         if spawner_class is DLaaSLocalSpawner else app(spawner_class))


@pytest.mark.parametrize("spawner_class", [DLaaSKubeSpawner, DLaaSLocalSpawner])
async def test_missing_profiles_dir_names_the_setting(spawner_class, tmp_path):
    with pytest.raises(ConfigError, match=rf"{spawner_class.__name__}\.profiles_dir: {tmp_path}/nope is not a dir"):
        check_spawner_config(app(spawner_class, profiles_dir=str(tmp_path / "nope"),
                                 home_dir_template=str(tmp_path)))


@pytest.mark.parametrize("missing", ["destination_rse", "rse_mount_path"])
async def test_replica_mode_without_its_rse_names_rucio_instance(missing):
    instance = {k: v for k, v in RUCIO_CONFIG["rucio_instance"].items() if k != missing}
    with pytest.raises(ConfigError, match=rf"DLaaSKubeSpawner\.rucio_instance: .*needs {missing}") as info:
        check_spawner_config(app(DLaaSKubeSpawner, rucio_instance=instance))
    assert "minimal" in str(info.value) and "root-xcache" not in str(info.value)  # download mode needs no RSE


async def test_download_mode_only_needs_no_rse(tmp_path):
    (tmp_path / "p.yaml").write_text("slug: d\ndisplay_name: D\ndescription: d\nimage: quay.io/x/y:1\n"
                                     "rucio: {mode: download}\n")
    check_spawner_config(app(DLaaSKubeSpawner, profiles_dir=str(tmp_path), rucio_instance={"name": "escape"}))


async def test_download_mode_without_a_ca_path_names_rucio_ca_cert(tmp_path):
    # The Rucio extension refuses a download-mode instance without rucio_ca_cert.
    (tmp_path / "p.yaml").write_text("slug: d\ndisplay_name: D\ndescription: d\nimage: quay.io/x/y:1\n"
                                     "rucio: {mode: download}\n")
    with pytest.raises(ConfigError, match=r"DLaaSKubeSpawner.rucio_ca_cert: Rucio's download mode \(profiles d\)"):
        check_spawner_config(app(DLaaSKubeSpawner, profiles_dir=str(tmp_path), rucio_instance={"name": "escape"},
                                 rucio_ca_cert=""))


async def test_a_chart_profile_list_is_refused():
    config = app(DLaaSKubeSpawner)
    config.config.KubeSpawner.profile_list = [{"display_name": "x", "kubespawner_override": {}}]
    with pytest.raises(ConfigError, match="KubeSpawner.profile_list"):
        check_spawner_config(config)


async def test_an_empty_chart_profile_list_keeps_the_profiles():
    config = app(DLaaSKubeSpawner)
    config.config.KubeSpawner.profile_list = []
    check_spawner_config(config)
    spawner = DLaaSKubeSpawner(_mock=True, config=config.config, user=FakeUser(), hub=fake_hub(),
                               authenticator=fake_authenticator())
    assert 'value="ska-sdc1"' in await spawner.get_options_form()


def test_other_spawners_are_not_checked():
    check_spawner_config(SimpleNamespace(config=Config(), spawner_class=object))


def test_local_servers_as_system_accounts_need_a_root_hub(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ConfigError, match="DLaaSLocalSpawner.home_dir_template: not set.*uid 1000"):
        check_spawner_config(app(DLaaSLocalSpawner, credentials_root=str(tmp_path)))


async def test_user_without_system_account_gets_a_page_naming_the_setting(tmp_path):
    spawner = make_local(tmp_path, user=FakeUser(name="no-such-account-here"), home_dir_template="")
    with pytest.raises(web.HTTPError) as info:
        await spawner.run_pre_spawn_hook()
    assert "no system account named 'no-such-account-here'" in info.value.log_message
    assert "home_dir_template" in info.value.log_message


def test_rucio_issuer_given_as_a_url_is_a_startup_problem_naming_it():
    from dlaas_hub.spawners import DLaaSLocalSpawner

    spawner = DLaaSLocalSpawner(config=_rucio_config(rucio_oidc_issuer="https://iam-escape.cloud.cnaf.infn.it/"))
    [problem] = [p for p in spawner.startup_problems() if "rucio_oidc_issuer" in p]
    assert problem.startswith("DLaaSLocalSpawner.rucio_oidc_issuer: 'https://iam-escape.cloud.cnaf.infn.it/' is a URL")
    assert not [p for p in DLaaSLocalSpawner(config=_rucio_config(rucio_oidc_issuer="escape")).startup_problems()
                if "rucio_oidc_issuer" in p]


def test_a_local_rucio_ca_that_does_not_exist_is_a_startup_problem(tmp_path):
    from dlaas_hub.spawners import DLaaSLocalSpawner

    missing = str(tmp_path / "ca-bundle.crt")
    spawner = DLaaSLocalSpawner(config=_rucio_config(rucio_ca_cert=missing))
    assert any(p.startswith(f"DLaaSLocalSpawner.rucio_ca_cert: {missing} does not exist on this machine")
               for p in spawner.startup_problems())
    (tmp_path / "ca-bundle.crt").write_text("")
    assert not [p for p in DLaaSLocalSpawner(config=_rucio_config(rucio_ca_cert=missing)).startup_problems()
                if "rucio_ca_cert" in p]


def _rucio_config(**settings):
    from traitlets.config import Config

    from ..spawner_fixtures import RUCIO_CONFIG

    config = Config()
    config.DLaaSLocalSpawner.home_dir_template = "/tmp/{username}"
    for key, value in {**RUCIO_CONFIG, **settings}.items():
        config.DLaaSLocalSpawner[key] = value
    return config
