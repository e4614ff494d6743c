# JupyterHub configuration used by the integration tests: reads settings.json beside this file's copy.
import json
from pathlib import Path

settings = json.loads((Path(__file__).parent / "settings.json").read_text())
c = get_config()  # noqa: F821

c.JupyterHub.bind_url = settings["hub_url"]
c.JupyterHub.hub_port = settings["hub_port"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings['proxy_api_port']}"
c.ConfigurableHTTPProxy.command = settings["chp_command"]
c.JupyterHub.db_url = f"sqlite:///{settings['workdir']}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{settings['workdir']}/cookie_secret"
c.JupyterHub.pid_file = f"{settings['workdir']}/jupyterhub.pid"
c.JupyterHub.log_level = "DEBUG"
c.JupyterHub.authenticator_class = "dlaas"

c.DLaaSAuthenticator.oidc_issuer = settings["issuer"]
c.DLaaSAuthenticator.client_id = settings["client_id"]
c.DLaaSAuthenticator.client_secret = settings["client_secret"]
c.DLaaSAuthenticator.oauth_callback_url = settings["hub_url"] + "/hub/oauth_callback"
c.DLaaSAuthenticator.allowed_groups = set(settings["allowed_groups"])
c.DLaaSAuthenticator.admin_groups = set(settings["admin_groups"])
c.DLaaSAuthenticator.exchange_targets = settings["exchange_targets"]

c.JupyterHub.services = [{"name": "tester", "api_token": settings["service_token"]}]
c.JupyterHub.load_roles = [
    {"name": "tester", "scopes": ["admin:users", "admin:auth_state", "list:users", "read:groups"],
     "services": ["tester"]},
]

# The log-scrub test reads everything the hub and its HTTP client say, at DEBUG.
import logging  # noqa: E402

_handler = logging.StreamHandler()
_handler.setFormatter(logging.Formatter("[%(levelname).1s %(name)s] %(message)s"))
for _name in ("httpx", "httpcore", "dlaas_hub"):
    logging.getLogger(_name).setLevel(logging.DEBUG)
    logging.getLogger(_name).addHandler(_handler)
