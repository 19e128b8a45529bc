"""``closedloop config check|show`` and ``closedloop init`` (a starter config for the sandbox).

``check`` validates the file, then every mapping file its pipelines use against the CRM org the
pipeline writes to or reads from (its own schema, read through the connection and cached in the
ledger; ``--offline``: the sandbox's schema instead). A bad config writes nothing (no ledger, no
files) and exits 2 with every problem on its own line, as does a mapping problem.
``check_pipeline_mappings`` is that mapping check, the one ``sync``, ``backfill`` and ``serve``
make before any pipeline runs (``require_valid_mappings``). ``show`` only
reads. ``init_command`` is mounted as the top-level ``init``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from connectors.errors import ConfigError
from sync.cli.schema_cmd import open_config_ledger
from sync.config import CONFIG_ENV, Config, config_path, load_config

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from sync.mapping.validate import ValidationReport

__all__ = [
    "SANDBOX_CONFIG",
    "MappingCheck",
    "app",
    "check_pipeline_mappings",
    "init_command",
    "require_valid_mappings",
    "shipped_mappings_dir",
]

app = typer.Typer(help="Check and show closedloop.yaml.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help=f"The config file (default: ${CONFIG_ENV} or ./closedloop.yaml).",
        show_default=False,
    ),
]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _load_or_exit(path: Path) -> Config:
    """Load ``path``; on problems print each on its own line and exit 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        if exc.issues:
            typer.echo(f"{path}: {_plural(len(exc.issues), 'problem')}", err=True)
            for issue in exc.issues:
                typer.echo(str(issue), err=True)
        else:
            typer.echo(str(exc), err=True)
        raise typer.Exit(exc.exit_code) from None


@app.command("check")
def check(
    config: ConfigOption = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Check mappings against the sandbox's schema instead of your orgs' (no "
            "connection needed).",
        ),
    ] = False,
) -> None:
    """Validate the config file and everything it references, mappings against their CRM org's
    own schema; exit 2 listing every problem."""
    path = config_path(config)
    loaded = _load_or_exit(path)
    from sync.cli.schema_cmd import print_report

    checks = check_pipeline_mappings(loaded, offline=offline)
    failed = sum(not print_report(check.report) for check in checks)
    if failed:
        typer.echo(f"{path}: {_plural(failed, 'mapping file')} with errors", err=True)
        raise typer.Exit(2)
    counts = (
        f"{_plural(len(loaded.connections), 'connection')}, "
        f"{_plural(len(loaded.pipelines), 'pipeline')}"
    )
    typer.echo(f"{path}: OK ({counts})")


@dataclass
class MappingCheck:
    """One mapping file checked for the pipelines using it, against one CRM connection's org."""

    mapping: Path
    connection: str | None  # None: the pipelines use only its CRM-free parts (lifecycle)
    pipelines: list[str]
    report: ValidationReport


def check_pipeline_mappings(
    loaded: Config,
    names: Iterable[str] | None = None,
    *,
    engine: Engine | None = None,
    offline: bool = False,
    connect: Callable[[str], Any] | None = None,
) -> list[MappingCheck]:
    """Validate every mapping file the pipelines ``names`` (default: all) use: the one check
    ``config check``, ``sync``, ``backfill`` and ``serve`` make before anything else, with the
    validator of ``mappings validate``.

    First every file on its own (structure, transforms, templates: no CRM schema, so no API
    call); only when all pass, each against the org of the CRM connection its pipelines write to
    or read from (``sync.crm_schema``: cached in the ``engine`` ledger, read through ``connect``
    when stale), or the sandbox's schema when ``offline``. A schema that cannot be had is a
    problem of that file, with its remedy.
    """
    from connectors.errors import ClosedloopError, ConfigIssue
    from sync.crm_schema import ConfiguredSchema, pipeline_crm
    from sync.mapping.catalogue import UNCHECKED, offline_catalogue
    from sync.mapping.validate import ValidationReport, validate_file

    chosen = list(loaded.pipelines) if names is None else list(names)
    used: dict[tuple[Path, str | None], list[str]] = {}
    for name in chosen:
        pipeline = loaded.pipelines[name]
        if pipeline.mapping is not None:
            used.setdefault((Path(pipeline.mapping), pipeline_crm(pipeline)), []).append(name)
    files: dict[Path, list[str]] = {}
    for (mapping, _crm), users in used.items():
        files.setdefault(mapping, []).extend(users)
    structural = []
    for mapping, users in files.items():
        report = validate_file(mapping, UNCHECKED)
        report.checked = None  # not against a CRM yet: only the file's own problems
        structural.append(MappingCheck(mapping, None, users, report))
    broken = [check for check in structural if not check.report.ok]
    if broken:
        return broken  # the others are not checked against their CRM yet: no "OK" for them
    crm_pairs = [(m, crm, users) for (m, crm), users in used.items() if crm is not None]
    checks = [c for c in structural if all(m != c.mapping for m, _crm, _u in crm_pairs)]
    if not crm_pairs:
        return checks
    if offline:
        catalogue = offline_catalogue()
        checks += [
            MappingCheck(m, crm, users, validate_file(m, catalogue)) for m, crm, users in crm_pairs
        ]
        return checks
    own = engine is None
    ledger = open_config_ledger(loaded) if engine is None else engine
    source = ConfiguredSchema(loaded, ledger, connect=connect)
    try:
        for mapping, crm, users in crm_pairs:
            try:
                report = validate_file(mapping, source.for_file(mapping, crm))
            except ClosedloopError as exc:
                issue = ConfigIssue(str(mapping), None, None, "", str(exc))
                report = ValidationReport(str(mapping), [issue])
            checks.append(MappingCheck(mapping, crm, users, report))
    finally:
        source.close()
        if own:
            ledger.dispose()
    return checks


def require_valid_mappings(
    loaded: Config,
    names: Iterable[str] | None,
    *,
    engine: Engine,
    connect: Callable[[str], Any] | None = None,
    what: str = "nothing was synced",
) -> None:
    """``check_pipeline_mappings`` for a command about to run pipelines: each file's outcome on
    stderr, and exit 2 (before any pipeline runs) when one has a problem."""
    from sync.cli.schema_cmd import print_report

    failed = False
    for check in check_pipeline_mappings(loaded, names, engine=engine, connect=connect):
        if not check.report.ok:
            print_report(check.report)
            failed = True
        elif check.report.checked:
            typer.echo(
                f"{', '.join(check.pipelines)}: mapping {check.mapping.name} checked "
                f"{check.report.checked}",
                err=True,
            )
    if failed:
        typer.echo(f"{what}: fix the mapping problems above first", err=True)
        raise typer.Exit(2)


@app.command("show")
def show(config: ConfigOption = None) -> None:
    """Print the effective configuration (defaults filled in, paths absolute, secrets masked)."""
    loaded = _load_or_exit(config_path(config))
    typer.echo(yaml.safe_dump(loaded.display(), sort_keys=False, allow_unicode=True), nl=False)


# --- closedloop init ------------------------------------------------------------------------

SECRETS_DIR = Path(".closedloop") / "secrets"

# Fixed, fake credentials of the local sandbox (sandbox/credentials.py).
_SANDBOX_SECRETS = {
    "salesforce-session-id": "00Dsandbox!closedloop-session",
    "hubspot-access-token": "pat-sandbox-closedloop",
    "marketo-client-secret": "sandbox-marketo-secret",
}

SANDBOX_CONFIG = """\
# closedloop configuration: written by `closedloop init` for the local sandbox.
# Check it with `closedloop config check`; see the effective values with `closedloop config show`.
#
# Any string value may use ${VAR} or ${VAR:-default} (environment variables).
# Any secret may be given as <key>_file: path instead of <key>: value; the file holds only the
# secret (one trailing newline is ignored). Relative paths are relative to this file's folder.
version: 1

# The ledger remembers every touch, delivery and disposition. CLOSEDLOOP_DATABASE_URL wins when
# set. PostgreSQL (postgresql+psycopg://user@host:5432/closedloop) lets several replicas share work.
ledger:
  url: sqlite:///closedloop.db

logging:
  level: info     # debug | info | warning | error | critical
  format: auto    # auto (JSON unless on a terminal) | json | console

# Connections: each has a connector type (`closedloop connectors list`) and that type's settings.
# These point at the local emulators started by the sandbox.
connections:
  salesforce:
    type: salesforce
    instance_url: https://127.0.0.1:8443
    api_version: "67.0"
    # The sandbox's test CA: `closedloop sandbox serve` writes it here (run it from this folder).
    # Remove the line for a real org.
    ca_bundle: .closedloop/sandbox-ca.pem
    auth:
      # Real orgs: method password | client_credentials | jwt (see the docs).
      method: session
      session_id_file: .closedloop/secrets/salesforce-session-id
    task_external_id_field: Closedloop_Key__c
    # Lead fields saying why a lead was disqualified or recycled; a dispositions pipeline adds
    # its mapping's lifecycle.reason_field by itself.
    lead_reason_fields: [Disqualified_Reason__c]

  # HubSpot instead of (or as well as) Salesforce: uncomment this connection and the hubspot
  # pipelines below. Two CRMs that mirror one company count it twice unless analytics.crms
  # names the one the report reads (the sandbox's two CRMs are such mirrors).
  # hubspot:
  #   type: hubspot
  #   host: http://127.0.0.1:8081           # a real portal: https://api.hubapi.com
  #   auth:
  #     method: private_app
  #     access_token_file: .closedloop/secrets/hubspot-access-token
  #   # How far back a marketing pipeline's first pull reaches (default 180 days). The sandbox's
  #   # world holds six months (182 days) ending at the start of today (UTC): 200 reads all of it.
  #   initial_lookback_days: 200

  marketo:
    type: marketo
    base_url: http://127.0.0.1:8082       # a real instance: https://123-ABC-456.mktorest.com
    client_id: sandbox-marketo-id
    client_secret_file: .closedloop/secrets/marketo-client-secret
    # How far back the first pull reaches (default 180 days). The sandbox's world holds six
    # months (182 days) of activity ending at the start of today (UTC): 200 reads all of it.
    initial_lookback_days: 200
    # A bulk export is polled first after 1 s, then ever less often up to this interval
    # (Marketo changes a job's status at most once a minute; the sandbox finishes at once).
    bulk_poll_interval_s: 30

# Pipelines: touches (activity source -> CRM timelines), dispositions (CRM status changes ->
# ledger), reconcile (CRM accounts, opportunities, contact roles -> ledger), recycle (ledger ->
# nurture programs), attribution (models, optional write-back), sla-writeback (breach flags).
# schedule: {every: 15m} (s, m, h, d) or {cron: "*/15 * * * *"} (UTC unless timezone: is given).
pipelines:
  marketo-to-salesforce:
    kind: touches
    source: marketo
    sink: salesforce
    mapping: mappings/marketo-salesforce.yaml
    schedule: {every: 15m}
    batch_size: 1000

  salesforce-dispositions:
    kind: dispositions
    source: salesforce
    mapping: mappings/marketo-salesforce.yaml   # its lifecycle section names the stages
    schedule: {every: 10m}

  salesforce-reconcile:
    kind: reconcile
    source: salesforce
    schedule: {cron: "5 * * * *"}

  # marketo-to-hubspot:
  #   kind: touches
  #   source: marketo
  #   sink: hubspot
  #   mapping: mappings/marketo-hubspot.yaml
  #   schedule: {every: 15m}

  # hubspot-dispositions:
  #   kind: dispositions
  #   source: hubspot
  #   mapping: mappings/marketo-hubspot.yaml
  #   schedule: {every: 10m}

# API budgets: a daily cap per connection = daily_share of the vendor's daily API allocation
# (other integrations share it) minus reserve_calls. When it runs short, dispositions and
# hand-offs come first, touches next, backfills last: each priority leaves priority_reserve of
# the cap per priority above it. A run at its cap stops cleanly ("budget reached; resumes at
# ...", exit 4); `check`, `runs` and /metrics show today's calls and the forecast.
budgets:
  salesforce: {daily_share: 0.5, reserve_calls: 1000}
  # salesforce: {daily_share: 0.5, reserve_calls: 1000, priority_reserve: 0.1}
  # hubspot: {daily_share: 0.5}          # private apps only (OAuth apps have no daily limit)
  # marketo: {daily_share: 0.5}          # of the connection's daily_quota (default 50,000)

# Mappings are checked against each CRM's own fields, read through its connection and cached in
# the ledger; the cache is read again when older than this. After adding a field in the CRM, run
# `closedloop schema refresh` to see it at once.
mappings:
  schema_max_age: 24h

# The sync-health page of `closedloop serve` (/ui/): pipelines, backlog, errors grouped, replay.
# On 127.0.0.1 (the default) anyone on this machine reaches it; bound to another address serve
# refuses to start until someone can sign in. Users: one `name:role:argon2-hash` a line, made by
# `closedloop ui-user NAME --role viewer|operator`; operators may replay, discard and run now.
# ui:
#   users_file: .closedloop/ui-users.txt
#   # proxy: {header: X-Forwarded-User, trusted: [10.0.0.5], operators: [dana]}
#   # secure_cookie: auto    # always behind TLS that ends at a proxy not in proxy.trusted
#   # session_hours: 8
#   # enabled: false         # no page (webhooks, probes and /metrics only)

# The sync log keeps every step of every record (pulled, matched, sent with its payload, the
# CRM's answer, replayed) for `closedloop log --email/--touch/--record`; older steps are pruned.
# sync_log:
#   retention: 30d

# Alerts: a notice when a condition starts and one when it clears (never repeated while it
# holds), naming the pipeline and the figures, with a link to page_url. Secrets from files
# (<key>_file) or the environment (${NAME}). Checked by `closedloop config check`.
# alerts:
#   page_url: https://closedloop.example.com/
#   channels:
#     ops-slack:
#       type: slack                          # a Slack incoming webhook
#       webhook_url_file: .closedloop/secrets/slack-webhook
#     ops-mail:
#       type: email                          # SMTP; STARTTLS is always used
#       host: smtp.example.com
#       port: 587
#       username: closedloop@example.com
#       password_file: .closedloop/secrets/smtp-password
#       sender: closedloop@example.com
#       to: [marketing-ops@example.com]
#     pager:
#       type: webhook                        # JSON, signed: X-Closedloop-Signature (HMAC-SHA256)
#       url: https://hooks.example.com/closedloop
#       secret_file: .closedloop/secrets/webhook-key
#   triggers:
#     run_failed: true                       # a pipeline's last run failed
#     dead_letters: 100                      # open dead letters of a pipeline over this many
#     new_error_group: true                  # a new (pipeline, stage, code) of dead letters
#     budget_share: 0.8                      # share of a CRM's daily API budget used
#     lag: 2h                                # no successful run for this long
#     backlog_age: 1h                        # the oldest touch waiting for its CRM
#     lease_lost: true                       # a replica lost its lease in the middle of a run

# The report (`closedloop report`). Campaign names and rep names come from the systems
# themselves (Marketo programs synced to CRM campaigns, else the campaign of the same name;
# Salesforce users, HubSpot owners); the report's "data quality" box lists what is still
# unnamed and the setting below that fixes it. SLA targets come per CRM and stage from each
# mapping's lifecycle.sla (MQL 24h, SAL 3d, SQL 5d in mappings/marketo-salesforce.yaml);
# analytics.sla overrides the MQL target explicitly, for every CRM.
analytics:
  crms: [salesforce]   # the CRMs the report reads; add hubspot if it holds other people
  # sla:
  #   default: 1d           # MQL hand-off -> first sales action, every CRM
  #   teams: {east: 4h}     # needs analytics.teams
  #   reps: {005A3: 2h}
  # period: last-90d   # default of `closedloop report --period`
  # teams: {east: [005A1, 005A2]}          # rep (CRM owner id) -> team
  # rep_names: {005A1: Dana Ross}          # wins over the CRM's user name
  # campaign_aliases: {2001: Spring Expo}  # Marketo program id -> CRM campaign (id or name)
# Whose touches count for a deal: contact_roles (default; the account's people when the deal has
# none), primary_contact_role (Salesforce IsPrimary; HubSpot deals have none) or account.
# attribution:
#   scope: contact_roles
"""


# The commented-out HubSpot connection of the template, as the demo (both CRMs) adds it.
SANDBOX_HUBSPOT = {
    "type": "hubspot",
    "host": "http://127.0.0.1:8081",
    "auth": {
        "method": "private_app",
        "access_token_file": ".closedloop/secrets/hubspot-access-token",
    },
    "initial_lookback_days": 200,
}

_TEMPLATE_MAPPINGS = ("mappings/marketo-salesforce.yaml", "mappings/marketo-hubspot.yaml")


def shipped_mappings_dir() -> Path | None:
    """The default mapping files: ``CLOSEDLOOP_MAPPINGS_DIR`` (the container sets it), else the
    ``mappings/`` folder of a source checkout."""
    override = os.environ.get("CLOSEDLOOP_MAPPINGS_DIR")
    candidates = [Path(override)] if override else []
    candidates.append(Path(__file__).resolve().parents[2] / "mappings")
    return next((c for c in candidates if c.is_dir()), None)


def _write_secret(path: Path, value: str) -> None:
    """Write ``value`` to ``path``, readable by its owner only (created with mode 0600)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    path.chmod(0o600)


def _copy_mappings(target: Path) -> list[str]:
    """Copy the shipped mapping files next to the config, never replacing an existing one."""
    source = shipped_mappings_dir()
    if source is None or source.resolve() == target.resolve():
        return []
    copied = []
    for item in sorted(source.iterdir()):
        if item.suffix in (".yaml", ".yml", ".json") and item.is_file():
            destination = target / item.name
            if not destination.exists():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(item, destination)
                copied.append(item.name)
    return copied


def init_command(
    path: Annotated[
        Path, typer.Argument(help="Where to write the config.", show_default=True)
    ] = Path("closedloop.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing config.")] = False,
) -> None:
    """Write a commented starter closedloop.yaml for the local sandbox, secrets in 0600 files."""
    if path.exists() and not force:
        typer.echo(f"{path} already exists; use --force to overwrite it", err=True)
        raise typer.Exit(1)
    folder = path.parent
    for name, value in _SANDBOX_SECRETS.items():
        _write_secret(folder / SECRETS_DIR / name, value)
    path.write_text(SANDBOX_CONFIG, encoding="utf-8")
    copied = _copy_mappings(folder / "mappings")
    typer.echo(f"wrote {path} and {len(_SANDBOX_SECRETS)} secret files in {folder / SECRETS_DIR}")
    if copied:
        typer.echo(f"copied default mappings to {folder / 'mappings'}: {', '.join(copied)}")
    missing = sorted({m for m in _TEMPLATE_MAPPINGS if not (folder / m).is_file()})
    if missing:
        typer.echo(f"write these mapping files before running: {', '.join(missing)}", err=True)
    where = "" if folder == Path() else f" in {folder}"
    typer.echo(
        f"next: start the sandbox{where} (`closedloop sandbox serve`, in another terminal: it "
        "writes the CA file the config trusts), then `closedloop config check`"
        + ("" if path == Path("closedloop.yaml") else f" --config {path}")
    )
