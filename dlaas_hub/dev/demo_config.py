# JupyterHub configuration of the local demo (`dlaas-hub demo`): the development IAM, DLaaSAuthenticator
# and a local single-user server per user. Settings (ports, secrets) come from the demo's state
# directory, written by dlaas_hub.demo with mode 0600.
import json
import os
import ssl
from pathlib import Path

settings = json.loads((Path(os.environ["DLAAS_DEMO_STATE"]) / "settings.json").read_text())
c = get_config()  # noqa: F821

c.JupyterHub.bind_url = settings["hub_url"]
c.JupyterHub.hub_port = settings["hub_internal_port"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings['proxy_api_port']}"
c.ConfigurableHTTPProxy.command = settings["chp_command"]
c.JupyterHub.allow_named_servers = True  # each named server has its own profile and token files
c.JupyterHub.named_server_limit_per_user = 3
# The hub's cookies (and its servers', which inherit these) are not sent with requests other sites start.
c.JupyterHub.tornado_settings = {"cookie_options": {"samesite": "Lax"}}
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

# The user role holds the scope each server's token agent uses to fetch its credentials.
c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "custom:dlaas:tokens!user"]}]

# One local process per user, run as the demo's own user under the state directory, with the
# experiments' profiles and the data lake mapped to local directories.
state = Path(settings["state_dir"])
c.JupyterHub.spawner_class = "dlaas-local"
c.DLaaSLocalSpawner.home_dir_template = str(state / "home" / "{username}")
c.DLaaSLocalSpawner.credentials_root = str(state / "credentials")
c.DLaaSLocalSpawner.profiles_dir = settings.get("profiles_dir") or str(
    Path(__file__).resolve().parents[2] / "profiles")
# With the storage server standing in for EOS (dlaas_hub.dev.xrootdserver), ~/datalake/eos is the folder it serves.
xrootd = settings.get("xrootd") or {}
eos_dir = xrootd.get("eos_dir") or str(state / "datalake" / "eos_eulake_1")
c.DLaaSLocalSpawner.datalake_mounts = [
    {"name": "eos", "host_path": eos_dir, "mount_path": "/eos/eulake_1",
     "read_only": True},
    {"name": "scratch", "host_path": str(state / "datalake" / "scratch"), "mount_path": "/scratch",
     "read_only": False},
]
for _mount in c.DLaaSLocalSpawner.datalake_mounts:
    os.makedirs(_mount["host_path"], exist_ok=True)
if settings.get("rucio_url"):
    # The demo's own Rucio server (dlaas_hub.dev.rucioserver): accounts are the IAM names in lower case.
    c.DLaaSLocalSpawner.rucio_host = settings["rucio_url"]
    c.DLaaSLocalSpawner.rucio_auth_host = settings["rucio_url"]
    c.DLaaSLocalSpawner.rucio_oidc_issuer = settings["rucio_idp_name"]
    c.DLaaSLocalSpawner.rucio_scratch_rse = settings["rucio_scratch_rse"]
    c.DLaaSLocalSpawner.rucio_account = lambda spawner, claims: str(claims.get("preferred_username", "")).lower()
    # EULAKE-1's PFNs are file://localhost/eos/eulake_1/<path>: the extension drops the 2 leading
    # segments and finds the file under the local directory standing for /eos/eulake_1.
    c.DLaaSLocalSpawner.rucio_instance = {
        "name": "demo", "display_name": "dlaas-hub demo Rucio", "destination_rse": "EULAKE-1",
        "rse_mount_path": eos_dir, "path_begins_at": 2, "site_name": "DEMO",
        # A catalogue of a few datasets: `scope:*` lists them (ESCAPE's own instance keeps wildcards off).
        "wildcard_enabled": True,
    }
else:
    c.DLaaSLocalSpawner.rucio_host = "https://escape-rucio.cern.ch"
    c.DLaaSLocalSpawner.rucio_auth_host = "https://escape-rucio-auth.cern.ch"
    c.DLaaSLocalSpawner.rucio_instance = {
        "name": "escape", "display_name": "ESCAPE", "rucio_webui_url": "https://escape-rucio-webui.cern.ch",
        "destination_rse": "EULAKE-1", "rse_mount_path": "/eos/eulake_1", "site_name": "CERN",
    }
# Local servers use this machine's CA bundle (the Rucio extension requires one in download mode).
c.DLaaSLocalSpawner.rucio_ca_cert = next(
    (p for p in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt") if os.path.exists(p)),
    ssl.get_default_verify_paths().openssl_cafile)
# A terminal in a demo server finds python and jupyter (the hub's environment), and rucio.
c.Spawner.environment = {"PATH": os.pathsep.join(settings.get("server_path", []) + [os.environ.get("PATH", "")])}
if xrootd:
    # The storage tools find the server as EOS users know it, and trust its CA (root:// is TLS only).
    c.Spawner.environment.update(EOS_MGM_URL=xrootd["root_url"], X509_CERT_DIR=xrootd["cert_dir"])
if settings.get("demo_notice"):
    c.JupyterHub.template_vars = {"dlaas_demo_notice": settings["demo_notice"]}
c.Spawner.cmd = settings["singleuser_command"]
c.Spawner.default_url = settings.get("default_url", "/lab")
if os.geteuid() == 0:
    # Containers and CI machines often run the demo as root; Jupyter Server refuses that by default.
    c.Spawner.args = ["--allow-root"]
