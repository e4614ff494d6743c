"""The deployment guide (docs/operators/deploy.md) holds what an operator copies: it must work as written."""

import re
import secrets as random_secrets
from pathlib import Path

import yaml

from dlaas_hub.ops.cli import main

from .test_helm_values import chart, deploy  # noqa: F401 - the chart fixture, with its skip message

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "operators" / "deploy.md").read_text()
VALUES_FILE = ROOT / "helm-values" / "values.yaml"


def yaml_blocks(text: str) -> list[dict]:
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def guide_secrets() -> dict:
    return next(b for b in yaml_blocks(GUIDE) if "CryptKeeper" in b.get("hub", {}).get("config", {}))


def test_every_values_block_of_the_guide_is_accepted_by_the_chart(chart, tmp_path):  # noqa: F811
    blocks = yaml_blocks(GUIDE)
    assert len(blocks) >= 3  # the secrets, the network policy, the node selector
    for number, block in enumerate(blocks):
        deploy(chart, tmp_path / str(number), block)


def test_the_values_comment_shows_the_same_secrets_file_as_the_guide():
    lines = VALUES_FILE.read_text().splitlines()
    start = lines.index("#   hub:")
    comment = []
    for line in lines[start:]:
        if not line.startswith("#   "):
            break
        comment.append(line[4:])
    assert yaml.safe_load("\n".join(comment)) == guide_secrets()


def test_the_guides_secrets_pass_check_config_once_filled_in(tmp_path, capsys):
    path = tmp_path / "secrets.yaml"
    path.write_text(yaml.safe_dump(guide_secrets()))
    # As copied, with the placeholder: the key is refused, and named.
    assert main(["check-config", str(VALUES_FILE), str(path), "--profiles", str(ROOT / "profiles")]) == 1
    assert "error: hub.config.CryptKeeper.keys: the key is" in capsys.readouterr().out
    filled = guide_secrets()
    filled["hub"]["config"]["CryptKeeper"]["keys"] = [random_secrets.token_hex(32)]
    path.write_text(yaml.safe_dump(filled))
    assert main(["check-config", str(VALUES_FILE), str(path), "--profiles", str(ROOT / "profiles")]) == 0
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().out


def test_the_install_command_uses_the_chart_and_files_the_values_name():
    header = " ".join(VALUES_FILE.read_text().splitlines()[1:3])
    assert "--version 4.4.0" in header and "--version 4.4.0" in GUIDE
    assert "--namespace dlaas --create-namespace" in header and "--namespace dlaas --create-namespace" in GUIDE
    assert "helm upgrade --install dlaas jupyterhub/jupyterhub --version 4.4.0" in GUIDE
    assert "-f values.yaml -f secrets.yaml" in GUIDE


def test_the_kubernetes_requirement_is_stated_where_operators_look():
    for text in (GUIDE, (ROOT / "README.md").read_text(), VALUES_FILE.read_text()):
        assert "Kubernetes 1.29" in text


def test_the_sizing_pages_values_for_1000_users_are_accepted_by_the_chart(chart, tmp_path, capsys):  # noqa: F811
    sizing = (ROOT / "docs" / "operators" / "sizing.md").read_text()
    (block,) = yaml_blocks(sizing)
    deploy(chart, tmp_path / "deploy", block)
    path = tmp_path / "sizing.yaml"
    path.write_text(yaml.safe_dump(block))
    secrets = tmp_path / "secrets.yaml"
    filled = guide_secrets()
    filled["hub"]["config"]["CryptKeeper"]["keys"] = [random_secrets.token_hex(32)]
    secrets.write_text(yaml.safe_dump(filled))
    assert main(["check-config", str(VALUES_FILE), str(secrets), str(path), "--profiles", str(ROOT / "profiles")]) == 0
