# JupyterHub configuration of the integration tests: the demo's configuration (settings.json in
# $DLAAS_DEMO_STATE, written by the test), plus a service that may read users' auth_state, and DEBUG
# logging everywhere for the log-scrub test.
import json
import logging
import os
from pathlib import Path

from dlaas_hub.dev import devservices

settings_overrides = json.loads((Path(os.environ["DLAAS_DEMO_STATE"]) / "settings.json").read_text())["overrides"]

load_subconfig(str(devservices.DEMO_CONFIG))  # noqa: F821
c = get_config()  # noqa: F821

c.JupyterHub.log_level = "DEBUG"
c.JupyterHub.services = [{"name": "tester", "api_token": os.environ["DLAAS_TEST_SERVICE_TOKEN"]}]
c.JupyterHub.load_roles = c.JupyterHub.load_roles + [
    {"name": "tester", "services": ["tester"],
     "scopes": ["admin:users", "admin:auth_state", "admin:servers", "admin:server_state", "list:users",
                "read:groups", "tokens", "read:metrics"]},
]

for _key, _value in settings_overrides.items():
    _section, _trait = _key.split(".")
    c[_section][_trait] = _value

_handler = logging.StreamHandler()
_handler.setFormatter(logging.Formatter("[%(levelname).1s %(name)s] %(message)s"))
for _name in ("aiohttp", "httpx", "httpcore", "dlaas_hub"):
    logging.getLogger(_name).setLevel(logging.DEBUG)
    logging.getLogger(_name).addHandler(_handler)
