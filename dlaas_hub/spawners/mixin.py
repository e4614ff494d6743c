"""What both DLaaS spawners share: profiles, data-lake mounts, environment and credentials."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from jupyterhub.utils import maybe_future
from tornado import web
from traitlets import Bool, Dict, Float, List, Unicode, default

from ..display import shown
from ..errors import ConfigError, FormNotice, install_user_mistake_filter, user_error, user_mistake
from ..hubapi.scopes import TOKENS_SCOPE
from ..profiles.catalog import Profile, ProfileCatalog, load_inline
from ..server.files import Bundle, build_bundle
from ..tokens.status import sign_in_needed, token_status
from . import terminal
from .rucio import RucioSetup

# One catalog per profiles directory, shared by every spawner of the hub.
_CATALOGS: dict[str, ProfileCatalog] = {}

DEFAULT_MOUNTS = [
    {"name": "eos", "host_path": "/eos/eulake_1", "mount_path": "/eos/eulake_1", "read_only": True},
    {"name": "scratch", "host_path": "/scratch", "mount_path": "/scratch", "read_only": False},
]


def _applied_by_load_user_options(spawner, user_options) -> None:
    """The spawners' ``apply_user_options``: nothing left to do here."""


class DLaaSSpawnerMixin(RucioSetup):
    """Profiles, data-lake mounts and credential delivery, for a Spawner subclass."""

    profiles_dir = Unicode(
        config=True,
        help="Directory of profile YAML files (one profile per file). Files are re-read when they change; "
             "a broken file is logged with its name and key, and skipped.",
    )
    profiles = List(
        Dict(),
        config=True,
        help="Profiles given inline, as the YAML files' content; used when profiles_dir is not set.",
    )
    datalake_mounts = List(
        Dict(),
        default_value=DEFAULT_MOUNTS,
        config=True,
        help="""The data-lake mounts every profile gets unless it drops them by name: dicts with
        ``name``, ``host_path`` (where the EOS FUSE DaemonSet mounts on the node), ``mount_path`` and
        ``read_only``. On Kubernetes they are bound with ``mountPropagation: HostToContainer``.""",
    )
    scratch_dir_template = Unicode(
        "/scratch/{username}",
        config=True,
        help="Value of the SCRATCH variable; ``{username}`` is the hub's (escaped) user name. Empty: not set.",
    )
    credentials_dir = Unicode(
        config=True,
        help="Where the server finds its token files, rucio.cfg and the Rucio extension's config.",
    )
    eos_target = Unicode("eos", config=True, help="The exchange target whose token goes to the EOS token file.")
    eos_userinfo_url = Unicode(
        config=True,
        help="The provider's userinfo URL named in the EOS token file. Default: from DLaaSAuthenticator.",
    )
    token_agent_margin = Float(
        120.0,
        config=True,
        help="The token agent asks for new files this many seconds before the earliest expiry (at most 30% of "
             "the remaining lifetime). Keep it below DLaaSAuthenticator.refresh_margin.",
    )
    credentials_served_at = Float(
        0.0, help="When this server's token agent last fetched its credential files (epoch seconds; 0: never)")

    grant_tokens_scope = Bool(
        True,
        config=True,
        help=f"Grant the server's API token the ``{TOKENS_SCOPE}!user`` scope its token agent needs.",
    )
    terminal_keeps_server_path = Bool(
        True,
        config=True,
        help="""JupyterLab's terminals run a login shell, then put the server's ``PATH`` back in front
        (``/etc/profile`` on Debian and Ubuntu resets it, and ``python``, ``rucio`` and ``datalake`` go
        missing). It is a command-line option of the server, so it needs ``Spawner.cmd`` (z2jh's
        ``singleuser.cmd`` is ``jupyterhub-singleuser`` by default; without a command the image's own
        is used and arguments are dropped). Set False to keep Jupyter Server's own terminal command;
        an explicit ``--ServerApp.terminado_settings`` in ``Spawner.args`` wins either way.""",
    )

    def get_args(self):
        args = super().get_args()
        # Without a command (KubeSpawner.cmd None: the image's CMD), arguments would be dropped.
        if self.terminal_keeps_server_path and self.cmd and not any(
                a.startswith("--ServerApp.terminado_settings") for a in args):
            args.append(terminal.server_arg())
        return args

    @default("apply_user_options")
    def _apply_user_options_default(self):
        # The profile and its choices are applied by load_user_options; saying so here keeps
        # JupyterHub (5.3+) from warning "unhandled user_options" at every start.
        return _applied_by_load_user_options

    @default("server_token_scopes")
    def _server_token_scopes_default(self):
        scopes = ["access:servers!server", "users:activity!user"]
        if self.grant_tokens_scope:
            scopes.append(f"{TOKENS_SCOPE}!user")
        return scopes

    # -- start-up checks --------------------------------------------------------------------------

    @classmethod
    def config_probe(cls, config):
        """An instance holding the hub's configuration, with no user, to check it at start-up."""
        return cls(config=config)

    def startup_problems(self) -> list[str]:
        """What is wrong in this spawner's configuration, each naming its setting.

        Checked when the hub starts (see :func:`check_spawner_config`), so that a deploy with a broken
        setting fails at once instead of at every user's first spawn.
        """
        cls = type(self).__name__
        problems = []
        if self.profiles_dir and not Path(self.profiles_dir).is_dir():
            problems.append(f"{cls}.profiles_dir: {self.profiles_dir} is not a directory; give the directory "
                            "holding the profile YAML files (the hub image ships them in "
                            "/usr/local/share/dlaas-hub/profiles)")
        elif self.rucio_host:
            problems += self.rucio_problems(self.all_profiles())
        return problems + self.rucio_setting_problems()

    # -- profiles -------------------------------------------------------------------------------

    def all_profiles(self) -> list[Profile]:
        if self.profiles_dir:
            catalog = _CATALOGS.get(self.profiles_dir)
            if catalog is None:
                catalog = _CATALOGS[self.profiles_dir] = ProfileCatalog(Path(self.profiles_dir), self.log)
            return catalog.profiles()
        profiles, errors = load_inline(self.profiles, source=f"{type(self).__name__}.profiles")
        for error in errors:
            self.log.error("Profile skipped: %s", error)
        return profiles

    def user_groups(self) -> set[str]:
        return {g.name for g in getattr(self.user, "groups", [])}

    def allowed_profiles(self) -> list[Profile]:
        groups = self.user_groups()
        return [p for p in self.all_profiles() if p.allows(groups)]

    def dlaas_profile_list(self, spawner=None) -> list[dict]:
        """kubespawner's ``profile_list``: only the profiles this user's groups allow, with the profile
        a link named, or else the user's last usable choice, or else their default profile,
        pre-selected (the catalogue's default may be one they may not use). A start records its
        profile, so kubespawner never falls back on this mark to pick one."""
        allowed = self.allowed_profiles()
        wanted = [getattr(self, "_dlaas_linked_choice", None), (self.user_options or {}).get("profile")]
        # kubespawner 7.0's form selects the profile marked default: mark the user's choice.
        selected = next((p for slug in wanted for p in allowed if p.slug == slug), None) or (
            self.default_profile(allowed) if allowed else None)
        return [{**p.to_kubespawner(), "default": p is selected} for p in allowed]

    def options_from_query(self, query_data):
        """Never start a server from a URL: show the Server Options form, the linked profile selected.

        JupyterHub starts a server at once when ``/hub/spawn`` is opened with query arguments
        (``?profile=root``), and another site can make a signed-in browser open any URL: every such
        link would start a server (a named one, under any name), exchange tokens and write files.
        A DLaaS server starts from the form (a POST carrying ``_xsrf``) or the REST API with a token.
        """
        slug = (query_data.get("profile") or [None])[0]
        self._dlaas_linked_choice = slug if isinstance(slug, str) else None
        raise FormNotice("Check the profile below and press Start: a server starts only from this page.")

    async def get_options_form(self):
        # The last choice is kept as the next form's selection: one the user may not (or no longer)
        # use would leave the form with nothing selected, so the default is selected instead.
        if not self.active:
            self.forget_unusable_choice()
        return await super().get_options_form()

    def forget_unusable_choice(self) -> None:
        """Drop what cannot start a server from the options kept for next time: a profile the user may
        not (or no longer) use, and any option that is not a string.

        JupyterHub keeps a start's options before the start, refused or not, and reuses them when a
        later start brings none (an API call without a body): that start gets the default instead,
        and the Server Options page keeps working whatever a refused request sent.
        """
        options = self.user_options if isinstance(self.user_options, dict) else {}
        unusable = {key for key, value in options.items() if not isinstance(value, (str, type(None)))}
        slug = options.get("profile")
        if isinstance(slug, str) and slug and slug not in {p.slug for p in self.allowed_profiles()}:
            unusable.add("profile")
        if not unusable and options is self.user_options:
            return
        self.user_options = {k: v for k, v in options.items() if k not in unusable}
        orm_spawner = getattr(self, "orm_spawner", None)
        if orm_spawner is not None:
            orm_spawner.user_options = dict(self.user_options)

    def selected_profile(self) -> Profile | None:
        """The profile named in user_options, checked on the hub's side.

        Raises 400 for an unknown slug (naming the valid ones) and 403 for a profile the user's
        groups do not allow, whether the choice came from the form or the REST API.
        """
        self.check_user_options()
        allowed = self.allowed_profiles()
        if not allowed:
            if self.all_profiles():
                raise user_error(403, "None of the server profiles is open to your groups. "
                                      "Ask your experiment's IAM administrator for access.")
            return None
        slug = (self.user_options or {}).get("profile")
        if not slug:
            return self.default_profile(allowed)
        match = next((p for p in allowed if p.slug == slug), None)
        if match:
            return match
        if any(p.slug == slug for p in self.all_profiles()):
            raise user_mistake(403, f"You may not use the profile {shown(slug)}: it is reserved to other groups. "
                                    "Ask your experiment's IAM administrator for access.")
        valid = ", ".join(p.slug for p in allowed)
        raise user_mistake(400, f"Unknown profile {shown(slug)}. Valid profiles: {valid}")

    def check_user_options(self) -> None:
        """A 400 with words for options of the wrong shape, from the form or the REST API.

        Every option the Server Options page sends is a string (the profile's slug, and a profile
        option's choice); anything else would break the page that shows the choice again.
        """
        options = self.user_options
        if options is None:
            return
        if not isinstance(options, dict):
            raise user_mistake(400, "The server's options must be a JSON object, such as {\"profile\": \"minimal\"}.")
        wrong = sorted(str(key) for key, value in options.items() if not isinstance(value, (str, type(None))))
        if wrong:
            names = ", ".join(shown(key) for key in wrong[:5])
            raise user_mistake(400, f"Each server option must be a string (a profile's slug, or a choice): "
                                    f"{names} {'is' if len(wrong) == 1 else 'are'} not. For example "
                                    "{\"profile\": \"minimal\"}.")

    @staticmethod
    def default_profile(allowed: list[Profile]) -> Profile:
        """The profile a user gets without choosing: the catalogue's default if theirs, else their first."""
        return next((p for p in allowed if p.default), allowed[0])

    def running_profile(self) -> Profile | None:
        """The profile this server was (or is being) started with."""
        return getattr(self, "_dlaas_profile", None) or self._profile_from_options()

    def _record_profile(self, profile: Profile | None) -> None:
        # A start without a choice (an empty form, an API call without options) records the profile
        # it got: the home page, the admin page and a restart after a hub restart all see it.
        if profile is None or (self.user_options or {}).get("profile") == profile.slug:
            return
        self.user_options = {**(self.user_options or {}), "profile": profile.slug}
        orm_spawner = getattr(self, "orm_spawner", None)
        if orm_spawner is not None:
            orm_spawner.user_options = self.user_options

    def _profile_from_options(self) -> Profile | None:
        """The running server's profile after a hub restart (user_options persist, attributes do not).

        Looked up in the catalogue once per recorded choice: its token agent asks for credentials
        every few minutes, and a server keeps the profile it was started with."""
        slug = (self.user_options or {}).get("profile")
        if not slug:
            return None
        found = getattr(self, "_dlaas_options_profile", None)
        if found is None or found.slug != slug:
            found = self._dlaas_options_profile = next((p for p in self.all_profiles() if p.slug == slug), None)
        return found

    # -- mounts and environment -----------------------------------------------------------------

    def mounts_for(self, profile: Profile | None) -> list[dict]:
        drop = set(profile.drop_mounts) if profile else set()
        mounts = [m for m in self.datalake_mounts if m["name"] not in drop]
        if profile:
            mounts += [{"name": m.name, "host_path": m.host_path, "mount_path": m.mount_path,
                        "read_only": m.read_only} for m in profile.add_mounts]
        return mounts

    def escaped_username(self) -> str:
        """The hub's user name, safe for paths (JupyterHub's own escaping)."""
        return self.user.escaped_name if hasattr(self.user, "escaped_name") else self.user.name

    def server_key(self) -> str:
        """A path segment naming this server among the user's: ``default``, or ``named-<name>``.

        Named servers' names are the user's choice: anything outside ``[a-z0-9.-]`` is escaped as
        ``_xx`` (its UTF-8 bytes in hex), so that two names never share a directory.
        """
        if not self.name:
            return "default"
        escaped = re.sub(rb"[^a-z0-9.-]", lambda m: b"_%02x" % m.group()[0], self.name.encode("utf-8"))
        return "named-" + escaped.decode("ascii")

    def server_label(self) -> str:
        """The server as a user calls it, for log lines and pages."""
        return f"server {shown(self.name)}" if self.name else "default server"

    def datalake_env(self, bundle: Bundle | None) -> dict[str, str]:
        env = {}
        if self.scratch_dir_template and any(m["name"] == "scratch" for m in self._dlaas_mounts):
            env["SCRATCH"] = self.scratch_dir_template.format(username=self.escaped_username())
        if bundle:
            env.update(bundle.env)
        return env

    # -- credentials ----------------------------------------------------------------------------

    def userinfo_url(self) -> str | None:
        if self.eos_userinfo_url:
            return self.eos_userinfo_url
        return getattr(getattr(self, "authenticator", None), "userinfo_endpoint", None)

    async def credential_bundle(self, auth_state: dict | None = None) -> Bundle:
        """The current credential files of this server, rendered from the user's auth_state."""
        if auth_state is None:
            auth_state = await self.user.get_auth_state()
        profile = self.running_profile()
        auth_state = auth_state or {}
        return build_bundle(
            auth_state, directory=self.credentials_dir, userinfo_url=self.userinfo_url(),
            eos_target=self.eos_target, rucio_target=self.rucio_target, rucio=self.rucio_settings(),
            rucio_mode=profile.rucio_mode if profile else "replica",
            rucio_enabled=profile.rucio_enabled if profile else True,
            rucio_account=await self.rucio_account_for(auth_state),
        )

    async def served_bundle(self) -> Bundle:
        """:meth:`credential_bundle` for the credentials endpoint, rendered again only when the user's
        stored auth_state or this server's profile has changed: when every agent asks at once, each
        user's auth_state is decrypted once, not once per request."""
        profile = self.running_profile()
        key = (self.user.encrypted_auth_state, profile.slug if profile else None)
        cached = getattr(self, "_dlaas_served", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        bundle = await self.credential_bundle()
        self._dlaas_served = (key, bundle)
        return bundle

    async def served_status(self) -> dict:
        """What the server's status bar shows of the user's tokens (:func:`token_status`, never a
        token): decrypted again only when the stored auth_state changed, aged at each call."""
        key = self.user.encrypted_auth_state
        cached = getattr(self, "_dlaas_status", None)
        if cached is None or cached[0] != key:
            auth_state = await self.user.get_auth_state()
            targets = getattr(self.authenticator, "targets", None) or []
            cached = self._dlaas_status = (key, token_status(auth_state, targets, now=0), sign_in_needed(auth_state))
        now = time.time()
        tokens = [{**t, "state": "expired" if t["state"] == "valid" and (t["expires_at"] or 0) <= now else t["state"],
                   "expires_in": int(t["expires_at"] - now) if t["expires_at"] else None} for t in cached[1]]
        return {"tokens": tokens, "sign_in_needed": cached[2]}

    async def deliver_credentials(self, bundle: Bundle) -> None:
        """Put the first set of credentials where the server will find them (spawner-specific)."""

    async def run_pre_spawn_hook(self):
        """Check the profile choice, prepare mounts, env and credentials, then the operator's hook."""
        try:
            self._dlaas_profile = self.selected_profile()
        except web.HTTPError:
            self.forget_unusable_choice()  # JupyterHub commits it as it cleans up the failed start
            raise
        self._record_profile(self._dlaas_profile)
        self._dlaas_mounts = self.mounts_for(self._dlaas_profile)
        # JupyterHub skips refresh_pre_spawn when auth_refresh_age is 0: renew here in any case.
        refresh = getattr(getattr(self, "authenticator", None), "refresh_credentials", None)
        if refresh is not None and not await refresh(self.user):
            raise user_error(403, "Your sign-in has expired: please sign in again before starting a server.")
        bundle = await self.credential_bundle()
        for target, why in bundle.missing.items():
            self.log.warning("The %s of %s starts without its %s token: %s", self.server_label(), self.user.name,
                             target, why)
        self._dlaas_bundle = bundle
        self._dlaas_env = self.datalake_env(bundle)
        await self.deliver_credentials(bundle)
        return await maybe_future(super().run_pre_spawn_hook())


def check_spawner_config(app):
    """Raise a ConfigError naming every wrong setting of the hub's DLaaS spawner, if it has one.

    Returns the configured spawner (with no user), or None when the hub's spawner is not ours.
    """
    spawner_class = getattr(app, "spawner_class", None)
    if not (isinstance(spawner_class, type) and issubclass(spawner_class, DLaaSSpawnerMixin)):
        return None
    if isinstance(getattr(app, "log", None), logging.Logger):
        install_user_mistake_filter(app.log)
    probe = spawner_class.config_probe(app.config)
    problems = probe.startup_problems()
    if problems:
        raise ConfigError("The hub's spawner is misconfigured:\n  " + "\n  ".join(problems))
    return probe
