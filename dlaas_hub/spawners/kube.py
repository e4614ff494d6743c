"""DLaaSKubeSpawner: KubeSpawner with science profiles, data-lake mounts and a token agent sidecar."""

from __future__ import annotations

import copy
import posixpath

import yaml
from kubespawner import KubeSpawner
from traitlets import Bool, Integer, Unicode, default, validate

from ..errors import user_error
from .cluster import cluster_problem
from .mixin import DLaaSSpawnerMixin

TOKEN_VOLUME = "dlaas-credentials"
READY_MARKER = ".dlaas-ready"

#: The answer of each cluster's API server (by host), asked once per hub process.
_CLUSTER_PROBLEMS: dict[str, str | None] = {}


def hub_image_from_chart(path: str) -> str:
    """``hub.image`` (``name:tag``) of the Zero-to-JupyterHub values at ``path``; "" when unknown."""
    try:
        with open(path) as f:
            values = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return ""
    image = ((values or {}).get("hub") or {}).get("image") if isinstance(values, dict) else None
    if not isinstance(image, dict) or not isinstance(image.get("name"), str) or not image["name"]:
        return ""
    tag = image.get("tag")
    return f"{image['name']}:{tag}" if isinstance(tag, (str, int, float)) and str(tag) else image["name"]


class DLaaSKubeSpawner(DLaaSSpawnerMixin, KubeSpawner):
    """One pod per user with the chosen profile, the data lake mounted and fresh tokens.

    The profile choice is rendered and parsed by kubespawner's own ``profile_list`` machinery; the
    hub re-checks it against the user's groups before anything starts. Token files never travel in
    the pod spec: a token agent, run as a native sidecar (an init container with
    ``restartPolicy: Always``), fetches them from the hub with the server's own API token and writes
    them into an in-memory volume that the notebook container mounts read-only. Its startup probe
    holds the notebook container back until the first set is written.
    """

    token_agent_image = Unicode(
        config=True,
        help="""Image of the token agent sidecar: any image with dlaas-hub installed. Default: the hub's own
        image, as Zero-to-JupyterHub's values name it (``hub.image``, read from :attr:`chart_values_file`).
        Never the profile's notebook image, which has no dlaas-hub: when no image is known, the hub
        refuses to start, naming this setting.""",
    )
    chart_values_file = Unicode(
        "/usr/local/etc/jupyterhub/secret/values.yaml",
        config=True,
        help="Where Zero-to-JupyterHub mounts its values in the hub pod; ``hub.image`` there is the default "
             "of :attr:`token_agent_image`.",
    )

    def agent_image(self) -> str:
        """:attr:`token_agent_image`, or else the hub's own image from the chart's values ("" if unknown)."""
        return self.token_agent_image or hub_image_from_chart(self.chart_values_file)
    token_agent_enabled = Bool(True, config=True, help="Run the token agent sidecar in every user pod.")
    credentials_mount_path = Unicode(
        "/var/run/dlaas",
        config=True,
        help="Where the in-memory credentials volume is mounted; the files live in its ``tokens`` subdirectory, "
             "which the agent creates with mode 0700.",
    )
    credentials_volume_size = Unicode("1Mi", config=True, help="Size limit of the in-memory credentials volume.")
    token_agent_memory = Unicode(
        "32Mi",
        config=True,
        help="""Memory request and limit of the token agent. It holds about 17 MiB resident, flat over
        hours of renewals (``benchmarks/token_agent.py``, docs/operators/sizing.md): 32Mi leaves room
        for a large answer, and reserves 32 GiB for a thousand servers.""",
    )
    token_agent_cpu = Unicode("20m", config=True, help="CPU request of the token agent.")
    check_cluster_version = Bool(
        True,
        config=True,
        help="""Before the first server starts, ask the Kubernetes API server its version (``GET /version``)
        and refuse to create pods when it is older than 1.29, where the token agent's native sidecar
        would keep the pod in ``Init`` until the spawn times out. The answer is logged once; an
        unanswered question is logged and does not stop spawns.""",
    )
    token_agent_startup_seconds = Integer(
        60, config=True, help="How long the notebook container waits for the first credentials before the pod fails.")

    @default("credentials_dir")
    def _credentials_dir_default(self):
        return posixpath.join(self.credentials_mount_path, "tokens")

    @default("profile_list")
    def _profile_list_default(self):
        return self.dlaas_profile_list

    @validate("profile_list")
    def _keep_dlaas_profiles(self, proposal):
        # Zero-to-JupyterHub always sets KubeSpawner.profile_list from singleuser.profileList, whose
        # default is []: an empty list must not replace the experiments' profiles with none at all.
        # A non-empty one is reported by startup_problems, before any user spawns.
        value = proposal.value
        if not callable(value) and not value:
            return self.dlaas_profile_list
        return value

    @classmethod
    def config_probe(cls, config):
        return cls(config=config, _mock=True)

    def startup_problems(self) -> list[str]:
        problems = super().startup_problems()
        if self.token_agent_enabled and not self.agent_image():
            problems.append(
                f"{type(self).__name__}.token_agent_image: not set, and the hub's own image is not known (no "
                f"Zero-to-JupyterHub values with hub.image at {self.chart_values_file}). Set it to the hub image "
                "built from helm-values/hub-image, which has dlaas-hub installed: the token agent cannot run in "
                "a profile's notebook image, and servers would never get their tokens.")
        if self.profile_list != self.dlaas_profile_list:
            problems.append(
                "KubeSpawner.profile_list (Zero-to-JupyterHub: singleuser.profileList) must stay empty with "
                f"{type(self).__name__}: its Server Options page lists the profiles of profiles_dir (or profiles) "
                "that the user's groups allow. Register profiles as YAML files there instead.")
        return problems

    _LISTS = ("volumes", "volume_mounts", "init_containers")

    async def start(self):
        if self.token_agent_enabled and self.check_cluster_version:
            await self.require_native_sidecars()
        return await super().start()

    async def require_native_sidecars(self) -> None:
        """Refuse the spawn, with a readable page, on a cluster too old for the token agent."""
        api_client = self.api.api_client
        host = api_client.configuration.host
        if host not in _CLUSTER_PROBLEMS:
            try:
                problem = await cluster_problem(api_client)
            except Exception as e:  # noqa: BLE001 - a check that cannot run must not stop every spawn
                self.log.warning("Could not read the Kubernetes version of %s (%s); starting without checking "
                                 "that it runs native sidecars (1.29+)", host, type(e).__name__)
                return
            _CLUSTER_PROBLEMS[host] = problem
            if problem:
                self.log.error("%s: %s", type(self).__name__, problem)
        if _CLUSTER_PROBLEMS[host]:
            raise user_error(503, "Servers cannot start on this hub at the moment: its Kubernetes cluster is too "
                                  "old for the token agent. The hub's administrators have the details in its log.",
                             log_message=_CLUSTER_PROBLEMS[host])

    async def load_user_options(self):
        # The pre-spawn hook has already refused a profile the user's groups do not allow.
        # This spawner object lives across restarts: start from the configured values each time.
        if not hasattr(self, "_dlaas_base"):
            self._dlaas_base = {name: copy.deepcopy(getattr(self, name)) for name in self._LISTS}
        for name, value in self._dlaas_base.items():
            setattr(self, name, copy.deepcopy(value))
        await super().load_user_options()
        # kubespawner takes each as a list or as a dict ordered by key (Zero-to-JupyterHub 4 gives
        # dicts): keep what is configured, in kubespawner's order, and add the data lake after it.
        for name in self._LISTS:
            setattr(self, name, list(self._sorted_dict_values(getattr(self, name))))
        for mount in self._dlaas_mounts:
            self.volumes.append({"name": f"datalake-{mount['name']}",
                                 "hostPath": {"path": mount["host_path"], "type": "Directory"}})
            self.volume_mounts.append({"name": f"datalake-{mount['name']}", "mountPath": mount["mount_path"],
                                       "readOnly": bool(mount.get("read_only")),
                                       "mountPropagation": "HostToContainer"})
        if self.token_agent_enabled:
            self._add_token_agent()

    def get_env(self):
        env = super().get_env()
        env.update(getattr(self, "_dlaas_env", {}))
        return env

    def _add_token_agent(self):
        self.volumes.append({"name": TOKEN_VOLUME, "emptyDir": {"medium": "Memory",
                                                                "sizeLimit": self.credentials_volume_size}})
        self.volume_mounts.append({"name": TOKEN_VOLUME, "mountPath": self.credentials_mount_path,
                                   "readOnly": True})
        self.init_containers.append(self.token_agent_container())

    def _scratch_for_agent(self) -> tuple[dict, str] | None:
        """The scratch mount and ``$SCRATCH`` when this server has both and one is inside the other."""
        scratch = getattr(self, "_dlaas_env", {}).get("SCRATCH")
        mount = next((m for m in getattr(self, "_dlaas_mounts", []) if m["name"] == "scratch"), None)
        if not scratch or not mount or mount.get("read_only"):
            return None
        inside = posixpath.normpath(scratch).startswith(mount["mount_path"].rstrip("/") + "/")
        return (mount, posixpath.normpath(scratch)) if inside else None

    def token_agent_container(self) -> dict:
        """The native sidecar: same uid as the notebook, no privileges, read-only root filesystem."""
        uid = self.uid if isinstance(self.uid, int) else 1000
        image = self.agent_image()
        ready = posixpath.join(self.credentials_dir, READY_MARKER)
        command = ["dlaas-hub", "token-agent", "--dir", self.credentials_dir, "--margin", str(self.token_agent_margin)]
        env = [
            {"name": "JUPYTERHUB_API_URL", "value": self.hub.api_url},
            {"name": "JUPYTERHUB_USER", "value": self.user.name},
            {"name": "JUPYTERHUB_SERVER_NAME", "value": self.name or ""},
            # The server's own hub token, as kubespawner gives the notebook container: it may
            # read this user's exchanged tokens (custom:dlaas:tokens!user) and nothing more.
            {"name": "JUPYTERHUB_API_TOKEN", "value": self.api_token},
        ]
        mounts = [{"name": TOKEN_VOLUME, "mountPath": self.credentials_mount_path}]
        scratch = self._scratch_for_agent()
        if scratch:
            # Nobody else creates $SCRATCH on a node: the agent does, as the user, with the user's
            # EOS token file named the way eosxd looks it up (a path, never the token).
            mount, path = scratch
            command += ["--make-dir", path]
            mounts.append({"name": f"datalake-{mount['name']}", "mountPath": mount["mount_path"],
                           "mountPropagation": "HostToContainer"})
            eos_file = getattr(self, "_dlaas_env", {}).get("OAUTH2_TOKEN")
            if eos_file:
                env.append({"name": "OAUTH2_TOKEN", "value": eos_file})
        return {
            "name": "dlaas-token-agent",
            "image": image,
            "restartPolicy": "Always",
            "command": command,
            "env": env,
            "volumeMounts": mounts,
            "startupProbe": {
                "exec": {"command": ["test", "-e", ready]},
                "periodSeconds": 1,
                "failureThreshold": self.token_agent_startup_seconds,
            },
            "resources": {"requests": {"cpu": self.token_agent_cpu, "memory": self.token_agent_memory},
                          "limits": {"memory": self.token_agent_memory}},
            "securityContext": {
                "runAsUser": uid,
                "runAsNonRoot": True,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        }
