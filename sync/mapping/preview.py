"""Preview a mapping: render sample touches into exact CRM payloads and plan person writes.

Nothing here talks to a CRM. Samples are generated deterministically from a seed (a few people,
some already in the CRM with their own values, every touch kind, a test campaign that filters
out, a burst of page views that digests) or read from a JSONL file, one object per line::

    {"source": "marketo", "source_id": "1", "kind": "form_fill",
     "occurred_at": "2024-05-03T14:00:00Z", "email": "ann@example.com",
     "campaign": "Q2 Webinar", "channel": "web", "asset": "Demo request",
     "attributes": {}, "person": {"first_name": "Ann", "score": 70},
     "crm_person": {"external_id": "00Q...", "kind": "lead", "first_name": "Anne"}}

``person`` is the source's view of the person, ``crm_person`` what the CRM holds (omit it for
someone the CRM does not know). The plan lists creates, updates, held people, filtered touches,
digests, and for each person field whether it would be overwritten and why.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.base import Person, PersonKind, Touch, TouchKind
from connectors.errors import ConfigError, ConfigIssue, MappingError
from sync.mapping.compile import CompiledMapping
from sync.mapping.digest import is_digest
from sync.mapping.people import PersonPlan

__all__ = ["Preview", "SampleCase", "build_preview", "read_samples", "sample_cases"]


@dataclass(frozen=True)
class SampleCase:
    """One touch with the source's and the CRM's view of its person."""

    touch: Touch
    person: Person
    crm_person: Person | None


@dataclass
class Preview:
    """The plan a mapping would carry out for a set of touches, before anything is written."""

    mapping: str
    crm: str
    touches: list[dict[str, Any]] = field(default_factory=list)
    people: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        """Counts per touch outcome and person action."""
        out: dict[str, int] = {}
        for item in self.touches:
            out[f"touches_{item['outcome']}"] = out.get(f"touches_{item['outcome']}", 0) + 1
        for item in self.people:
            out[f"people_{item['action']}"] = out.get(f"people_{item['action']}", 0) + 1
        out["crm_fields_overwritten"] = sum(
            1 for p in self.people for d in p["fields"] if d["action"] == "write_crm"
            and d["crm_value"] is not None
        )  # fmt: skip
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (used by ``--json`` and the golden tests)."""
        return {
            "mapping": self.mapping,
            "crm": self.crm,
            "summary": self.summary(),
            "people": self.people,
            "touches": self.touches,
        }

    def to_text(self) -> str:
        """The plan for a human."""
        lines = [f"Preview of mapping {self.mapping} ({self.crm}); nothing has been written.", ""]
        lines.append(f"People ({len(self.people)}):")
        for p in self.people:
            head = f"  {p['action'].upper():7} {p['email']}"
            if p["target"]:
                head += f"  ({p['target']}{' ' + p['crm_id'] if p['crm_id'] else ''})"
            lines.append(head)
            if "mql" in p:
                lines.append(f"          {p['mql']}")
            if p["action"] == "create":
                lines.append(f"          fields: {_j(p['crm_updates'])}")
            for d in p["fields"]:
                if d["action"] == "write_crm" and p["action"] != "create":
                    verb = "FILL" if d["crm_value"] is None else "OVERWRITE"
                    lines.append(
                        f"          {verb} {d['crm_field']}: {_j(d['crm_value'])} -> "
                        f"{_j(d['source_value'])}  ({d['rule']}: {d['reason']})"
                    )
                elif d["action"] == "write_source":
                    lines.append(
                        f"          TO SOURCE {d['source_field']}: {_j(d['source_value'])} -> "
                        f"{_j(d['crm_value'])}  ({d['rule']}: {d['reason']})"
                    )
                elif p["action"] != "create":
                    lines.append(f"          keep {d['crm_field']}  ({d['rule']}: {d['reason']})")
        lines += ["", f"Touches ({len(self.touches)}):"]
        for t in self.touches:
            head = f"  {t['outcome'].upper():8} {t['key']}  {t['kind']}"
            if t["outcome"] == "upsert":
                lines.append(f"{head} -> {t['target']}")
                lines.append(f"           {_j(t['payload'])}")
            else:
                lines.append(f"{head}: {t['detail']}")
        lines += ["", "Summary: " + ", ".join(f"{k}={v}" for k, v in self.summary().items())]
        return "\n".join(lines)


def _j(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def build_preview(mapping: CompiledMapping, cases: Sequence[SampleCase]) -> Preview:
    """Run ``cases`` through ``mapping`` (filters, digests, render, person plans)."""
    preview = Preview(mapping.name, mapping.crm)
    by_email: dict[str, SampleCase] = {}
    for case in cases:
        by_email.setdefault(_email(case.touch), case)
    plans, waiting = _plan_people(mapping, by_email, cases, preview)
    accepted: list[Touch] = []
    for case in cases:
        crm_person = by_email[_email(case.touch)].crm_person
        if not mapping.accepts(case.touch, crm_person):
            preview.touches.append(_touch_entry(case.touch, "filtered", "filtered out"))
        else:
            accepted.append(case.touch)
    digested = mapping.digest(accepted)
    for touch in digested:
        if is_digest(touch):
            for key in touch.raw.get("touch_keys", []):
                preview.touches.append(
                    {"key": key, "kind": touch.kind.value, "outcome": "digested",
                     "detail": f"rolled into {touch.key}"}
                )  # fmt: skip
        email = _email(touch)
        person_plan = plans.get(email)
        owner = by_email.get(email)
        crm_person = owner.crm_person if owner else None
        if email in waiting:
            detail = f"held until MQL (lifecycle.mql_gate): {waiting[email]}"
            preview.touches.append(_touch_entry(touch, "held", detail))
            continue
        if crm_person is None and (person_plan is None or person_plan.action == "hold"):
            preview.touches.append(_touch_entry(touch, "held", "person not in the CRM (hold)"))
            continue
        try:
            rendered = mapping.render(touch, crm_person)
        except MappingError as exc:
            preview.touches.append(_touch_entry(touch, "rejected", str(exc)))
            continue
        if rendered is None:
            preview.touches.append(_touch_entry(touch, "filtered", "filtered out"))
            continue
        entry = _touch_entry(touch, "upsert", "")
        entry["target"] = rendered.target
        entry["payload"] = dict(rendered.payload)
        if crm_person is None and person_plan is not None:
            entry["detail"] = f"linked to the new {person_plan.target} once created"
        preview.touches.append(entry)
    preview.touches.sort(key=lambda t: (t["outcome"] != "upsert", t["key"]))
    return preview


def _plan_people(
    mapping: CompiledMapping,
    by_email: Mapping[str, SampleCase],
    cases: Sequence[SampleCase],
    preview: Preview,
) -> tuple[dict[str, PersonPlan], dict[str, str]]:
    """Each person's plan (added to ``preview``, with the MQL verdict when the mapping defines
    one), and the people whose touches wait until MQL (``lifecycle.mql_gate``) with why."""
    plans: dict[str, PersonPlan] = {}
    waiting: dict[str, str] = {}
    lifecycle = mapping.lifecycle
    for email, case in sorted(by_email.items()):
        plan = mapping.plan_person(case.person, case.crm_person)
        entry = _person_entry(email, plan)
        if lifecycle.mql is not None:
            history = [c.touch for c in cases if _email(c.touch) == email]
            verdict = lifecycle.mql_verdict(case.crm_person or case.person, history)
            entry["mql"] = verdict.why
            gated = lifecycle.gates("push_touches") or (
                lifecycle.gates("create_people") and plan.action == "create"
            )
            if gated and not verdict.qualified:
                waiting[email] = verdict.why
                if plan.action == "create":
                    entry["action"] = "hold"
        plans[email] = plan
        preview.people.append(entry)
    return plans, waiting


def _email(touch: Touch) -> str:
    return (touch.email or f"ref:{touch.person_ref}").strip().lower()


def _touch_entry(touch: Touch, outcome: str, detail: str) -> dict[str, Any]:
    return {"key": touch.key, "kind": touch.kind.value, "outcome": outcome, "detail": detail}


def _person_entry(email: str, plan: PersonPlan) -> dict[str, Any]:
    return {
        "email": email,
        "action": plan.action,
        "target": plan.target,
        "crm_id": plan.crm_id,
        "crm_updates": dict(plan.crm_updates),
        "source_updates": dict(plan.source_updates),
        "fields": [
            {
                "crm_field": d.crm_field, "source_field": d.source_field, "rule": d.rule,
                "action": d.action, "crm_value": d.crm_value, "source_value": d.source_value,
                "reason": d.reason,
            }
            for d in plan.decisions
        ],
    }  # fmt: skip


# --- samples -----------------------------------------------------------------------------

_BASE = datetime(2024, 5, 6, 13, 0, tzinfo=UTC)
_CAMPAIGNS = ("Q2 Webinar - Pipeline Hygiene", "Spring Newsletter", "Pricing Retargeting",
              "TEST - internal seed list", "Trade Show Boston")  # fmt: skip
_CHANNELS = ("email", "web", "webinar", "event", "ads")
_ASSETS = ("/blog/closed-loop-reporting", "/pricing", "/product/tour", "Buyer's guide (PDF)",
           "May newsletter", "Demo request form")  # fmt: skip


def _people(crm: str) -> list[tuple[Person, Person | None]]:
    lead = PersonKind.LEAD
    contact = PersonKind.CONTACT
    sf = crm == "salesforce"
    older, newer = _BASE - timedelta(days=30), _BASE - timedelta(days=1)
    rows: list[tuple[Person, Person | None]] = []
    specs = (
        ("ann.lee@northwind.example", "Ann", "Lee", "Northwind", 72, "VP Marketing", "known"),
        ("bo.chen@contoso.example", "Bo", "Chen", "Contoso", 35, "Analyst", "known-blank"),
        ("cara.diaz@fabrikam.example", "Cara", "Diaz", "Fabrikam", 88, "CTO", "contact"),
        ("dev.iyer@tailspin.example", "Dev", "Iyer", "Tailspin", 15, None, "unknown"),
    )
    for i, (email, first, last, company, score, title, state) in enumerate(specs):
        fields: dict[str, Any] = {"title": title} if title else {}
        source = Person(
            "source", f"S{i}", lead, email, first, last, company, score=score,
            lead_source="Web", updated_at=newer, fields=fields,
        )  # fmt: skip
        if state == "unknown":
            rows.append((source, None))
            continue
        crm_fields: dict[str, Any] = {}
        if state == "known":
            crm_fields = {("Title" if sf else "jobtitle"): "Marketing Director"}
        crm_id = (("00Q" if state != "contact" else "003") if sf else "") + f"{i + 1:012d}"
        crm_person = Person(
            crm, crm_id, contact if state == "contact" else lead, email,
            first if state != "known-blank" else None,
            "Lee-Smith" if state == "known" else (last if state != "known-blank" else None),
            company if state != "known-blank" else None,
            account_id=("001" if sf else "") + f"{i + 1:012d}" if state == "contact" else None,
            status="Working - Contacted" if sf else "IN_PROGRESS",
            score=40 if state == "known" else None,
            updated_at=older, fields=crm_fields,
        )  # fmt: skip
        rows.append((source, crm_person))
    return rows


def sample_cases(mapping: CompiledMapping, count: int = 20, seed: int = 7) -> list[SampleCase]:
    """``count`` deterministic touches from ``mapping.source`` over a few sample people."""
    rng = random.Random(seed)  # noqa: S311 - reproducible sample data, not cryptography
    people = _people(mapping.crm)
    kinds = list(TouchKind)
    cases: list[SampleCase] = []
    for i in range(count):
        source, crm_person = people[i % len(people)]
        # Every fifth touch is a page view by the first person, so digests show up.
        kind = TouchKind.PAGE_VIEW if i % 5 == 4 else kinds[i % len(kinds)]
        who, crm_who = people[0] if kind is TouchKind.PAGE_VIEW else (source, crm_person)
        asset = (
            rng.choice(_ASSETS)
            if kind is not TouchKind.PAGE_VIEW
            else rng.choice(
                (
                    "/blog/closed-loop-reporting",
                    "/product/tour",
                    "/docs/getting-started",
                    "/pricing",
                )
            )
        )
        attributes: dict[str, Any] = {}
        if asset.startswith("/"):
            attributes["url"] = f"https://www.example.com{asset}"
        if kind is TouchKind.FORM_FILL:
            attributes["form_fields"] = {"comments": "Please call me about pricing."}
        touch = Touch(
            source=mapping.source,
            source_id=str(100_000 + i),
            kind=kind,
            occurred_at=_BASE + timedelta(minutes=37 * i),
            email=who.email,
            campaign=rng.choice(_CAMPAIGNS),
            channel=rng.choice(_CHANNELS),
            asset=asset,
            attributes=attributes,
        )
        cases.append(SampleCase(touch, who, crm_who))
    return cases


def read_samples(path: Path, source: str) -> list[SampleCase]:
    """Cases from a JSONL file (format in the module docstring); errors name the line."""
    cases: list[SampleCase] = []
    issues: list[ConfigIssue] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            cases.append(_case(row, source))
        except (ValueError, KeyError, TypeError) as exc:
            issues.append(ConfigIssue(str(path), number, None, "", f"bad sample: {exc}"))
    if issues:
        raise ConfigError(f"{path}: bad sample lines", issues)
    return cases


def _case(row: Mapping[str, Any], source: str) -> SampleCase:
    when = datetime.fromisoformat(str(row["occurred_at"]).replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    touch = Touch(
        source=str(row.get("source", source)),
        source_id=str(row["source_id"]),
        kind=TouchKind(row["kind"]),
        occurred_at=when.astimezone(UTC),
        email=row.get("email"),
        person_ref=row.get("person_ref"),
        campaign=row.get("campaign"),
        channel=row.get("channel"),
        asset=row.get("asset"),
        attributes=dict(row.get("attributes") or {}),
        raw=dict(row.get("raw") or {}),
    )
    person = _person(row.get("person") or {}, touch.source, touch.email)
    crm_row = row.get("crm_person")
    crm_person = _person(crm_row, "crm", touch.email) if crm_row else None
    return SampleCase(touch, person, crm_person)


def _person(row: Mapping[str, Any], source: str, email: str | None) -> Person:
    updated = row.get("updated_at")
    score = row.get("score")
    return Person(
        source=source,
        external_id=str(row.get("external_id", "")),
        kind=PersonKind(row.get("kind", "lead")),
        email=row.get("email", email),
        first_name=row.get("first_name"),
        last_name=row.get("last_name"),
        company=row.get("company"),
        account_id=row.get("account_id"),
        owner_id=row.get("owner_id"),
        status=row.get("status"),
        lifecycle_stage=row.get("lifecycle_stage"),
        lead_source=row.get("lead_source"),
        score=None if score is None else float(score),
        updated_at=datetime.fromisoformat(updated.replace("Z", "+00:00")) if updated else None,
        fields=dict(row.get("fields") or {}),
    )


def cases_from(touches: Iterable[Touch]) -> list[SampleCase]:
    """Wrap bare touches (no person data) as cases, for quick previews in tests."""
    out = []
    for touch in touches:
        person = Person(touch.source, "", PersonKind.LEAD, touch.email)
        out.append(SampleCase(touch, person, None))
    return out
