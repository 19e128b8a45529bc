"""``check()`` and ``closedloop check salesforce``: login flows, failures with their remedy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from connectors.errors import AuthError
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.settings import JwtAuth, SalesforceSettings
from sandbox import credentials
from sandbox.server import SandboxServer
from sync.cli import check_cmd
from tests.connectors.salesforce.conftest import jwt_auth, password_auth

Make = Callable[..., SalesforceConnector]


def auth_for(method: str, sandbox: SandboxServer, tmp_path: Path) -> dict[str, Any]:
    if method == "password":
        return password_auth(sandbox)
    if method == "client_credentials":
        return {
            "method": "client_credentials",
            "login_url": sandbox.salesforce_url,
            "client_id": credentials.SALESFORCE_CLIENT_ID,
            "client_secret": credentials.SALESFORCE_CLIENT_SECRET,
        }
    return jwt_auth(sandbox, tmp_path)


@pytest.mark.parametrize("method", ["password", "client_credentials", "jwt"])
def test_every_login_flow_reaches_the_org_and_passes_the_check(
    sandbox_readonly: SandboxServer, make_connector: Make, tmp_path: Path, method: str
) -> None:
    connector = make_connector(auth=auth_for(method, sandbox_readonly, tmp_path))

    results = connector.check()

    assert [r.name for r in results if not r.ok] == []
    assert sandbox_readonly.state.counts("salesforce")["oauth_token"] == 1


def test_a_wrong_password_is_an_auth_error_without_the_secret(
    sandbox_readonly: SandboxServer, make_connector: Make
) -> None:
    connector = make_connector(auth=password_auth(sandbox_readonly, password="hunter2-wrong"))

    with pytest.raises(AuthError) as caught:
        connector.resolve_people(["someone@example.com"])

    message = str(caught.value)
    assert "invalid_grant" in message
    assert "security_token" in message
    assert "hunter2-wrong" not in message
    assert credentials.SALESFORCE_SECURITY_TOKEN not in message


def test_a_key_field_that_is_missing_fails_the_check_with_the_field_to_create(
    sandbox_readonly: SandboxServer,
    make_connector: Make,
) -> None:
    results = {r.name: r for r in make_connector(task_external_id_field="Touch_Key__c").check()}

    failed = results["touch key field"]
    assert not failed.ok
    assert failed.remedy.startswith(
        "Create a Text(255) field Touch_Key__c on Task (Setup > Object Manager > Activity > "
        "Fields) with External ID and Unique checked"
    )


def test_an_api_version_the_org_does_not_serve_fails_with_one_it_does(
    sandbox_readonly: SandboxServer,
    make_connector: Make,
) -> None:
    results = {r.name: r for r in make_connector(api_version="42.0").check()}

    assert not results["api version"].ok
    assert "set api_version to one the org serves, e.g. '68.0'" in results["api version"].remedy


@pytest.mark.parametrize("version", ["66.0", "67.0", "68.0"])
def test_a_current_api_version_passes_the_check(
    sandbox_readonly: SandboxServer, make_connector: Make, version: str
) -> None:
    results = {r.name: r for r in make_connector(api_version=version).check()}

    assert results["api version"].ok, results["api version"].detail
    assert results["credentials"].ok


def test_the_default_api_version_is_one_salesforce_still_promises_to_support() -> None:
    """Salesforce supports a version at least 3 years after its release; Summer '26 (v67.0)."""
    default = SalesforceSettings.model_fields["api_version"].default

    assert float(default) >= 67.0


def test_a_spent_budget_fails_the_check(sandbox: SandboxServer, make_connector: Make) -> None:
    store = sandbox.store("salesforce")
    store.daily_limit, store.api_used = 1_000, 700

    results = {r.name: r for r in make_connector().check()}

    assert not results["api budget"].ok
    assert "daily_budget_share" in results["api budget"].remedy


def write_config(tmp_path: Path, sandbox: SandboxServer, **settings: Any) -> Path:
    connection = {
        "type": "salesforce",
        "instance_url": sandbox.salesforce_url,
        "ca_bundle": str(sandbox.ca_file),
        "auth": {"method": "session", "session_id": credentials.SALESFORCE_SESSION_ID},
        **settings,
    }
    path = tmp_path / "closedloop.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "connections": {"org": connection}}))
    return path


def test_the_check_command_passes_on_a_well_configured_org(
    sandbox_readonly: SandboxServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, sandbox_readonly)

    result = CliRunner().invoke(check_cmd.app, ["salesforce", "--config", str(config)])

    assert result.exit_code == 0, result.output
    assert "touch key field" in result.output
    assert "FAILED" not in result.output


def test_the_check_command_prints_the_remedy_and_exits_1_on_a_failure(
    sandbox_readonly: SandboxServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, sandbox_readonly, task_external_id_field="Touch_Key__c")

    result = CliRunner().invoke(
        check_cmd.app, ["salesforce", "--config", str(config), "--connection", "org"]
    )

    assert result.exit_code == 1
    assert "FAILED" in result.output
    assert "Touch_Key__c" in result.output
    assert (
        "touch key field: Create a Text(255) field Touch_Key__c on Task (Setup > Object Manager "
        "> Activity > Fields) with External ID and Unique checked"
    ) in result.output


def test_the_check_command_with_bad_credentials_exits_1_with_a_remedy(
    sandbox_readonly: SandboxServer, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, sandbox_readonly, auth={"method": "session", "session_id": "00Dexpired!x"}
    )

    result = CliRunner().invoke(check_cmd.app, ["salesforce", "--config", str(config)])

    assert result.exit_code == 1
    assert "credentials" in result.output
    assert "credentials: the session id is expired or invalid: give a fresh one" in result.output
    assert "00Dexpired!x" not in result.output


def test_a_jwt_login_posted_to_the_org_signs_login_salesforce_com_as_its_audience(
    sandbox_readonly: SandboxServer, make_connector: Make, tmp_path: Path
) -> None:
    """The token request goes to login_url (here the org itself, like a My Domain URL), but the
    assertion's aud must be the authorization server: the org's URL is "audience is invalid"."""
    connector = make_connector(auth=jwt_auth(sandbox_readonly, tmp_path))

    results = {r.name: r for r in connector.check()}

    assert results["credentials"].ok, results["credentials"].detail
    assert connector.settings.auth.jwt_audience == "https://login.salesforce.com"  # type: ignore[union-attr]


def test_a_configured_jwt_audience_is_the_one_the_assertion_names(
    sandbox_readonly: SandboxServer, make_connector: Make, tmp_path: Path
) -> None:
    site = "https://closedloop-partners.my.site.com/partners"
    connector = make_connector(auth=jwt_auth(sandbox_readonly, tmp_path, audience=site))

    with pytest.raises(AuthError) as refused:
        connector.resolve_people(["nobody@example.com"])

    assert "invalid_grant: audience is invalid" in str(refused.value)
    assert "https://login.salesforce.com (production)" in str(refused.value)
    store = sandbox_readonly.store("salesforce")
    store.experience_sites.add(site)  # the org has this Experience Cloud site
    try:
        assert (
            make_connector(auth=jwt_auth(sandbox_readonly, tmp_path, audience=site)).check()[0].ok
        )
    finally:
        store.experience_sites.discard(site)


def test_a_jwt_audience_that_is_an_instance_url_is_refused_by_the_settings(
    tmp_path: Path,
) -> None:
    key = tmp_path / "app.key"
    key.write_text("not read by the settings")
    auth = {
        "method": "jwt",
        "client_id": "app",
        "username": "integration@example.com",
        "private_key_file": str(key),
        "audience": "https://acme.my.salesforce.com",
    }

    with pytest.raises(ValidationError) as caught:
        JwtAuth.model_validate(auth)

    assert "is an instance (My Domain) URL" in str(caught.value)
    assert "https://test.salesforce.com (sandboxes)" in str(caught.value)


@pytest.mark.parametrize(
    ("login_url", "audience"),
    [
        ("https://login.salesforce.com", "https://login.salesforce.com"),
        ("https://acme.my.salesforce.com", "https://login.salesforce.com"),
        ("https://test.salesforce.com", "https://test.salesforce.com"),
        ("https://acme--uat.sandbox.my.salesforce.com", "https://test.salesforce.com"),
    ],
)
def test_the_default_jwt_audience_is_the_production_or_sandbox_login_server(
    tmp_path: Path, login_url: str, audience: str
) -> None:
    key = tmp_path / "app.key"
    key.write_text("not read by the settings")
    auth = JwtAuth.model_validate(
        {
            "method": "jwt",
            "login_url": login_url,
            "client_id": "app",
            "username": "integration@example.com",
            "private_key_file": str(key),
        }
    )

    assert auth.jwt_audience == audience


def test_the_check_command_on_an_org_that_blocks_the_password_flow_says_to_switch_flows(
    sandbox_readonly: SandboxServer, tmp_path: Path
) -> None:
    """Orgs created in Summer '23 or later block the username-password flow by default and
    answer a correct login like a wrong password."""
    config = write_config(tmp_path, sandbox_readonly, auth=password_auth(sandbox_readonly))
    store = sandbox_readonly.store("salesforce")
    store.password_flow_allowed = False
    try:
        result = CliRunner().invoke(check_cmd.app, ["salesforce", "--config", str(config)])
    finally:
        store.password_flow_allowed = True

    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "invalid_grant: authentication failure" in output
    assert "credentials: check username, password and security_token" in output
    assert "Orgs created in Summer '23 or later block the username-password flow" in output
    assert "Allow OAuth Username-Password Flows" in output
    assert "auth: {method: client_credentials, login_url:" in output
    assert "auth: {method: jwt, client_id:" in output
    assert credentials.SALESFORCE_PASSWORD not in output
