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


@pytest.mark.parametrize("change,key,message", [
    ({"slug": "Bad Slug"}, "slug", "does not match"),
    ({"image": "no-tag"}, "image", "does not match"),
    ({"resources": {"cpu_limit": -1}}, "resources.cpu_limit", "less than or equal"),
    ({"resources": {"mem_limit": "lots"}}, "resources.mem_limit", "does not match"),
    ({"rucio": {"mode": "stream"}}, "rucio.mode", "is not one of"),
    ({"env": {"OAUTH2_TOKEN": "x"}}, "env", "should not be valid"),
    ({"env": {"JUPYTERHUB_API_TOKEN": "x"}}, "env", "should not be valid"),
    ({"allowed_groups": "/escape"}, "allowed_groups", "is not of type"),
    ({"colour": "red"}, "", "Additional properties"),
    ({"mounts": {"add": [{"name": "x", "host_path": "rel", "mount_path": "/x"}]}}, "mounts.add.0.host_path",
     "does not match"),
])
def test_schema_errors_name_the_key(change, key, message):
    errors = validate_document({**GOOD, **change}, "demo.yaml")
    assert errors, "the document should be invalid"
    assert any(e.key == key and message in e.message for e in errors), [str(e) for e in errors]
    assert str(errors[0]).startswith("demo.yaml")


@pytest.mark.parametrize("key", ["privileged", "uid", "volumes", "extra_pod_config", "init_containers",
                                 "environment", "token_agent_enabled", "server_token_scopes"])
def test_overrides_that_weaken_isolation_are_for_operators_only(key):
    errors = validate_document({**GOOD, "kubespawner_override": {key: True}}, "x.yaml")
    assert errors and errors[0].key == "kubespawner_override"


def test_profile_option_overrides_have_the_same_restrictions():
    doc = {**GOOD, "profile_options": {"image": {"display_name": "Image", "choices": {
        "root": {"display_name": "Root", "kubespawner_override": {"privileged": True}}}}}}
    errors = validate_document(doc, "x.yaml")
    assert errors and errors[0].key == "profile_options.image.choices.root.kubespawner_override"


def test_harmless_overrides_are_accepted():
    doc = {**GOOD, "kubespawner_override": {"node_selector": {"gpu": "a100"},
                                            "extra_resource_limits": {"nvidia.com/gpu": "1"}}}
    assert validate_document(doc, "x.yaml") == []


def test_missing_required_fields_are_all_reported():
    errors = validate_document({"slug": "x"}, "x.yaml")
    assert len(errors) == 3
    assert all("is a required property" in e.message for e in errors)


def test_broken_files_are_reported_and_skipped(tmp_path):
    write(tmp_path, "a-good.yaml", GOOD)
    write(tmp_path, "b-bad-yaml.yaml", "slug: [unclosed\n")
    write(tmp_path, "c-bad-schema.yaml", {**GOOD, "slug": "other", "image": "nope"})
    write(tmp_path, "d-not-a-mapping.yaml", "- just\n- a list\n")
    write(tmp_path, "notes.txt", "ignored")
    profiles, errors = load_directory(tmp_path)
    assert [p.slug for p in profiles] == ["demo"]
    text = [str(e) for e in errors]
    assert any(t.startswith("b-bad-yaml.yaml: not valid YAML at line") for t in text)
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
