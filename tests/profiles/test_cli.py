"""``dlaas-hub profiles validate``, as an experiment runs it before registering a profile."""

from pathlib import Path

import pytest
import yaml

from dlaas_hub.ops.cli import main

REPO_PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def test_the_shipped_profiles_validate(capsys):
    assert main(["profiles", "validate", str(REPO_PROFILES)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{len(list(REPO_PROFILES.glob('*.yaml')))} valid profile(s), 0 error(s)")


def test_every_mistake_is_reported_with_file_and_key(tmp_path, capsys):
    (tmp_path / "10-ska.YAML").write_text(yaml.safe_dump({
        "slug": "SKA", "display_name": "SKA", "description": "d", "image": "registry.example.org/ska/nb",
        "resources": {"cpus": 2, "mem_limit": "4GB", "mem_request": "4"}, "env": {"SCRATCH": "/x"}}))
    (tmp_path / "20-broken.yaml").write_text("slug: a\n  image: b: c\n")
    assert main(["profiles", "validate", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out.strip() == f"0 valid profile(s), 7 error(s) in {tmp_path}"
    lines = captured.err.splitlines()
    assert lines == [
        "error: 10-ska.YAML: env.SCRATCH: SCRATCH is set by the hub and cannot be set by a profile: it names the "
        "user's scratch directory, which the hub chooses",
        "error: 10-ska.YAML: image: 'registry.example.org/ska/nb' has no tag: name a tag or a digest (for example "
        "registry.example.org/ska/nb:v1.0) so that every start runs the same image",
        "error: 10-ska.YAML: resources.cpus: unknown key: did you mean cpu_request? Keys allowed here: cpu_request, "
        "cpu_limit, mem_request, mem_limit",
        "error: 10-ska.YAML: resources.mem_limit: '4GB' is not a memory size: write a number and a unit: K, M, G "
        "or T (powers of 1024, also written Ki, Mi, Gi, Ti), for example 4G or 512M",
        "error: 10-ska.YAML: resources.mem_request: '4' has no unit and would mean 4 bytes: write a number and a "
        "unit: K, M, G or T (powers of 1024, also written Ki, Mi, Gi, Ti), for example 4G or 512M",
        "error: 10-ska.YAML: slug: 'SKA' is not valid: write lower-case letters, digits and '-', starting and "
        "ending with a letter or digit, at most 63 characters (for example ska-sdc1)",
        "error: 20-broken.yaml: not valid YAML at line 2, column 8: mapping values are not allowed here",
    ]


def test_there_is_no_render_command(capsys):
    # The hub reads profiles_dir itself: a rendered profileList could carry neither groups, nor the
    # Rucio mode, nor mounts, and check-config refuses a non-empty singleuser.profileList.
    with pytest.raises(SystemExit) as exited:
        main(["profiles", "render", str(REPO_PROFILES)])
    assert exited.value.code == 2
    assert "invalid choice: 'render'" in capsys.readouterr().err
