"""``dlaas-hub check-config --online``: what the provider's discovery document says, named by the setting."""

from pathlib import Path

import httpx
import pytest
import respx
import yaml

from dlaas_hub.ops.cli import main

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "https://iam.example.org/"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def config(tmp_path) -> list[str]:
    values = yaml.safe_load((ROOT / "helm-values" / "values.yaml").read_text())
    values["hub"]["config"]["DLaaSAuthenticator"]["oidc_issuer"] = ISSUER
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    (tmp_path / "secrets.yaml").write_text(yaml.safe_dump({"hub": {"config": {
        "DLaaSAuthenticator": {"client_secret": "s"}, "CryptKeeper": {"keys": ["a" * 64]}}}}))
    return [str(tmp_path / "values.yaml"), str(tmp_path / "secrets.yaml"), "--profiles", str(ROOT / "profiles"),
            "--online"]


def discovery(**changes) -> dict:
    document = {"issuer": ISSUER, "authorization_endpoint": f"{ISSUER}authorize", "token_endpoint": f"{ISSUER}token",
                "jwks_uri": f"{ISSUER}jwk", "grant_types_supported": ["authorization_code", "refresh_token", EXCHANGE]}
    document.update(changes)
    return {k: v for k, v in document.items() if v is not None}


@respx.mock
def test_a_provider_offering_every_grant_passes(tmp_path, capsys):
    respx.get(f"{ISSUER}.well-known/openid-configuration").respond(json=discovery())
    assert main(["check-config", *config(tmp_path)]) == 0
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().out


@respx.mock
def test_a_provider_without_token_exchange_is_an_error_naming_the_issuer_setting(tmp_path, capsys):
    respx.get(f"{ISSUER}.well-known/openid-configuration").respond(
        json=discovery(grant_types_supported=["authorization_code", "refresh_token"]))
    assert main(["check-config", *config(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"error: DLaaSAuthenticator.oidc_issuer: {ISSUER} does not offer the {EXCHANGE} grant" in out
    assert "storage tokens (RFC 8693 token exchange)" in out


@pytest.mark.parametrize("answer, said", [
    (httpx.Response(200, json=discovery(issuer="https://other.example.org/")), "names issuer"),
    (httpx.Response(404), "HTTP 404"),
    (httpx.ConnectError("refused"), "OIDC discovery"),
])
@respx.mock
def test_a_provider_that_is_not_the_issuer_or_cannot_be_reached_is_an_error(tmp_path, capsys, answer, said):
    route = respx.get(f"{ISSUER}.well-known/openid-configuration")
    route.mock(side_effect=answer) if isinstance(answer, Exception) else route.mock(return_value=answer)
    assert main(["check-config", *config(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "error: DLaaSAuthenticator.oidc_issuer: " in out and said in out


@respx.mock
def test_a_provider_that_lists_no_grants_is_a_warning(tmp_path, capsys):
    respx.get(f"{ISSUER}.well-known/openid-configuration").respond(json=discovery(grant_types_supported=None))
    assert main(["check-config", *config(tmp_path)]) == 0
    assert "warning: DLaaSAuthenticator.oidc_issuer: " in capsys.readouterr().out


def test_without_online_the_provider_is_not_asked(tmp_path, capsys):
    with respx.mock(assert_all_called=False) as router:
        route = router.get(f"{ISSUER}.well-known/openid-configuration").respond(json=discovery())
        assert main(["check-config", *config(tmp_path)[:-1]]) == 0
        assert not route.called
