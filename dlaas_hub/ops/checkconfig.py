"""``dlaas-hub check-config``: what is missing or contradictory in a deploy's configuration, before it runs.

Reads a ``jupyterhub_config.py`` or Zero-to-JupyterHub values files (merged in the order given, as
``helm -f a -f b`` does) and reports each problem with the setting that holds it. Pure: nothing is
started and no provider is asked.
"""

from __future__ import annotations

import copy
import difflib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from traitlets import HasTraits, TraitError
from traitlets.config import Config, PyFileConfigLoader

from ..auth.authenticator import DLaaSAuthenticator
from ..auth.discovery import issuer_problem
from ..auth.startup import KEY_ENV, crypt_key_problem
from ..hubapi.scopes import TOKENS_SCOPE
from ..profiles.catalog import load_directory
from ..spawners import DLaaSKubeSpawner, DLaaSLocalSpawner
from ..tokens.exchange import ExchangeTarget, eos_refusal
from .chartschema import coalesce, schema_problems
from .extraconfig import SnippetError, read_snippets
from .online import provider_findings

AUTHENTICATORS = {"dlaas", "DLaaSAuthenticator", "dlaas_hub.authenticator.DLaaSAuthenticator",
                  "dlaas_hub.auth.authenticator.DLaaSAuthenticator"}
SPAWNERS = {"dlaas-kube": "DLaaSKubeSpawner", "dlaas-local": "DLaaSLocalSpawner",
            "DLaaSKubeSpawner": "DLaaSKubeSpawner", "DLaaSLocalSpawner": "DLaaSLocalSpawner",
            "dlaas_hub.spawners.DLaaSKubeSpawner": "DLaaSKubeSpawner",
            "dlaas_hub.spawners.DLaaSLocalSpawner": "DLaaSLocalSpawner"}


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    setting: str
    message: str

    def __str__(self):
        return f"{self.level}: {self.setting}: {self.message}"


@dataclass
class Deploy:
    """The settings the checks read, whatever file they came from."""

    config: Config
    source: str  # "python" or "values"
    crypt_key: bool
    profile_list_key: str = "KubeSpawner.profile_list"
    hub_image: str = ""  # hub.image of Zero-to-JupyterHub values, as the operator's files set it
    notes: list = field(default_factory=list)  # findings made while reading the files

    def section(self, name: str) -> dict:
        return dict(self.config[name]) if name in self.config else {}


def _class_name(value) -> str:
    return value if isinstance(value, str) else getattr(value, "__name__", str(value))


def load_python(path: Path, environ=os.environ) -> Deploy:
    loader = PyFileConfigLoader(path.name, path=str(path.parent))
    try:
        config = loader.load_config()
    except Exception as e:  # noqa: BLE001 - whatever the operator's file raises, say which file and why
        raise ShapeError(f"{path}: running it failed: {type(e).__name__}: {e}") from None
    # Config's attribute access would give dict.keys here: read the item.
    keys = config["CryptKeeper"]["keys"] if "keys" in config.get("CryptKeeper", {}) else []
    deploy = Deploy(config, "python", bool(keys) or bool(environ.get(KEY_ENV)))
    if environ.get(KEY_ENV) and crypt_key_problem(environ[KEY_ENV]):
        deploy.notes.append(Finding("error", KEY_ENV, crypt_key_problem(environ[KEY_ENV])))
    deploy.notes += _keys_findings("CryptKeeper.keys", keys)
    return deploy


def _keys_findings(where: str, keys) -> list[Finding]:
    """CryptKeeper.keys as configured: a list of keys JupyterHub takes (a string is not split there)."""
    if isinstance(keys, str):
        return [Finding("error", where, "text where a list of keys is expected: the hub would not start "
                                        "(YAML: keys: [\"<64 hex digits>\"])")]
    problem = crypt_key_problem(keys) if keys else None
    return [Finding("error", where, problem)] if problem else []


class ShapeError(ValueError):
    """A file whose structure is not a configuration at all; the message names the file and key."""


class UnreadableError(ValueError):
    """A file that cannot be parsed; the message names it."""


def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ShapeError(f"{where}: must be a mapping of settings, not a {type(value).__name__}")
    return value


def load_values(paths: list[Path]) -> Deploy:
    values: dict = {}
    for path in paths:
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise UnreadableError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
        values = coalesce(values, _mapping(loaded, f"{path}: the top level"))
    hub = _mapping(values.get("hub"), "hub")
    # What Helm refuses before rendering (an unknown chart key, a wrong type), named by its key.
    notes = [Finding("error", key, why) for key, why in schema_problems(values)]
    config = Config()
    for section, settings in _mapping(hub.get("config"), "hub.config").items():
        config[section].update(_mapping(settings, f"hub.config.{section}"))
    keys = _mapping(hub.get("config"), "hub.config").get("CryptKeeper", {}) or {}
    if isinstance(keys, dict) and keys.get("keys") is not None:
        notes += _keys_findings("hub.config.CryptKeeper.keys", keys["keys"])
    # The chart runs hub.extraConfig after hub.config: what its snippets set wins.
    try:
        extra, unread = read_snippets(_mapping(hub.get("extraConfig"), "hub.extraConfig"))
    except SnippetError as e:
        raise ShapeError(str(e)) from None
    for section, settings in extra.items():
        config[section].update(settings)
    notes += [Finding("warning", u.where, u.why) for u in unread]
    roles = _mapping(hub.get("loadRoles"), "hub.loadRoles")
    config.JupyterHub.load_roles = [{"name": name, **(role or {})} for name, role in roles.items()]
    # The chart's own keys for JupyterHub's named servers.
    for key, trait in (("allowNamedServers", "allow_named_servers"),
                       ("namedServerLimitPerUser", "named_server_limit_per_user")):
        if hub.get(key) is not None:
            config.JupyterHub[trait] = hub[key]
    profile_list = (values.get("singleuser") or {}).get("profileList")
    if profile_list:
        config.KubeSpawner.profile_list = profile_list
    image = hub.get("image") or {}
    hub_image = f"{image.get('name')}:{image.get('tag')}" if isinstance(image, dict) and image.get("name") else ""
    notes += _prepull_findings(values, hub_image, config)
    # The chart seeds hub.config.CryptKeeper.keys in its Secret when the values give none.
    return Deploy(config, "values", True, "singleuser.profileList", hub_image, notes)


#: The shipped values' pre-puller entry for the token agent's image.
PREPULL_AGENT = "dlaas-token-agent"


def _prepull_findings(values: dict, hub_image: str, config: Config) -> list[Finding]:
    """The pre-puller's copy of the agent's image, when it names another (an upgrade set --set hub.image.tag)."""
    entry = (((values.get("prePuller") or {}).get("extraImages") or {}).get(PREPULL_AGENT))
    if not isinstance(entry, dict) or not entry.get("name"):
        return []
    pulled = f"{entry['name']}:{entry.get('tag')}" if entry.get("tag") else entry["name"]
    spawner = config.DLaaSKubeSpawner if "DLaaSKubeSpawner" in config else {}
    agent = spawner.get("token_agent_image") or hub_image
    if not agent or pulled == agent:
        return []
    return [Finding("warning", f"prePuller.extraImages.{PREPULL_AGENT}",
                    f"pulls {pulled} ahead, but the token agents run {agent}: every new node and server waits for "
                    "a pull. Give it the same name and tag (the shipped values share hub.image's through a "
                    "YAML anchor)")]


#: The classes whose settings are checked by name and type.
CHECKED_CLASSES = {cls.__name__: cls for cls in (DLaaSAuthenticator, DLaaSKubeSpawner, DLaaSLocalSpawner)}


def _setting_findings(deploy: Deploy) -> list[Finding]:
    """Unknown settings (with the likely intended one), wrong types, and misspelled class names."""
    findings = []
    for section in sorted(deploy.config):
        if section not in CHECKED_CLASSES:
            close = difflib.get_close_matches(section, CHECKED_CLASSES, n=1, cutoff=0.85)
            if close:
                findings.append(Finding("error", section, f"no such class: did you mean {close[0]}? "
                                                          "Its settings here are ignored"))
            continue
        cls = CHECKED_CLASSES[section]
        traits = cls.class_traits(config=True)
        for key, value in deploy.config[section].items():
            setting = f"{section}.{key}"
            if key not in traits:
                close = difflib.get_close_matches(key, traits, n=1, cutoff=0.75)
                hint = f": did you mean {close[0]}?" if close else ""
                findings.append(Finding("error", setting, f"{cls.__name__} has no such setting{hint} "
                                                          "It would be ignored"))
                continue
            why = _type_problem(key, traits[key], value, cls.__name__)
            if why:
                findings.append(Finding("error", setting, why))
    return findings


def _type_problem(name: str, trait, value, owner: str = "Probe") -> str | None:
    """Why ``value`` does not fit ``trait``, as traitlets would refuse it when the hub starts."""
    # Named as the real class, so that traitlets' message reads as the hub's would.
    probe_class = type(owner, (HasTraits,), {name: copy.deepcopy(trait)})
    try:
        setattr(probe_class(), name, value)
    except TraitError as e:
        message = str(e).splitlines()[0][:200]
        if "should not be" in message:  # the right type, out of the trait's bounds
            return message
        kind = type(value).__name__
        return f"a {kind} where {trait.info()} is expected ({message[:160]})"
    except Exception:  # noqa: BLE001 - a trait whose own validation needs the hub: not checked here
        return None
    return None


def check(deploy: Deploy, *, profiles_dir: Path | None = None) -> list[Finding]:
    """Every problem found, errors first."""
    findings: list[Finding] = list(deploy.notes) + _setting_findings(deploy)
    hub = deploy.section("JupyterHub")
    if _class_name(hub.get("authenticator_class", "")) not in AUTHENTICATORS:
        findings.append(Finding("warning", "JupyterHub.authenticator_class",
                                "is not DLaaSAuthenticator (dlaas): only the spawner settings are checked"))
    else:
        findings += _check_authenticator(deploy)
    spawner = SPAWNERS.get(_class_name(hub.get("spawner_class", "")))
    if spawner:
        findings += _check_spawner(deploy, spawner, profiles_dir)
        findings += _check_roles(deploy)
    findings += _check_browser_safety(deploy)
    return sorted(findings, key=lambda f: f.level != "error")


def _check_browser_safety(deploy: Deploy) -> list[Finding]:
    """What keeps another site from acting through a signed-in browser, and its cost when it does."""
    hub = deploy.section("JupyterHub")
    values = deploy.source == "values"
    findings = []
    settings = hub.get("tornado_settings") or {}
    options = (settings.get("cookie_options") if isinstance(settings, dict) else None) or {}
    same_site = next((v for k, v in options.items() if str(k).lower() == "samesite"), None) \
        if isinstance(options, dict) else None
    if str(same_site).lower() not in ("lax", "strict"):
        findings.append(Finding("warning", "JupyterHub.tornado_settings.cookie_options",
                                "no samesite: browsers send the hub's cookies with requests other sites make. "
                                "Set {samesite: Lax} (Strict would break the return from the IAM's sign-in)"))
    limit = hub.get("named_server_limit_per_user", 0)
    if hub.get("allow_named_servers") and not limit:
        findings.append(Finding("warning", "hub.namedServerLimitPerUser" if values
                                else "JupyterHub.named_server_limit_per_user",
                                "named servers are allowed without a limit: each one exchanges tokens and holds "
                                "a server's resources. Set a limit, such as 3"))
    return findings


def _check_authenticator(deploy: Deploy) -> list[Finding]:
    auth = deploy.section("DLaaSAuthenticator")
    findings = []
    if not deploy.crypt_key:
        findings.append(Finding("error", "CryptKeeper.keys", "no auth_state encryption key: the hub will refuse to "
                                "start. Make one with `openssl rand -hex 32` and set it here or as "
                                "JUPYTERHUB_CRYPT_KEY in the hub's environment"))
    for key in ("oidc_issuer", "client_id", "client_secret"):
        if not auth.get(key):
            findings.append(Finding("error", f"DLaaSAuthenticator.{key}", "not set"))
    issuer = auth.get("oidc_issuer")
    problem = issuer_problem(issuer) if isinstance(issuer, str) and issuer else None
    if problem:
        findings.append(Finding("error", "DLaaSAuthenticator.oidc_issuer", f"{issuer!r} {problem}"))
    if auth.get("enable_auth_state") is False:
        findings.append(Finding("error", "DLaaSAuthenticator.enable_auth_state", "must stay True"))
    targets = auth.get("exchange_targets") or {}
    if not isinstance(targets, dict):
        return findings  # reported as a wrong type
    if not targets:
        findings.append(Finding("warning", "DLaaSAuthenticator.exchange_targets",
                                "empty: servers get no storage token"))
    for name, target in targets.items():
        try:
            ExchangeTarget.from_config(name, target, key="DLaaSAuthenticator.exchange_targets")
        except ValueError as e:
            findings.append(Finding("error", f"DLaaSAuthenticator.exchange_targets.{name}", str(e)))
    return findings


def _group_style(auth: dict) -> str | None:
    claim = auth.get("groups_claim", "wlcg.groups")
    return {"wlcg.groups": "path", "groups": "name"}.get(claim) if isinstance(claim, str) else None


def _as_group_set(value) -> set[str]:
    """Groups as the authenticator reads them: traitlets makes a lone string a set of one."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(g, str) for g in value):
        return set(value)
    return set()  # anything else is reported as a wrong type


def _check_groups(auth: dict, profiles) -> list[Finding]:
    """Groups a login can never carry: paths where the claim gives names, or names where it gives paths."""
    style = _group_style(auth)
    if style is None:
        return []
    claim = auth.get("groups_claim", "wlcg.groups")
    findings = []

    def misfit(group: str) -> bool:
        return group.startswith("/") != (style == "path")

    expect = "paths such as /escape/ska" if style == "path" else "names such as escape/ska"
    for key in ("allowed_groups", "admin_groups"):
        groups = _as_group_set(auth.get(key))
        for group in sorted(groups):
            if misfit(group):
                findings.append(Finding("error", f"DLaaSAuthenticator.{key}",
                                        f"{group!r} can never match: groups_claim {claim!r} gives {expect}"))
    allowed = _as_group_set(auth.get("allowed_groups"))
    for profile in profiles:
        for group in profile.allowed_groups:
            if misfit(group):
                findings.append(Finding("error", f"{profile.source}: allowed_groups",
                                        f"{group!r} can never match: groups_claim {claim!r} gives {expect}"))
            elif allowed and style == "path" and not any(group == a or group.startswith(a.rstrip("/") + "/")
                                                         for a in allowed):
                findings.append(Finding("warning", f"{profile.source}: allowed_groups",
                                        f"{group!r} is outside DLaaSAuthenticator.allowed_groups "
                                        f"{sorted(allowed)}: only users also in one of those may use it"))
    return findings


def _check_spawner(deploy: Deploy, cls: str, profiles_dir: Path | None) -> list[Finding]:
    spawner = {**deploy.section("Spawner"), **(deploy.section("KubeSpawner") if cls == "DLaaSKubeSpawner" else {}),
               **deploy.section(cls)}
    findings = []
    if cls == "DLaaSKubeSpawner" and deploy.section("KubeSpawner").get("profile_list"):
        findings.append(Finding("error", deploy.profile_list_key,
                                "must stay empty: DLaaSKubeSpawner lists the profiles of profiles_dir by group"))
    findings += _check_agent_image(deploy, cls, spawner)
    configured = spawner.get("profiles_dir")
    directory = profiles_dir or (Path(configured) if isinstance(configured, str) and configured else None)
    profiles = []
    if directory is None:
        findings.append(Finding("warning", f"{cls}.profiles_dir", "not set: profiles come from inline profiles"))
    elif not directory.is_dir():
        findings.append(Finding("warning", f"{cls}.profiles_dir",
                                f"{directory} is not a directory here, so the profiles were not checked "
                                "(give --profiles DIR, the folder the hub will read)"))
    else:
        profiles, errors = load_directory(directory)
        findings += [Finding("error", f"{cls}.profiles_dir", str(e)) for e in errors]
    findings += _check_groups(deploy.section("DLaaSAuthenticator"), profiles)
    issuer_name = spawner.get("rucio_oidc_issuer")
    if isinstance(issuer_name, str) and "://" in issuer_name:
        findings.append(Finding("error", f"{cls}.rucio_oidc_issuer",
                                f"{issuer_name!r} is a URL: give the IAM's name in the Rucio server's idpsecrets.json "
                                "(for example 'escape'), or leave it empty for the server's admin_issuer"))
    findings += _check_eos_target(deploy.section("DLaaSAuthenticator"), spawner)
    instance = spawner.get("rucio_instance") if isinstance(spawner.get("rucio_instance"), dict) else {}
    replica = [p.slug for p in profiles if p.rucio_enabled and p.rucio_mode == "replica"]
    missing = [k for k in ("destination_rse", "rse_mount_path") if not instance.get(k)]
    download = [p.slug for p in profiles if p.rucio_enabled and p.rucio_mode == "download"]
    if spawner.get("rucio_host") and download and not spawner.get("rucio_ca_cert"):
        findings.append(Finding("error", f"{cls}.rucio_ca_cert",
                                f"Rucio's download mode (profiles {', '.join(download)}) needs the path of the CA "
                                "certificates in the profiles' images (the Rucio extension requires it)"))
    if spawner.get("rucio_host") and missing and (replica or not profiles):
        findings.append(Finding("error", f"{cls}.rucio_instance",
                                f"Rucio replica mode (profiles {', '.join(replica) or 'by default'}) needs "
                                f"{' and '.join(missing)}"))
    return findings


def _check_eos_target(auth: dict, spawner: dict) -> list[Finding]:
    targets = auth.get("exchange_targets")
    name = spawner.get("eos_target", "eos")
    if not isinstance(targets, dict) or not isinstance(name, str) or name not in targets:
        return []
    try:
        target = ExchangeTarget.from_config(name, targets[name])
    except ValueError:
        return []  # reported by _check_authenticator
    why = eos_refusal(target)
    return [Finding("warning", f"DLaaSAuthenticator.exchange_targets.{name}.scope", why)] if why else []


def _check_agent_image(deploy: Deploy, cls: str, spawner: dict) -> list[Finding]:
    """The token agent sidecar needs an image with dlaas-hub: token_agent_image, or the hub's own."""
    if cls != "DLaaSKubeSpawner" or spawner.get("token_agent_enabled") is False:
        return []
    pinned = spawner.get("token_agent_image")
    if pinned and deploy.source == "values" and deploy.hub_image and pinned != deploy.hub_image:
        return [Finding("warning", f"{cls}.token_agent_image",
                        f"{pinned} is not the hub's image ({deploy.hub_image}): an upgrade that moves hub.image "
                        "leaves every new server's token agent on this one. Leave it unset and the agents "
                        "follow the hub's image")]
    if pinned:
        return []
    if deploy.source == "values" and deploy.hub_image:
        return []
    if deploy.source == "values":
        return [Finding("error", "hub.image", "not set, so the hub runs the chart's stock image, which has no "
                        "dlaas-hub, and DLaaSKubeSpawner.token_agent_image is not set either: build the hub "
                        "image of helm-values/hub-image and name it here (the token agents run it too)")]
    return [Finding("warning", f"{cls}.token_agent_image",
                    "not set: the hub uses hub.image of Zero-to-JupyterHub's values, and refuses to start "
                    "outside the chart; set it to an image with dlaas-hub installed")]


def _check_roles(deploy: Deploy) -> list[Finding]:
    roles = deploy.section("JupyterHub").get("load_roles") or []
    user_role = next((r for r in roles if isinstance(r, dict) and r.get("name") == "user"), None)
    scopes = (user_role or {}).get("scopes") or []
    if not any(isinstance(s, str) and s.split("!")[0] == TOKENS_SCOPE for s in scopes):
        key = "hub.loadRoles.user" if deploy.source == "values" else "JupyterHub.load_roles"
        return [Finding("error", key, f"the 'user' role must hold '{TOKENS_SCOPE}!user' (with 'self'): "
                                      "each server's token agent fetches its credentials with it")]
    return []


def main(args) -> int:
    paths = [Path(p) for p in args.files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        if paths[0].suffix == ".py":
            if len(paths) > 1:
                print("error: give one jupyterhub_config.py, or one or more values files", file=sys.stderr)
                return 2
            deploy = load_python(paths[0])
        else:
            deploy = load_values(paths)
    except ShapeError as e:
        print(f"error: {e}")
        print(f"1 error(s), 0 warning(s) in {', '.join(map(str, paths))}")
        return 1
    except UnreadableError as e:
        print(f"error: cannot read the configuration: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot read the configuration: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    findings = check(deploy, profiles_dir=Path(args.profiles) if args.profiles else None)
    issuer = deploy.section("DLaaSAuthenticator").get("oidc_issuer")
    if getattr(args, "online", False) and isinstance(issuer, str) and not issuer_problem(issuer):
        findings += [Finding(*f) for f in provider_findings(
            issuer, exchange_targets=bool(deploy.section("DLaaSAuthenticator").get("exchange_targets")))]
        findings.sort(key=lambda f: f.level != "error")
    for finding in findings:
        print(finding)
    errors = sum(f.level == "error" for f in findings)
    print(f"{errors} error(s), {len(findings) - errors} warning(s) in {', '.join(map(str, paths))}")
    return 1 if errors else 0
