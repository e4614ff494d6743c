"""An IAM in respx routes for unit tests: keys made at run time, tokens minted on demand."""

from __future__ import annotations

import base64
import json
import time
import uuid
from urllib.parse import parse_qs

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from oauthenticator.oauth2 import _serialize_state

from dlaas_hub.auth.handlers import NONCE_SEED_KEY
from dlaas_hub.auth.idtoken import at_hash, nonce_for

ISSUER = "https://iam.test.example/"
CLIENT_ID = "hub-client"
CLIENT_SECRET = "hub-secret-value"
#: The nonce seed in FakeHandler's state cookie, and so the nonce of FakeIAM's login id_tokens.
NONCE_SEED = "the-nonce-seed"


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key, kid: str, alg: str = "RS256") -> dict:
    algo = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
    jwk = json.loads(algo.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return jwk


def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


async def on_the_wire(request: httpx.Request) -> None:
    """What httpcore tells when a request is written; respx, which mocks the transport, does not."""
    trace = request.extensions.get("trace")
    if trace is not None:
        await trace("http11.send_request_body.complete", {})


class FakeIAM:
    """Routes for discovery, JWKS, token (code, refresh, exchange) and userinfo."""

    def __init__(self, router, *, issuer: str = ISSUER):
        self.router = router
        self.issuer = issuer
        self.base = issuer.rstrip("/")
        self.key = rsa_key()
        self.kid = "key-1"
        self.jwks_keys = [public_jwk(self.key, self.kid)]
        self.user = {"sub": "sub-123", "preferred_username": "MariaSKA", "email": "maria@ska.example",
                     "groups": ["escape", "escape/ska"], "wlcg.groups": ["/escape", "/escape/ska"]}
        self.access_token = "broad-access-" + uuid.uuid4().hex
        self.refresh_token = "refresh-" + uuid.uuid4().hex
        self.id_token_claims: dict = {}
        self.exchange_failures: dict[str, httpx.Response] = {}
        self.exchange_requests: list[dict] = []
        self.token_requests: list[dict] = []
        self.issued: list[str] = []
        self.refresh_requests: list[dict] = []
        self.rotate_refresh_tokens = False
        self.revoked: set[str] = set()
        self.exchange_lifetime = 1200
        self.exchange_sub: str | None = None  # the exchanged tokens' sub, when not the user's
        self.exchange_iss: str | None = None  # and their iss, when not the issuer
        self.refresh_extra: dict = {}  # merged into refresh answers
        self.discovery = router.get(f"{self.base}/.well-known/openid-configuration").mock(
            side_effect=lambda request: httpx.Response(200, json=self.metadata()))
        self.jwks = router.get(f"{self.base}/jwks").mock(
            side_effect=lambda request: httpx.Response(200, json={"keys": self.jwks_keys}))
        self.token = router.post(f"{self.base}/token").mock(side_effect=self._token)
        self.userinfo = router.get(f"{self.base}/userinfo").mock(side_effect=self._userinfo)
        self.revocation_requests: list[dict] = []
        self.revocation = router.post(f"{self.base}/revoke").mock(side_effect=self._revoke)

    def metadata(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.base}/authorize",
            "token_endpoint": f"{self.base}/token",
            "userinfo_endpoint": f"{self.base}/userinfo",
            "jwks_uri": f"{self.base}/jwks",
            "end_session_endpoint": f"{self.base}/logout",
            "revocation_endpoint": f"{self.base}/revoke",
        }

    def sign(self, claims: dict, *, key=None, kid=None, alg="RS256", headers=None) -> str:
        header = {"kid": kid or self.kid, **(headers or {})}
        return jwt.encode(claims, key if key is not None else self.key, algorithm=alg, headers=header)

    def id_token(self, **overrides) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": self.user["sub"], "aud": CLIENT_ID, "iat": now, "exp": now + 600,
                  "preferred_username": self.user["preferred_username"], **self.id_token_claims}
        claims.update(overrides)
        return self.sign({k: v for k, v in claims.items() if v is not None})

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        form["_authorization"] = request.headers.get("authorization", "")
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:token-exchange":
            self.exchange_requests.append(form)
            failure = self.exchange_failures.get(form.get("audience"))
            if failure is not None:
                return failure
            if form.get("subject_token") in self.revoked:
                return httpx.Response(400, json={"error": "invalid_grant"})
            now = int(time.time())
            token = self.sign({"iss": self.exchange_iss or self.issuer, "sub": self.exchange_sub or self.user["sub"],
                               "aud": form["audience"],
                               "scope": form["scope"], "iat": now, "exp": now + self.exchange_lifetime,
                               "act": {"sub": CLIENT_ID}, "jti": uuid.uuid4().hex})
            self.issued.append(token)
            return httpx.Response(200, json={
                "access_token": token, "expires_in": 1200, "scope": form["scope"], "token_type": "Bearer",
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"})
        if form.get("grant_type") == "refresh_token":
            return self._refresh(form)
        self.token_requests.append(form)
        id_token = self.id_token(nonce=nonce_for(NONCE_SEED), at_hash=at_hash(self.access_token, "RS256"))
        self.issued += [self.access_token, self.refresh_token, id_token]
        return httpx.Response(200, json={
            "access_token": self.access_token, "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": self.refresh_token, "id_token": id_token,
            "scope": "openid profile email offline_access wlcg.groups"})

    def _refresh(self, form) -> httpx.Response:
        self.refresh_requests.append(form)
        if form.get("refresh_token") != self.refresh_token:
            return httpx.Response(400, json={"error": "invalid_grant", "error_description": "bad refresh token"})
        self.access_token = "broad-access-" + uuid.uuid4().hex
        body = {"access_token": self.access_token, "token_type": "Bearer", "expires_in": 3600,
                "scope": "openid profile email offline_access wlcg.groups"}
        if self.rotate_refresh_tokens:
            self.refresh_token = body["refresh_token"] = "refresh-" + uuid.uuid4().hex
        body.update(self.refresh_extra)
        self.issued += [v for k, v in body.items() if k.endswith("_token")]
        return httpx.Response(200, json=body)

    def _revoke(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        form["_authorization"] = request.headers.get("authorization", "")
        self.revocation_requests.append(form)
        self.revoked.add(form.get("token"))
        return httpx.Response(200)  # RFC 7009: an empty body

    def _userinfo(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {self.access_token}":
            return httpx.Response(401, json={"error": "invalid_token"})
        return httpx.Response(200, json=self.user)


def basic_auth_header(client_id=CLIENT_ID, secret=CLIENT_SECRET) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


class FakeHandler:
    """What oauthenticator reads from the callback request."""

    def __init__(self, code="the-code", verifier="the-verifier", nonce_seed=NONCE_SEED):
        self.code = code
        state = {"state_id": "s", "code_verifier": verifier}
        if nonce_seed is not None:
            state[NONCE_SEED_KEY] = nonce_seed
        self.cookie = _serialize_state(state)

    def get_argument(self, name, default=None):
        return self.code if name == "code" else default

    def get_state_cookie(self):
        return self.cookie
