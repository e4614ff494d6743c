"""A Jupyter server extension that signs the Rucio JupyterLab extension in with the hub's token file.

rucio-jupyterlab (41) answers "Credentials not found. Did you authenticate?" until the user has
saved an authentication method in its settings, even when its instance reads an OIDC token file
(``oidc_auth = file``) that the hub keeps fresh. At server start, this records that choice for every
such instance the user has not configured, so the Rucio panel works without a manual step. A user
who saved other credentials keeps them.

Kernels load the extension's kernel side, which "Add to Notebook" needs (from the IPython profile's
kernel config, as the extension's own image does it). Downloads present the EOS token to EOS
(:mod:`dlaas_hub.server.rucio_download`).

The hub's ``jupyter_server_config.json`` enables it; in an image without dlaas-hub, Jupyter Server
logs that it cannot load it and starts all the same (the panel then asks for the one-time setting).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from . import rucio_download


def _jupyter_server_extension_points():
    return [{"module": "dlaas_hub.server.rucio_extension"}]


def file_token_instances(rucio_config) -> list[dict]:
    """The extension's instances that read the hub's token file."""
    instances = (rucio_config or {}).get("instances") or []
    return [i for i in instances if isinstance(i, dict) and i.get("oidc_auth") == "file" and i.get("name")
            and i.get("oidc_file_name")]


def sign_in(db, rucio_config) -> list[str]:
    """Record OIDC (the token file) for each such instance without credentials; returns their names."""
    done = []
    for instance in file_token_instances(rucio_config):
        if not db.has_any_auth_credentials(namespace=instance["name"]):
            db.set_rucio_auth_credentials(namespace=instance["name"], auth_type="oidc",
                                          params={"token_path": instance["oidc_file_name"]})
            done.append(instance["name"])
    if done and not db.get_active_auth_method():
        db.set_active_auth_method("oidc")
    return done


#: The extension's kernel side, which "Add to Notebook" talks to (rucio-jupyterlab's own image loads it
#: the same way, from the IPython profile's kernel config).
KERNEL_EXTENSION = "rucio_jupyterlab.kernels.ipython"


def kernel_config_path() -> Path:
    try:
        from IPython.paths import get_ipython_dir
    except ImportError:  # IPython gone from the server's environment: its own default
        return Path.home() / ".ipython" / "profile_default" / "ipython_kernel_config.json"
    return Path(get_ipython_dir()) / "profile_default" / "ipython_kernel_config.json"


def load_in_kernels(path: Path) -> str | None:
    """Add the kernel extension to ``IPKernelApp.extensions`` in the kernel config at ``path``, keeping
    everything else; returns what was done, or None when nothing was needed."""
    try:
        config = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as e:
        return f"left {path} alone, it is not readable JSON ({e.__class__.__name__}): load the Rucio extension's " \
               f"kernel side with %load_ext {KERNEL_EXTENSION}"
    app = config.setdefault("IPKernelApp", {}) if isinstance(config, dict) else None
    extensions = app.setdefault("extensions", []) if isinstance(app, dict) else None
    if not isinstance(extensions, list):
        return f"left {path} alone, its IPKernelApp.extensions is not a list"
    if KERNEL_EXTENSION in extensions:
        return None
    extensions.append(KERNEL_EXTENSION)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".dlaas-", delete=False) as f:
        json.dump(config, f, indent=1)
    os.chmod(f.name, 0o644)
    os.replace(f.name, path)
    return f"kernels load {KERNEL_EXTENSION} ({path})"


def _load_jupyter_server_extension(serverapp):
    try:
        from rucio_jupyterlab.db import get_db  # only in servers that have the Rucio extension
    except ImportError:
        return
    names = sign_in(get_db(), serverapp.config.get("RucioConfig", {}))
    if names:
        serverapp.log.info("Rucio extension: signed in to %s with the hub's token file", ", ".join(names))
    done = load_in_kernels(kernel_config_path())
    if done:
        serverapp.log.info("Rucio extension: %s", done)
    from rucio_jupyterlab.rucio.download import RucioFileDownloader

    if rucio_download.install(RucioFileDownloader):
        serverapp.log.info("Rucio extension: downloads present the EOS token to %s",
                           rucio_download.eos_host(os.environ) or "no EOS instance (EOS_MGM_URL unset)")
