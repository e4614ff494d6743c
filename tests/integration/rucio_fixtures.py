"""The development Rucio server and a hub whose servers use it, for the Rucio integration tests."""

import os
import subprocess

import pytest

from dlaas_hub.dev import devservices, rucioserver

from .conftest import start_hub


def require_rucio() -> None:
    """Skip (fail in CI) when the development Rucio server is not installed, saying how to install it."""
    try:
        rucioserver.rucio_bin("gunicorn")
    except devservices.ServiceError as e:
        if os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def rucio(dev_iam, tmp_path_factory):
    require_rucio()
    workdir = tmp_path_factory.mktemp("rucio")
    server = rucioserver.start_rucio(workdir, devservices.free_port(), issuer=dev_iam)
    try:
        datalake = tmp_path_factory.mktemp("datalake")
        spec = rucioserver.demo_spec(eos_dir=datalake / "eos_eulake_1", scratch_dir=datalake / "scratch",
                                     other_site_dir=datalake / "desy")
        server.bootstrap(spec)
        server.datalake = datalake
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def hub(dev_iam, rucio, ports, client_secret, tmp_path_factory, request):
    """A hub whose servers use the development Rucio; a module may add HUB_OVERRIDES."""
    overrides = {
        "DLaaSLocalSpawner.rucio_host": rucio.url, "DLaaSLocalSpawner.rucio_auth_host": rucio.url,
        "DLaaSLocalSpawner.rucio_oidc_issuer": rucioserver.IDP_NAME,
        "DLaaSLocalSpawner.rucio_scratch_rse": rucioserver.SCRATCH_RSE,
        "DLaaSLocalSpawner.datalake_mounts": [
            {"name": "eos", "host_path": str(rucio.datalake / "eos_eulake_1"), "mount_path": "/eos/eulake_1",
             "read_only": True},
            {"name": "scratch", "host_path": str(rucio.datalake / "scratch"), "mount_path": "/scratch",
             "read_only": False}],
        **getattr(request.module, "HUB_OVERRIDES", {}),
    }
    # A module may run its servers in another environment (SINGLEUSER_COMMAND), as a profile's image would.
    extra = {"singleuser_command": request.module.SINGLEUSER_COMMAND} if hasattr(request.module,
                                                                               "SINGLEUSER_COMMAND") else {}
    hub = start_hub(tmp_path_factory.mktemp("hub"), hub_port=ports["hub"], iam_url=dev_iam,
                    client_secret=client_secret, overrides=overrides, **extra)
    yield hub
    devservices.stop(hub.proc)


def rucio_cli(env: dict, *args: str, command: str = "rucio") -> subprocess.CompletedProcess:
    """The real rucio client (or ``datalake``), run as a terminal of the user's server would: with that
    server's environment."""
    return subprocess.run([rucioserver.rucio_bin(command), *args], env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def as_root(rucio, code: str) -> str:
    """Python run with Rucio's client as root (the operator's side), for set-up and checks."""
    result = subprocess.run([rucioserver.rucio_bin("python"), "-c", "from rucio.client import Client\n"
                             "client = Client()\n" + code], env=rucio.environ(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
