"""The local demo: the development IAM and a JupyterHub with DLaaSAuthenticator on this machine."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from . import devservices, rucioserver, xrootdserver

CLIENT_ID = "dlaas-hub-demo"


def _private_file(path: Path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)


def prepare_state(state_dir: Path, *, hub_port: int, iam_port: int) -> dict:
    """Write the demo's settings (ports, client secret, encryption key) readable by this user only."""
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    settings_path = state_dir / "settings.json"
    previous = json.loads(settings_path.read_text()) if settings_path.exists() else {}
    settings = {
        "state_dir": str(state_dir.resolve()),
        "hub_url": f"http://127.0.0.1:{hub_port}",
        "hub_internal_port": devservices.free_port(),
        "proxy_api_port": devservices.free_port(),
        "chp_command": devservices.chp_command(),
        "singleuser_command": [devservices.python_bin("jupyterhub-singleuser")],
        "issuer": f"http://127.0.0.1:{iam_port}/",
        "client_id": CLIENT_ID,
        # The IAM forgets its clients and tokens when it stops, so the secret may change; the
        # encryption key must not, or stored auth_state becomes unreadable.
        "client_secret": secrets.token_urlsafe(32),
        "crypt_key": previous.get("crypt_key") or secrets.token_hex(32),
    }
    _private_file(settings_path, json.dumps(settings, indent=1))
    return settings


#: EOS tokens live 20 minutes, as the docs say of ESCAPE's (Rucio's, an hour: the IAM's default).
EOS_TOKEN_LIFETIME = 20 * 60

#: What the demo's home page says it is: what is real, and what stands in for what.
DEMO_NOTICE = (
    "<strong>This is the dlaas-hub demo.</strong> Real: JupyterHub with dlaas-hub, an OpenID provider standing "
    "in for ESCAPE IAM (token exchange included), the Rucio server, the Rucio client in your terminal. Standing "
    "in: {storage}, no transfer service (a replication rule stays replicating), every profile runs this machine's "
    "Python rather than its image, and all demo users share one system account, so they can read each other's "
    "files.")
#: What the demo's Rucio holds (dlaas_hub.dev.rucioserver.demo_spec), for the Rucio panel's search.
DEMO_SEARCH = (
    " <strong>To search in the Rucio panel:</strong> <code>ska_sdc1:*</code> (SKA's SDC1 images, on EULAKE-1, "
    "the data lake), <code>escape_demo:*</code> (gravitational-wave strain, at DESY-DCACHE, a site your server "
    "cannot see: Make Available asks Rucio for a copy), and your own <code>user.&lt;name&gt;:*</code> after a "
    "<code>datalake upload</code>.")
LOCAL_EOS = ("local directories for EOS (<code>~/datalake/eos</code> for <code>/eos/eulake_1</code>, "
             "<code>~/datalake/scratch</code> for <code>/scratch</code>; no FUSE)")
XROOTD_EOS = ("an XRootD server for EOS at <code>$EOS_MGM_URL</code>, which checks your EOS token as EOS does "
              "(<code>BEARER_TOKEN_FILE=$DLAAS_EOS_TOKEN_FILE xrdcp $EOS_MGM_URL//eos/eulake_1/&lt;path&gt; .</code>; "
              "<code>rucio list-file-replicas ska_sdc1:sdc1.images</code> gives paths), and local directories for "
              "the FUSE mounts "
              "(<code>~/datalake/eos</code> for <code>/eos/eulake_1</code>, <code>~/datalake/scratch</code> for "
              "<code>/scratch</code>)")


def start_storage(root_port: int, https_port: int, issuer: str):
    """The XRootD server standing in for EOS; None (and why) when it is not installed."""
    try:
        xrootdserver.xrootd_bin()
    except devservices.ServiceError as e:
        print(f"  dlaas-hub demo: no storage server standing in for EOS ({e}).", file=sys.stderr)
        return None
    print("  starting the XRootD server standing in for EOS...", flush=True)
    return xrootdserver.start_xrootd(root_port=root_port, https_port=https_port, issuer=issuer)


def start_rucio(state_dir: Path, port: int, issuer: str, storage=None):
    """The demo's Rucio server with its accounts and datasets, EULAKE-1 on ``storage`` when it runs; None
    (and why) when Rucio is not installed."""
    try:
        rucioserver.rucio_bin("gunicorn")
    except devservices.ServiceError as e:
        print(f"  dlaas-hub demo: no local Rucio ({e}); servers point at ESCAPE's instead.", file=sys.stderr)
        return None
    print("  starting the Rucio server...", flush=True)
    server = rucioserver.start_rucio(state_dir / "rucio", port, issuer=issuer)
    datalake = state_dir / "datalake"
    try:
        server.bootstrap(rucioserver.demo_spec(
            eos_dir=storage.data_dir if storage is not None else datalake / "eos_eulake_1",
            scratch_dir=datalake / "scratch", other_site_dir=state_dir / "rucio" / "other-site",
            eos_root_url=storage.root_url if storage is not None else None))
    except BaseException:  # a failed bootstrap, or a stop asked meanwhile: the server goes too
        server.stop()
        raise
    return server


class Stop(Exception):
    """SIGTERM or Ctrl-C: stop what has started, in reverse order, and exit 0."""


def _raise_stop(*_):
    raise Stop()


def run(*, hub_port: int, iam_port: int, state_dir: Path, rucio_port: int = 8280, xrootd_port: int = 1094) -> int:
    # From the first moment: a stop asked while services are still starting stops those already up.
    signal.signal(signal.SIGTERM, _raise_stop)
    started: list = []
    try:
        return _run(hub_port, iam_port, state_dir, rucio_port, xrootd_port, started)
    except (Stop, KeyboardInterrupt):
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the clean-up below is not interrupted
        for stop in reversed(started):
            stop()
        if started:
            # The servers' own output ends with a notebook server's goodbye: say what happened.
            print(f"\n  dlaas-hub demo stopped: its hub, servers and services are down; {state_dir} keeps its "
                  "state for the next start.", flush=True)


def _run(hub_port: int, iam_port: int, state_dir: Path, rucio_port: int, xrootd_port: int, started: list) -> int:
    settings = prepare_state(state_dir, hub_port=hub_port, iam_port=iam_port)
    iam = devservices.start_dev_iam(
        iam_port, redirect_uris=[settings["hub_url"] + "/hub/oauth_callback"],
        client_id=CLIENT_ID, client_secret=settings["client_secret"],
        extra_args=[f"--audience-token-ttl={xrootdserver.EOS_AUDIENCE}={EOS_TOKEN_LIFETIME}"],
    )
    started.append(lambda: devservices.stop(iam))
    storage = start_storage(xrootd_port, xrootd_port + 1, settings["issuer"])
    if storage is not None:
        started.append(storage.stop)
        settings.update(xrootd={"root_url": storage.root_url, "https_url": storage.https_url,
                                "cert_dir": str(storage.tls.cert_dir), "eos_dir": str(storage.data_dir)})
    rucio = start_rucio(Path(settings["state_dir"]), rucio_port, settings["issuer"], storage)
    if rucio is not None:
        started.append(rucio.stop)
        settings.update(rucio_url=rucio.url, rucio_idp_name=rucioserver.IDP_NAME,
                        rucio_scratch_rse=rucioserver.SCRATCH_RSE)
    # Servers run in .venv-singleuser when it is there: it stands for a profile's image, with JupyterLab,
    # the Rucio extension and client, and datalake.
    singleuser = devservices.REPO_ROOT / ".venv-singleuser" / "bin"
    if (singleuser / "jupyterhub-singleuser").exists():
        settings.update(singleuser_command=[str(singleuser / "jupyterhub-singleuser")], server_path=[str(singleuser)])
    else:
        print("  dlaas-hub demo: no .venv-singleuser (./scripts/demo installs it): servers run without the Rucio "
              "extension.", file=sys.stderr)
        settings.update(server_path=[str(Path(sys.executable).parent)] + (
            [str(rucioserver.RUCIO_VENV / "bin")] if rucio is not None else []))
    notice = DEMO_NOTICE.format(storage=XROOTD_EOS if storage is not None else LOCAL_EOS)
    settings.update(demo_notice=notice + (DEMO_SEARCH if rucio is not None else ""))
    _private_file(state_dir / "settings.json", json.dumps(settings, indent=1))
    hub = subprocess.Popen(
        [devservices.python_bin("jupyterhub"), "-f", str(devservices.DEMO_CONFIG)],
        cwd=state_dir, env={**os.environ, "DLAAS_DEMO_STATE": settings["state_dir"]},
    )
    started.append(lambda: devservices.stop(hub, timeout=30))
    users = json.loads(devservices.DEV_IAM_USERS.read_text())["users"]
    print(f"\n  dlaas-hub demo: open {settings['hub_url']}/ and sign in with the development IAM.", flush=True)
    for user in users:
        print(f"    {user['username']:<10} password {user['password']:<14} groups {', '.join(user['groups'])}")
    print("  Press Ctrl-C to stop.\n", flush=True)
    return hub.wait()


def main(args) -> int:
    try:
        return run(hub_port=args.hub_port, iam_port=args.iam_port, state_dir=Path(args.state_dir),
                   rucio_port=args.rucio_port, xrootd_port=args.xrootd_port)
    except devservices.ServiceError as e:
        print(f"dlaas-hub demo: {e}", file=sys.stderr)
        return 1
