"""Shared helpers of the Salesforce connector tests: settings against the sandbox, touches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from connectors.base import RenderedTouch
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.settings import SalesforceSettings
from sandbox import credentials
from sandbox.salesforce_store import DEFAULT_DAILY_LIMIT
from sandbox.server import SandboxServer

SESSION_AUTH = {"method": "session", "session_id": credentials.SALESFORCE_SESSION_ID}


def password_auth(sandbox: SandboxServer, **overrides: Any) -> dict[str, Any]:
    """Username-password login against the sandbox's token endpoint."""
    return {
        "method": "password",
        "username": credentials.SALESFORCE_USERNAME,
        "password": credentials.SALESFORCE_PASSWORD,
        "security_token": credentials.SALESFORCE_SECURITY_TOKEN,
        "client_id": credentials.SALESFORCE_CLIENT_ID,
        "client_secret": credentials.SALESFORCE_CLIENT_SECRET,
        "login_url": sandbox.salesforce_url,
        **overrides,
    }


def jwt_auth(sandbox: SandboxServer, folder: Path, **overrides: Any) -> dict[str, Any]:
    """JWT bearer login against the sandbox: a new key in ``folder`` whose self-signed
    certificate is uploaded to the sandbox's connected app ("Use digital signatures")."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "connected-app.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "closedloop")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    store = sandbox.store("salesforce")
    with store.lock:
        store.jwt_certificates.append(cert.public_bytes(serialization.Encoding.PEM).decode())
    return {
        "method": "jwt",
        "login_url": sandbox.salesforce_url,
        "client_id": credentials.SALESFORCE_CLIENT_ID,
        "username": credentials.SALESFORCE_USERNAME,
        "private_key_file": str(path),
        **overrides,
    }


def settings_for(sandbox: SandboxServer, **overrides: Any) -> SalesforceSettings:
    """Settings of a connection to the sandbox org (session auth unless ``auth`` is given)."""
    values: dict[str, Any] = {
        "instance_url": sandbox.salesforce_url,
        "api_version": credentials.SALESFORCE_API_VERSION,
        "auth": SESSION_AUTH,
        "ca_bundle": sandbox.ca_file,
        "bulk_poll_interval_s": 0.01,
        "retry_backoff_s": 0,
        **overrides,
    }
    return SalesforceSettings.model_validate(values)


def task(key: str, who_id: str, **fields: Any) -> RenderedTouch:
    """A Task touch as the shipped marketo-salesforce mapping renders it."""
    payload = {
        "Subject": f"Email open: Newsletter {key}",
        "ActivityDate": "2026-06-01",
        "Status": "Completed",
        "Priority": "Normal",
        "Type": "Email",
        "Description": f"touch key {key}",
        "Closedloop_Key__c": key,
        "WhoId": who_id,
        **fields,
    }
    return RenderedTouch(key, "Task", payload, person_id=who_id)


def live(store: Any, sobject: str) -> list[dict[str, Any]]:
    """Live rows of ``sobject`` in the sandbox store."""
    return [r for r in store.records[sobject].values() if not r.get("IsDeleted")]


def known_people(store: Any) -> list[dict[str, Any]]:
    """Unconverted Leads and Contacts with an email (people the connector can resolve)."""
    leads = [r for r in live(store, "Lead") if r.get("Email") and not r.get("IsConverted")]
    contacts = [r for r in live(store, "Contact") if r.get("Email")]
    return leads + contacts


def data_calls(sandbox: SandboxServer) -> int:
    """Counted REST calls to the Salesforce emulator (logins excluded)."""
    counts = sandbox.state.counts("salesforce")
    return sum(n for endpoint, n in counts.items() if endpoint != "oauth_token")


@pytest.fixture
def make_connector(
    sandbox_session: SandboxServer,
) -> Iterator[Callable[..., SalesforceConnector]]:
    """Build connectors on the session's sandbox (tests reset it with ``sandbox`` or
    ``sandbox_readonly``); closed after the test, the org's API allowance restored."""
    built: list[SalesforceConnector] = []

    def make(**overrides: Any) -> SalesforceConnector:
        connector = SalesforceConnector("crm", settings_for(sandbox_session, **overrides))
        built.append(connector)
        return connector

    yield make
    for connector in built:
        connector.close()
    store = sandbox_session.store("salesforce")
    store.daily_limit, store.api_used = DEFAULT_DAILY_LIMIT, 0
