"""The development Rucio server and a hub whose servers use it, for the Rucio integration tests."""

import os
import subprocess

import pytest

from dlaas_hub.dev import devservices, rucioserver, xrootdserver

from .conftest import start_hub


def require_rucio() -> None:
    """Skip (fail in CI) when the development Rucio server is not installed, saying how to install it."""
    try:
        rucioserver.rucio_bin("gunicorn")
    except devservices.ServiceError as e:
        if os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))


def require_xrootd() -> None:
    """Skip (fail in CI) when the XRootD server standing in for EOS is not installed, saying how to install it."""
    try:
        xrootdserver.xrootd_bin()
    except devservices.ServiceError as e:
        if os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def storage(dev_iam):
    """The XRootD server standing in for EOS, trusting the development IAM for the EOS audience."""
    require_xrootd()
    server = xrootdserver.start_xrootd(root_port=devservices.free_port(), https_port=devservices.free_port(),
                                       issuer=dev_iam)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rucio(dev_iam, tmp_path_factory, request):
    """The development Rucio with the demo's content; in a module that sets STORAGE = True, EULAKE-1's
    files are those the XRootD server serves."""
    require_rucio()
    workdir = tmp_path_factory.mktemp("rucio")
    server = rucioserver.start_rucio(workdir, devservices.free_port(), issuer=dev_iam)
    try:
        datalake = tmp_path_factory.mktemp("datalake")
        storage = request.getfixturevalue("storage") if getattr(request.module, "STORAGE", False) else None
        server.eos_dir = storage.data_dir if storage else datalake / "eos_eulake_1"
        spec = rucioserver.demo_spec(eos_dir=server.eos_dir, scratch_dir=datalake / "scratch",
                                     other_site_dir=datalake / "desy",
                                     eos_root_url=storage.root_url if storage else None)
        server.bootstrap(spec)
        server.datalake = datalake
        server.storage = storage
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
            {"name": "eos", "host_path": str(rucio.eos_dir), "mount_path": "/eos/eulake_1",
             "read_only": True},
            {"name": "scratch", "host_path": str(rucio.datalake / "scratch"), "mount_path": "/scratch",
             "read_only": False}],
        **getattr(request.module, "HUB_OVERRIDES", {}),
    }
    # A module may run its servers in another environment (SINGLEUSER_COMMAND), as a profile's image would.
    # Its commands come first on the servers' PATH, as in the demo.
    extra = {}
    if hasattr(request.module, "SINGLEUSER_COMMAND"):
        command = request.module.SINGLEUSER_COMMAND
        extra = {"singleuser_command": command, "server_path": [os.path.dirname(command[0])]}
    if rucio.storage is not None:
        extra["xrootd"] = {"root_url": rucio.storage.root_url, "https_url": rucio.storage.https_url,
                           "cert_dir": str(rucio.storage.tls.cert_dir), "eos_dir": str(rucio.eos_dir)}
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
