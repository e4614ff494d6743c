"""What a user's server receives: token files, rucio.cfg and the Rucio JupyterLab extension's config.

Pure formats plus one careful file writer. The formats follow what the readers accept:
eosxd (``oauth2:<jwt>:<userinfo URL without scheme>``, no newline, owner-only file), the Rucio
client (raw JWT, read with ``readline()``) and rucio-jupyterlab (``RucioConfig``).
"""

from __future__ import annotations

import configparser
import errno
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass, field

from .lakestate import STATE_ENV, STATE_FILE

EOS_TOKEN_FILE = "eos-token"
#: The same EOS token, bare, for the storage tools' WLCG bearer-token discovery (xrdcp, XRootD from
#: Python, gfal, davix): named by EOS_TOKEN_ENV, never by BEARER_TOKEN_FILE, which rucio-clients reads too.
EOS_BEARER_FILE = "eos-bearer-token"
EOS_TOKEN_ENV = "DLAAS_EOS_TOKEN_FILE"
RUCIO_TOKEN_FILE = "rucio-token"
RUCIO_CFG_FILE = "rucio.cfg"
JUPYTER_CONFIG_FILE = "jupyter_server_config.json"

# Values that end up in an INI or JSON config: no line breaks, no control characters.
_SAFE_VALUE = re.compile(r"^[^\x00-\x1f\x7f]{1,512}$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class CredentialError(ValueError):
    """A value cannot be put into a credential file safely. Never holds a token."""


def _check(value: str, what: str, pattern=_SAFE_VALUE) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise CredentialError(f"{what} is not a safe value for a config file")
    return value


def _check_jwt(token: str, what: str) -> str:
    if not isinstance(token, str) or not re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", token):
        raise CredentialError(f"the {what} token is not a JWT")
    return token


def eos_resource(userinfo_url: str) -> str:
    """The provider's userinfo URL without its scheme, as eosxd names the token's resource."""
    _check(userinfo_url, "the userinfo URL")
    return re.sub(r"^[a-z][a-z0-9+.-]*://", "", userinfo_url)


def eos_token_content(token: str, userinfo_url: str) -> str:
    return f"oauth2:{_check_jwt(token, 'EOS')}:{eos_resource(userinfo_url)}"


def rucio_token_content(token: str) -> str:
    return _check_jwt(token, "Rucio")


@dataclass(frozen=True)
class RucioSettings:
    """The site's Rucio service, as the operator configures it."""

    rucio_host: str
    auth_host: str
    ca_cert: str = ""  # empty: the client's own (X509_CERT_DIR, else certifi)
    vo: str = ""
    oidc_issuer: str = ""  # the IAM's name in the Rucio server's idpsecrets, never its URL
    oidc_audience: str = "rucio"
    instance_name: str = "escape"
    display_name: str = "ESCAPE"
    webui_url: str = ""
    site_name: str = ""
    destination_rse: str = ""
    rse_mount_path: str = ""
    extra_instance: dict = field(default_factory=dict)
    # For `datalake upload`: the RSE over the scratch space, its root as the server sees it, and the
    # PFN of that root on the RSE.
    scratch_rse: str = ""
    scratch_root: str = ""
    scratch_pfn: str = ""


def rucio_cfg(settings: RucioSettings, *, account: str, token_path: str) -> str:
    """``rucio.cfg`` for OIDC with a token file (the client never asks the user to log in)."""
    parser = configparser.ConfigParser(interpolation=None)
    client = {
        "rucio_host": _check(settings.rucio_host, "rucio_host"),
        "auth_host": _check(settings.auth_host, "auth_host"),
        "account": _check(account, "the Rucio account (IAM username)", _ACCOUNT),
        "auth_type": "oidc",
        "auth_token_file_path": _check(token_path, "the Rucio token path"),
        "oidc_audience": _check(settings.oidc_audience, "oidc_audience"),
    }
    # Left out when empty: the client then finds its CAs itself, and the server its default issuer.
    if settings.ca_cert:
        client["ca_cert"] = _check(settings.ca_cert, "ca_cert")
    if settings.oidc_issuer:
        client["oidc_issuer"] = _check(settings.oidc_issuer, "oidc_issuer")
    if settings.vo:
        client["vo"] = _check(settings.vo, "vo")
    parser["client"] = client
    if settings.scratch_rse and settings.scratch_root and settings.scratch_pfn:
        # Read by `datalake upload`; the Rucio client ignores sections it does not know.
        datalake = {"scratch_rse": settings.scratch_rse, "scratch_root": settings.scratch_root,
                    "scratch_pfn": settings.scratch_pfn, "destination": settings.destination_rse,
                    "webui_url": settings.webui_url}
        parser["dlaas"] = {key: _check(value, f"datalake {key}") for key, value in datalake.items() if value}
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


def rucio_jupyterlab_config(settings: RucioSettings, *, mode: str, token_path: str) -> dict:
    """The ``RucioConfig`` of the rucio-jupyterlab server extension, with ``oidc_auth = file``."""
    if mode not in ("replica", "download"):
        raise CredentialError(f"Rucio mode {mode!r} is neither replica nor download")
    instance = {
        "name": settings.instance_name,
        "display_name": settings.display_name,
        "rucio_base_url": f"https://{settings.rucio_host}" if "://" not in settings.rucio_host else settings.rucio_host,
        "rucio_auth_url": f"https://{settings.auth_host}" if "://" not in settings.auth_host else settings.auth_host,
        "mode": mode,
        "oidc_auth": "file",
        "oidc_file_name": token_path,
    }
    if settings.webui_url:
        instance["rucio_webui_url"] = settings.webui_url
    if settings.site_name:
        instance["site_name"] = settings.site_name
    if settings.vo:
        instance["vo"] = settings.vo
    if mode == "replica":
        if not (settings.destination_rse and settings.rse_mount_path):
            raise CredentialError("Rucio replica mode needs destination_rse and rse_mount_path")
        instance["destination_rse"] = settings.destination_rse
        instance["rse_mount_path"] = settings.rse_mount_path
    elif settings.ca_cert:
        instance["rucio_ca_cert"] = settings.ca_cert
    instance.update(settings.extra_instance)
    for key, value in instance.items():
        if isinstance(value, str):
            _check(value, f"RucioConfig {key}")
    return {"RucioConfig": {"instances": [instance], "default_instance": settings.instance_name,
                            "default_auth_type": "oidc"},
            # Signs the extension in with the token file at start (dlaas_hub.server.rucio_extension).
            "ServerApp": {"jpserver_extensions": {"dlaas_hub.server.rucio_extension": True, **STATE_EXTENSION}}}


#: The data lake's state for JupyterLab's status bar (dlaas_hub.server.labstate), in every server:
#: with Rucio or without, the scientist sees whether their tokens are renewed.
STATE_EXTENSION = {"dlaas_hub.server.labstate": True}


@dataclass(frozen=True)
class CredentialFile:
    """One file of the bundle: a name inside the credentials directory, its content and expiry."""

    name: str
    content: str
    expires_at: int | None = None

    def __post_init__(self):
        _check(self.name, "a credential file name", _FILE_NAME)

    def __repr__(self):
        return f"CredentialFile({self.name!r}, expires_at={self.expires_at})"

    def to_json(self) -> dict:
        return {"name": self.name, "content": self.content, "expires_at": self.expires_at}

    @classmethod
    def from_json(cls, doc: dict) -> "CredentialFile":
        expires_at = doc.get("expires_at")
        if not isinstance(doc.get("content"), str) or not (expires_at is None or isinstance(expires_at, int)):
            raise CredentialError("malformed credential file entry")
        return cls(name=doc.get("name"), content=doc["content"], expires_at=expires_at)


def jupyter_config_content(config: dict) -> str:
    return json.dumps(config, indent=1, sort_keys=True)


#: Opens a directory without following a link in its last component (ELOOP, or ENOTDIR for a file).
_DIR_NOFOLLOW = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOT_A_DIRECTORY = (errno.ELOOP, errno.ENOTDIR)


def open_plain_dir(path: str, *, dir_fd: int | None = None) -> int | None:
    """A descriptor of the directory ``path``, or None when it is a link or not a directory.

    A hub running as root works in directories its users own: it acts on the descriptor, never on
    the path again, so that a user who swaps the directory for a link cannot send it elsewhere.
    """
    try:
        return os.open(path, _DIR_NOFOLLOW, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in _NOT_A_DIRECTORY:
            return None
        raise


def ensure_private_dir(path: str, *, uid: int | None = None, gid: int | None = None, mode: int = 0o700) -> None:
    """Create ``path`` if needed and make sure only its owner can enter it (``mode``, 0700 by default).

    Ownership and mode are set on the directory itself, never through a link.
    """
    os.makedirs(path, mode=mode, exist_ok=True)
    fd = open_plain_dir(path)
    if fd is None:
        raise CredentialError("the credentials directory is not a plain directory")
    try:
        st = os.fstat(fd)
        if uid is not None and (st.st_uid != uid or (gid is not None and st.st_gid != gid)):
            os.fchown(fd, uid, gid if gid is not None else -1)
        if st.st_mode & 0o777 != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


def remove_private_dir(path: str) -> None:
    """Remove a credentials directory and what it holds, never following a link out of it."""
    try:
        fd = open_plain_dir(path)
    except FileNotFoundError:
        return
    if fd is None:
        raise CredentialError("refusing to remove what is not a private credentials directory")
    try:
        if os.fstat(fd).st_mode & 0o777 != 0o700:
            raise CredentialError("refusing to remove what is not a private credentials directory")
        _empty(fd)
    finally:
        os.close(fd)
    os.rmdir(path)


def _empty(dir_fd: int) -> None:
    for name in os.listdir(dir_fd):
        child = open_plain_dir(name, dir_fd=dir_fd)
        if child is None:
            os.unlink(name, dir_fd=dir_fd)  # a file, or a link (removed, not followed)
            continue
        try:
            _empty(child)
        finally:
            os.close(child)
        os.rmdir(name, dir_fd=dir_fd)


def write_private_file(directory: str, name: str, content: str, *, uid: int | None = None,
                       gid: int | None = None) -> str:
    """Replace ``directory/name`` atomically with a file only its owner can read (0600).

    The temporary file is created 0600 in the same directory, owned and filled before the rename,
    so a reader sees either the old or the new file, never a partial one.
    """
    _check(name, "a credential file name", _FILE_NAME)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        if uid is not None:
            os.fchown(fd, uid, gid if gid is not None else -1)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        target = os.path.join(directory, name)
        os.replace(tmp, target)
        return target
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@dataclass
class Bundle:
    """Everything a server gets for the data lake: files in its credentials directory and env."""

    files: list[CredentialFile]
    env: dict[str, str]
    missing: dict[str, str]  # target -> why its file is absent

    def expires_at(self) -> int | None:
        times = [f.expires_at for f in self.files if f.expires_at]
        return min(times) if times else None


def build_bundle(auth_state: dict, *, directory: str, userinfo_url: str | None, eos_target: str = "eos",
                 rucio_target: str = "rucio", rucio: RucioSettings | None = None, rucio_mode: str = "replica",
                 rucio_enabled: bool = True, rucio_account: str | None = None) -> Bundle:
    """The credential files and environment for a server whose credentials live in ``directory``.

    ``directory`` is the path as the server sees it. Only audience-restricted exchanged tokens go in:
    never the refresh token or the user's broad access token. ``rucio_account`` defaults to the IAM
    user name; one that cannot be written safely leaves the Rucio files out (``missing`` says why).
    """
    exchanged = (auth_state or {}).get("exchanged") or {}
    errors = (auth_state or {}).get("exchange_errors") or {}
    # The token agent records the data lake's state there (no token in it), for JupyterLab.
    files, env, missing = [], {STATE_ENV: f"{directory}/{STATE_FILE}"}, {}
    server_config = {"ServerApp": {"jpserver_extensions": dict(STATE_EXTENSION)}}

    def absent(target):
        error = errors.get(target, {}).get("error")
        return f"the token exchange failed ({error})" if error else "no token was exchanged at login"

    eos = exchanged.get(eos_target)
    if eos and userinfo_url:
        files.append(CredentialFile(EOS_TOKEN_FILE, eos_token_content(eos["access_token"], userinfo_url),
                                    eos.get("expires_at")))
        env["OAUTH2_TOKEN"] = f"FILE:{directory}/{EOS_TOKEN_FILE}"
        files.append(CredentialFile(EOS_BEARER_FILE, _check_jwt(eos["access_token"], "EOS"), eos.get("expires_at")))
        env[EOS_TOKEN_ENV] = f"{directory}/{EOS_BEARER_FILE}"
    elif eos_target:
        missing[eos_target] = absent(eos_target) if not eos else "the provider's userinfo URL is unknown"

    token = exchanged.get(rucio_target)
    account = (auth_state or {}).get("iam_username") if rucio_account is None else rucio_account
    if token and rucio is not None and not (isinstance(account, str) and _ACCOUNT.fullmatch(account)):
        missing[rucio_target] = "the user's Rucio account is not a safe account name"
    elif token and rucio is not None:
        token_path = f"{directory}/{RUCIO_TOKEN_FILE}"
        files.append(CredentialFile(RUCIO_TOKEN_FILE, rucio_token_content(token["access_token"]),
                                    token.get("expires_at")))
        files.append(CredentialFile(RUCIO_CFG_FILE, rucio_cfg(rucio, account=account, token_path=token_path)))
        env["RUCIO_CONFIG"] = f"{directory}/{RUCIO_CFG_FILE}"
        if rucio_enabled:
            server_config = rucio_jupyterlab_config(rucio, mode=rucio_mode, token_path=token_path)
    elif rucio is not None and rucio_target:
        missing[rucio_target] = absent(rucio_target)
    files.append(CredentialFile(JUPYTER_CONFIG_FILE, jupyter_config_content(server_config)))
    env["JUPYTER_CONFIG_PATH"] = directory
    return Bundle(files=files, env=env, missing=missing)
