# JupyterHub configuration of the local demo (`dlaas-hub demo`): the development IAM, DLaaSAuthenticator
# and a local single-user server per user. Settings (ports, secrets) come from the demo's state
# directory, written by dlaas_hub.demo with mode 0600.
import json
import os
from pathlib import Path

settings = json.loads((Path(os.environ["DLAAS_DEMO_STATE"]) / "settings.json").read_text())
c = get_config()  # noqa: F821

c.JupyterHub.bind_url = settings["hub_url"]
c.JupyterHub.hub_port = settings["hub_internal_port"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings['proxy_api_port']}"
c.ConfigurableHTTPProxy.command = settings["chp_command"]
c.JupyterHub.db_url = f"sqlite:///{settings['state_dir']}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{settings['state_dir']}/cookie_secret"
c.JupyterHub.pid_file = f"{settings['state_dir']}/jupyterhub.pid"
c.CryptKeeper.keys = [settings["crypt_key"]] if settings.get("crypt_key") else []

c.JupyterHub.authenticator_class = "dlaas"
c.DLaaSAuthenticator.login_service = "Development IAM"
c.DLaaSAuthenticator.oidc_issuer = settings["issuer"]
c.DLaaSAuthenticator.client_id = settings["client_id"]
c.DLaaSAuthenticator.client_secret = settings["client_secret"]
c.DLaaSAuthenticator.oauth_callback_url = settings["hub_url"] + "/hub/oauth_callback"
c.DLaaSAuthenticator.allowed_groups = set(settings.get("allowed_groups", ["/escape"]))
c.DLaaSAuthenticator.admin_groups = set(settings.get("admin_groups", ["/escape/admins"]))
c.DLaaSAuthenticator.exchange_targets = settings.get("exchange_targets", {
    "eos": {"audience": "eos-eulake", "scope": "openid profile wlcg.groups storage.read:/eos"},
    "rucio": {"audience": "rucio", "scope": "openid profile"},
})

# One local process per user, run as the demo's own user under the state directory.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = settings["state_dir"] + "/home/{username}"
c.Spawner.cmd = settings["singleuser_command"]
c.Spawner.default_url = "/lab"
if os.geteuid() == 0:
    # Containers and CI machines often run the demo as root; Jupyter Server refuses that by default.
    c.Spawner.args = ["--allow-root"]
