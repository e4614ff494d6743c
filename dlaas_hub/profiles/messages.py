"""Profile schema errors in words an experiment understands, each with the key's path.

jsonschema says *that* a value fails (``'4GB' does not match '^[0-9]+...'``); an experiment
needs to know *what* to write instead. Pure logic: no hub, no files.
"""

from __future__ import annotations

import difflib

import jsonschema

#: Why a profile may not set these variables: the hub sets them for every server.
RESERVED_ENV = {
    "OAUTH2_TOKEN": "it points eosxd at the EOS token file the hub keeps fresh",
    "RUCIO_CONFIG": "it points the Rucio client at the rucio.cfg the hub writes",
    "BEARER_TOKEN_FILE": "it names the token file the hub keeps fresh",
    "SCRATCH": "it names the user's scratch directory, which the hub chooses",
    "JUPYTER_CONFIG_PATH": "it holds the server extensions' configuration (the data lake's state, the Rucio "
                           "JupyterLab extension), which the hub writes",
}
RESERVED_PREFIXES = {
    "JUPYTERHUB_": "JupyterHub's own variables connect the server to the hub",
    "DLAAS_": "dlaas-hub's own variables are set by the hub",
}

MEMORY_HELP = ("a number and a unit: K, M, G or T (powers of 1024, also written Ki, Mi, Gi, Ti), "
               "for example 4G or 512M")

#: What a valid value of each pattern-checked key looks like.
PATTERN_HELP = {
    "slug": "lower-case letters, digits and '-', starting and ending with a letter or digit, "
            "at most 63 characters (for example ska-sdc1)",
    "host_path": "an absolute path, starting with /",
    "mount_path": "an absolute path, starting with /",
    "name": "lower-case letters, digits and '-', starting and ending with a letter or digit",
}


def reserved_env_reason(name: str) -> str | None:
    """Why ``name`` is the hub's to set; None when a profile may set it."""
    if name in RESERVED_ENV:
        return RESERVED_ENV[name]
    return next((why for prefix, why in RESERVED_PREFIXES.items() if name.startswith(prefix)), None)


def _path(parts) -> str:
    return ".".join(str(p) for p in parts)


def _value(instance) -> str:
    return repr(instance) if isinstance(instance, str) else str(instance)


def _image_problem(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if image != image.strip():
        return "has spaces around it"
    if any(c.isupper() for c in name.split(":", 1)[0]):
        return "has capital letters: image names are lower-case"
    if "@" not in image and ":" not in last:
        return ("has no tag: name a tag or a digest (for example "
                f"{name}:v1.0) so that every start runs the same image")
    return "is not an image reference: registry/name:tag or registry/name@sha256:<64 hex digits>"


_TYPE_WORDS = {"object": "a mapping of keys", "array": "a list", "string": "text", "number": "a number",
               "boolean": "true or false", "integer": "a whole number"}


def _kind(instance) -> str:
    if isinstance(instance, bool):
        return "true/false"
    if isinstance(instance, (int, float)):
        return "a number"
    if isinstance(instance, str):
        return "text"
    if isinstance(instance, list):
        return "a list"
    if isinstance(instance, dict):
        return "a mapping"
    return "empty" if instance is None else type(instance).__name__


def explain(error: jsonschema.ValidationError, schema: dict) -> list[tuple[str, str]]:
    """``(key, message)`` pairs for one schema error: usually one, one per unknown key."""
    path = list(error.absolute_path)
    key = _path(path)
    leaf = path[-1] if path and isinstance(path[-1], str) else ""
    validator, instance = error.validator, error.instance
    in_names = "propertyNames" in error.schema_path

    if validator == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        pairs = []
        for name in sorted(set(instance) - set(known)):
            close = difflib.get_close_matches(str(name), known, n=2, cutoff=0.5)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            pairs.append((_path(path + [name]), f"unknown key: {hint}Keys allowed here: {', '.join(known)}"))
        return pairs
    if validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [(_path(path + [missing]), "required, but missing")]
    if in_names and validator == "not" and leaf == "env":
        return [(_path(path + [instance]),
                 f"{instance} is set by the hub and cannot be set by a profile: {reserved_env_reason(instance)}")]
    if in_names and validator == "not":
        return [(_path(path + [instance]), "for operators only: it could weaken the pod's isolation or take over "
                                           "the hub's credential delivery")]
    if in_names and validator == "pattern" and leaf == "env":
        return [(_path(path + [instance]), "is not a variable name: letters, digits and '_', "
                                           "not starting with a digit")]
    if in_names and validator == "pattern":
        return [(_path(path + [instance]), "is not a valid name here: lower-case letters, digits, '_' and '-'")]
    if validator == "type":
        wanted = error.validator_value
        if error.schema == schema["$defs"]["memory"] and isinstance(instance, (int, float)):
            return [(key, f"{instance} is a number without a unit: write {MEMORY_HELP}, in quotes or not")]
        if not path:
            return [("", f"the file holds {_kind(instance)}, not a profile: write a mapping of keys "
                         "(slug:, display_name:, description:, image:, ...)")]
        return [(key, f"{_kind(instance)} where {_TYPE_WORDS.get(wanted, wanted)} is expected"
                      + (" (for example [/escape/ska])" if wanted == "array" else ""))]
    if validator == "pattern":
        if error.schema == schema["$defs"]["memory"]:
            if str(instance).replace(".", "", 1).isdigit():
                return [(key, f"{_value(instance)} has no unit and would mean {instance} bytes: write {MEMORY_HELP}")]
            return [(key, f"{_value(instance)} is not a memory size: write {MEMORY_HELP}")]
        if leaf == "image":
            return [(key, f"{_value(instance)} {_image_problem(instance)}")]
        if leaf in PATTERN_HELP:
            return [(key, f"{_value(instance)} is not valid: write {PATTERN_HELP[leaf]}")]
    if validator == "enum":
        return [(key, f"{_value(instance)} is not one of {', '.join(map(str, error.validator_value))}")]
    if validator in ("exclusiveMinimum", "minimum"):
        word = "more than" if validator == "exclusiveMinimum" else "at least"
        return [(key, f"{instance} is too small: must be {word} {error.validator_value}")]
    if validator == "maximum":
        return [(key, f"{instance} is too large: at most {error.validator_value}")]
    if validator == "minLength":
        return [(key, "must not be empty")]
    if validator == "maxLength":
        return [(key, f"is {len(instance)} characters long: at most {error.validator_value}")]
    if validator == "uniqueItems":
        return [(key, "lists the same value twice")]
    return [(key, error.message)]
