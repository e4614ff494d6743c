# The benchmark's comparison hub: the demo's hub, but signing in with the stock GenericOAuthenticator
# (code exchange and userinfo, no id_token check, no token exchange) against the same development IAM.
import json
import os
from pathlib import Path

from dlaas_hub.dev import devservices

settings = json.loads((Path(os.environ["DLAAS_DEMO_STATE"]) / "settings.json").read_text())
load_subconfig(str(devservices.DEMO_CONFIG))  # noqa: F821
c = get_config()  # noqa: F821

c.JupyterHub.authenticator_class = "generic-oauth"
c.GenericOAuthenticator.login_service = "Development IAM"
c.GenericOAuthenticator.client_id = settings["client_id"]
c.GenericOAuthenticator.client_secret = settings["client_secret"]
c.GenericOAuthenticator.oauth_callback_url = settings["hub_url"] + "/hub/oauth_callback"
c.GenericOAuthenticator.authorize_url = settings["endpoints"]["authorization_endpoint"]
c.GenericOAuthenticator.token_url = settings["endpoints"]["token_endpoint"]
c.GenericOAuthenticator.userdata_url = settings["endpoints"]["userinfo_endpoint"]
c.GenericOAuthenticator.username_claim = "preferred_username"
c.GenericOAuthenticator.scope = ["openid", "profile", "email", "offline_access", "wlcg.groups"]
c.GenericOAuthenticator.basic_auth = True
c.GenericOAuthenticator.enable_auth_state = True
c.GenericOAuthenticator.manage_groups = True
c.GenericOAuthenticator.auth_state_groups_key = lambda auth_state: auth_state["oauth_user"].get("wlcg.groups", [])
c.GenericOAuthenticator.allowed_groups = {"/escape"}
# The data-lake scope is DLaaSAuthenticator's; this hub starts no server.
c.JupyterHub.load_roles = []
c.DLaaSLocalSpawner.grant_tokens_scope = False
