"""The Salesforce CRM connector: identity lookups, idempotent timeline writes, change pulls.

``SalesforceConnector(connection_name, settings)`` implements ``connectors.base.Crm`` on
simple-salesforce (through ``SalesforceClient``: budget, refresh, error translation).

Calls per operation (every one counted in ``api_calls``; ARCHITECTURE.md "Limits"):

- ``push_touches``: sObject Collections upserts on the external-id field (200 records each,
  ``allOrNone`` false), five to a Composite request: 1,000 touches per counted call. Upserting
  on the touch key makes a replay (after a crash, a retry or an expired session) update the
  Task it wrote before instead of adding one.
- ``resolve_people``: ``Email IN (...)`` lookups on Lead and Contact packed to the SOQL length
  limit, five queries (or next-page reads) per Composite request.
- ``create_people``: sObject Collections creates (200 each), five per Composite request. A create
  is not safe to repeat, so it is never retried blindly.
- ``sync_campaign_members``: one Composite request reads the Campaigns named by the items (names
  not yet in the run's cache) and the existing memberships of the items' people in those
  Campaigns (``IN`` lists; by ``Campaign.Name`` for names not yet resolved, so both reads share
  the request); a second one creates the missing members and raises statuses (sObject
  Collections, five to a request). 1,000 touches in five Campaigns: two calls, a replay: one.
  Creates are safe to repeat: Salesforce keeps one member per Campaign and person, and a
  create that meets an existing member (a replay, a race with a rep or another sync) is read
  back and settled as an update.
- ``read_person_fields`` / ``update_people``: ``Id IN`` reads of the mapped person fields (and
  of LeadHistory / ContactHistory for two-way fields), then sObject Collections updates, 1,000
  people per counted call (``personfields``).
- ``opt_out``: one Composite request of ``Id IN`` reads of ``HasOptedOutOfEmail`` (Lead and
  Contact), then sObject Collections updates of those not yet out (1,000 per call; ``owners``).
  ``create_people`` with an owner sends the ``Sforce-Auto-Assign`` header on its subrequests.
- ``pull_changes``: ``queryAll`` ordered by SystemModstamp (deleted rows included), 2,000 rows
  per page; above ``bulk_threshold`` matching rows (``totalSize`` of the first page: the COUNT
  at no extra call) a Bulk API 2.0 query job instead.

Per-record failures are data, not exceptions: a rejected touch comes back as
``DeliveryResult(ok=False, error_code=<Salesforce statusCode>, error_message=<its message>)``
so the engine dead-letters exactly that record and the batch goes on. A record refused for a row
lock (UNABLE_TO_LOCK_ROW), or whose whole collection failed on the server inside the Composite
answer (a 5xx subrequest), is sent again a few times within the call (``collections.save_all``);
still failing, its result has ``retryable`` set and the engine leaves it pending for the next
run. Callers that prefer exceptions turn those results into ``RecordRejected`` with
``rejections(results)``; people that could not be created are in ``last_rejections`` after
``create_people``, which raises ``Transient`` when a collection of creates failed on the server
(the engine then looks the people up before creating any again).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from connectors.base import (
    CheckResult,
    Cursor,
    DeliveryResult,
    MemberAction,
    MemberItem,
    MemberResult,
    OptOutResult,
    Page,
    Person,
    PersonKind,
    PersonSnapshot,
    PersonUpdate,
    RenderedTouch,
)
from connectors.errors import AuthError, ClosedloopError, ConfigError, RecordRejected, Transient
from connectors.lagwindow import SeenVersions
from connectors.salesforce.auth import remedy_for
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.collections import (
    RETRYABLE,
    chunks,
    errors_text,
    is_retryable,
    query_each,
    save_all,
    save_results,
)
from connectors.salesforce.history import HISTORY_STREAM, check_history, pull_history
from connectors.salesforce.identity import (
    CONTACT_LOOKUP,
    LEAD_LOOKUP,
    Candidate,
    choose,
    in_list_queries,
    new_person_record,
    normalize_email,
    person_candidates,
)
from connectors.salesforce.members import (
    CAMPAIGN_LOOKUP,
    Membership,
    member_queries,
    person_field,
    plan,
    rank_of,
    short_id,
)
from connectors.salesforce.owners import AUTO_ASSIGN, check_owner, opt_out
from connectors.salesforce.personfields import read_fields, update_fields
from connectors.salesforce.schema import describe_fields
from connectors.salesforce.settings import SalesforceSettings
from connectors.salesforce.streams import (
    REPLICATION_KEY,
    ObjectSpec,
    parse_sf_datetime,
    sf_datetime,
    stream_names,
    stream_spec,
)

__all__ = [
    "COLLECTION_SIZE",
    "PAGE_SIZE",
    "MemberItem",
    "MemberResult",
    "SalesforceConnector",
    "rejections",
]

COLLECTION_SIZE = 200  # records per sObject Collections call
PAGE_SIZE = 2_000  # SOQL rows per page, and records per yielded Page
# Objects the connector reads, and the access each needs (global describe flags).
_ACCESS = {
    "Task": ("queryable", "createable", "updateable"),
    "Lead": ("queryable",),
    "Contact": ("queryable",),
    "Account": ("queryable",),
    "Opportunity": ("queryable",),
    "OpportunityContactRole": ("queryable",),
    "Campaign": ("queryable",),
    "CampaignMember": ("queryable",),
}
# What campaign member sync adds (mapping section ``campaign_members``).
_MEMBER_ACCESS = {"CampaignMember": ("queryable", "createable", "updateable")}


def rejections(results: Sequence[DeliveryResult]) -> list[RecordRejected]:
    """A ``RecordRejected`` (Salesforce's code and message kept) per failed delivery."""
    return [
        RecordRejected(
            r.error_message or "rejected by Salesforce", code=r.error_code or "REJECTED", key=r.key
        )
        for r in results
        if not r.ok
    ]


def _wire(value: Any) -> Any:
    """A payload value as Salesforce's JSON expects it (dates ISO, datetimes UTC, money)."""
    if isinstance(value, datetime):
        return sf_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


# What became of one membership: (action, member id, (code, message, retryable) when refused).
# A pulled row with its stamp parsed once: (cursor text, epoch ms, id, object spec, row).
_Row = tuple[str, int, str, ObjectSpec, Mapping[str, Any]]
_Outcome = tuple[MemberAction, str | None, tuple[str, str, bool] | None]


def _no_campaign(name: str, ids: Sequence[str]) -> tuple[str, str]:
    """The refusal of a Campaign Name that matches no Campaign, or several."""
    if not ids:
        return "UNKNOWN_CAMPAIGN", f"no Campaign is named {name!r}"
    return "AMBIGUOUS_CAMPAIGN", (
        f"{len(ids)} Campaigns are named {name!r} ({', '.join(ids)}); map the name to one "
        "Campaign Id in the mapping's campaign_members.campaigns"
    )


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _stamp_ms(stamp: str) -> int:
    moment = parse_sf_datetime(stamp)
    assert moment is not None, f"not a Salesforce datetime: {stamp!r}"
    return _epoch_ms(moment)


class SalesforceConnector:
    """A Salesforce org as a closedloop CRM (see the module docstring for the call budget)."""

    # Lead status and deal stage changes from field history, pulled before current values.
    history_streams = (HISTORY_STREAM,)
    # Every stream pull_changes accepts (pipelines skip the ones a CRM does not have).
    change_streams = tuple(stream_names())

    def __init__(
        self,
        connection_name: str,
        settings: SalesforceSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = connection_name
        self.settings = settings
        self.client = SalesforceClient(settings, sleep=sleep)
        self.last_rejections: list[RecordRejected] = []
        # Lead and Contact fields (all, and those the integration user may update): described
        # once, on the first person-field read or update.
        self._person_schema: tuple[dict[str, set[str]], dict[str, set[str]]] | None = None

    def include_reason_fields(self, names: Sequence[str]) -> None:
        """Also pull these Lead fields (a mapping's ``lifecycle.reason_field``) with each Lead
        and from field history, so a reason named only in the mapping is not lost."""
        wanted = tuple(dict.fromkeys((*self.settings.lead_reason_fields, *names)))
        if wanted != self.settings.lead_reason_fields:
            self.settings = self.settings.model_copy(update={"lead_reason_fields": wanted})
            self.client.settings = self.settings

    @property
    def api_calls(self) -> int:
        """API calls this connector has made (for run records and benchmarks)."""
        return self.client.api_calls

    def close(self) -> None:
        """Release the HTTP connections."""
        self.client.close()

    def describe_fields(self, objects: Iterable[str]) -> dict[str, list[dict[str, Any]] | None]:
        """The org's own fields of ``objects`` (describe; see ``schema``), for mapping checks."""
        return describe_fields(self.client, objects)

    # ------------------------------------------------------------------------------ check

    def check(self, *, campaign_members: bool = False) -> list[CheckResult]:
        """Credentials, API version, object access, the Task external-id field, the budget
        (``campaign_members``: also the access campaign member sync needs)."""
        settings = self.settings
        connection_remedy = (
            f"check instance_url ({settings.instance_url}), ca_bundle and that this host can "
            "reach Salesforce over HTTPS"
        )
        try:
            versions = self.client.versions(budgeted=False)
        except AuthError as exc:
            return [self._refused(exc)]
        except ClosedloopError as exc:
            return [CheckResult("connection", False, str(exc), connection_remedy)]
        if settings.api_version not in versions:
            newest = max(versions, key=float, default="?")
            return [
                CheckResult(
                    "api version",
                    False,
                    f"v{settings.api_version} is not served by this org",
                    f"set api_version to one the org serves, e.g. '{newest}'",
                )
            ]
        try:
            limits = self.client.call("GET", "limits", budgeted=False)
        except AuthError as exc:
            return [self._refused(exc)]
        except ClosedloopError as exc:
            return [CheckResult("connection", False, str(exc), connection_remedy)]
        results = [
            CheckResult("credentials", True, f"logged in with {settings.auth.method} auth"),
            CheckResult("api version", True, f"v{settings.api_version} served"),
        ]
        results.extend(self._check_objects(campaign_members=campaign_members))
        results.append(self._check_key_field())
        results.append(check_history(self.client))
        results.append(self._check_budget(limits))
        return results

    def _refused(self, exc: AuthError) -> CheckResult:
        """The failed credentials check: Salesforce's answer, and the remedy (once)."""
        remedy = remedy_for(self.settings)
        return CheckResult("credentials", False, str(exc).removesuffix(f"; {remedy}"), remedy)

    def _check_objects(self, *, campaign_members: bool) -> list[CheckResult]:
        try:
            described = self.client.call("GET", "sobjects", budgeted=False)
        except ClosedloopError as exc:
            return [CheckResult("object access", False, str(exc), "give the user View Setup")]
        flags = {o.get("name"): o for o in described.get("sobjects", []) if isinstance(o, dict)}
        needs = dict(_ACCESS) | (_MEMBER_ACCESS if campaign_members else {})
        needs["Lead" if self.settings.create_people_as == "lead" else "Contact"] = (
            "queryable",
            "createable",
        )
        results = []
        for sobject, wanted in needs.items():
            info = flags.get(sobject)
            missing = [flag for flag in wanted if not (info and info.get(flag))]
            if missing:
                verbs = ", ".join(f.removesuffix("able").replace("queri", "read") for f in missing)
                results.append(
                    CheckResult(
                        f"access to {sobject}",
                        False,
                        f"the integration user cannot {verbs} {sobject}",
                        f"grant the integration user's profile or a permission set "
                        f"{', '.join(missing)} access on {sobject}",
                    )
                )
        if not results:
            writes = [name for name, wanted in needs.items() if "createable" in wanted]
            reads = [name for name in needs if name not in writes]
            detail = f"read {', '.join(reads)}; write {', '.join(writes)}"
            results.append(CheckResult("object access", True, detail))
        return results

    def _check_key_field(self) -> CheckResult:
        name = self.settings.task_external_id_field
        create = (
            f"Create a Text(255) field {name} on Task (Setup > Object Manager > Activity > "
            "Fields) with External ID and Unique checked, and give the integration user edit "
            "access to it"
        )
        try:
            describe = self.client.call("GET", "sobjects/Task/describe", budgeted=False)
        except ClosedloopError as exc:
            return CheckResult("touch key field", False, str(exc), create)
        field = next(
            (f for f in describe.get("fields", []) if str(f.get("name")).lower() == name.lower()),
            None,
        )
        if field is None:
            return CheckResult("touch key field", False, f"Task has no field {name}", create)
        problems = []
        if field.get("type") != "string":
            problems.append(f"is of type {field.get('type')}, not Text")
        if not field.get("externalId"):
            problems.append("is not marked External ID")
        if not field.get("unique"):
            problems.append("is not marked Unique")
        if not (field.get("createable") and field.get("updateable")):
            problems.append("is read-only for the integration user")
        if problems:
            return CheckResult(
                "touch key field",
                False,
                f"Task.{name} {', '.join(problems)}",
                f"Edit Task.{name}: Text(255) with External ID and Unique checked, editable by "
                "the integration user",
            )
        return CheckResult("touch key field", True, f"Task.{name}: external id, unique")

    def _check_budget(self, limits: Any) -> CheckResult:
        daily = limits.get("DailyApiRequests", {}) if isinstance(limits, dict) else {}
        total = int(daily.get("Max") or 0)
        used = total - int(daily.get("Remaining") or 0)
        share = self.settings.daily_budget_share
        allowed = int(total * share)
        detail = f"{used:,} of {total:,} daily API calls used; closedloop may reach {allowed:,}"
        if total and used >= allowed:
            return CheckResult(
                "api budget",
                False,
                detail,
                "wait for the rolling 24 h allocation to free up, or raise daily_budget_share",
            )
        return CheckResult("api budget", True, detail)

    # ------------------------------------------------------------------------------ identity

    def resolve_people(self, emails: Sequence[str]) -> dict[str, Person]:
        """Find the Lead or Contact behind each email (lower-cased); absent emails are omitted."""
        wanted = list(dict.fromkeys(e for e in map(normalize_email, emails) if e))
        if not wanted:
            return {}
        limit = self.settings.max_soql_chars
        queries = [("Lead", q) for q in in_list_queries(LEAD_LOOKUP, wanted, limit)]
        queries += [("Contact", q) for q in in_list_queries(CONTACT_LOOKUP, wanted, limit)]
        rows = query_each(self.client, [q for _, q in queries])
        wanted_set = set(wanted)
        candidates: dict[str, list[Candidate]] = {}
        for (sobject, _), found in zip(queries, rows, strict=True):
            for row in found:
                for candidate in person_candidates(self.name, sobject, row):
                    if candidate.email in wanted_set:
                        candidates.setdefault(candidate.email, []).append(candidate)
        rule = self.settings.duplicate_rule
        return {email: choose(found, rule) for email, found in candidates.items()}

    def create_people(
        self, people: Sequence[Person], *, assignment: str | None = None
    ) -> list[Person]:
        """Create Leads (or Contacts) for people not in the CRM; returns them with their ids.

        People Salesforce refuses (a duplicate rule, a bad value) are left out of the result
        and listed in ``last_rejections`` as ``RecordRejected`` keyed by email. ``assignment``
        is sent as the ``Sforce-Auto-Assign`` header of the creates (TRUE, FALSE or an
        AssignmentRule Id; ``owners``); None sends none (Salesforce's default).
        """
        headers = {AUTO_ASSIGN: assignment} if assignment else None
        self.last_rejections = []
        todo = [p for p in people if normalize_email(p.email)]
        for person in people:
            if not normalize_email(person.email):
                self.last_rejections.append(
                    RecordRejected("a person needs an email to be created", code="NO_EMAIL")
                )
        records = [new_person_record(p, self.settings) for p in todo]
        kind = PersonKind.LEAD if self.settings.create_people_as == "lead" else PersonKind.CONTACT
        created: list[Person] = []
        pairs = list(zip(todo, records, strict=True))
        groups = [("create", chunk) for chunk in chunks(pairs, COLLECTION_SIZE)]

        def subrequest(_verb: str, chunk: Sequence[tuple[Person, dict[str, Any]]], ref: str) -> Any:
            body = {"allOrNone": False, "records": [r for _, r in chunk]}
            return self.client.subrequest("POST", "composite/sobjects", ref, body, headers=headers)

        # Never repeated after a transient failure (it could create twice); records refused for
        # a row lock saved nothing, so only those are sent again.
        saves = save_all(self.client, groups, subrequest, repeatable=False)
        failed = next((s for outcomes in saves for s in outcomes if s.get(RETRYABLE)), None)
        if failed is not None:
            # A collection of creates failed on the server: whether any of it was saved is
            # unknown, so the caller looks the people up again before creating any.
            code, message = errors_text(failed.get("errors"))
            raise Transient(f"Salesforce create of people failed on the server: {code}: {message}")
        for (_, chunk), outcomes in zip(groups, saves, strict=True):
            for (person, record), outcome in zip(chunk, outcomes, strict=True):
                email = normalize_email(person.email)
                if outcome.get("success"):
                    created.append(
                        Person(
                            source=self.name,
                            external_id=str(outcome["id"]),
                            kind=kind,
                            email=email,
                            first_name=record.get("FirstName"),
                            last_name=record.get("LastName"),
                            company=record.get("Company"),
                            account_id=record.get("AccountId"),
                            lead_source=record.get("LeadSource"),
                            owner_id=record.get("OwnerId"),
                        )
                    )
                else:
                    code, message = errors_text(outcome.get("errors"))
                    self.last_rejections.append(
                        RecordRejected(
                            message, code=code, key=email, retryable=is_retryable(outcome)
                        )
                    )
        return created

    def _person_fields(self) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        if self._person_schema is None:
            described = self.describe_fields(["Lead", "Contact"])
            known = {o: {str(r["name"]) for r in rows or []} for o, rows in described.items()}
            writable = {
                o: {str(r["name"]) for r in rows or [] if r.get("updateable")}
                for o, rows in described.items()
            }
            self._person_schema = (known, writable)
        return self._person_schema

    def read_person_fields(
        self, people: Sequence[Person], fields: Sequence[str], history: Sequence[str] = ()
    ) -> dict[str, PersonSnapshot]:
        """The current ``fields`` of these Leads and Contacts by id, with the field-history
        time of each ``history`` field where the org tracks it (``personfields``)."""
        kinds = {p.external_id: p.kind for p in people if p.external_id}
        if not kinds:
            return {}
        known, _ = self._person_fields()
        return read_fields(
            self.client, kinds, fields, history, known=known,
            max_chars=self.settings.max_soql_chars,
        )  # fmt: skip

    def update_people(self, updates: Sequence[PersonUpdate]) -> list[RecordRejected]:
        """Write field values on existing Leads and Contacts, 1,000 per counted call; returns
        the refusals keyed by e-mail (a row still locked: ``retryable``)."""
        _, writable = self._person_fields()
        _, refused, _ = update_fields(self.client, updates, writable)
        return refused

    def opt_out(self, people: Sequence[Person], subscription: str = "all") -> list[OptOutResult]:
        """Set ``HasOptedOutOfEmail`` on the people's Leads and Contacts that lack it; never
        clears it (``owners.opt_out``). ``subscription`` must be "all": Salesforce has one."""
        if subscription != "all":
            raise ConfigError("Salesforce has one email opt-out: opt_out.subscription must be all")
        return opt_out(self.client, people, self.settings.max_soql_chars)

    def check_owner(self, kind: str, value: str) -> CheckResult:
        """Whether the mapping's owner of created Leads exists (``owners.check_owner``)."""
        return check_owner(self.client, kind, value)

    # ------------------------------------------------------------------------------ touches

    def _key_field(self, touch: RenderedTouch) -> str:
        if touch.target == "Task":
            return self.settings.task_external_id_field
        for name, value in touch.payload.items():
            if value == touch.key and name.endswith("__c"):
                return name
        return self.settings.task_external_id_field

    def push_touches(self, touches: Sequence[RenderedTouch]) -> list[DeliveryResult]:
        """Upsert rendered touches on their external-id field; one result per touch, in order."""
        # One write per key (a key twice in one collection is DUPLICATE_EXTERNAL_ID); the last
        # rendering of a key wins, and every position gets that write's result.
        latest: dict[str, RenderedTouch] = {}
        for touch in touches:
            latest[touch.key] = touch
        by_target: dict[tuple[str, str], list[RenderedTouch]] = {}
        for touch in latest.values():
            by_target.setdefault((touch.target, self._key_field(touch)), []).append(touch)
        groups = [
            (key, chunk)
            for key, members in by_target.items()
            for chunk in chunks(members, COLLECTION_SIZE)
        ]

        def upsert(key: tuple[str, str], chunk: Sequence[RenderedTouch], ref: str) -> Any:
            target, key_field = key
            records = []
            for touch in chunk:
                record = {name: _wire(value) for name, value in touch.payload.items()}
                record[key_field] = touch.key
                record["attributes"] = {"type": target}
                records.append(record)
            body = {"allOrNone": False, "records": records}
            return self.client.subrequest(
                "PATCH", f"composite/sobjects/{target}/{key_field}", ref, body
            )

        def results(
            key: tuple[str, str], answer: Mapping[str, Any], chunk: Sequence[RenderedTouch]
        ) -> list[Mapping[str, Any]]:
            self._raise_for_collection(answer, *key)
            return save_results(answer, len(chunk))

        saves = save_all(self.client, groups, upsert, results_of=results)
        outcome: dict[str, DeliveryResult] = {}
        for (_, chunk), saved_chunk in zip(groups, saves, strict=True):
            for touch, saved in zip(chunk, saved_chunk, strict=True):
                outcome[touch.key] = self._delivery(touch.key, saved)
        return [outcome[t.key] for t in touches]

    def _raise_for_collection(self, answer: Mapping[str, Any], target: str, key_field: str) -> None:
        """A whole collection refused for a configuration reason is a ConfigError, not 200
        dead letters (a missing external-id field or object, a field the org lacks)."""
        if int(answer.get("httpStatusCode", 500)) < 300:
            return
        code, message = errors_text(answer.get("body"))
        if code in ("INVALID_FIELD", "INVALID_TYPE", "NOT_FOUND"):
            remedy = ""
            if key_field.lower() in message.lower():
                remedy = (
                    f"; Create a Text(255) field {key_field} on {target} with External ID and "
                    "Unique checked"
                )
            raise ConfigError(f"Salesforce refused the {target} upsert: {code}: {message}{remedy}")

    def _delivery(self, key: str, saved: Mapping[str, Any]) -> DeliveryResult:
        if saved.get("success"):
            return DeliveryResult(
                key=key,
                sink=self.name,
                ok=True,
                crm_id=str(saved.get("id")),
                created=bool(saved.get("created")),
            )
        code, message = errors_text(saved.get("errors"))
        return DeliveryResult(
            key=key,
            sink=self.name,
            ok=False,
            error_code=code,
            error_message=message,
            retryable=is_retryable(saved),
        )

    # ------------------------------------------------------------------------------ campaigns

    def sync_campaign_members(
        self,
        items: Sequence[MemberItem],
        status_order: Sequence[str],
        campaign_ids: dict[str, str] | None = None,
    ) -> list[MemberResult]:
        """Make each item's person a member of its Campaign, raising (never lowering) the status
        along ``status_order``; one result per item, in order.

        ``campaign_ids`` caches Campaign Name (case-folded) -> Id across calls: pass the same
        dict for a whole run. Refusals (no such Campaign, a status the Campaign lacks, ...) are
        results with Salesforce's code and message, never exceptions.
        """
        ranks = rank_of(status_order)
        cache = {} if campaign_ids is None else campaign_ids
        refused: dict[int, tuple[str, str]] = {}
        valid: list[int] = []
        for index, item in enumerate(items):
            if person_field(item.person_id) is None:
                refused[index] = ("INVALID_PERSON", f"{item.person_id!r} is not a Lead or Contact")
            elif item.status.casefold() not in ranks:
                refused[index] = ("UNKNOWN_STATUS", f"{item.status!r} is not in the status order")
            elif not item.campaign.strip():
                refused[index] = ("UNKNOWN_CAMPAIGN", "the touch names no Campaign")
            else:
                valid.append(index)
        names = {
            items[i].campaign.strip().casefold(): items[i].campaign.strip()
            for i in valid
            if not items[i].by_id and items[i].campaign.strip().casefold() not in cache
        }
        existing, found = self._read_members(
            [items[i] for i in valid], cache, sorted(names.values())
        )
        named: dict[str, list[str]] = {}
        for row in found:
            named.setdefault(str(row.get("Name") or "").casefold(), []).append(str(row["Id"]))
        cache.update((name, ids[0]) for name, ids in named.items() if len(ids) == 1)
        wanted: dict[tuple[str, str], Membership] = {}
        for index in valid:
            item = items[index]
            folded = item.campaign.strip().casefold()
            campaign_id = item.campaign.strip() if item.by_id else cache.get(folded)
            if campaign_id is None:
                refused[index] = _no_campaign(item.campaign, named.get(folded, []))
                continue
            pair = (short_id(campaign_id), short_id(item.person_id))
            member = wanted.setdefault(pair, Membership(campaign_id, item.person_id, item.status))
            if ranks[item.status.casefold()] > ranks[member.status.casefold()]:
                member.status = item.status
            member.items.append(index)
        outcomes = self._settle(list(wanted.values()), existing, ranks, cache)
        results: dict[int, MemberResult] = {
            index: MemberResult(items[index].key, False, error_code=code, error_message=message)
            for index, (code, message) in refused.items()
        }
        for member in wanted.values():
            action, member_id, error = outcomes[id(member)]
            for index in member.items:
                results[index] = (
                    MemberResult(items[index].key, True, member_id, action)
                    if error is None
                    else MemberResult(items[index].key, False, error_code=error[0],
                                      error_message=error[1], retryable=error[2])
                )  # fmt: skip
        return [results[index] for index in range(len(items))]

    def _settle(
        self,
        wanted: list[Membership],
        existing: Mapping[tuple[str, str], tuple[str, str | None]],
        ranks: Mapping[str, int],
        cache: Mapping[str, str],
    ) -> dict[int, _Outcome]:
        """Create the missing members and raise the statuses that rank higher; the outcome of
        every membership by ``id(membership)``."""
        creates, updates, unchanged = plan(wanted, existing, ranks)
        outcomes: dict[int, _Outcome] = {id(m): ("unchanged", m.member_id, None) for m in unchanged}
        raced = self._write_members(creates, updates, outcomes)
        if not raced:
            return outcomes
        # Someone added these people between our read and our create: read back, then settle.
        again, _ = self._read_members(
            [MemberItem("", m.campaign_id, m.person_id, m.status, by_id=True) for m in raced],
            cache,
            [],
        )
        late, updates, unchanged = plan(raced, again, ranks)
        outcomes.update((id(m), ("unchanged", m.member_id, None)) for m in unchanged)
        for member in late:  # removed again before we looked: report it; a replay settles it
            message = "Already a campaign member (and not found when read back)"
            outcomes[id(member)] = ("unchanged", None, ("DUPLICATE_VALUE", message, False))
        self._write_members([], updates, outcomes)
        return outcomes

    def _read_members(
        self, items: Sequence[MemberItem], cache: Mapping[str, str], names: Sequence[str]
    ) -> tuple[dict[tuple[str, str], tuple[str, str | None]], list[dict[str, Any]]]:
        """Existing memberships of the items' people in their Campaigns ((campaign, person)
        short ids -> (member id, status)) and the Campaign rows of ``names``, in one go."""
        by_id: set[str] = set()
        by_name: set[str] = set()
        people: dict[str, set[str]] = {"LeadId": set(), "ContactId": set()}
        for item in items:
            campaign = item.campaign.strip()
            known = campaign if item.by_id else cache.get(campaign.casefold())
            if known is not None:
                by_id.add(known)
            else:
                by_name.add(campaign)
            people[person_field(item.person_id) or "LeadId"].add(item.person_id)
        limit = self.settings.max_soql_chars
        lists = {k: sorted(v) for k, v in people.items()}
        lookups = in_list_queries(CAMPAIGN_LOOKUP, names, limit) if names else []
        queries = [
            *lookups,
            *(member_queries("CampaignId", by_id, lists, limit) if by_id else []),
            *(member_queries("Campaign.Name", by_name, lists, limit) if by_name else []),
        ]
        rows = query_each(self.client, queries) if queries else []
        existing: dict[tuple[str, str], tuple[str, str | None]] = {}
        for found in rows[len(lookups) :]:
            for row in found:
                person = row.get("LeadId") or row.get("ContactId")
                if person and row.get("CampaignId"):
                    pair = (short_id(str(row["CampaignId"])), short_id(str(person)))
                    existing[pair] = (str(row["Id"]), row.get("Status"))
        campaigns = [row for found in rows[: len(lookups)] for row in found]
        return existing, campaigns

    def _write_members(
        self,
        creates: Sequence[Membership],
        updates: Sequence[Membership],
        outcomes: dict[int, _Outcome],
    ) -> list[Membership]:
        """Create and update members, five collections to a request; fills ``outcomes``
        (by ``id(membership)``) and returns the creates Salesforce found already done."""
        work: list[tuple[str, Sequence[Membership]]] = [
            *(("create", chunk) for chunk in chunks(creates, COLLECTION_SIZE)),
            *(("update", chunk) for chunk in chunks(updates, COLLECTION_SIZE)),
        ]

        def subrequest(verb: str, chunk: Sequence[Membership], ref: str) -> Any:
            records = [
                {"attributes": {"type": "CampaignMember"}, "CampaignId": m.campaign_id,
                 person_field(m.person_id) or "LeadId": m.person_id, "Status": m.status}
                if verb == "create"
                else {"attributes": {"type": "CampaignMember"}, "Id": m.member_id,
                      "Status": m.status}
                for m in chunk
            ]  # fmt: skip
            method = "POST" if verb == "create" else "PATCH"
            body = {"allOrNone": False, "records": records}
            return self.client.subrequest(method, "composite/sobjects", ref, body)

        # Repeatable: a repeated create meets the one-member rule (DUPLICATE_VALUE, settled
        # below as a race), a repeated update writes the same status again.
        raced: list[Membership] = []
        for (verb, chunk), saves in zip(work, save_all(self.client, work, subrequest), strict=True):
            for member, saved in zip(chunk, saves, strict=True):
                if saved.get("success"):
                    action: MemberAction = "created" if verb == "create" else "updated"
                    member_id = str(saved.get("id") or member.member_id)
                    outcomes[id(member)] = (action, member_id, None)
                    continue
                code, message = errors_text(saved.get("errors"))
                if verb == "create" and code == "DUPLICATE_VALUE":
                    raced.append(member)
                else:
                    outcomes[id(member)] = ("unchanged", None, (code, message, is_retryable(saved)))
        return raced

    # ------------------------------------------------------------------------------ changes

    def pull_changes(self, stream: str, cursor: Cursor, until: datetime) -> Iterator[Page[Any]]:
        """Yield records of ``stream`` changed since ``cursor`` up to ``until`` (deletions too).

        The cursor value is the newest SystemModstamp read (UTC, ms). A pull starts
        ``reread_lag_seconds`` before it, for records whose transaction committed after their
        stamp; ``boundary_keys`` are the versions (id@stamp) already yielded inside that lag,
        which the re-read drops (``connectors.lagwindow``).
        """
        if stream == HISTORY_STREAM:  # field history: its own key (connectors.salesforce.history)
            yield from pull_history(self.client, self.name, cursor, until)
            return
        spec = stream_spec(stream, self.settings)
        cursor_ms: int | None = None
        lower: str | None = None
        if cursor.value is not None:
            start = parse_sf_datetime(cursor.value)
            if start is None:
                raise ConfigError(f"cursor value {cursor.value!r} is not a Salesforce datetime")
            cursor = Cursor(sf_datetime(start), cursor.boundary_keys)
            cursor_ms = _epoch_ms(start)
        lag_ms = self.settings.reread_lag_seconds * 1000
        seen = SeenVersions(cursor.boundary_keys, cursor_ms, lag_ms)
        if cursor_ms is not None:
            lower = sf_datetime(datetime.fromtimestamp(seen.start(cursor_ms) / 1000, UTC))
        first_pages = [(obj, self._first_page(obj, lower, until)) for obj in spec.objects]
        total = sum(int(page.get("totalSize") or 0) for _, page in first_pages)
        if total > self.settings.bulk_threshold:
            yield from self._pull_bulk([obj for obj, _ in first_pages], cursor, lower, until, seen)
            return
        streams = [self._rest_rows(obj, page) for obj, page in first_pages]
        merged = heapq.merge(*streams, key=lambda item: item[0])
        yield from self._pages(merged, cursor, seen)

    def _where(self, lower: str | None, until: datetime) -> str:
        parts = []
        if lower is not None:
            start = parse_sf_datetime(lower)
            assert start is not None
            parts.append(f"{REPLICATION_KEY} >= {sf_datetime(start)}")
        parts.append(f"{REPLICATION_KEY} <= {sf_datetime(until)}")
        return " AND ".join(parts)

    def _soql(self, obj: ObjectSpec, lower: str | None, until: datetime, *, order: bool) -> str:
        # Field and object names come from our own stream specs, values are formatted dates.
        where = self._where(lower, until)
        soql = f"SELECT {', '.join(obj.fields)} FROM {obj.sobject} WHERE {where}"  # noqa: S608
        return soql + (f" ORDER BY {REPLICATION_KEY}, Id" if order else "")

    def _first_page(self, obj: ObjectSpec, lower: str | None, until: datetime) -> dict[str, Any]:
        page = self.client.call(
            "GET", "queryAll", params={"q": self._soql(obj, lower, until, order=True)}
        )
        return dict(page) if isinstance(page, Mapping) else {}

    def _rest_rows(self, obj: ObjectSpec, page: dict[str, Any]) -> Iterator[_Row]:
        """(stamp as the cursor writes it, stamp in epoch ms, id, object, row) per record."""
        while True:
            for row in page.get("records") or []:
                stamp = parse_sf_datetime(row.get(REPLICATION_KEY))
                assert stamp is not None
                yield sf_datetime(stamp), _epoch_ms(stamp), str(row["Id"]), obj, row
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return
            page = self.client.call("GET", self.client.relative(str(page["nextRecordsUrl"])))

    def _pages(
        self,
        rows: Iterator[_Row],
        cursor: Cursor,
        seen: SeenVersions,
    ) -> Iterator[Page[Any]]:
        """Pages of records in SystemModstamp order, each with the cursor after its last one."""
        newest = cursor.value
        batch: list[Any] = []
        for stamp, ms, record_id, obj, row in rows:
            if not seen.first_sight(record_id, ms):
                continue
            batch.append(obj.build(self.name, row))
            if newest is None or stamp > newest:
                newest = stamp
            if len(batch) >= PAGE_SIZE:
                yield Page(batch, self._cursor(newest, seen))
                batch = []
        if batch:
            yield Page(batch, self._cursor(newest, seen))

    @staticmethod
    def _cursor(newest: str | None, seen: SeenVersions) -> Cursor:
        if newest is None:  # pragma: no cover - a page always holds a record with a stamp
            return Cursor()
        return Cursor(newest, seen.keys_until(_stamp_ms(newest)))

    def _pull_bulk(
        self,
        objects: Sequence[ObjectSpec],
        cursor: Cursor,
        lower: str | None,
        until: datetime,
        seen: SeenVersions,
    ) -> Iterator[Page[Any]]:
        """A Bulk API 2.0 pull: result order is not guaranteed, so pages carry the incoming
        cursor and only a final (empty) page moves it, once every row has been yielded."""
        best: str | None = cursor.value
        for obj in objects:
            soql = self._soql(obj, lower, until, order=False)
            for rows in self.client.bulk_query(obj.sobject, soql, include_deleted=True):
                batch: list[Any] = []
                for row in rows:
                    stamp_at = parse_sf_datetime(row.get(REPLICATION_KEY))
                    assert stamp_at is not None
                    stamp = sf_datetime(stamp_at)
                    if not seen.first_sight(str(row["Id"]), _epoch_ms(stamp_at)):
                        continue
                    batch.append(obj.build(self.name, row))
                    if best is None or stamp > best:
                        best = stamp
                    if len(batch) >= PAGE_SIZE:
                        yield Page(batch, cursor)
                        batch = []
                if batch:
                    yield Page(batch, cursor)
        final = self._cursor(best, seen)
        if best is not None and final != cursor:
            yield Page([], final)
