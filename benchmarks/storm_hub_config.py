# The renewal-storm benchmark's hub: the demo's hub, plus a service that gives each user an API token
# with what a server's token has (custom:dlaas:tokens and access to the user's server), with which
# the benchmark asks for their credentials as their servers' token agents would.
import json
import os
from pathlib import Path

from dlaas_hub.dev import devservices

settings = json.loads((Path(os.environ["DLAAS_DEMO_STATE"]) / "settings.json").read_text())
load_subconfig(str(devservices.DEMO_CONFIG))  # noqa: F821
c = get_config()  # noqa: F821

c.JupyterHub.services = [{"name": "storm", "api_token": settings["storm_token"]}]
c.JupyterHub.load_roles = c.JupyterHub.load_roles + [
    {"name": "storm", "services": ["storm"],
     "scopes": ["tokens", "read:metrics", "admin:users"]}]
c.DLaaSAuthenticator.refresh_margin = settings["refresh_margin"]
c.DLaaSAuthenticator.iam_concurrency_limit = settings["iam_concurrency_limit"]
