"""The sandbox fixtures serve the real emulators: writes land in the stores, reset undoes them."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from sandbox import credentials
from sandbox.server import SandboxServer


def _create_contact(server: SandboxServer, email: str) -> httpx.Response:
    return httpx.post(
        f"{server.hubspot_url}/crm/v3/objects/contacts",
        headers={"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"},
        json={"properties": {"email": email, "firstname": "Ada", "lastname": "Byron"}},
        trust_env=False,
    )


def _contact_emails(server: SandboxServer) -> set[str]:
    with server.control() as control:
        contacts = control.state()["hubspot"]["objects"]["contacts"]
    return {c["email"] for c in contacts.values()}


def test_a_write_lands_in_the_store_and_reset_reloads_the_demo_world(
    sandbox: SandboxServer,
) -> None:
    before = _contact_emails(sandbox)
    assert _create_contact(sandbox, "ada@analytical.example").status_code == 201
    assert _contact_emails(sandbox) == before | {"ada@analytical.example"}
    with sandbox.control() as control:
        assert control.counters()["hubspot"] == {"contacts.create": 1}
        control.reset()
        assert control.counters()["hubspot"] == {}
    assert _contact_emails(sandbox) == before


def test_a_dedicated_sandbox_has_its_own_seed_and_faults(
    sandbox_factory: Callable[..., SandboxServer],
) -> None:
    server = sandbox_factory(seed=3, size=30, faults="hubspot:503=1")
    assert server.world is not None
    assert server.world.seed == 3
    assert _create_contact(server, "grace@hopper.example").status_code == 503
    assert "grace@hopper.example" not in _contact_emails(server)
    with server.control() as control:
        assert control.world()["counts"]["people"] == len(server.world.people)


def test_an_unseeded_sandbox_starts_with_empty_crm_stores(
    sandbox_factory: Callable[..., SandboxServer],
) -> None:
    server = sandbox_factory()
    assert _contact_emails(server) == set()
    assert _create_contact(server, "first@customer.example").status_code == 201
    assert _contact_emails(server) == {"first@customer.example"}
