"""``closedloop sandbox``: run the local Salesforce, HubSpot and Marketo emulators.

``serve`` starts the three emulators with a seed world, prints their base URLs, the sandbox's
published fake credentials and the CA file that Salesforce clients must trust (also written to
``.closedloop/sandbox-ca.pem`` in the current folder, where ``closedloop init``'s config looks;
``--ca-file`` moves it), and serves until
Ctrl-C or SIGTERM (a clean exit 0). A bad ``--faults`` spec or seed is a usage error (exit 2).
"""

from __future__ import annotations

import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from connectors.errors import ClosedloopError, ConfigError
from sandbox import credentials
from sandbox.server import CONTROL_PREFIX, SandboxServer

__all__ = ["app", "main", "parse_seed"]

DEMO_SEED = 42
# Where `closedloop init` points the Salesforce connection's ca_bundle (run both in one folder).
DEFAULT_CA_FILE = Path(".closedloop") / "sandbox-ca.pem"

app = typer.Typer(
    help="Run local emulators of the Salesforce, HubSpot and Marketo APIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    """Run local emulators of the Salesforce, HubSpot and Marketo APIs."""


def parse_seed(text: str) -> int | None:
    """``demo`` is seed 42, ``none`` an empty sandbox, a number that seed; ConfigError otherwise."""
    value = text.strip().lower()
    if value == "demo":
        return DEMO_SEED
    if value == "none":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(
            f"bad --seed {text!r}: use 'demo', 'none' or a whole number such as 7"
        ) from None


@app.command("serve")
def serve(
    *,
    seed: Annotated[
        str, typer.Option(help="'demo' (seed 42), 'none' (empty stores) or a seed number.")
    ] = "demo",
    size: Annotated[
        str, typer.Option(help="'demo' (~600 people) or a number of people to generate.")
    ] = "demo",
    faults: Annotated[
        str | None,
        typer.Option(help="Fault rules API:KIND=RATE[,...], e.g. 'hubspot:429=0.1,*:503=0.01'."),
    ] = None,
    fault_seed: Annotated[int, typer.Option(help="Seed of the fault sequence.")] = 0,
    latency_ms: Annotated[
        int, typer.Option(min=0, help="Delay added to every vendor request.")
    ] = 0,
    port_salesforce: Annotated[
        int, typer.Option(help="Salesforce (HTTPS) port; 0 picks a free one.")
    ] = credentials.SALESFORCE_PORT,
    port_hubspot: Annotated[
        int, typer.Option(help="HubSpot port; 0 picks a free one.")
    ] = credentials.HUBSPOT_PORT,
    port_marketo: Annotated[
        int, typer.Option(help="Marketo port; 0 picks a free one.")
    ] = credentials.MARKETO_PORT,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            help="Also write the test CA (PEM) here for Salesforce clients to trust: where the "
            "config of `closedloop init` (ca_bundle) looks for it, relative to this folder.",
        ),
    ] = DEFAULT_CA_FILE,
) -> None:
    """Serve the emulators until interrupted, printing URLs, credentials and the CA file."""
    # A bad seed, size or fault spec raises ConfigError here: the CLI prints it and exits 2.
    server = SandboxServer(
        seed=parse_seed(seed),
        size=size,
        faults=faults,
        latency_ms=latency_ms,
        fault_seed=fault_seed,
        ports={"salesforce": port_salesforce, "hubspot": port_hubspot, "marketo": port_marketo},
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            server.start()
        except RuntimeError as exc:
            raise ConfigError(f"{exc}: is the port in use? choose another with --port-*") from None
        try:
            ca_path = server.ca_file
            if ca_file is not None:
                ca_file.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(server.ca_file, ca_file)
                ca_path = ca_file
            _print_banner(server, ca_path)
            stop.wait()
            typer.echo("stopping the sandbox")
        finally:
            server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _print_banner(server: SandboxServer, ca_path: Path) -> None:
    world = server.world
    if world is None:
        typer.echo("closedloop sandbox: empty stores (no seed world)")
    else:
        typer.echo(
            f"closedloop sandbox: seed {world.seed}: {len(world.accounts)} accounts, "
            f"{len(world.people)} people, {len(world.opportunities)} opportunities, "
            f"{len(world.activities)} activities up to {world.now:%Y-%m-%d}"
        )
    lines = [
        f"Salesforce  {server.salesforce_url}  (API v{credentials.SALESFORCE_API_VERSION})",
        f"  session id      {credentials.SALESFORCE_SESSION_ID}",
        f"  username        {credentials.SALESFORCE_USERNAME}",
        f"  password        {credentials.SALESFORCE_PASSWORD}",
        f"  security token  {credentials.SALESFORCE_SECURITY_TOKEN}",
        f"  client id       {credentials.SALESFORCE_CLIENT_ID}",
        f"  client secret   {credentials.SALESFORCE_CLIENT_SECRET}",
        f"HubSpot     {server.hubspot_url}",
        f"  access token    {credentials.HUBSPOT_TOKEN}",
        f"Marketo     {server.marketo_url}",
        f"  client id       {credentials.MARKETO_CLIENT_ID}",
        f"  client secret   {credentials.MARKETO_CLIENT_SECRET}",
        f"CA file     {ca_path}  (trust it for the Salesforce HTTPS port)",
        f"Control     {server.hubspot_url}{CONTROL_PREFIX}counters | reset | faults | latency"
        " | state | world",
        "These credentials are fake and only open this local sandbox. Ctrl-C stops it.",
    ]
    for line in lines:
        typer.echo(line)


def main(argv: list[str] | None = None) -> None:
    """Run this group alone (``python -m sandbox.cli serve``); errors as in the CLI."""
    try:
        app(args=argv, prog_name="closedloop sandbox")
    except ClosedloopError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
