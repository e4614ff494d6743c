"""The Jupyter server extension that signs the Rucio JupyterLab extension in with the hub's token file.
(The extension's own database and API, for real: tests/integration/test_rucio_extension.py.)"""

import json

import pytest

from dlaas_hub.server.files import RucioSettings, rucio_jupyterlab_config
from dlaas_hub.server.rucio_extension import KERNEL_EXTENSION, load_in_kernels, sign_in


class ExtensionDB:
    """The four calls of rucio-jupyterlab's DatabaseInstance that sign_in uses, kept in memory."""

    def __init__(self, credentials=None, method=None):
        self.credentials, self.method = dict(credentials or {}), method

    def has_any_auth_credentials(self, namespace):
        return any(ns == namespace for ns, _ in self.credentials)

    def set_rucio_auth_credentials(self, namespace, auth_type, params):
        self.credentials[(namespace, auth_type)] = params

    def get_active_auth_method(self):
        return self.method

    def set_active_auth_method(self, method):
        self.method = method


CONFIG = rucio_jupyterlab_config(RucioSettings("https://r", "https://a", destination_rse="EULAKE-1",
                                               rse_mount_path="/eos/eulake_1"), mode="replica",
                                 token_path="/var/run/dlaas/tokens/rucio-token")


def test_the_hubs_jupyter_config_enables_it():
    assert CONFIG["ServerApp"]["jpserver_extensions"] == {"dlaas_hub.server.rucio_extension": True,
                                                          "dlaas_hub.server.labstate": True}


def test_an_unconfigured_user_is_signed_in_with_the_token_file():
    db = ExtensionDB()
    assert sign_in(db, CONFIG["RucioConfig"]) == ["escape"]
    assert db.credentials == {("escape", "oidc"): {"token_path": "/var/run/dlaas/tokens/rucio-token"}}
    assert db.method == "oidc"


def test_credentials_the_user_saved_are_kept():
    db = ExtensionDB({("escape", "userpass"): {"username": "me"}}, method="userpass")
    assert sign_in(db, CONFIG["RucioConfig"]) == []
    assert db.credentials == {("escape", "userpass"): {"username": "me"}} and db.method == "userpass"


def test_kernels_load_the_extensions_kernel_side(tmp_path):
    path = tmp_path / "profile_default" / "ipython_kernel_config.json"
    assert "kernels load rucio_jupyterlab.kernels.ipython" in load_in_kernels(path)
    assert json.loads(path.read_text()) == {"IPKernelApp": {"extensions": [KERNEL_EXTENSION]}}
    assert load_in_kernels(path) is None  # once is enough


def test_the_users_own_kernel_config_is_kept(tmp_path):
    path = tmp_path / "ipython_kernel_config.json"
    path.write_text(json.dumps({"IPKernelApp": {"extensions": ["autoreload"], "exec_lines": ["x = 1"]},
                                "InteractiveShell": {"colors": "Linux"}}))
    load_in_kernels(path)
    assert json.loads(path.read_text()) == {
        "IPKernelApp": {"extensions": ["autoreload", KERNEL_EXTENSION], "exec_lines": ["x = 1"]},
        "InteractiveShell": {"colors": "Linux"}}


@pytest.mark.parametrize("content", ["{not json", json.dumps({"IPKernelApp": {"extensions": "autoreload"}}),
                                     json.dumps(["a list"])])
def test_a_kernel_config_it_cannot_read_is_left_alone_and_said(tmp_path, content):
    path = tmp_path / "ipython_kernel_config.json"
    path.write_text(content)
    said = load_in_kernels(path)
    assert said.startswith(f"left {path} alone")
    assert path.read_text() == content
