"""Science profiles: the schema, loading ``profiles/*.yaml``, group filtering, kubespawner's form.

Pure logic, no hub: the spawners and the ``dlaas-hub profiles`` command build on it.
"""

from __future__ import annotations

import copy
import html
import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from .messages import explain

log = logging.getLogger(__name__)

RUCIO_MODES = ("replica", "download")


@lru_cache(maxsize=1)
def profile_schema() -> dict:
    return json.loads(resources.files("dlaas_hub.profiles").joinpath("schemas/profile.schema.json").read_text())


def inert_text(text: str) -> str:
    """Text safe in kubespawner's form: HTML-escaped, and with no Jinja syntax left, because
    JupyterHub renders the options form as a template a second time."""
    return html.escape(text).replace("{", "&#123;").replace("}", "&#125;").replace("%", "&#37;")


def _cores(value) -> str:
    return f"{value:g} core" + ("" if float(value) == 1 else "s")


def _memory(value) -> str:
    # kubespawner reads K, M, G and T as powers of 1024, as their Ki, Mi, Gi and Ti forms.
    text = str(value)
    number, unit = text.rstrip("KMGTi"), text[len(text.rstrip("KMGTi")):]
    return f"{number} {unit.rstrip('i')}iB" if unit else f"{text} bytes"


def _inert_options(options: dict) -> dict:
    """profile_options with every text shown on the form made inert (see inert_text)."""
    options = copy.deepcopy(options)
    for option in options.values():
        option["display_name"] = inert_text(option["display_name"])
        for choice in option.get("choices", {}).values():
            choice["display_name"] = inert_text(choice["display_name"])
        unlisted = option.get("unlisted_choice", {})
        for key in ("display_name", "display_name_in_choices", "validation_message"):
            if key in unlisted:
                unlisted[key] = inert_text(unlisted[key])
    return options


@dataclass(frozen=True)
class ProfileError:
    """One problem in one profile source, named by file and key."""

    source: str
    key: str
    message: str

    def __str__(self):
        return f"{self.source}: {self.key}: {self.message}" if self.key else f"{self.source}: {self.message}"


@dataclass(frozen=True)
class Mount:
    name: str
    host_path: str
    mount_path: str
    read_only: bool = False


@dataclass(frozen=True)
class Profile:
    slug: str
    display_name: str
    description: str
    image: str
    default: bool = False
    allowed_groups: tuple[str, ...] = ()
    resources: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    drop_mounts: tuple[str, ...] = ()
    add_mounts: tuple[Mount, ...] = ()
    rucio_enabled: bool = True
    rucio_mode: str = "replica"
    kubespawner_override: dict = field(default_factory=dict)
    profile_options: dict = field(default_factory=dict)
    source: str = ""

    def allows(self, groups) -> bool:
        """Whether a user in ``groups`` may use this profile."""
        return not self.allowed_groups or bool(set(self.allowed_groups) & set(groups))

    def to_kubespawner(self) -> dict:
        """This profile as an entry of kubespawner's ``profile_list``."""
        override = {"image": self.image}
        names = {"cpu_request": "cpu_guarantee", "cpu_limit": "cpu_limit",
                 "mem_request": "mem_guarantee", "mem_limit": "mem_limit"}
        for key, trait in names.items():
            if key in self.resources:
                override[trait] = self.resources[key]
        if self.env:
            override["environment"] = dict(self.env)
        override.update(self.kubespawner_override)
        # kubespawner's form shows the description inside a <p>: the resources get one of their own.
        description = inert_text(self.description)
        summary = self.resources_summary()
        if summary:
            description += f'</p><p class="dlaas-profile-resources"><small>{inert_text(summary)}</small>'
        entry = {"slug": self.slug, "display_name": inert_text(self.display_name),
                 "description": description, "default": self.default,
                 "kubespawner_override": override}
        if self.profile_options:
            entry["profile_options"] = _inert_options(self.profile_options)
        return entry

    def resources_summary(self) -> str:
        """CPU, memory and image in words, for the Server Options page."""
        parts = []
        for what, low, high, shown in (("CPU", "cpu_request", "cpu_limit", _cores),
                                       ("Memory", "mem_request", "mem_limit", _memory)):
            request, limit = self.resources.get(low), self.resources.get(high)
            if request is not None and limit is not None:
                parts.append(f"{what}: {shown(request)} guaranteed, up to {shown(limit)}")
            elif limit is not None:
                parts.append(f"{what}: up to {shown(limit)}")
            elif request is not None:
                parts.append(f"{what}: {shown(request)} guaranteed")
        parts.append(f"Image: {self.image}")
        return " · ".join(parts)

    @classmethod
    def from_document(cls, doc: dict, source: str = "") -> "Profile":
        mounts = doc.get("mounts", {})
        rucio = doc.get("rucio", {})
        return cls(
            slug=doc["slug"], display_name=doc["display_name"], description=doc["description"],
            image=doc["image"], default=doc.get("default", False),
            allowed_groups=tuple(doc.get("allowed_groups", ())), resources=dict(doc.get("resources", {})),
            env=dict(doc.get("env", {})), drop_mounts=tuple(mounts.get("drop", ())),
            add_mounts=tuple(Mount(**m) for m in mounts.get("add", ())),
            rucio_enabled=rucio.get("enabled", True), rucio_mode=rucio.get("mode", "replica"),
            kubespawner_override=dict(doc.get("kubespawner_override", {})),
            profile_options=dict(doc.get("profile_options", {})), source=source,
        )


def validate_document(doc, source: str) -> list[ProfileError]:
    """Every problem of one profile document, in words, each with its key's path."""
    schema = profile_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = []
    for error in validator.iter_errors(doc):
        errors += [ProfileError(source, key, message) for key, message in explain(error, schema)]
    errors.sort(key=lambda e: e.key)
    if not errors:
        errors += _contradictions(doc, source)
    return errors


def memory_bytes(value: str) -> float:
    """A schema-valid memory size in bytes; kubespawner reads K, M, G, T as powers of 1024."""
    text = str(value).removesuffix("i")
    unit = text[-1] if text[-1] in "KMGT" else ""
    return float(text[:-1] if unit else text) * 1024 ** ("KMGT".index(unit) + 1 if unit else 0)


def _contradictions(doc: dict, source: str) -> list[ProfileError]:
    """What the schema cannot see: a request above its limit, which Kubernetes refuses at every start."""
    resources = doc.get("resources", {})
    errors = []
    for what, low, high, size in (("CPU", "cpu_request", "cpu_limit", float),
                                  ("memory", "mem_request", "mem_limit", memory_bytes)):
        if low in resources and high in resources and size(resources[low]) > size(resources[high]):
            errors.append(ProfileError(source, f"resources.{low}",
                                       f"{resources[low]} is more than {high} ({resources[high]}): Kubernetes "
                                       f"refuses a {what} request above its limit, so the server could never start"))
    return errors


def parse_profile(doc, source: str) -> tuple[Profile | None, list[ProfileError]]:
    errors = validate_document(doc, source)
    if errors:
        return None, errors
    return Profile.from_document(doc, source), []


def load_file(path: Path) -> tuple[Profile | None, list[ProfileError]]:
    source = path.name
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        return None, [ProfileError(source, "", f"cannot read the file ({type(e).__name__})")]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(e, "problem", None) or str(e).splitlines()[0]
        return None, [ProfileError(source, "", f"not valid YAML{where}: {reason}")]
    return parse_profile(doc, source)


def check_catalog(profiles: list[Profile]) -> tuple[list[Profile], list[ProfileError]]:
    """Drop later profiles that reuse a slug; report more than one default."""
    seen, kept, errors = {}, [], []
    for profile in profiles:
        if profile.slug in seen:
            errors.append(ProfileError(profile.source, "slug",
                                       f"{profile.slug!r} is already used by {seen[profile.slug]}; skipped"))
            continue
        seen[profile.slug] = profile.source
        kept.append(profile)
    defaults = [p for p in kept if p.default]
    if len(defaults) > 1:
        errors.append(ProfileError(defaults[1].source, "default",
                                   f"more than one default profile ({', '.join(p.slug for p in defaults)}); "
                                   f"the first one, {defaults[0].slug!r}, is pre-selected"))
    return kept, errors


def is_profile_file(path: Path) -> bool:
    """``*.yaml`` or ``*.yml`` in any case: a ``SKA.YAML`` is a profile too, not silently left out."""
    return path.suffix.lower() in (".yaml", ".yml") and not path.name.startswith(".")


def load_directory(directory: Path) -> tuple[list[Profile], list[ProfileError]]:
    """Every ``*.yaml``/``*.yml`` file of ``directory``, in file-name order; broken files are skipped."""
    profiles, errors = [], []
    directory = Path(directory)
    if not directory.is_dir():
        return [], [ProfileError(str(directory), "", "profiles directory not found")]
    for path in sorted(p for p in directory.iterdir() if is_profile_file(p) and p.is_file()):
        profile, problems = load_file(path)
        errors += problems
        if profile:
            profiles.append(profile)
    profiles, problems = check_catalog(profiles)
    return profiles, errors + problems


def load_inline(documents: list, source: str = "config") -> tuple[list[Profile], list[ProfileError]]:
    profiles, errors = [], []
    for i, doc in enumerate(documents):
        profile, problems = parse_profile(doc, f"{source}[{i}]")
        errors += problems
        if profile:
            profiles.append(profile)
    profiles, problems = check_catalog(profiles)
    return profiles, errors + problems


class ProfileCatalog:
    """Profiles from a directory, reloaded when a file changes, errors logged once per change."""

    def __init__(self, directory: Path, logger=None):
        self.directory = Path(directory)
        self.log = logger or log
        self._signature = None
        self._profiles: list[Profile] = []
        self.errors: list[ProfileError] = []

    def _current_signature(self):
        try:
            return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                                for p in self.directory.iterdir() if is_profile_file(p)))
        except OSError:
            return None

    def profiles(self) -> list[Profile]:
        signature = self._current_signature()
        if signature != self._signature or signature is None:
            self._profiles, self.errors = load_directory(self.directory)
            if signature != self._signature:
                for error in self.errors:
                    self.log.error("Profile skipped or corrected: %s", error)
                self.log.info("Loaded %d profiles from %s", len(self._profiles), self.directory)
            self._signature = signature
        return self._profiles
