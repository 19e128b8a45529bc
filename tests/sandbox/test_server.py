"""SandboxServer composes three apps behind one control API, with latency, faults and reset.

These tests use small stand-in vendor apps that follow the emulator contract (count, draw a
fault, answer), so they exercise the composition itself; the real emulators are exercised in
test_faults.py and test_server_cli.py.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import sandbox
from connectors.errors import ConfigError
from sandbox.core import APIS, SandboxState
from sandbox.server import SandboxControl, SandboxServer, world_summary
from sandbox.world import World


class StandInStore:
    """Holds the people of the loaded world and anything written since."""

    def __init__(self) -> None:
        self.people: dict[str, str] = {}

    def reset(self) -> None:
        self.people = {}

    def load_world(self, world: World) -> None:
        self.people.update({p.id: p.email for p in world.people})

    def dump(self) -> dict[str, Any]:
        return {"people": len(self.people)}


def stand_in_app(api: str, state: SandboxState) -> Starlette:
    store = state.vendors.setdefault(api, StandInStore())

    async def ping(request: Request) -> Response:
        state.count(api, "ping")
        kind = state.faults.draw(api)
        if kind is not None:
            return JSONResponse({"fault": kind}, status_code=503 if kind == "503" else 429)
        return JSONResponse({"api": api})

    async def add(request: Request) -> Response:
        state.count(api, "add")
        store.people[request.path_params["pid"]] = "new@example.com"
        return JSONResponse({"ok": True}, status_code=201)

    return Starlette(routes=[Route("/ping", ping), Route("/people/{pid}", add, methods=["POST"])])


BUILDERS = {api: (lambda state, api=api: stand_in_app(api, state)) for api in APIS}


def client_for(server: SandboxServer) -> httpx.Client:
    """One client that reaches all three ports, trusting the sandbox CA for Salesforce."""
    return httpx.Client(
        verify=ssl.create_default_context(cafile=str(server.ca_file)), trust_env=False
    )


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with SandboxServer(
        seed=5,
        size=40,
        builders=BUILDERS,
        tls_dir=tmp_path_factory.mktemp("tls"),
        faults="marketo:503=0.5",
    ) as started:
        yield started


@pytest.fixture
def server(running: SandboxServer) -> SandboxServer:
    running.reset()
    return running


@pytest.fixture
def http(server: SandboxServer) -> Iterator[httpx.Client]:
    with client_for(server) as client:
        yield client


@pytest.fixture
def control(server: SandboxServer) -> Iterator[SandboxControl]:
    with server.control() as ctl:
        yield ctl


def test_each_api_is_served_on_its_own_port_salesforce_over_tls(
    server: SandboxServer, http: httpx.Client
) -> None:
    assert server.salesforce_url.startswith("https://127.0.0.1:")
    assert server.hubspot_url.startswith("http://127.0.0.1:")
    assert len({server.salesforce_url, server.hubspot_url, server.marketo_url}) == 3
    assert http.get(f"{server.salesforce_url}/ping").json() == {"api": "salesforce"}
    assert http.get(f"{server.hubspot_url}/ping").json() == {"api": "hubspot"}
    with httpx.Client(trust_env=False) as untrusting, pytest.raises(httpx.ConnectError):
        untrusting.get(f"{server.salesforce_url}/ping")


def test_counters_report_exactly_the_calls_made(
    server: SandboxServer, http: httpx.Client, control: SandboxControl
) -> None:
    for _ in range(3):
        http.get(f"{server.hubspot_url}/ping")
    http.post(f"{server.salesforce_url}/people/p1")
    http.get(f"{server.salesforce_url}/ping")
    assert control.counters() == {
        "salesforce": {"add": 1, "ping": 1},
        "hubspot": {"ping": 3},
        "marketo": {},
    }
    assert control.total_calls("hubspot") == 3
    assert "__sandbox" not in str(server.state.counts())


def test_the_control_api_answers_on_every_port_with_the_same_state(
    server: SandboxServer, http: httpx.Client
) -> None:
    http.get(f"{server.marketo_url}/ping")
    for base in server.urls.values():
        with SandboxControl(base, ca_file=server.ca_file) as ctl:
            assert ctl.counters()["marketo"] == {"ping": 1}


def test_latency_delays_vendor_calls(
    server: SandboxServer, http: httpx.Client, control: SandboxControl
) -> None:
    control.set_latency(300)
    assert control.latency() == 300
    started = time.perf_counter()
    http.get(f"{server.hubspot_url}/ping")
    assert time.perf_counter() - started >= 0.3


def test_faults_set_through_the_control_api_are_drawn_by_the_vendor_apps(
    server: SandboxServer, http: httpx.Client, control: SandboxControl
) -> None:
    answer = control.set_faults("hubspot:429=1", seed=3)
    assert answer == {"seed": 3, "rules": [{"api": "hubspot", "kind": "429", "rate": 1.0}]}
    assert http.get(f"{server.hubspot_url}/ping").status_code == 429
    assert http.get(f"{server.salesforce_url}/ping").status_code == 200
    control.set_faults(None)
    assert http.get(f"{server.hubspot_url}/ping").status_code == 200


def test_the_same_fault_seed_replays_the_same_faults(
    server: SandboxServer, http: httpx.Client, control: SandboxControl
) -> None:
    def statuses(seed: int) -> list[int]:
        control.set_faults("hubspot:429=0.3", seed=seed)
        return [http.get(f"{server.hubspot_url}/ping").status_code for _ in range(60)]

    first = statuses(11)
    assert 429 in first
    assert 200 in first
    assert statuses(11) == first
    assert statuses(12) != first


def test_a_bad_fault_spec_is_refused_with_the_reason(
    server: SandboxServer, control: SandboxControl
) -> None:
    with pytest.raises(ConfigError, match="teapot"):
        control.set_faults("hubspot:teapot=0.1")
    response = httpx.post(
        f"{server.hubspot_url}/__sandbox/faults", json={"spec": "x"}, trust_env=False
    )
    assert response.status_code == 400
    assert "API:KIND=RATE" in response.json()["error"]
    assert control.faults()["rules"] == [{"api": "marketo", "kind": "503", "rate": 0.5}]


def test_bad_latency_and_unknown_control_paths_are_client_errors(
    server: SandboxServer, control: SandboxControl
) -> None:
    bad = httpx.post(f"{server.hubspot_url}/__sandbox/latency", json={"ms": -1}, trust_env=False)
    assert bad.status_code == 400
    missing = httpx.get(f"{server.hubspot_url}/__sandbox/nope", trust_env=False)
    assert missing.status_code == 404
    assert "nope" in missing.json()["error"]
    assert control.latency() == 0


def test_reset_restores_counters_faults_latency_and_the_seed_world(
    server: SandboxServer, http: httpx.Client, control: SandboxControl
) -> None:
    assert server.world is not None
    loaded = len(server.world.people)
    http.post(f"{server.hubspot_url}/people/extra")
    control.set_faults("*:500=0.2", seed=9)
    control.set_latency(50)
    assert control.state()["hubspot"] == {"people": loaded + 1}

    control.reset()

    assert control.counters() == {"salesforce": {}, "hubspot": {}, "marketo": {}}
    assert control.state() == {api: {"people": loaded} for api in APIS}
    assert control.latency() == 0
    assert control.faults() == {
        "seed": 0,
        "rules": [{"api": "marketo", "kind": "503", "rate": 0.5}],
    }


def test_reset_replays_the_starting_fault_sequence(
    server: SandboxServer, http: httpx.Client, control: SandboxControl
) -> None:
    first = [http.get(f"{server.marketo_url}/ping").status_code for _ in range(30)]
    control.reset()
    again = [http.get(f"{server.marketo_url}/ping").status_code for _ in range(30)]
    assert first == again
    assert 503 in first


def test_world_summary_counts_the_loaded_world(
    server: SandboxServer, control: SandboxControl
) -> None:
    summary = control.world()
    assert server.world is not None
    assert summary["seed"] == 5
    assert summary["counts"]["people"] == len(server.world.people)
    assert summary["counts"]["activities"] == len(server.world.activities)
    assert sum(summary["activity_kinds"].values()) == len(server.world.activities)
    assert summary == world_summary(server.world)


def test_an_unseeded_server_starts_with_empty_stores(tmp_path: Path) -> None:
    with SandboxServer(builders=BUILDERS, tls_dir=tmp_path) as empty, empty.control() as ctl:
        assert empty.world is None
        assert ctl.world() == {"seed": None, "loaded": False}
        assert ctl.state() == {api: {"people": 0} for api in APIS}


def test_fixed_ports_are_honoured(tmp_path: Path) -> None:
    from sandbox.core import free_port

    port = free_port()
    with SandboxServer(builders=BUILDERS, tls_dir=tmp_path, ports={"hubspot": port}) as fixed:
        assert fixed.hubspot_url == f"http://127.0.0.1:{port}"


def test_a_temporary_tls_directory_is_removed_on_stop() -> None:
    server = SandboxServer(builders=BUILDERS)
    server.start()
    ca_file = server.ca_file
    assert ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
    server.stop()
    assert not ca_file.exists()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.hubspot_url


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"faults": "salesforce:429=2"}, "between 0 and 1"),
        ({"ports": {"pardot": 1}}, "pardot"),
        ({"latency_ms": -5}, "latency"),
        ({"seed": 1, "size": "gigantic"}, "size"),
    ],
)
def test_bad_configuration_fails_before_anything_starts(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        SandboxServer(builders=BUILDERS, **kwargs)


def test_the_package_exports_exactly_its_public_names() -> None:
    import types

    public = {
        name
        for name, value in vars(sandbox).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(sandbox.__all__) == public - {"annotations"}
