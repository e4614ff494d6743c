"""A Jupyter server extension serving the data lake's state to JupyterLab: ``GET <server>/dlaas/state``.

The token agent records the state after each round (:mod:`dlaas_hub.server.lakestate`, in the file
``$DLAAS_STATE_FILE``); this answers it to the signed-in user with the link that signs in again and
comes back to JupyterLab. Never a token: the file holds none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from urllib.parse import quote

from .lakestate import STATE_ENV


def _jupyter_server_extension_points():
    return [{"module": "dlaas_hub.server.labstate"}]


def sign_in_url(environ: Mapping[str, str]) -> str:
    """The hub's way to sign in again (``/hub/dlaas/sign-in-again``), coming back to this server's JupyterLab."""
    base = environ.get("JUPYTERHUB_BASE_URL", "/")
    prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    return f"{base.rstrip('/')}/hub/dlaas/sign-in-again?next={quote(prefix.rstrip('/') + '/lab', safe='')}"


def read_state(environ: Mapping[str, str]) -> dict:
    """The agent's last record; ``renewal: unknown`` before its first round, ``off`` in a server the
    hub gave no token files (JupyterLab then shows nothing)."""
    path = environ.get(STATE_ENV)
    if not path:
        return {"renewal": "off", "tokens": [], "sign_in_url": sign_in_url(environ)}
    try:
        with open(path or "") as f:
            state = json.load(f)
    except (OSError, ValueError):
        state = None
    if not isinstance(state, dict):
        state = {"renewal": "unknown", "tokens": []}
    return {**state, "sign_in_url": sign_in_url(environ)}


def _load_jupyter_server_extension(serverapp):
    from jupyter_server.base.handlers import APIHandler
    from jupyter_server.utils import url_path_join
    from tornado import web

    class StateHandler(APIHandler):
        @web.authenticated
        def get(self):
            self.set_header("Cache-Control", "no-store")
            self.finish(json.dumps(read_state(os.environ)))

    route = url_path_join(serverapp.web_app.settings["base_url"], "dlaas", "state")
    serverapp.web_app.add_handlers(".*$", [(route, StateHandler)])
