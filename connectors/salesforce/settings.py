"""Settings of a ``type: salesforce`` connection, validated by ``closedloop config check``.

Only the settings live here; the connector itself is ``connectors.salesforce.connector``. Secret
values are ``SecretStr`` so they never print; in ``closedloop.yaml`` each may instead be given as
``<name>_file: path`` (read by the config loader). Relative paths are resolved against the config
file's folder by the loader before these models see them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, FilePath, SecretStr

__all__ = [
    "ClientCredentialsAuth",
    "JwtAuth",
    "PasswordAuth",
    "SalesforceAuth",
    "SalesforceSettings",
    "SessionAuth",
]

LOGIN_URL = "https://login.salesforce.com"
# The authorization servers a JWT bearer assertion may name as its audience (aud): production,
# sandboxes, or an Experience Cloud site URL; never the org's instance or My Domain URL.
# https://help.salesforce.com/s/articleView?id=xcloud.remoteaccess_oauth_jwt_flow.htm&type=5
TEST_LOGIN_URL = "https://test.salesforce.com"
_INSTANCE_HOSTS = (".my.salesforce.com", ".lightning.force.com")


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        # simple-salesforce hard-codes https:// for the instance, so plain http cannot work.
        raise ValueError("expected an https:// URL such as https://mycompany.my.salesforce.com")
    return value.rstrip("/")


HttpsUrl = Annotated[str, AfterValidator(_https_url)]


def _ca_file(value: Path) -> Path:
    # A missing bundle would only fail at the first HTTPS call ("Could not find a suitable TLS
    # CA certificate bundle"): say so while the config is read, with the two usual remedies.
    if not value.is_file():
        raise ValueError(
            f"no CA bundle file at {value}: for the local sandbox start `closedloop sandbox serve` "
            "in the config's folder (it writes .closedloop/sandbox-ca.pem there, or give "
            "--ca-file); for a real org remove ca_bundle"
        )
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PasswordAuth(_Strict):
    """Username-password OAuth flow (a connected app's client id/secret are optional)."""

    method: Literal["password"]
    username: str = Field(min_length=1)
    password: SecretStr
    # Optional: orgs that allow-list the integration's IP ranges need no security token.
    security_token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    login_url: HttpsUrl = LOGIN_URL


class ClientCredentialsAuth(_Strict):
    """OAuth 2.0 client credentials flow of a connected app (runs as its configured user)."""

    method: Literal["client_credentials"]
    login_url: HttpsUrl
    client_id: str = Field(min_length=1)
    client_secret: SecretStr


def _jwt_audience(value: str) -> str:
    host = (urlsplit(value).hostname or "").lower()
    if host.endswith(_INSTANCE_HOSTS):
        raise ValueError(
            f"{value} is an instance (My Domain) URL; the JWT audience is the authorization "
            f"server: {LOGIN_URL} (production), {TEST_LOGIN_URL} (sandboxes) or an Experience "
            "Cloud site URL. Post the token request to My Domain with login_url instead"
        )
    return value


class JwtAuth(_Strict):
    """OAuth 2.0 JWT bearer flow: a connected app's certificate signs a token for ``username``.

    The token request is posted to ``login_url`` (login.salesforce.com, test.salesforce.com or
    the org's My Domain); the assertion names ``audience``, which Salesforce checks separately.
    """

    method: Literal["jwt"]
    login_url: HttpsUrl = LOGIN_URL
    client_id: str = Field(min_length=1)
    username: str = Field(min_length=1)
    private_key_file: FilePath
    # The assertion's aud claim. Unset: https://test.salesforce.com when login_url is a sandbox
    # login (test.salesforce.com, *.sandbox.my.salesforce.com), else https://login.salesforce.com.
    audience: Annotated[HttpsUrl, AfterValidator(_jwt_audience)] | None = None

    @property
    def jwt_audience(self) -> str:
        """The aud claim to sign: ``audience``, else the production or sandbox login server."""
        if self.audience is not None:
            return self.audience
        host = (urlsplit(self.login_url).hostname or "").lower()
        sandbox = host == "test.salesforce.com" or host.endswith(".sandbox.my.salesforce.com")
        return TEST_LOGIN_URL if sandbox else LOGIN_URL


class SessionAuth(_Strict):
    """An existing session id used as a bearer token with ``instance_url`` (tests, the sandbox)."""

    method: Literal["session"]
    session_id: SecretStr


SalesforceAuth = Annotated[
    PasswordAuth | ClientCredentialsAuth | JwtAuth | SessionAuth, Field(discriminator="method")
]


def _api_version(value: str) -> str:
    if not re.fullmatch(r"\d{2}\.0", value):
        raise ValueError(f"expected an API version such as '{DEFAULT_API_VERSION}'")
    return value


# Summer '26. Salesforce supports each API version for at least 3 years after its release and
# retires old ones (v21.0-v30.0 in Summer '25, v31.0-v40.0 from Summer '28): a default must stay
# recent. https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/api_rest_eol.htm
DEFAULT_API_VERSION = "67.0"


class SalesforceSettings(_Strict):
    """A Salesforce org: where it is, how to log in, and how much of its API allocation to use."""

    instance_url: HttpsUrl
    api_version: Annotated[str, AfterValidator(_api_version)] = DEFAULT_API_VERSION
    auth: SalesforceAuth
    # Trust this CA bundle (PEM) instead of the system store: the local sandbox uses its test CA.
    ca_bundle: Annotated[Path, AfterValidator(_ca_file)] | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    task_external_id_field: str = Field(default="Closedloop_Key__c", pattern=r"^\w+__c$")
    # Share of the org's rolling 24 h API allocation closedloop may spend (shared with others).
    daily_budget_share: float = Field(default=0.5, gt=0, le=1)
    # Change pulls matching more records than this go through a Bulk API 2.0 query job.
    bulk_threshold: int = Field(default=10_000, gt=0)
    # Change pulls re-read this much before their cursor: a transaction commits after the
    # SystemModstamp it wrote, so a record can appear behind the cursor (connectors.lagwindow).
    reread_lag_seconds: int = Field(default=300, ge=0, le=86_400)
    # Seconds between status polls of a Bulk API 2.0 job (every poll is a counted call).
    bulk_poll_interval_s: float = Field(default=2.0, gt=0)
    # Which record wins when several share an email (see connectors.salesforce.identity):
    # contact_first (Contact over Lead, then newest), lead_first, or newest (LastModifiedDate).
    duplicate_rule: Literal["contact_first", "lead_first", "newest"] = "contact_first"
    # Unknown people are created as this object (Leads need a Company: derived from the email).
    create_people_as: Literal["lead", "contact"] = "lead"
    # Company of a created Lead whose email is at a free-mail domain (and none was given).
    default_company: str = Field(default="[not provided]", min_length=1, max_length=255)
    free_mail_domains: frozenset[str] = frozenset(
        {
            "gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "live.com",
            "msn.com", "aol.com", "icloud.com", "me.com", "mac.com", "proton.me",
            "protonmail.com", "gmx.com", "gmx.de", "web.de", "mail.com", "yandex.ru",
            "zoho.com", "fastmail.com", "hey.com", "qq.com", "163.com",
        }
    )  # fmt: skip
    # Lead fields holding why a lead was disqualified or recycled (pulled with each Lead); a
    # dispositions pipeline adds its mapping's reason_field (include_reason_fields).
    lead_reason_fields: tuple[str, ...] = ()
    # An Account field holding the company's web domain (else the domain comes from Website).
    account_domain_field: str | None = None
    # Largest SOQL statement sent (Salesforce's hard limit is 100,000 characters).
    max_soql_chars: int = Field(default=100_000, ge=2_000, le=100_000)
    # Attempts of a call that failed transiently (5xx, timeouts); only safe-to-repeat calls.
    max_attempts: int = Field(default=3, ge=1, le=10)
    retry_backoff_s: float = Field(default=1.0, ge=0)
    # Records a collection save refused for a row lock (UNABLE_TO_LOCK_ROW: another transaction
    # held the record or its parent), and collections that failed whole on the server inside a
    # Composite answer (a 5xx subrequest; not creates, which could be saved twice), are sent
    # again this many times within the call, waiting lock_retry_backoff_s, then twice that, ...
    # (defaults: 1 + 2 + 4 s); records still failing after that stay pending for the next run,
    # never dead letters.
    lock_retries: int = Field(default=3, ge=0, le=6)
    lock_retry_backoff_s: float = Field(default=1.0, ge=0, le=10)
