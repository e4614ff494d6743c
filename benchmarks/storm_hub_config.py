# The renewal-storm benchmark's hub: the demo's hub, plus a service that asks for users' credentials
# as their servers' token agents would (the same endpoint, one API token for all).
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
     "scopes": ["custom:dlaas:tokens", "access:servers", "read:metrics", "admin:users"]}]
c.DLaaSAuthenticator.refresh_margin = settings["refresh_margin"]
c.DLaaSAuthenticator.iam_concurrency_limit = settings["iam_concurrency_limit"]
