"""Salesforce logins: turn a connection's auth settings into an access token and instance URL.

Every OAuth flow posts to ``{login_url}/services/oauth2/token`` with our own ``requests``
session (simple-salesforce's login helpers always call salesforce.com, so they could never reach
a sandbox or a custom login host). A JWT bearer assertion names the authorization server as its
audience (``JwtAuth.jwt_audience``), never the URL it is posted to. ``session`` auth uses the
given session id and cannot log in again. Failures become ``AuthError`` (rejected credentials,
with a remedy) or ``Transient`` (the login host did not answer); messages never carry a secret
value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests

from connectors.errors import AuthError, ConfigError, Transient
from connectors.http import unreachable
from connectors.salesforce.settings import (
    ClientCredentialsAuth,
    JwtAuth,
    PasswordAuth,
    SalesforceSettings,
    SessionAuth,
)

__all__ = ["Login", "can_relogin", "login", "remedy_for"]

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Salesforce asks for an assertion that expires within 3 minutes (the JWT flow help page).
_JWT_LIFETIME_S = 170

_REMEDIES = {
    # Orgs created in Summer '23 or later block the username-password flow by default, and a
    # blocked flow answers like a wrong password (invalid_grant, authentication failure).
    # https://help.salesforce.com/s/articleView?id=release-notes.rn_security_username-password_flow_blocked_by_default.htm&release=244&type=5
    "password": "check username, password and security_token (reset the token in Salesforce: "
    "Settings > Reset My Security Token) and the connected app's client_id/client_secret. "
    "Orgs created in Summer '23 or later block the username-password flow by default and then "
    "refuse even correct credentials this way (Setup > OAuth and OpenID Connect Settings > "
    "Allow OAuth Username-Password Flows). Better, switch this connection to a server-to-server "
    "flow in closedloop.yaml: auth: {method: client_credentials, login_url: "
    "https://<MyDomain>.my.salesforce.com, client_id: <consumer key>, client_secret_file: "
    "<path>} (enable the Client Credentials Flow with a Run As user on the connected app), or "
    "auth: {method: jwt, client_id: <consumer key>, username: <integration user>, "
    "private_key_file: <path>} (upload the key's certificate to the connected app under Use "
    "digital signatures and pre-authorize the user)",
    "client_credentials": "check client_id/client_secret and that the connected app enables "
    "the Client Credentials Flow with a Run As user",
    "jwt": "check client_id, username, that the connected app holds the certificate of "
    "private_key_file and that the user is pre-authorized for the app; an 'audience is "
    "invalid' answer means the audience setting must be https://login.salesforce.com "
    "(production), https://test.salesforce.com (sandboxes) or your Experience Cloud site URL",
    "session": "the session id is expired or invalid: give a fresh one, or use the password, "
    "client_credentials or jwt method so closedloop can log in again by itself",
}


@dataclass(frozen=True)
class Login:
    """The outcome of a login: the bearer token and the org's instance URL."""

    access_token: str
    instance_url: str


def can_relogin(settings: SalesforceSettings) -> bool:
    """Whether the auth method can fetch a new token by itself (all but ``session``)."""
    return not isinstance(settings.auth, SessionAuth)


def remedy_for(settings: SalesforceSettings) -> str:
    """What a human should check when this connection's credentials are refused."""
    return _REMEDIES[settings.auth.method]


def login(settings: SalesforceSettings, session: requests.Session) -> Login:
    """Log in with the connection's auth method; AuthError if refused, Transient if unreachable."""
    auth = settings.auth
    if isinstance(auth, SessionAuth):
        return Login(auth.session_id.get_secret_value(), settings.instance_url)
    status, body = _post_token(session, auth.login_url, _grant_form(auth), settings.timeout_s)
    if status >= 500:
        raise Transient(f"Salesforce login at {auth.login_url} answered HTTP {status}")
    if status != 200 or "access_token" not in body:
        error = str(body.get("error") or f"HTTP {status}")
        description = str(body.get("error_description") or "")
        raise AuthError(
            f"Salesforce refused the {auth.method} login at {auth.login_url} "
            f"({error}: {description}); {_REMEDIES[auth.method]}"
        )
    instance = str(body.get("instance_url") or settings.instance_url).rstrip("/")
    return Login(str(body["access_token"]), instance)


def _post_token(
    session: requests.Session, login_url: str, form: dict[str, str], timeout: float
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of a token request; the response is closed before returning,
    so no error traceback keeps its socket open."""
    try:
        with session.post(f"{login_url}/services/oauth2/token", data=form, timeout=timeout) as r:
            try:
                body = r.json()
            except ValueError:
                body = {}
            return r.status_code, body if isinstance(body, dict) else {}
    except requests.RequestException as exc:
        raise Transient(f"Salesforce login failed: {unreachable(exc, login_url)}") from None


def _grant_form(auth: PasswordAuth | ClientCredentialsAuth | JwtAuth) -> dict[str, str]:
    if isinstance(auth, PasswordAuth):
        password = auth.password.get_secret_value()
        if auth.security_token is not None:
            password += auth.security_token.get_secret_value()
        form = {"grant_type": "password", "username": auth.username, "password": password}
        if auth.client_id:
            form["client_id"] = auth.client_id
        if auth.client_secret is not None:
            form["client_secret"] = auth.client_secret.get_secret_value()
        return form
    if isinstance(auth, ClientCredentialsAuth):
        return {
            "grant_type": "client_credentials",
            "client_id": auth.client_id,
            "client_secret": auth.client_secret.get_secret_value(),
        }
    return {"grant_type": JWT_GRANT, "assertion": _jwt_assertion(auth)}


def _jwt_assertion(auth: JwtAuth) -> str:
    import jwt

    try:
        key = auth.private_key_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the JWT private_key_file {auth.private_key_file}: {exc.strerror}"
        ) from None
    claims = {
        "iss": auth.client_id,
        "sub": auth.username,
        # The authorization server, not the URL the assertion is posted to (My Domain works
        # there, but as aud it is "audience is invalid").
        # https://help.salesforce.com/s/articleView?id=xcloud.remoteaccess_oauth_jwt_flow.htm&type=5
        "aud": auth.jwt_audience,
        "exp": int(time.time()) + _JWT_LIFETIME_S,
    }
    try:
        return jwt.encode(claims, key, algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise ConfigError(
            f"the JWT private_key_file {auth.private_key_file} is not a usable RSA private key "
            f"(PEM): {type(exc).__name__}"
        ) from None
