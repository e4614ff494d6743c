"""The Zero-to-JupyterHub values are values chart 4.4 accepts, and configure what dlaas-hub needs."""

from pathlib import Path

import jsonschema
import pytest
import yaml
from traitlets.config import Config

from dlaas_hub.profiles import load_directory

ROOT = Path(__file__).resolve().parent.parent
Z2JH = ROOT.parent / "shared" / "z2jh"


def merge(base, override):
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base.get(key), value) if key in base else value
        return out
    return override


@pytest.fixture(scope="module")
def values():
    return yaml.safe_load((ROOT / "helm-values" / "values.yaml").read_text())


@pytest.fixture(scope="module")
def chart():
    if not (Z2JH / "values.schema.yaml").exists():
        pytest.fail(f"the z2jh chart's schema is expected at {Z2JH} (shared/ beside the checkout)")
    return yaml.safe_load((Z2JH / "values.yaml").read_text()), yaml.safe_load((Z2JH / "values.schema.yaml").read_text())


def test_values_validate_against_the_chart_schema(values, chart):
    defaults, schema = chart
    jsonschema.validate(merge(defaults, values), schema)


def test_a_typo_would_be_caught(values, chart):
    defaults, schema = chart
    broken = merge(values, {"singleuser": {"uidd": 1000}})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(merge(defaults, broken), schema)


def test_hub_config_sets_up_dlaas(values):
    config = values["hub"]["config"]
    assert config["JupyterHub"] == {"authenticator_class": "dlaas", "spawner_class": "dlaas-kube"}
    assert "custom:dlaas:tokens!user" in values["hub"]["loadRoles"]["user"]["scopes"]
    assert "client_secret" not in config["DLaaSAuthenticator"], "secrets belong in a separate values file"
    # the settings are traits the classes really have
    from dlaas_hub.authenticator import DLaaSAuthenticator
    from dlaas_hub.spawners import DLaaSKubeSpawner
    for cls in (DLaaSAuthenticator, DLaaSKubeSpawner):
        unknown = set(config[cls.__name__]) - set(cls.class_trait_names(config=True))
        assert not unknown, f"{cls.__name__} has no settings {unknown}"
    Config(config)  # loadable as traitlets config


def test_hub_image_ships_the_profiles():
    dockerfile = (ROOT / "helm-values" / "hub-image" / "Dockerfile").read_text()
    assert "COPY profiles /usr/local/share/dlaas-hub/profiles" in dockerfile
    profiles, errors = load_directory(ROOT / "profiles")
    assert profiles and not errors
