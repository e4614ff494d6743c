"""Who signs in: the code exchange, the verified id_token, userinfo when needed (auth/claims.py)."""


import httpx
import pytest
from tornado import web
from traitlets.config import Config

from ..fakeiam import FakeHandler
from .build import make

# DLaaSAuthenticator refuses to start without an auth_state encryption key.
pytestmark = pytest.mark.usefixtures("crypt_key")


@pytest.mark.parametrize("failure,status", [
    (httpx.ConnectTimeout("slow"), 503),
    (httpx.ReadTimeout("slow"), 503),
    (httpx.ConnectError("refused"), 503),
    (httpx.Response(500), 503),
    (httpx.Response(400, json={"error": "invalid_grant"}), 403),
    (httpx.Response(401, json={"error": "invalid_client"}), 502),
    (httpx.Response(200, text="<html>proxy error</html>"), 502),
    (httpx.Response(200, json={"token_type": "Bearer"}), 502),
    (httpx.Response(200, content=b'{"access_token": "' + b"x" * 300_000 + b'"}'), 502),
])
async def test_code_exchange_failures_give_readable_pages(iam, auth, failure, status):
    iam.token.mock(side_effect=[failure])
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(FakeHandler())
    assert info.value.status_code == status
    assert info.value.jupyterhub_message


async def test_a_refusal_in_the_providers_words_is_shown_without_asking_to_try_again(iam, auth):
    # Keycloak, for a user without the offline_access role: the same sign-in is refused every time.
    iam.token.mock(side_effect=[httpx.Response(400, json={
        "error": "not_allowed", "error_description": "Offline tokens not allowed for the user or client"})])
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(FakeHandler())
    message = info.value.jupyterhub_message
    assert "(not_allowed: Offline tokens not allowed for the user or client)" in message
    assert "will not change" in message and "try again" not in message.lower()
    assert "http" not in message  # the provider's words, not its endpoints
    assert "not_allowed" in info.value.log_message and "/token" in info.value.log_message


@pytest.mark.parametrize("claims,reason", [
    ({"aud": "another-client"}, "another client"),
    ({"iss": "https://evil.example/"}, "another provider"),
    ({"exp": 1, "iat": 0}, "expired"),
])
async def test_bad_id_token_refuses_login(iam, auth, claims, reason):
    iam.id_token_claims = claims
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(FakeHandler())
    assert info.value.status_code == 403
    assert reason in info.value.log_message


async def test_forged_id_token_refuses_login(iam, auth):
    from ..fakeiam import rsa_key
    iam.key = rsa_key()  # signs with a key the JWKS does not hold, under the published kid
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(FakeHandler())
    assert info.value.status_code == 403


async def test_missing_id_token_refuses_login(iam, auth):
    iam.token.mock(return_value=httpx.Response(200, json={"access_token": "a", "token_type": "Bearer"}))
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(FakeHandler())
    assert info.value.status_code == 403


async def test_userinfo_about_another_subject_refuses_login(iam, auth):
    iam.userinfo.mock(return_value=httpx.Response(200, json={**iam.user, "sub": "someone-else"}))
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(FakeHandler())
    assert info.value.status_code == 403


async def test_userinfo_down_gives_503(iam, auth):
    iam.userinfo.mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(FakeHandler())
    assert info.value.status_code == 503


async def test_an_id_token_with_the_name_and_groups_makes_no_userinfo_request(iam, auth):
    iam.id_token_claims = {"wlcg.groups": ["/escape", "/escape/ska"], "email": "maria@id-token.example"}
    model = await auth.authenticate(FakeHandler())
    assert iam.userinfo.call_count == 0
    assert model["name"] == "mariaska" and model["groups"] == ["/escape", "/escape/ska"]
    assert model["auth_state"]["oauth_user"]["email"] == "maria@id-token.example"
    assert set(model["auth_state"]["exchanged"]) == {"eos", "rucio"}


async def test_an_id_token_without_the_groups_claim_is_completed_by_userinfo(iam, auth):
    iam.id_token_claims = {"groups": ["escape"]}  # IAM's other groups claim: not the one configured
    model = await auth.authenticate(FakeHandler())
    assert iam.userinfo.call_count == 1
    assert model["groups"] == ["/escape", "/escape/ska"]


@pytest.mark.parametrize("settings", [
    {"fetch_userinfo": "always"},
    {"extra_claims": ["eduperson_assurance"]},
    {"groups_claim": lambda claims: claims.get("wlcg.groups", [])},
])
async def test_userinfo_is_asked_when_the_id_token_may_not_be_enough(iam, settings):
    iam.id_token_claims = {"wlcg.groups": ["/escape"]}
    a = make(**settings)
    model = await a.authenticate(FakeHandler())
    assert iam.userinfo.call_count == 1
    assert model["groups"] == ["/escape", "/escape/ska"]  # userinfo's answer completes the id_token


async def test_the_spawners_rucio_account_claim_is_a_claim_a_login_needs(iam):
    from traitlets.config import Configurable

    from dlaas_hub.spawners import DLaaSKubeSpawner

    from ..spawner_fixtures import RUCIO_CONFIG
    from ..spawners.test_local_spawner import PROFILES

    class Hub(Configurable):
        spawner_class = DLaaSKubeSpawner

    config = Config()
    for key, value in {"profiles_dir": str(PROFILES), **RUCIO_CONFIG, "rucio_account": "rucio_name",
                       "token_agent_image": "registry.example.org/dlaas/dlaas-hub:0.1.0"}.items():
        config.DLaaSKubeSpawner[key] = value
    a = make()
    a.parent = Hub(config=config)
    a.check_allow_config()
    a._prefetch_task.cancel()
    iam.id_token_claims = {"wlcg.groups": ["/escape"]}
    await a.authenticate(FakeHandler())
    assert iam.userinfo.call_count == 1
    iam.id_token_claims["rucio_name"] = "maria"
    await a.authenticate(FakeHandler())
    assert iam.userinfo.call_count == 1


async def test_userdata_from_id_token_skips_userinfo(iam):
    iam.id_token_claims = {"wlcg.groups": ["/escape"]}
    a = make(userdata_from_id_token=True)
    model = await a.authenticate(FakeHandler())
    assert iam.userinfo.call_count == 0
    assert model["groups"] == ["/escape"]
    assert "exp" not in model["auth_state"]["oauth_user"]


async def test_unsafe_username_is_refused_by_pattern(iam, auth):
    iam.user["preferred_username"] = "../../etc"
    assert not auth.validate_username(auth.normalize_username("../../etc"))
    assert auth.validate_username("mariaska")


async def test_provider_keeps_its_spelling_while_hub_lowercases(iam, auth):
    model = await auth.authenticate(FakeHandler())
    assert (model["name"], model["auth_state"]["iam_username"]) == ("mariaska", "MariaSKA")
