import os
import time
from pathlib import Path

import jinja2
import pytest
import yaml

from dlaas_hub.profiles.catalog import (
    Profile,
    ProfileCatalog,
    inert_text,
    load_directory,
    load_inline,
    profile_schema,
    validate_document,
)

REPO_PROFILES = Path(__file__).resolve().parents[2] / "profiles"

GOOD = {"slug": "demo", "display_name": "Demo", "description": "A demo.",
        "image": "quay.io/jupyter/base-notebook:2025-01-01"}


def write(directory: Path, name: str, doc) -> Path:
    path = directory / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def test_shipped_profiles_are_valid_and_complete():
    profiles, errors = load_directory(REPO_PROFILES)
    assert errors == []
    slugs = {p.slug for p in profiles}
    assert {"minimal", "root", "root-xcache", "ska-sdc1", "gcc-magic-cta", "micromega", "agnpy", "reana"} <= slugs
    by_slug = {p.slug: p for p in profiles}
    assert by_slug["minimal"].default and sum(p.default for p in profiles) == 1
    assert by_slug["root-xcache"].rucio_mode == "download"
    assert by_slug["ska-sdc1"].allowed_groups == ("/escape/ska",)
    for p in profiles:
        assert {"cpu_request", "cpu_limit", "mem_request", "mem_limit"} <= set(p.resources), p.slug
        assert ":" in p.image.rsplit("/", 1)[-1], "images carry an explicit tag"


def test_schema_is_published_in_docs():
    root = Path(__file__).resolve().parents[2]
    page = (root / "docs" / "experiments.md").read_text()
    included = page.split("```{literalinclude} ", 1)[1].split("\n", 1)[0].strip()
    assert yaml.safe_load((root / "docs" / included).read_text()) == profile_schema()


def test_experiments_page_describes_every_field_in_prose_before_the_schema():
    page = (Path(__file__).resolve().parents[2] / "docs" / "experiments.md").read_text()
    prose = page.split("```{literalinclude}", 1)[0]
    schema = profile_schema()
    for name in schema["properties"]:
        marker = f"`{name}` (required)" if name in schema["required"] else f"\n`{name}`\n"
        assert marker in prose, name


@pytest.mark.parametrize("change,key,message", [
    ({"slug": "Bad Slug"}, "slug", "'Bad Slug' is not valid: write lower-case letters, digits and '-'"),
    ({"image": "no-tag"}, "image", "'no-tag' has no tag: name a tag or a digest"),
    ({"image": "Registry/Img:1"}, "image", "has capital letters"),
    ({"resources": {"cpu_limit": -1}}, "resources.cpu_limit", "-1 is too small: must be more than 0"),
    ({"resources": {"mem_limit": "lots"}}, "resources.mem_limit", "'lots' is not a memory size: write a number "
                                                                  "and a unit"),
    ({"resources": {"mem_limit": "4GB"}}, "resources.mem_limit", "'4GB' is not a memory size"),
    ({"resources": {"mem_request": "4"}}, "resources.mem_request", "'4' has no unit and would mean 4 bytes"),
    ({"resources": {"mem_request": 4}}, "resources.mem_request", "4 is a number without a unit"),
    ({"resources": {"cpus": 2}}, "resources.cpus", "unknown key: did you mean cpu_request?"),
    ({"rucio": {"mode": "stream"}}, "rucio.mode", "'stream' is not one of replica, download"),
    ({"env": {"OAUTH2_TOKEN": "x"}}, "env.OAUTH2_TOKEN", "OAUTH2_TOKEN is set by the hub and cannot be set by a "
                                                          "profile: it points eosxd at the EOS token file"),
    ({"env": {"JUPYTERHUB_API_TOKEN": "x"}}, "env.JUPYTERHUB_API_TOKEN", "JupyterHub's own variables"),
    ({"env": {"MY VAR": "x"}}, "env.MY VAR", "is not a variable name"),
    ({"allowed_groups": "/escape"}, "allowed_groups", "text where a list is expected"),
    ({"colour": "red"}, "colour", "unknown key: Keys allowed here: slug, display_name, description, image"),
    ({"display_name": ""}, "display_name", "must not be empty"),
    ({"mounts": {"add": [{"name": "x", "host_path": "rel", "mount_path": "/x"}]}}, "mounts.add.0.host_path",
     "'rel' is not valid: write an absolute path"),
    ({"resources": {"cpu_request": 4, "cpu_limit": 2}}, "resources.cpu_request",
     "4 is more than cpu_limit (2): Kubernetes refuses a CPU request above its limit"),
    ({"resources": {"mem_request": "2Gi", "mem_limit": "1024M"}}, "resources.mem_request",
     "2Gi is more than mem_limit (1024M)"),
])
def test_schema_errors_name_the_key(change, key, message):
    errors = validate_document({**GOOD, **change}, "demo.yaml")
    assert errors, "the document should be invalid"
    assert any(e.key == key and message in e.message for e in errors), [str(e) for e in errors]
    assert str(errors[0]).startswith("demo.yaml")


@pytest.mark.parametrize("resources", [{"mem_request": "1G", "mem_limit": "1024M"},
                                       {"cpu_request": 0.5, "cpu_limit": 0.5, "mem_request": "512Mi"}])
def test_requests_up_to_the_limit_are_accepted(resources):
    assert validate_document({**GOOD, "resources": resources}, "x.yaml") == []


def test_a_reserved_env_name_is_named_alone():
    errors = validate_document({**GOOD, "env": {"SCRATCH": "/tmp", "FINE": "yes"}}, "x.yaml")
    assert [e.key for e in errors] == ["env.SCRATCH"]
    assert "RUCIO_CONFIG" not in errors[0].message  # which name, not the whole list


def test_a_file_that_is_a_list_says_so(tmp_path):
    write(tmp_path, "x.yaml", "- slug: x\n")
    _, errors = load_directory(tmp_path)
    assert str(errors[0]) == ("x.yaml: the file holds a list, not a profile: write a mapping of keys "
                              "(slug:, display_name:, description:, image:, ...)")


@pytest.mark.parametrize("key", ["privileged", "uid", "volumes", "extra_pod_config", "init_containers",
                                 "environment", "token_agent_enabled", "server_token_scopes"])
def test_overrides_that_weaken_isolation_are_for_operators_only(key):
    errors = validate_document({**GOOD, "kubespawner_override": {key: True}}, "x.yaml")
    assert errors and errors[0].key == f"kubespawner_override.{key}"
    assert errors[0].message.startswith("for operators only")


def test_profile_option_overrides_have_the_same_restrictions():
    doc = {**GOOD, "profile_options": {"image": {"display_name": "Image", "choices": {
        "root": {"display_name": "Root", "kubespawner_override": {"privileged": True}}}}}}
    errors = validate_document(doc, "x.yaml")
    assert errors and errors[0].key == "profile_options.image.choices.root.kubespawner_override.privileged"


def test_harmless_overrides_are_accepted():
    doc = {**GOOD, "kubespawner_override": {"node_selector": {"gpu": "a100"},
                                            "extra_resource_limits": {"nvidia.com/gpu": "1"}}}
    assert validate_document(doc, "x.yaml") == []


def test_missing_required_fields_are_all_reported():
    errors = validate_document({"slug": "x"}, "x.yaml")
    assert [(e.key, e.message) for e in errors] == [(k, "required, but missing")
                                                    for k in ("description", "display_name", "image")]


def test_broken_files_are_reported_and_skipped(tmp_path):
    write(tmp_path, "a-good.yaml", GOOD)
    write(tmp_path, "b-bad-yaml.yaml", "slug: [unclosed\n")
    write(tmp_path, "c-bad-schema.yaml", {**GOOD, "slug": "other", "image": "nope"})
    write(tmp_path, "d-not-a-mapping.yaml", "- just\n- a list\n")
    write(tmp_path, "notes.txt", "ignored")
    write(tmp_path, "e-upper.YAML", {**GOOD, "slug": "upper"})
    write(tmp_path, "f-upper.YML", {**GOOD, "slug": "upper2"})
    write(tmp_path, ".g-hidden.yaml", "editor: swap file")
    profiles, errors = load_directory(tmp_path)
    assert [p.slug for p in profiles] == ["demo", "upper", "upper2"]  # .YAML and .YML are profiles too
    text = [str(e) for e in errors]
    assert "b-bad-yaml.yaml: not valid YAML at line 2, column 1: expected ',' or ']', but got '<stream end>'" in text
    assert any(t.startswith("c-bad-schema.yaml: image:") for t in text)
    assert any(t.startswith("d-not-a-mapping.yaml") for t in text)


def test_duplicate_slug_keeps_the_first(tmp_path):
    write(tmp_path, "1.yaml", GOOD)
    write(tmp_path, "2.yaml", {**GOOD, "display_name": "Copy"})
    profiles, errors = load_directory(tmp_path)
    assert [p.display_name for p in profiles] == ["Demo"]
    assert "already used by 1.yaml" in str(errors[0])


def test_missing_directory_is_an_error_not_a_crash(tmp_path):
    profiles, errors = load_directory(tmp_path / "nope")
    assert profiles == [] and "not found" in str(errors[0])


def test_inline_profiles():
    profiles, errors = load_inline([GOOD, {"slug": "x"}], source="c.DLaaSKubeSpawner.profiles")
    assert [p.slug for p in profiles] == ["demo"]
    assert str(errors[0]).startswith("c.DLaaSKubeSpawner.profiles[1]")


@pytest.mark.parametrize("allowed,groups,ok", [
    ((), set(), True),
    (("/escape/ska",), {"/escape", "/escape/ska"}, True),
    (("/escape/ska",), {"/escape"}, False),
    (("/escape/magic", "/escape/cta"), {"/escape/cta"}, True),
])
def test_group_filtering(allowed, groups, ok):
    assert Profile.from_document({**GOOD, "allowed_groups": list(allowed)}).allows(groups) is ok


def test_to_kubespawner():
    doc = {**GOOD, "resources": {"cpu_request": 0.5, "cpu_limit": 2, "mem_request": "1G", "mem_limit": "4G"},
           "env": {"A": "1"}, "kubespawner_override": {"node_selector": {"gpu": "yes"}, "cpu_limit": 3}}
    entry = Profile.from_document(doc).to_kubespawner()
    assert entry["slug"] == "demo" and entry["default"] is False
    assert entry["kubespawner_override"] == {
        "image": GOOD["image"], "cpu_guarantee": 0.5, "cpu_limit": 3, "mem_guarantee": "1G", "mem_limit": "4G",
        "environment": {"A": "1"}, "node_selector": {"gpu": "yes"}}


def test_descriptions_cannot_inject_html_or_template_code():
    evil = "<script>alert(1)</script> {{ ''.__class__ }} {% raw %}"
    safe = inert_text(evil)
    assert "<script>" not in safe
    # JupyterHub renders the options form as a Jinja template a second time: nothing may execute.
    assert jinja2.Template(safe).render() == safe


def test_catalog_reloads_changed_files(tmp_path):
    path = write(tmp_path, "a.yaml", GOOD)
    catalog = ProfileCatalog(tmp_path)
    assert [p.display_name for p in catalog.profiles()] == ["Demo"]
    assert catalog.profiles()[0] is catalog.profiles()[0]  # cached while nothing changes
    write(tmp_path, "a.yaml", {**GOOD, "display_name": "Demo 2"})
    later = time.time() + 5
    os.utime(path, (later, later))
    assert [p.display_name for p in catalog.profiles()] == ["Demo 2"]
