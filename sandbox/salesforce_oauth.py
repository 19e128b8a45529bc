"""The Salesforce emulator's OAuth token endpoint: checking a grant and minting an access token.

Each grant is checked as Salesforce does: the username-password flow (which the org may block),
client credentials, and the JWT bearer flow (the connected app's issuer, its certificate's
signature, an authorization server or Experience Cloud site audience, an unexpired exp and a
known user). A refused grant is a 400 with Salesforce's OAuth error body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

from sandbox import credentials
from sandbox.salesforce_store import SalesforceStore

__all__ = ["JWT_AUDIENCES", "JWT_GRANT", "check_grant", "mint"]


def mint(store: SalesforceStore, instance_url: str) -> dict[str, Any]:
    token = f"00Dsandbox!{secrets.token_urlsafe(24)}"
    issued = str(int(time.time() * 1000))
    store.tokens[token] = {"issued_at": issued, "revoked": False}
    identity = f"https://login.salesforce.com/id/00Dsandbox000000AAA/{store.user_id}"
    signature = base64.b64encode(
        hmac.new(
            credentials.SALESFORCE_CLIENT_SECRET.encode(),
            (identity + issued).encode(),
            hashlib.sha256,
        ).digest()
    ).decode()
    return {
        "access_token": token,
        "instance_url": instance_url,
        "id": identity,
        "token_type": "Bearer",
        "issued_at": issued,
        "signature": signature,
    }


# Token endpoint answers, as Salesforce gives them (400 with an OAuth error body).
_AUTH_FAILURE = (400, {"error": "invalid_grant", "error_description": "authentication failure"})
_INVALID_ASSERTION = (400, {"error": "invalid_grant", "error_description": "invalid assertion"})
_BAD_AUDIENCE = (400, {"error": "invalid_grant", "error_description": "audience is invalid"})
_BAD_CLIENT_ID = (
    400,
    {"error": "invalid_client_id", "error_description": "client identifier invalid"},
)
_BAD_CLIENT = (400, {"error": "invalid_client", "error_description": "invalid client credentials"})
# The authorization servers a JWT bearer assertion may name (plus the org's Experience Cloud
# sites): https://help.salesforce.com/s/articleView?id=xcloud.remoteaccess_oauth_jwt_flow.htm
JWT_AUDIENCES = frozenset({"https://login.salesforce.com", "https://test.salesforce.com"})
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _check_password(store: SalesforceStore, form: dict[str, str]) -> tuple[int, Any] | None:
    if form.get("client_id") != credentials.SALESFORCE_CLIENT_ID:
        return _BAD_CLIENT_ID
    if form.get("client_secret") != credentials.SALESFORCE_CLIENT_SECRET:
        return _BAD_CLIENT
    expected = credentials.SALESFORCE_PASSWORD + credentials.SALESFORCE_SECURITY_TOKEN
    if form.get("username") != credentials.SALESFORCE_USERNAME or not hmac.compare_digest(
        form.get("password", ""), expected
    ):
        return _AUTH_FAILURE
    if not store.password_flow_allowed:
        # Blocked by default in orgs created in Summer '23 or later; Salesforce answers as for
        # a wrong password (Login History says "Username-Password Flow Disabled").
        return _AUTH_FAILURE
    return None


def _signed_by(store: SalesforceStore, assertion: str) -> bool:
    """Whether the assertion's RS256 signature verifies with a registered certificate."""
    import jwt
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    for pem in store.jwt_certificates:
        data = pem.encode()
        try:
            key = (
                x509.load_pem_x509_certificate(data).public_key()
                if b"CERTIFICATE" in data
                else load_pem_public_key(data)
            )
            jwt.decode(
                assertion,
                key,  # type: ignore[arg-type]
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_aud": False},
            )
        except (ValueError, TypeError, jwt.PyJWTError):
            continue
        return True
    return False


def _check_jwt(store: SalesforceStore, form: dict[str, str]) -> tuple[int, Any] | None:
    """The claims Salesforce checks: iss = the connected app's consumer key, a signature by the
    app's certificate, aud = an authorization server, exp not passed, sub = a user."""
    import jwt

    assertion = form.get("assertion", "")
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return _INVALID_ASSERTION
    if header.get("alg") != "RS256":
        return _INVALID_ASSERTION
    if claims.get("iss") != credentials.SALESFORCE_CLIENT_ID:
        return _BAD_CLIENT_ID
    if not _signed_by(store, assertion):
        return _INVALID_ASSERTION
    if claims.get("aud") not in JWT_AUDIENCES | store.experience_sites:
        return _BAD_AUDIENCE
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= time.time():
        return 400, {"error": "invalid_grant", "error_description": "expired authorization code"}
    if claims.get("sub") != credentials.SALESFORCE_USERNAME:
        return 400, {
            "error": "invalid_grant",
            "error_description": "user hasn't approved this consumer",
        }
    return None


def check_grant(store: SalesforceStore, form: dict[str, str]) -> tuple[int, Any] | None:
    grant = form.get("grant_type", "")
    if grant == "password":
        return _check_password(store, form)
    if grant == "client_credentials":
        if form.get("client_id") != credentials.SALESFORCE_CLIENT_ID or not hmac.compare_digest(
            form.get("client_secret", ""), credentials.SALESFORCE_CLIENT_SECRET
        ):
            return _BAD_CLIENT
        return None
    if grant == JWT_GRANT:
        return _check_jwt(store, form)
    return 400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}
