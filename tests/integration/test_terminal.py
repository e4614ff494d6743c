"""A JupyterLab terminal is where a scientist types `rucio`: a login shell, opened through the server's
terminals API and its websocket, as JupyterLab does. Debian's /etc/profile resets PATH in it; the
server's own commands must still be found there."""

import asyncio
import json

import httpx
import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from . import rucio_fixtures
from .conftest import SINGLEUSER_BIN, browser_login, require_singleuser
from .test_spawn import start

pytestmark = pytest.mark.integration
rucio, hub = rucio_fixtures.rucio, rucio_fixtures.hub
SINGLEUSER_COMMAND = [str(SINGLEUSER_BIN / "jupyterhub-singleuser")]


@pytest.fixture(scope="module")
def server_token(hub):
    require_singleuser()
    browser_login(hub, "MariaSKA")
    start(hub, "mariaska", "minimal")
    return hub.api("POST", "/users/mariaska/tokens", json={"note": "terminal",
                                                           "scopes": ["access:servers!user"]}).json()["token"]


async def run_in_terminal(hub, token: str, line: str, timeout: float = 60) -> str:
    """Open a terminal as JupyterLab does, type ``line``, and return what the terminal printed until it ended."""
    headers = {"Authorization": f"token {token}"}
    base = f"{hub.url}/user/mariaska"
    created = httpx.post(f"{base}/api/terminals", headers=headers, timeout=30)
    assert created.status_code == 200, created.text
    name = created.json()["name"]
    ws = await websocket_connect(HTTPRequest(f"{base.replace('http', 'ws', 1)}/terminals/websocket/{name}",
                                             headers=headers))
    # The marker is computed by the shell: its echo of the typed line does not match it.
    ws.write_message(json.dumps(["stdin", f"{line}; echo TERMINAL-$((6*7))-DONE\r"]))
    output = ""
    deadline = asyncio.get_running_loop().time() + timeout
    while "TERMINAL-42-DONE" not in output:
        remaining = deadline - asyncio.get_running_loop().time()
        assert remaining > 0, f"the terminal did not finish: {output[-2000:]!r}"
        message = await asyncio.wait_for(ws.read_message(), remaining)
        assert message is not None, f"the terminal closed: {output[-2000:]!r}"
        kind, *payload = json.loads(message)
        if kind == "stdout":
            output += payload[0]
    ws.close()
    return output


def test_the_servers_commands_are_found_in_a_terminal(hub, server_token):
    output = asyncio.run(run_in_terminal(hub, server_token, "command -v python rucio datalake"))
    found = [line.strip() for line in output.splitlines() if line.strip().startswith("/")]
    assert found[-3:] == [str(SINGLEUSER_BIN / name) for name in ("python", "rucio", "datalake")], output[-2000:]
