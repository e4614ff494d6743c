"""DLaaSLocalSpawner: the DLaaS spawner for one machine and for the demo."""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import stat
import subprocess
import sys

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Bool, Dict, Integer, List, Unicode, default

from ..errors import user_error
from ..server.files import CredentialError, ensure_private_dir, open_plain_dir, remove_private_dir, write_private_file
from .form import KubeProfileFormMixin
from .mixin import DLaaSSpawnerMixin


class DLaaSLocalSpawner(KubeProfileFormMixin, DLaaSSpawnerMixin, LocalProcessSpawner):
    """Local processes with the same profiles, credential files and environment as on Kubernetes.

    Data-lake mounts are the host's own paths (``host_path``), linked from the server's home;
    credentials live in a per-user directory (0700) as owner-only files, replaced atomically.
    """

    credentials_root = Unicode(
        "/var/lib/dlaas-hub/credentials",
        config=True,
        help="""Directory holding one directory (mode 0700) per user, and in it one credentials
        directory per server: ``<user>/default`` for the default server, ``<user>/named-<name>`` for
        each named server. A server's directory is removed when the server stops.""",
    )
    home_dir_template = Unicode(
        config=True,
        help="""Run every server as the hub's own user, with this home directory (``{username}`` is
        expanded), like JupyterHub's SimpleLocalProcessSpawner: for demos and tests. Empty: each user
        runs as the system account of the same name.""",
    )
    image_commands = Dict(
        key_trait=Unicode(),
        value_trait=List(Unicode()),
        config=True,
        help="Command to run instead of a profile's image, by image. Images not listed run ``cmd``.",
    )

    token_agent_enabled = Bool(
        True, config=True, help="Run the token agent as a child process beside each server, to keep its files fresh.")
    token_agent_pid = Integer(0, help="pid of the running server's token agent (kept in the spawner's state)")

    @default("credentials_dir")
    def _credentials_dir_default(self):
        return os.path.join(self.credentials_root, self.escaped_username(), self.server_key())

    def startup_problems(self) -> list[str]:
        problems = super().startup_problems()
        if not self.home_dir_template and os.geteuid() != 0:
            problems.append(
                f"{type(self).__name__}.home_dir_template: not set, so each server would run as the system "
                f"account of its user, which only a hub running as root can do (this hub runs as uid "
                f"{os.geteuid()}). Set home_dir_template to run every server as the hub's own user.")
        if self.rucio_host and self.rucio_ca_cert.startswith("/") and not os.path.exists(self.rucio_ca_cert):
            # Local servers run on this machine: the path must be here. (In a pod it is the image's.)
            problems.append(f"{type(self).__name__}.rucio_ca_cert: {self.rucio_ca_cert} does not exist on this "
                            "machine; give the system's CA bundle (Debian: /etc/ssl/certs/ca-certificates.crt) "
                            "or leave it empty for the Rucio client's own")
        return problems

    def system_account(self) -> pwd.struct_passwd:
        """The user's system account; a readable refusal when there is none."""
        try:
            return pwd.getpwnam(self.user.name)
        except KeyError:
            raise user_error(
                500, f"There is no system account named {self.user.name!r} on the hub's machine, and "
                     f"{type(self).__name__}.home_dir_template is not set: your hub administrator must create "
                     "the account, or set home_dir_template to run servers as the hub's own user.") from None

    def _owner(self) -> tuple[int, int]:
        if self.home_dir_template:
            return os.getuid(), os.getgid()
        entry = self.system_account()
        return entry.pw_uid, entry.pw_gid

    def _home(self) -> str:
        if self.home_dir_template:
            return self.home_dir_template.format(username=self.escaped_username())
        return self.system_account().pw_dir

    def make_preexec_fn(self, name):
        if self.home_dir_template:
            home = self._home()

            def preexec():
                os.chdir(home)

            return preexec
        return super().make_preexec_fn(name)

    def user_env(self, env):
        if self.home_dir_template:
            env["USER"] = self.user.name
            env["HOME"] = self._home()
            env["SHELL"] = "/bin/bash"
            return env
        return super().user_env(env)

    def get_env(self):
        env = super().get_env()
        profile = getattr(self, "_dlaas_profile", None)
        if profile:
            env.update(profile.env)
        env.update(getattr(self, "_dlaas_env", {}))
        return env

    def scratch_root(self, mount: dict) -> str:
        return mount["host_path"]  # local servers see the host's paths

    def scratch_path(self) -> str | None:
        scratch = next((m for m in self._dlaas_mounts if m["name"] == "scratch"), None)
        return os.path.join(scratch["host_path"], self.escaped_username()) if scratch else None

    def datalake_env(self, bundle):
        env = super().datalake_env(bundle)
        if "SCRATCH" in env:
            env["SCRATCH"] = self.scratch_path()
        return env

    async def deliver_credentials(self, bundle):
        uid, gid = self._owner()
        os.makedirs(self.credentials_root, mode=0o711, exist_ok=True)
        # The user's folder is the hub's, so that the user cannot swap their servers' folders (which
        # they own, for the token agent) for links while the hub writes or removes their files.
        ensure_private_dir(os.path.dirname(self.credentials_dir), uid=os.geteuid(), gid=os.getegid(), mode=0o711)
        ensure_private_dir(self.credentials_dir, uid=uid, gid=gid)
        for f in bundle.files:
            write_private_file(self.credentials_dir, f.name, f.content, uid=uid, gid=gid)
        # A file of a target that is gone since the last start must not linger.
        current = {f.name for f in bundle.files}
        for name in os.listdir(self.credentials_dir):
            if not name.startswith(".") and name not in current:
                os.unlink(os.path.join(self.credentials_dir, name))
        self._prepare_home(uid, gid)

    def _prepare_home(self, uid, gid):
        """Link the data lake from ``~/datalake``, and make the user's scratch folder.

        ``~/datalake`` is the user's: a hub running as root never follows it. It works on the
        folder's descriptor, opened without following a link, and only if the user owns it; a link
        or a file there is left alone and logged (the server still starts, without the links).
        """
        home = self._home()
        if self.home_dir_template:
            os.makedirs(home, mode=0o700, exist_ok=True)
        home_fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the system's: it may be a link
        try:
            links_fd = self._open_links_dir(home_fd, uid, gid)
        finally:
            os.close(home_fd)
        if links_fd is not None:
            try:
                for mount in self._dlaas_mounts:
                    self._link_mount(links_fd, mount["name"], mount["host_path"])
            finally:
                os.close(links_fd)
        scratch = self.scratch_path()
        if scratch:
            ensure_private_dir(scratch, uid=uid, gid=gid)

    def _open_links_dir(self, home_fd: int, uid: int, gid: int) -> int | None:
        try:
            os.mkdir("datalake", 0o755, dir_fd=home_fd)
            created = True
        except FileExistsError:
            created = False
        fd = open_plain_dir("datalake", dir_fd=home_fd)
        if fd is not None:
            owner = os.fstat(fd).st_uid
            if created:
                os.fchown(fd, uid, gid)
            elif owner == uid:
                return fd
            else:
                os.close(fd)
                fd = None
        if fd is None:
            self.log.warning("The data-lake links of %s are not made: %s/datalake is not a folder of theirs "
                             "(a link, a file, or another account's folder)", self.user.name, self._home())
        return fd

    @staticmethod
    def _link_mount(links_fd: int, name: str, target: str) -> None:
        try:
            st = os.stat(name, dir_fd=links_fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISLNK(st.st_mode):
            os.unlink(name, dir_fd=links_fd)  # the link itself: to the current mount point
            st = None
        if st is None:
            os.symlink(target, name, dir_fd=links_fd)

    async def run_pre_spawn_hook(self):
        result = await super().run_pre_spawn_hook()
        profile = self._dlaas_profile
        if profile is not None:
            if profile.image in self.image_commands:
                self.cmd = list(self.image_commands[profile.image])
            for key, trait in (("mem_limit", "mem_limit"), ("cpu_limit", "cpu_limit"),
                               ("mem_request", "mem_guarantee"), ("cpu_request", "cpu_guarantee")):
                if key in profile.resources:
                    setattr(self, trait, profile.resources[key])
        return result

    # -- the token agent, a child process beside the server --------------------------------------

    def token_agent_command(self) -> list[str]:
        return [sys.executable, "-m", "dlaas_hub.ops.cli", "token-agent", "--dir", self.credentials_dir,
                "--margin", str(self.token_agent_margin), "--min-interval", "1"]

    async def start(self):
        url = await super().start()
        if self.token_agent_enabled:
            env = {
                "PATH": os.environ.get("PATH", ""),
                "JUPYTERHUB_API_URL": self.hub.api_url,
                "JUPYTERHUB_API_TOKEN": self.api_token,
                "JUPYTERHUB_USER": self.user.name,
                "JUPYTERHUB_SERVER_NAME": self.name or "",
            }
            agent = subprocess.Popen(self.token_agent_command(), env=env, start_new_session=True,
                                     preexec_fn=self.make_preexec_fn(self.user.name),
                                     stdin=subprocess.DEVNULL)
            self.token_agent_pid = agent.pid
            self._token_agent = agent
        return url

    async def stop(self, now=False):
        await self._stop_token_agent()
        result = await super().stop(now=now)
        self.remove_credentials()
        return result

    def remove_credentials(self) -> None:
        """A stopped server's token files go with it: they would stay valid for up to an hour."""
        try:
            remove_private_dir(self.credentials_dir)
        except (OSError, CredentialError) as e:
            self.log.warning("Could not remove the credential files of %s's %s: %s",
                             self.user.name, self.server_label(), e)
            return
        try:
            os.rmdir(os.path.dirname(self.credentials_dir))  # the user's, once no server has files
        except OSError:
            pass

    async def _stop_token_agent(self):
        agent = getattr(self, "_token_agent", None)
        if agent is not None:
            agent.terminate()
            for _ in range(50):  # the agent exits within a second of SIGTERM
                if agent.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                agent.kill()
                agent.wait()
        elif self.token_agent_pid:
            try:
                os.kill(self.token_agent_pid, signal.SIGTERM)  # from a previous hub process
            except ProcessLookupError:
                pass
        self._token_agent = None
        self.token_agent_pid = 0

    def get_state(self):
        state = super().get_state()
        if self.token_agent_pid:
            state["token_agent_pid"] = self.token_agent_pid
        return state

    def load_state(self, state):
        super().load_state(state)
        self.token_agent_pid = state.get("token_agent_pid", 0)

    def clear_state(self):
        super().clear_state()
        self.token_agent_pid = 0
