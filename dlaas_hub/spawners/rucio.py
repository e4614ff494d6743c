"""The site's Rucio, as each server's rucio.cfg and Rucio JupyterLab extension see it: settings shared
by both spawners, their start-up checks, and the account a user's files name."""

from __future__ import annotations

from jupyterhub.traitlets import Callable
from jupyterhub.utils import maybe_future
from traitlets import Dict, HasTraits, Unicode, Union

from ..server.files import RucioSettings


class RucioSetup(HasTraits):
    """Rucio settings of the DLaaS spawners (configured as ``DLaaSKubeSpawner.rucio_*`` or
    ``DLaaSLocalSpawner.rucio_*``)."""

    rucio_target = Unicode("rucio", config=True, help="The exchange target whose token Rucio uses.")
    rucio_host = Unicode(
        config=True, help="Rucio server, e.g. ``https://escape-rucio.cern.ch``. Empty: no Rucio set-up.")
    rucio_auth_host = Unicode(
        config=True, help="Rucio authentication server, e.g. ``https://escape-rucio-auth.cern.ch``.")
    rucio_ca_cert = Unicode(
        config=True,
        help="""CA certificates that verify the Rucio servers' HTTPS certificates, as a path in the user's
        server (a bundle file, or a directory such as ``/etc/grid-security/certificates``), written to
        ``rucio.cfg`` (``ca_cert``) and to the extension's ``rucio_ca_cert``. Empty (the default): not
        written, and the Rucio client uses ``$X509_CERT_DIR`` when the image sets it, else the CA bundle
        of its own Python (certifi). Sites whose Rucio has a grid certificate name the image's grid CA
        directory here. The local spawner checks at start that the path exists.""",
    )
    rucio_scratch_rse = Unicode(
        config=True,
        help="""The non-deterministic Rucio RSE over the scratch space (the ``scratch`` data-lake mount), on
        which ``datalake upload`` registers a user's files before replicating them (for example
        ``JUPYTER-SCRATCHDISK``; Rucio's generic permission policy lets users add replicas only on RSEs
        named ``...SCRATCHDISK``, ``...USERDISK``, ``...MOCK`` or ``...LOCALGROUPDISK``). Empty: no
        ``datalake upload``.""",
    )
    rucio_scratch_pfn = Unicode(
        config=True,
        help="""The PFN of the scratch mount's root on :attr:`rucio_scratch_rse`. Default:
        ``file://localhost`` followed by the mount's path in the server (``file://localhost/scratch``).""",
    )
    rucio_oidc_issuer = Unicode(
        config=True,
        help="""The IAM's *name* among the Rucio server's identity providers: the key of its entry in the
        server's ``idpsecrets.json`` (``[oidc] idpsecrets``), for example ``"escape"``; never the issuer's
        URL. Written to ``rucio.cfg`` (``oidc_issuer``), which the Rucio client sends to ``/auth/oidc``
        when the server refuses a token. Empty (the default): not written, and the server uses its
        ``[oidc] admin_issuer``.""",
    )
    rucio_vo = Unicode(config=True, help="Rucio VO, for multi-VO Rucio servers.")
    rucio_oidc_audience = Unicode(config=True,
                                  help="``oidc_audience`` of rucio.cfg. Default: the Rucio target's audience.")
    rucio_account = Union(
        [Unicode(), Callable()],
        default_value="",
        config=True,
        help="""The user's Rucio account, written to ``rucio.cfg`` (``account``).

        Empty (the default): the IAM user name as the provider spells it (``auth_state["iam_username"]``),
        not JupyterHub's lower-cased name. A string: the name of a claim of the user's verified claims
        (for example ``"rucio_account"``). A callable: called with the spawner and the user's claims,
        returns the account (may be async)::

            c.DLaaSKubeSpawner.rucio_account = lambda spawner, claims: claims["preferred_username"].lower()

        Rucio itself accepts accounts matching ``^[a-z0-9-_]{1,25}$`` unless its policy package
        relaxes the rule; a server whose account cannot be written safely (line breaks, spaces,
        more than 64 characters) starts without its Rucio files, and the hub logs why.""",
    )
    rucio_instance = Dict(
        config=True,
        help="""The Rucio JupyterLab extension's instance: ``name``, ``display_name``, ``rucio_webui_url``,
        ``site_name``, ``destination_rse`` and ``rse_mount_path`` (replica mode), and any other key the
        extension knows, passed through.""",
    )
    def rucio_setting_problems(self) -> list[str]:
        """Rucio settings that cannot work whatever the profiles, each naming its setting."""
        cls = type(self).__name__
        problems = []
        if "://" in self.rucio_oidc_issuer:
            problems.append(f"{cls}.rucio_oidc_issuer: {self.rucio_oidc_issuer!r} is a URL, but Rucio looks this "
                            "value up as the name of an entry of its idpsecrets.json (for example 'escape'); a URL "
                            "turns every refused token into a server error. Give the entry's name, or leave it "
                            "empty for the server's admin_issuer")
        if self.rucio_ca_cert and not self.rucio_ca_cert.startswith("/"):
            problems.append(f"{cls}.rucio_ca_cert: {self.rucio_ca_cert!r} is not an absolute path in the user's "
                            "server")
        return problems

    def rucio_problems(self, profiles) -> list[str]:
        """What the profiles' Rucio modes need of the settings, each naming its setting."""
        replica = ([p.slug for p in profiles if p.rucio_enabled and p.rucio_mode == "replica"] if profiles
                   else ["the default, as no profile is configured"])
        missing = [k for k in ("destination_rse", "rse_mount_path") if not self.rucio_instance.get(k)]
        problems = []
        if replica and missing:
            problems.append(f"{type(self).__name__}.rucio_instance: Rucio replica mode (profiles {', '.join(replica)}) "
                            f"needs {' and '.join(missing)}: the RSE the extension replicates to and where that RSE "
                            "is mounted in the server")
        download = [p.slug for p in profiles if p.rucio_enabled and p.rucio_mode == "download"]
        if download and not self.rucio_ca_cert:
            problems.append(f"{type(self).__name__}.rucio_ca_cert: Rucio's download mode (profiles "
                            f"{', '.join(download)}) needs it: the Rucio JupyterLab extension requires the path of "
                            "the CA certificates in that mode (a bundle file in the profile's image, for example "
                            "/etc/ssl/certs/ca-certificates.crt on Debian-based images)")
        return problems

    def claims_read(self) -> set[str]:
        """Names of the login claims this spawner reads, so that the authenticator makes sure a login has them."""
        return {self.rucio_account} if isinstance(self.rucio_account, str) and self.rucio_account else set()

    def rucio_settings(self) -> RucioSettings | None:
        if not self.rucio_host:
            return None
        instance = dict(self.rucio_instance)
        known = {"name": "instance_name", "display_name": "display_name", "rucio_webui_url": "webui_url",
                 "site_name": "site_name", "destination_rse": "destination_rse", "rse_mount_path": "rse_mount_path"}
        kwargs = {field: instance.pop(key) for key, field in known.items() if key in instance}
        authenticator = getattr(self, "authenticator", None)
        audience = self.rucio_oidc_audience or (
            getattr(authenticator, "exchange_targets", {}).get(self.rucio_target, {}).get("audience", "rucio"))
        return RucioSettings(
            rucio_host=self.rucio_host, auth_host=self.rucio_auth_host or self.rucio_host,
            ca_cert=self.rucio_ca_cert, vo=self.rucio_vo,
            oidc_issuer=self.rucio_oidc_issuer, oidc_audience=audience,
            extra_instance=instance, **kwargs, **self._scratch_settings(),
        )

    def scratch_root(self, mount: dict) -> str:
        """Where the scratch mount's root is, as the user's server sees it."""
        return mount["mount_path"]

    def _scratch_settings(self) -> dict:
        # The mounts are the spawner's (DLaaSSpawnerMixin.mounts_for): this server's, or the configured ones.
        mount = next((m for m in getattr(self, "_dlaas_mounts", self.mounts_for(None)) if m["name"] == "scratch"),
                     None)
        if not (self.rucio_scratch_rse and mount):
            return {}
        pfn = self.rucio_scratch_pfn or f"file://localhost{mount['mount_path'].rstrip('/')}"
        return {"scratch_rse": self.rucio_scratch_rse, "scratch_root": self.scratch_root(mount), "scratch_pfn": pfn}

    async def rucio_account_for(self, auth_state: dict):
        """The Rucio account of the user, as :attr:`rucio_account` says (not yet validated)."""
        if not self.rucio_account:
            return auth_state.get("iam_username")
        key = getattr(getattr(self, "authenticator", None), "user_auth_state_key", "oauth_user")
        claims = auth_state.get(key) or {}
        if callable(self.rucio_account):
            account = await maybe_future(self.rucio_account(self, dict(claims)))
        else:
            account = claims.get(self.rucio_account)
        return account or ""  # configured, but none: never fall back to another name
