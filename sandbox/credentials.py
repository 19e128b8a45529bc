"""The sandbox's fixed, fake credentials and default ports (published so configs can point at it).

None of these are secrets: they only open the local emulators.
"""

from __future__ import annotations

__all__ = [
    "HUBSPOT_PORT",
    "HUBSPOT_TOKEN",
    "MARKETO_CLIENT_ID",
    "MARKETO_CLIENT_SECRET",
    "MARKETO_PORT",
    "SALESFORCE_API_VERSION",
    "SALESFORCE_CLIENT_ID",
    "SALESFORCE_CLIENT_SECRET",
    "SALESFORCE_PASSWORD",
    "SALESFORCE_PORT",
    "SALESFORCE_SECURITY_TOKEN",
    "SALESFORCE_SESSION_ID",
    "SALESFORCE_USERNAME",
]

SALESFORCE_PORT = 8443
HUBSPOT_PORT = 8081
MARKETO_PORT = 8082

SALESFORCE_API_VERSION = "59.0"
# Accepted as a bearer token forever (instance URL + session id auth); never revoked by faults.
SALESFORCE_SESSION_ID = "00Dsandbox!closedloop-session"
SALESFORCE_USERNAME = "admin@sandbox.closedloop"
SALESFORCE_PASSWORD = "sandbox-password"
SALESFORCE_SECURITY_TOKEN = "sandbox-token"
SALESFORCE_CLIENT_ID = "sandbox-sf-client-id"
SALESFORCE_CLIENT_SECRET = "sandbox-sf-client-secret"

HUBSPOT_TOKEN = "pat-sandbox-closedloop"

MARKETO_CLIENT_ID = "sandbox-marketo-id"
MARKETO_CLIENT_SECRET = "sandbox-marketo-secret"
