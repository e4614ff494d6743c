"""The Zero-to-JupyterHub 4.4 chart, as far as the tests need it.

Two parts: finding the chart's own ``values.yaml`` and values schema (never copied into this project),
and turning Helm values into the hub's traitlets config the way the chart's ``jupyterhub_config.py``
does for the keys a dlaas-hub deploy touches (``hub.config``, ``hub.loadRoles``, ``hub.extraConfig``,
``singleuser.*``), so that a test builds the authenticator and spawner exactly as a deploy would.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from pathlib import Path

import yaml
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
CHART_VERSION = "4.4.0"
CHART_ENV = "DLAAS_Z2JH_CHART"
CHART_URL = f"https://hub.jupyter.org/helm-chart/jupyterhub-{CHART_VERSION}.tgz"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dlaas-hub" / f"z2jh-{CHART_VERSION}"
SCHEMA_NAMES = ("values.schema.yaml", "values.schema.json")

HOW_TO_PROVIDE = (
    f"the Zero-to-JupyterHub {CHART_VERSION} chart's values.yaml and values schema are needed: set {CHART_ENV} to a "
    f"directory holding them (for example the output of `helm pull jupyterhub/jupyterhub --version {CHART_VERSION} "
    f"--untar`, its jupyterhub/ folder), or put them in ../shared/z2jh beside the checkout, or let the tests "
    f"download {CHART_URL} once (cached in {CACHE})"
)


class ChartNotFound(LookupError):
    pass


def _complete(directory: Path) -> bool:
    return (directory / "values.yaml").is_file() and any((directory / n).is_file() for n in SCHEMA_NAMES)


def _download(url: str, into: Path, timeout: float = 10.0) -> bool:
    import httpx

    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError:
        return False
    wanted = {f"jupyterhub/{name}" for name in ("values.yaml", *SCHEMA_NAMES)}
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        for member in archive.getmembers():
            if member.name in wanted and member.isfile():
                (into / Path(member.name).name).write_bytes(archive.extractfile(member).read())
    return _complete(into)


def find_chart(environ=os.environ, shared: Path = ROOT.parent / "shared" / "z2jh", cache: Path = CACHE,
               download=_download) -> Path:
    """The directory with the chart's values.yaml and schema: $DLAAS_Z2JH_CHART, ../shared/z2jh, the cache."""
    if environ.get(CHART_ENV):
        directory = Path(environ[CHART_ENV])
        if not _complete(directory):
            raise ChartNotFound(f"{CHART_ENV}={directory} holds no values.yaml and values schema; {HOW_TO_PROVIDE}")
        return directory
    for directory in (shared, cache):
        if _complete(directory):
            return directory
    if download(CHART_URL, cache):
        return cache
    raise ChartNotFound(HOW_TO_PROVIDE)


def load_chart(directory: Path) -> tuple[dict, dict]:
    """The chart's default values and its values schema."""
    defaults = yaml.safe_load((directory / "values.yaml").read_text())
    for name in SCHEMA_NAMES:
        if (directory / name).is_file():
            text = (directory / name).read_text()
            return defaults, (json.loads(text) if name.endswith(".json") else yaml.safe_load(text))
    raise ChartNotFound(HOW_TO_PROVIDE)


def merge(base, override):
    """Helm's merge of values files: maps merge key by key, anything else is replaced; null deletes."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(base.get(key), value) if key in base else value
        return out
    return override


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


def _get(values: dict, dotted: str, default=None):
    node = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return default if node is None else node


# singleuser.* keys the chart hands to KubeSpawner as they are (trait, values key or None for camelCase).
_SINGLEUSER_TRAITS = (
    ("start_timeout", None), ("image_pull_policy", "image.pullPolicy"), ("events_enabled", "events"),
    ("extra_labels", None), ("extra_annotations", None), ("uid", None), ("fs_gid", None),
    ("service_account", "serviceAccountName"), ("storage_extra_labels", "storage.extraLabels"),
    ("node_selector", None), ("lifecycle_hooks", None), ("init_containers", None),
    ("extra_containers", None), ("mem_limit", "memory.limit"), ("mem_guarantee", "memory.guarantee"),
    ("cpu_limit", "cpu.limit"), ("cpu_guarantee", "cpu.guarantee"),
    ("extra_resource_limits", "extraResource.limits"), ("extra_resource_guarantees", "extraResource.guarantees"),
    ("environment", "extraEnv"), ("profile_list", None), ("extra_pod_config", None),
)


def hub_config(values: dict, *, crypt_keys: list[str] | None = None) -> Config:
    """The traitlets config the chart's hub builds from merged Helm values (the parts dlaas-hub touches)."""
    c = Config()
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    for trait, key in _SINGLEUSER_TRAITS:
        value = _get(values, "singleuser." + (key or _camel(trait)))
        if value is not None:
            c.KubeSpawner[trait] = value
    image = _get(values, "singleuser.image.name")
    if image:
        tag = _get(values, "singleuser.image.tag")
        c.KubeSpawner.image = f"{image}:{tag}" if tag else image
    c.KubeSpawner.volumes = {}
    c.KubeSpawner.volume_mounts = {}
    storage = _get(values, "singleuser.storage.type")
    home = _get(values, "singleuser.storage.homeMountPath")
    if storage == "dynamic":
        volume = _get(values, "singleuser.storage.dynamic.volumeNameTemplate")
        if _get(values, "singleuser.storage.dynamic.pvcNameTemplate"):
            c.KubeSpawner.pvc_name_template = _get(values, "singleuser.storage.dynamic.pvcNameTemplate")
        c.KubeSpawner.storage_pvc_ensure = True
        c.KubeSpawner.storage_capacity = _get(values, "singleuser.storage.capacity")
        c.KubeSpawner.storage_access_modes = _get(values, "singleuser.storage.dynamic.storageAccessModes")
        c.KubeSpawner.volumes = {volume: {"name": volume, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}}
        mount = {"mountPath": home, "name": volume}
        if _get(values, "singleuser.storage.dynamic.subPath"):
            mount["subPath"] = _get(values, "singleuser.storage.dynamic.subPath")
        c.KubeSpawner.volume_mounts = {volume: mount}
    elif storage == "static":
        claim = _get(values, "singleuser.storage.static.pvcName")
        c.KubeSpawner.volumes = {"home": {"name": "home", "persistentVolumeClaim": {"claimName": claim}}}
        c.KubeSpawner.volume_mounts = {"home": {"mountPath": home, "name": "home",
                                                "subPath": _get(values, "singleuser.storage.static.subPath")}}
    for trait, key in (("volumes", "extraVolumes"), ("volume_mounts", "extraVolumeMounts")):
        extra = _get(values, f"singleuser.storage.{key}", {})
        items = extra.items() if isinstance(extra, dict) else ((item["name"], item) for item in extra)
        for name, item in items:
            c.KubeSpawner[trait][name] = item
    if _get(values, "singleuser.cloudMetadata.blockWithIptables"):
        from kubernetes_asyncio.client import V1Capabilities, V1Container, V1SecurityContext

        tools = "{}:{}".format(_get(values, "singleuser.networkTools.image.name"),
                               _get(values, "singleuser.networkTools.image.tag"))
        init = list(c.KubeSpawner.get("init_containers", []) or [])
        init.append(V1Container(
            name="block-cloud-metadata", image=tools,
            command=["iptables", "--append", "OUTPUT", "--protocol", "tcp", "--destination",
                     _get(values, "singleuser.cloudMetadata.ip"), "--destination-port", "80", "--jump", "DROP"],
            security_context=V1SecurityContext(privileged=True, run_as_user=0,
                                               capabilities=V1Capabilities(add=["NET_ADMIN"]))))
        c.KubeSpawner.init_containers = init
    for trait, key in (("allow_named_servers", "hub.allowNamedServers"),
                       ("named_server_limit_per_user", "hub.namedServerLimitPerUser")):
        if _get(values, key) is not None:
            c.JupyterHub[trait] = _get(values, key)
    if _get(values, "singleuser.podNameTemplate"):
        c.KubeSpawner.pod_name_template = _get(values, "singleuser.podNameTemplate")
    c.JupyterHub.load_roles = [{"name": name, **role} for name, role in _get(values, "hub.loadRoles", {}).items()]
    for trait, key in (("cmd", "singleuser.cmd"), ("default_url", "singleuser.defaultUrl")):
        if _get(values, key) is not None:
            c.Spawner[trait] = _get(values, key)
    if crypt_keys:
        c.CryptKeeper.keys = crypt_keys  # the chart reads them from its Secret, never from hub.config
    for section, settings in _get(values, "hub.config", {}).items():
        settings = dict(settings)
        if section == "JupyterHub":
            for secret in ("proxy_auth_token", "cookie_secret", "services"):
                settings.pop(secret, None)
        elif section == "CryptKeeper":
            settings.pop("keys", None)
        c[section].update(settings)
    for _, source in sorted(_get(values, "hub.extraConfig", {}).items()):
        exec(source, {"c": c, "get_config": lambda key, default=None: _get(values, key, default)})
    return c
