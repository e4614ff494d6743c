"""What the Kubernetes cluster must offer the token agent: native sidecars (Kubernetes 1.29+).

Before 1.29 an API server drops an init container's ``restartPolicy: Always`` (1.28 keeps it only
with the SidecarContainers feature gate): the agent then runs as a plain init container that never
ends, and the pod waits in ``Init`` until the spawn times out. Asking the API server's version once
turns that into a message naming the cause.
"""

from __future__ import annotations

import re

from kubernetes_asyncio.client import VersionApi

NATIVE_SIDECARS = (1, 29)


def parse_version(major: str, minor: str) -> tuple[int, int] | None:
    """``("1", "29+")`` as ``(1, 29)``: managed clusters append ``+`` or more to the minor."""
    found = [re.match(r"\d+", str(part or "")) for part in (major, minor)]
    return (int(found[0].group()), int(found[1].group())) if all(found) else None


def native_sidecar_problem(major: str, minor: str, git_version: str = "") -> str | None:
    """Why this cluster cannot run the token agent as a native sidecar; None when it can or is unknown."""
    version = parse_version(major, minor)
    if version is None or version >= NATIVE_SIDECARS:
        return None
    shown = git_version or f"{major}.{minor}"
    return (f"the cluster runs Kubernetes {shown}, and the token agent runs as a native sidecar (an init "
            "container with restartPolicy: Always), which needs Kubernetes 1.29 or later (1.28 with the "
            "SidecarContainers feature gate): upgrade the cluster, or set DLaaSKubeSpawner.token_agent_enabled "
            "= False to start servers without their data-lake tokens")


async def cluster_problem(api_client) -> str | None:
    """Ask the API server (``GET /version``) whether native sidecars work there."""
    info = await VersionApi(api_client).get_code()
    return native_sidecar_problem(info.major, info.minor, info.git_version)
