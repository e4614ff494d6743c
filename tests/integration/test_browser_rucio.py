"""The Rucio panel in JupyterLab, in a browser: a scientist signs in, starts a server, opens the Rucio
panel and finds the data lake's files, with no setting to make. Screenshots go to
``test-artifacts/browser-rucio/<JupyterHub version>/``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from . import rucio_fixtures, test_browser
from .conftest import require_singleuser
from .test_browser import Journey
from .test_rucio_extension import SINGLEUSER_COMMAND  # noqa: F401 - read by the hub fixture

pytestmark = pytest.mark.integration
rucio, hub, browser = rucio_fixtures.rucio, rucio_fixtures.hub, test_browser.browser
HUB_OVERRIDES = {"Spawner.default_url": "/lab", "DLaaSLocalSpawner.rucio_instance": {
    "name": "escape", "display_name": "ESCAPE", "destination_rse": "EULAKE-1", "rse_mount_path": "/eos/eulake_1",
    "path_begins_at": 2}}


@pytest.fixture(scope="module")
def artifacts() -> Path:
    return test_browser.artifacts_dir("browser-rucio")


def test_the_rucio_panel_shows_the_data_lake_without_any_setting(hub, browser, artifacts):
    require_singleuser()
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    journey = Journey(page, artifacts)
    journey.sign_in(hub, "MariaSKA")
    journey.start_lab()
    page.locator('.jp-SideBar .lm-TabBar-tab[data-id="rucio-jupyterlab:panel"]').click()
    page.wait_for_timeout(3000)
    journey.shot("rucio-panel")
    panel = page.locator("[id='rucio-jupyterlab:panel']")
    search = panel.get_by_placeholder("Enter a Data Identifier (DID)")

    def find(did):
        search.fill(did)
        search.press("Enter")
        panel.get_by_text(did, exact=True).click(timeout=30_000)

    # No setting made: the panel searches with the hub's token right away. On EULAKE-1: available.
    find("ska_sdc1:sdc1.images")
    panel.get_by_text("All files available").wait_for(timeout=30_000)
    journey.shot("rucio-dataset-available")
    # Only at another site: "Make Available" asks Rucio for a rule to EULAKE-1, which then replicates
    # (no transfer service runs here, so it stays replicating).
    find("escape_demo:gw.strain.2026")
    panel.get_by_text("Not available").wait_for(timeout=30_000)
    journey.shot("rucio-dataset-elsewhere")
    panel.get_by_text("Make Available").click()
    panel.get_by_text(re.compile("Replicating", re.I)).first.wait_for(timeout=60_000)
    journey.shot("rucio-dataset-replicating")
    assert "Credentials not found" not in panel.inner_text()
    page.close()
