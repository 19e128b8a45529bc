"""The Salesforce and HubSpot connection settings, as closedloop.yaml users write them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.errors import ConfigError
from connectors.hubspot.settings import HubSpotSettings, OAuthAuth
from connectors.registry import get_connector
from connectors.salesforce.settings import (
    ClientCredentialsAuth,
    JwtAuth,
    PasswordAuth,
    SalesforceSettings,
    SessionAuth,
)
from sync.config import load_config

INSTANCE = "https://example.my.salesforce.com"


def test_registry_knows_both_crms_with_their_roles() -> None:
    salesforce, hubspot = get_connector("salesforce"), get_connector("hubspot")

    assert salesforce.roles == frozenset({"crm"})
    assert salesforce.settings_model is SalesforceSettings
    assert hubspot.roles == frozenset({"crm", "source"})
    assert hubspot.settings_model is HubSpotSettings


def test_registering_the_crms_loads_neither_vendor_sdk() -> None:
    probe = (
        "import sys, connectors.salesforce, connectors.hubspot, sync.config\n"
        "print(sorted(m for m in ('simple_salesforce', 'hubspot') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout

    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("auth", "model"),
    [
        (
            {"method": "password", "username": "u@example.com", "password": "pw"},
            PasswordAuth,
        ),
        (
            {
                "method": "client_credentials",
                "login_url": "https://example.my.salesforce.com",
                "client_id": "3MVG9",
                "client_secret": "shh",
            },
            ClientCredentialsAuth,
        ),
        ({"method": "session", "session_id": "00Dx!abc"}, SessionAuth),
    ],
)
def test_salesforce_auth_is_chosen_by_its_method(auth: dict[str, Any], model: type) -> None:
    settings = SalesforceSettings.model_validate({"instance_url": INSTANCE + "/", "auth": auth})

    assert isinstance(settings.auth, model)
    assert settings.instance_url == INSTANCE
    assert settings.task_external_id_field == "Closedloop_Key__c"
    assert (settings.daily_budget_share, settings.bulk_threshold) == (0.5, 10_000)


def test_salesforce_needs_https_because_its_client_hard_codes_it() -> None:
    with pytest.raises(ValidationError, match="https://"):
        SalesforceSettings.model_validate(
            {
                "instance_url": "http://127.0.0.1:8443",
                "auth": {"method": "session", "session_id": "x"},
            }
        )


@pytest.mark.parametrize("version", ["59", "v59.0", "59.1", "159.0"])
def test_salesforce_api_version_looks_like_59_0(version: str) -> None:
    with pytest.raises(ValidationError, match="API version"):
        SalesforceSettings.model_validate(
            {
                "instance_url": INSTANCE,
                "api_version": version,
                "auth": {"method": "session", "session_id": "x"},
            }
        )


def test_salesforce_jwt_key_file_is_found_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "server.key").write_text("-----BEGIN PRIVATE KEY-----\n", encoding="utf-8")
    config = tmp_path / "closedloop.yaml"
    body = (
        "version: 1\n"
        "connections:\n"
        "  crm:\n"
        "    type: salesforce\n"
        f"    instance_url: {INSTANCE}\n"
        "    auth:\n"
        "      method: jwt\n"
        "      client_id: 3MVG9\n"
        "      username: integration@example.com\n"
        "      private_key_file: keys/{name}\n"
    )
    config.write_text(body.format(name="server.key"), encoding="utf-8")

    auth = load_config(config, environ={}).connections["crm"].settings.auth  # type: ignore[attr-defined]

    assert isinstance(auth, JwtAuth)
    assert auth.private_key_file == tmp_path / "keys" / "server.key"
    config.write_text(body.format(name="missing.key"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config, environ={})
    issue = caught.value.issues[0]
    assert (issue.line, issue.key_path) == (10, "connections.crm.auth.private_key_file")
    assert "existing file" in issue.message


def test_hubspot_defaults_to_the_public_api_host() -> None:
    settings = HubSpotSettings.model_validate(
        {"auth": {"method": "private_app", "access_token": "pat-na1-x"}}
    )

    assert settings.host == "https://api.hubapi.com"
    assert settings.touch_key_property == "closedloop_touch_key"
    assert settings.burst_limit_per_10s == 100


def test_hubspot_oauth_needs_a_refresh_token() -> None:
    auth = {"method": "oauth", "client_id": "id", "client_secret": "s", "refresh_token": "r"}
    assert isinstance(HubSpotSettings.model_validate({"auth": auth}).auth, OAuthAuth)

    with pytest.raises(ValidationError, match="refresh_token"):
        HubSpotSettings.model_validate(
            {"auth": {k: v for k, v in auth.items() if k != "refresh_token"}}
        )


@pytest.mark.parametrize("share", [0, -0.1, 1.01])
def test_budget_share_must_be_within_zero_and_one(share: float) -> None:
    with pytest.raises(ValidationError, match="daily_budget_share"):
        HubSpotSettings.model_validate(
            {"auth": {"method": "private_app", "access_token": "pat"}, "daily_budget_share": share}
        )
