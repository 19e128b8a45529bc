"""The seed generator: one integer seed -> one believable B2B company (a ``World``).

The same seed (and size and ``now``) always yields an identical world: every draw comes from one
``random.Random(seed)`` and, given ``now``, nothing reads the clock.

Time: a world is built backwards from its ``now``. Every timestamp is ``now`` minus an offset that
only the seed decides, and nothing depends on the calendar (an e-mail's name counts 30-day issues
from its campaign's start, not calendar months). So a world has exactly the same content
relative to its ``now`` whatever day ``now`` is: the same people, touches, MQLs and deals, and the
same counts inside any window measured from ``now``. ``now=None`` means today: ``world_now()``,
the start of the current UTC day. Midnight rather than the current second because the CRMs keep
some values as dates (Opportunity CloseDate, Campaign StartDate/EndDate, Lead ConvertedDate):
with ``now`` on midnight those dates sit on the same days relative to ``now`` and compare with the
timestamps around them the same way every day (attribution counts the touches before a deal's
CloseDate, for one). The emulators' store clocks start at ``world.now`` when a world is loaded
and run forward from there, so whatever clients write is stamped after every seeded record and
never after the wall clock. A pull whose window is measured back from the wall clock (up to a day
past ``world.now``) must reach ``HISTORY`` plus a day to see every activity: the starter config
of ``closedloop init``, which the demo uses too, sets ``initial_lookback_days: 200``.
``SandboxServer(now=...)`` moves the whole sandbox to another day and ``closedloop demo --now``
moves the demo with it (world, pipeline runs and report); tests that need a fixed date pass
``now`` explicitly. What the world holds, and why:

- 8 sales reps (owners), each with their own follow-up speed, so SLA reports differ per rep.
- Accounts with domains, industries and sizes; people at those accounts, ~15% of them on
  free-mail domains (gmail.com, ...) so identity resolution cannot rely on domains alone.
- People as CRM leads, contacts (some converted from leads, keeping ``converted_at``) or
  marketing-only (``crm_kind == "none"``: in the MAP, not yet in the CRM). A few people exist
  twice (``duplicate_of`` names the original): half share the original's e-mail address (the
  classic Lead + Contact duplicate; emulators keyed on e-mail merge them into the original),
  half used a personal address.
- Campaigns across channels with budgeted and actual costs, including one expensive trade show
  whose attendees are poor-fit people who never convert (the "$100k campaign that lost money").
- Six months of activities before ``now`` with a funnel: e-mails sent -> fewer opens -> fewer
  clicks, page views, form fills, webinars, events, downloads, ad clicks. Touches per person are
  heavy-tailed: most people are touched once or twice, a few many times.
- Lead scoring: when a person's score passes ``MQL_THRESHOLD`` they become an MQL (a
  ``score_change`` activity and a lifecycle status event); reps then act after hours to days
  (some breaching the 24 h SLA) and convert, recycle or disqualify (with reasons).
- Opportunities (log-normal amounts, ~25% of closed ones won) with 1-3 contact roles (one
  primary; some opportunities have none) and a stage-change history in ``status_events``.

Vocabulary shared with the emulators: ``lead_status`` uses ``LEAD_STATUSES`` (Salesforce's Lead
Status values; "" for contacts that never were leads), ``lifecycle_stage`` uses
``LIFECYCLE_STAGES`` (closedloop's own lifecycle, DOMAIN.md section 2), ``stage`` on
opportunities uses ``OPPORTUNITY_STAGES`` (Salesforce's standard StageName values). Status
events use the fields "lead_status", "lifecycle_stage" (object_type "lead", object_id a person
id) and "stage" (object_type "opportunity").
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from connectors.base import TouchKind
from connectors.errors import ConfigError
from sandbox.world import (
    World,
    WorldAccount,
    WorldActivity,
    WorldCampaign,
    WorldContactRole,
    WorldOpportunity,
    WorldPerson,
    WorldStatusEvent,
)

__all__ = [
    "CAMPAIGN_CHANNELS",
    "DEMO_PEOPLE",
    "DISQUALIFY_REASONS",
    "FREE_MAIL_DOMAINS",
    "HISTORY",
    "LEAD_STATUSES",
    "LIFECYCLE_STAGES",
    "MQL_THRESHOLD",
    "OPPORTUNITY_STAGES",
    "RECYCLE_REASONS",
    "generate",
    "people_for_size",
    "world_now",
]

DEMO_PEOPLE = 600
MQL_THRESHOLD = 100
# How far back the activities reach from ``now``.
HISTORY = timedelta(days=182)
# E-mail campaigns send numbered issues, one per this many days from the campaign's start.
EMAIL_ISSUE_DAYS = 30

LEAD_OPEN = "Open - Not Contacted"
LEAD_MQL = "Marketing Qualified"
LEAD_WORKING = "Working - Contacted"
LEAD_CONVERTED = "Closed - Converted"
LEAD_NOT_CONVERTED = "Closed - Not Converted"
LEAD_RECYCLED = "Recycled"
LEAD_DISQUALIFIED = "Disqualified"
LEAD_STATUSES = (
    LEAD_OPEN,
    LEAD_MQL,
    LEAD_WORKING,
    LEAD_CONVERTED,
    LEAD_NOT_CONVERTED,
    LEAD_RECYCLED,
    LEAD_DISQUALIFIED,
)
LIFECYCLE_STAGES = (
    "inquiry",
    "mql",
    "sal",
    "sql",
    "opportunity",
    "customer",
    "recycled",
    "disqualified",
)
OPEN_STAGES = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
)
OPPORTUNITY_STAGES = (*OPEN_STAGES, "Closed Won", "Closed Lost")
CAMPAIGN_CHANNELS = (
    "email",
    "webinar",
    "event",
    "paid_search",
    "paid_social",
    "content",
    "trade_show",
)
FREE_MAIL_DOMAINS = (
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "icloud.com",
    "aol.com",
)
DISQUALIFY_REASONS = ("No budget", "Competitor", "Bad data", "Not a decision maker")
RECYCLE_REASONS = ("Not ready to buy", "No response", "Timing: next fiscal year")
CONTACT_ROLES = (
    "Decision Maker",
    "Economic Buyer",
    "Technical Buyer",
    "Evaluator",
    "Influencer",
    "Executive Sponsor",
    "Business User",
)
LEAD_SOURCES = ("Web", "Advertisement", "Trade Show", "Partner Referral", "Purchased List")
INDUSTRIES = (
    "Technology",
    "Finance",
    "Banking",
    "Healthcare",
    "Manufacturing",
    "Retail",
    "Education",
    "Telecommunications",
    "Energy",
    "Media",
    "Transportation",
    "Insurance",
    "Consulting",
)
GOOD_TITLES = (
    "VP Marketing",
    "Chief Marketing Officer",
    "Director of Demand Generation",
    "Head of Revenue Operations",
    "Marketing Operations Manager",
    "Director of Sales Operations",
    "VP Sales",
    "CFO",
    "IT Director",
    "Head of Growth",
)
POOR_TITLES = (
    "Student",
    "Intern",
    "Marketing Coordinator",
    "Independent Consultant",
    "Account Executive",
)
FIRST_NAMES = (
    "Ava", "Liam", "Olivia", "Noah", "Emma", "Mateo", "Sophia", "Lucas", "Mia", "Ethan",
    "Isabella", "Mason", "Amelia", "Logan", "Harper", "Elijah", "Evelyn", "James", "Aria",
    "Benjamin", "Chloe", "Henry", "Layla", "Samuel", "Nora", "Daniel", "Zoe", "Omar", "Priya",
    "Wei", "Yuki", "Fatima", "Diego", "Ingrid", "Kofi", "Anya", "Ravi", "Leila", "Jonas",
    "Camila", "Tomasz", "Aisha", "Hugo", "Maya", "Ines", "Kenji", "Sara", "Pablo", "Grace",
    "Arjun",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Garcia", "Miller", "Davis", "Martinez", "Lopez", "Wilson", "Anderson",
    "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris", "Clark",
    "Lewis", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Nguyen", "Hill", "Adams",
    "Baker", "Nelson", "Patel", "Kim", "Chen", "Schmidt", "Rossi", "Novak", "Okafor", "Silva",
    "Kowalski", "Haddad", "Tanaka", "Larsen", "Dubois", "Fischer", "Costa", "Murphy", "Singh",
    "Ali", "Ortiz", "Becker",
)  # fmt: skip
COMPANY_FIRST = (
    "North", "Blue", "Bright", "Iron", "Silver", "Cedar", "Summit", "Harbor", "Atlas", "Nova",
    "Pioneer", "Granite", "Lumen", "Vertex", "Crescent", "Redwood", "Polar", "Quantum", "Sterling",
    "Meridian", "Apex", "Evergreen", "Falcon", "Orbit", "Beacon",
)  # fmt: skip
COMPANY_SECOND = (
    "wind", "peak", "field", "stone", "bridge", "river", "forge", "gate", "line", "works",
    "point", "light", "wave", "path", "crest",
)  # fmt: skip
COMPANY_SUFFIX = (
    "Analytics", "Systems", "Health", "Logistics", "Energy", "Labs", "Financial", "Retail",
    "Media", "Manufacturing", "Software", "Partners",
)  # fmt: skip
OWNER_NAMES = (
    "Dana Ross", "Miguel Alvarez", "Priya Raman", "Tom Becker",
    "Grace Okafor", "Jonas Lindqvist", "Hannah Cole", "Victor Mendes",
)  # fmt: skip
# Hours a rep typically takes to act on an MQL: a few are slow and breach the 24 h SLA often.
OWNER_MEDIAN_DELAY_H = (3.0, 5.0, 6.0, 8.0, 10.0, 14.0, 22.0, 40.0)

WEBSITE = "https://www.northpeak.example"
PAGES = (
    "/", "/product", "/pricing", "/customers", "/blog/closed-loop-reporting",
    "/blog/lead-scoring-basics", "/integrations/salesforce", "/docs/getting-started", "/about",
)  # fmt: skip
SCORES: dict[str, int] = {
    TouchKind.EMAIL_OPEN: 5,
    TouchKind.EMAIL_CLICK: 10,
    TouchKind.PAGE_VIEW: 3,
    TouchKind.FORM_FILL: 25,
    TouchKind.WEBINAR_REGISTERED: 15,
    TouchKind.WEBINAR_ATTENDED: 30,
    TouchKind.EVENT_ATTENDED: 25,
    TouchKind.CONTENT_DOWNLOAD: 15,
    TouchKind.AD_CLICK: 5,
    TouchKind.EMAIL_UNSUBSCRIBE: -30,
}
PRICING_PAGE_SCORE = 15


@dataclass(frozen=True)
class _CampaignPlan:
    """What the generator knows about a campaign beyond the world record."""

    channel: str
    name: str
    type: str
    start_day: int  # days after the history window opens
    length_days: int
    budget: int
    weight: float
    asset: str
    vanity: bool = False


_CAMPAIGNS = tuple(
    _CampaignPlan(channel, name, kind, start, days, budget, weight, asset, channel == "trade_show")
    for channel, name, kind, start, days, budget, weight, asset in (
        # channel, name, Salesforce Campaign.Type, start day, days, budget, weight, asset
        ("email", "Monthly Newsletter", "Email", 0, 182, 3_000, 6.0, "Newsletter"),
        ("email", "Nurture: Closed-Loop Reporting", "Email", 20, 150, 2_500, 3.0, "Nurture"),
        ("email", "Product Launch: Attribution", "Email", 95, 30, 4_000, 2.0, "Launch"),
        ("webinar", "Webinar: Forecasting Pipeline", "Webinar", 40, 21, 6_000, 4.0, "Forecasting"),
        ("webinar", "Webinar: Attribution 101", "Webinar", 120, 21, 7_500, 4.0, "Attribution 101"),
        ("event", "Customer Roadshow Chicago", "Conference", 70, 10, 9_000, 6.0, "Roadshow"),
        ("paid_search", "Google Ads: Brand", "Advertisement", 0, 182, 9_000, 1.5, "Brand ad"),
        ("paid_search", "Google Ads: Competitors", "Advertisement", 60, 90, 6_000, 1.0, "Comp"),
        ("paid_social", "LinkedIn Sponsored Content", "Banner Ads", 30, 120, 12_000, 1.2, "Post"),
        ("content", "Ebook: State of B2B Marketing", "Other", 10, 170, 5_000, 1.2, "state-of-b2b"),
        ("content", "Guide: Lead Scoring", "Other", 80, 100, 3_500, 1.0, "lead-scoring"),
        # The expensive expo: poor-fit badge scans only, so it produces almost no revenue.
        ("trade_show", "Global Marketing Expo", "Trade Show", 100, 4, 100_000, 0.0, "Expo"),
    )
)


@dataclass
class _PersonPlan:
    """Working state of one person while the world is built."""

    person: WorldPerson
    good_fit: bool
    engagement: float
    touches: int
    score: int = 0
    mql_at: datetime | None = None
    activities: list[WorldActivity] = field(default_factory=list)
    first_campaign_id: str | None = None


def people_for_size(size: str | int) -> int:
    """How many people a size means: "demo" is 600; an int is the number of people."""
    if isinstance(size, str):
        if size == "demo":
            return DEMO_PEOPLE
        try:
            size = int(size)
        except ValueError:
            raise ConfigError(
                f"bad sandbox size {size!r}: use 'demo' or a number of people"
            ) from None
    if size < 10:
        raise ConfigError(f"bad sandbox size {size}: at least 10 people")
    return size


def world_now(moment: datetime | None = None) -> datetime:
    """The ``now`` of a world built at ``moment`` (default: the wall clock): its UTC midnight."""
    current = moment if moment is not None else datetime.now(UTC)
    if current.tzinfo is None:
        raise ConfigError("the sandbox's 'now' must be timezone-aware (UTC)")
    return datetime.combine(current.astimezone(UTC).date(), time(0), tzinfo=UTC)


def generate(seed: int, size: str | int = "demo", now: datetime | None = None) -> World:
    """Build the seed company for ``seed`` up to ``now`` (default: today, ``world_now()``);
    identical inputs always give an identical World."""
    n_people = people_for_size(size)
    moment = now if now is not None else world_now()
    if moment.tzinfo is None:
        raise ConfigError("the seed generator's 'now' must be timezone-aware (UTC)")
    return _Builder(seed, n_people, moment.astimezone(UTC)).build()


class _Builder:
    """One generation run; the order of draws is part of the output, so keep it stable."""

    def __init__(self, seed: int, n_people: int, now: datetime) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.n_people = n_people
        self.now = now
        self.start = now - HISTORY
        self.owners: list[tuple[str, str, str]] = []
        self.owner_delay: dict[str, float] = {}
        self.accounts: list[WorldAccount] = []
        self.account_owner: dict[str, str] = {}
        self.account_by_name: dict[str, WorldAccount] = {}
        self.plans: list[_PersonPlan] = []
        self.campaigns: list[WorldCampaign] = []
        self.campaign_plans: list[tuple[WorldCampaign, _CampaignPlan]] = []
        self.opportunities: list[WorldOpportunity] = []
        self.roles: list[WorldContactRole] = []
        self.events: list[WorldStatusEvent] = []
        self._emails: set[str] = set()
        self.contacts_at: dict[str, list[WorldPerson]] = {}

    # -- helpers -----------------------------------------------------------------------------

    def _at(self, low: datetime, high: datetime) -> datetime:
        """A uniformly random moment in [low, high], to the second."""
        span = max(0, int((high - low).total_seconds()))
        return low + timedelta(seconds=self.rng.randint(0, span))

    def _unique_email(self, local: str, domain: str) -> str:
        candidate = f"{local}@{domain}"
        n = 2
        while candidate in self._emails:
            candidate = f"{local}{n}@{domain}"
            n += 1
        self._emails.add(candidate)
        return candidate

    def _lifecycle(
        self, person: WorldPerson, old: str, new: str, at: datetime, *, reason: str | None = None
    ) -> None:
        """Record a lifecycle-stage change of ``person`` and apply it."""
        self.events.append(
            WorldStatusEvent(
                "lead", person.id, "lifecycle_stage", old, new, at, person.owner_id, reason
            )
        )
        person.lifecycle_stage = new

    # -- build steps -------------------------------------------------------------------------

    def build(self) -> World:
        self._owners()
        self._accounts()
        self._campaigns()
        self._people()
        self._duplicates()
        for plan in self.plans:
            self._activities(plan)
        self._sales_follow_up()
        self._sales_sourced_opportunities()
        activities = sorted(
            (a for plan in self.plans for a in plan.activities),
            key=lambda a: (a.occurred_at, a.person_id, a.kind),
        )
        for number, activity in enumerate(activities, start=1):
            activity.id = number
        self.events.sort(key=lambda e: (e.changed_at, e.object_id, e.field))
        return World(
            seed=self.seed,
            now=self.now,
            owners=self.owners,
            accounts=self.accounts,
            people=[plan.person for plan in self.plans],
            campaigns=self.campaigns,
            opportunities=self.opportunities,
            contact_roles=self.roles,
            activities=activities,
            status_events=self.events,
        )

    def _owners(self) -> None:
        for index, name in enumerate(OWNER_NAMES, start=1):
            owner_id = f"owner-{index:02d}"
            first, last = name.lower().split(" ", 1)
            self.owners.append((owner_id, name, f"{first}.{last}@northpeak.example"))
            self.owner_delay[owner_id] = OWNER_MEDIAN_DELAY_H[index - 1]

    def _accounts(self) -> None:
        count = max(3, round(self.n_people / 15))
        names: set[str] = set()
        while len(self.accounts) < count:
            base = self.rng.choice(COMPANY_FIRST) + self.rng.choice(COMPANY_SECOND)
            name = f"{base} {self.rng.choice(COMPANY_SUFFIX)}"
            if name in names:
                if len(names) >= len(COMPANY_FIRST) * len(COMPANY_SECOND) * 4:
                    name = f"{name} {len(names)}"
                else:
                    continue
            names.add(name)
            index = len(self.accounts) + 1
            domain = name.lower().replace(" ", "") + ".example.com"
            employees = max(10, int(self.rng.lognormvariate(math.log(400), 1.3)))
            created = self._at(self.start - timedelta(days=900), self.start - timedelta(days=30))
            account = WorldAccount(
                id=f"acct-{index:05d}",
                name=name,
                domain=domain,
                industry=self.rng.choice(INDUSTRIES),
                employees=employees,
                created_at=created,
            )
            self.accounts.append(account)
            self.account_by_name[name] = account
            self.account_owner[account.id] = self.owners[(index - 1) % len(self.owners)][0]

    def _campaigns(self) -> None:
        for index, plan in enumerate(_CAMPAIGNS, start=1):
            start = self.start + timedelta(days=plan.start_day)
            end = start + timedelta(days=plan.length_days)
            budget = Decimal(plan.budget)
            # Most campaigns land within +-20% of budget; the expo overran.
            factor = 1.2 if plan.vanity else self.rng.uniform(0.8, 1.15)
            actual = Decimal(round(plan.budget * factor, -1))
            campaign = WorldCampaign(
                id=f"cmp-{index:03d}",
                name=plan.name,
                channel=plan.channel,
                type=plan.type,
                start_date=start,
                end_date=end,
                budgeted_cost=budget,
                actual_cost=actual,
            )
            self.campaigns.append(campaign)
            self.campaign_plans.append((campaign, plan))

    def _people(self) -> None:
        cumulative = list(itertools.accumulate(math.sqrt(a.employees) for a in self.accounts))
        expo = next(c for c, p in self.campaign_plans if p.vanity)
        for index in range(1, self.n_people + 1):
            rng = self.rng
            first = rng.choice(FIRST_NAMES)
            last = rng.choice(LAST_NAMES)
            account = rng.choices(self.accounts, cum_weights=cumulative)[0]
            free_mail = rng.random() < 0.15
            good_fit = rng.random() < (0.35 if free_mail else 0.7)
            title = rng.choice(GOOD_TITLES if good_fit else POOR_TITLES)
            if free_mail:
                domain = rng.choice(FREE_MAIL_DOMAINS)
                # Free-mail people typed a company into a form; a third of them match no account.
                company = (
                    account.name
                    if rng.random() < 0.67
                    else f"{rng.choice(LAST_NAMES)} {rng.choice(('LLC', 'Consulting', 'Inc.'))}"
                )
                local = f"{first}.{last}{rng.randint(1, 99)}".lower()
                account_id = None
            else:
                domain = account.domain
                company = account.name
                local = f"{first}.{last}".lower()
                account_id = account.id
            email = self._unique_email(local, domain)
            # A third of the database predates the six-month window (older leads and contacts).
            if rng.random() < 0.33:
                created = self._at(self.start - timedelta(days=540), self.start)
            elif not good_fit and rng.random() < 0.3:
                created = self._at(expo.start_date, expo.end_date)  # a badge scan at the expo
            else:
                created = self._at(self.start, self.now - timedelta(days=2))
            roll = rng.random()
            if account_id and created < self.start and roll < 0.45:
                crm_kind = "contact"  # an existing contact at an account, never a lead
            elif roll < 0.8:
                crm_kind = "lead"
            else:
                crm_kind = "none"
            owner = (
                self.account_owner[account_id]
                if account_id
                else self.owners[rng.randrange(len(self.owners))][0]
            )
            # Heavy tail: Pareto draws give most people 1-2 touches and a few dozens.
            touches = min(150, int(rng.paretovariate(1.05)))
            engagement = min(3.0, rng.lognormvariate(0.0, 0.5))
            lead_source = rng.choice(LEAD_SOURCES)
            person = WorldPerson(
                id=f"person-{index:06d}",
                email=email,
                first_name=first,
                last_name=last,
                company=company,
                title=title,
                account_id=account_id,
                crm_kind=crm_kind,
                lead_status="" if crm_kind == "contact" else LEAD_OPEN,
                lifecycle_stage="inquiry",
                owner_id=owner,
                lead_source=lead_source,
                score=0,
                created_at=created,
                updated_at=created,
            )
            self.plans.append(_PersonPlan(person, good_fit, engagement, touches))
            if crm_kind == "contact" and account_id:
                self.contacts_at.setdefault(account_id, []).append(person)
                if rng.random() < 0.4:  # converted from a lead before the window opened
                    self._historic_conversion(person)

    def _historic_conversion(self, person: WorldPerson) -> None:
        converted = person.created_at + timedelta(days=self.rng.uniform(3, 60))
        converted = min(converted, self.start - timedelta(days=1))
        person.lead_status = LEAD_OPEN
        self._lead_change(person, LEAD_OPEN, LEAD_WORKING, person.created_at + timedelta(hours=8))
        self._lead_change(person, LEAD_WORKING, LEAD_CONVERTED, converted)
        self._lifecycle(person, "sal", "sql", converted)
        person.converted_at = converted

    def _duplicates(self) -> None:
        originals = [p for p in self.plans if p.person.crm_kind != "none"]
        count = max(2, len(self.plans) // 40)
        for index, original in enumerate(self.rng.sample(originals, count), start=1):
            src = original.person
            if index % 2:
                email = src.email  # same address typed again: a second Lead for a Contact
            else:
                local = f"{src.first_name[0]}{src.last_name}".lower()
                email = self._unique_email(local, self.rng.choice(FREE_MAIL_DOMAINS))
            created = self._at(max(src.created_at, self.start), self.now - timedelta(days=1))
            person = WorldPerson(
                id=f"{src.id}-dup",
                email=email,
                first_name=src.first_name,
                last_name=src.last_name,
                company=src.company,
                title=src.title,
                account_id=None,
                crm_kind="lead",
                lead_status=LEAD_OPEN,
                lifecycle_stage="inquiry",
                owner_id=src.owner_id,
                lead_source="Web",
                score=0,
                created_at=created,
                updated_at=created,
                duplicate_of=src.id,
            )
            self.plans.append(_PersonPlan(person, original.good_fit, 0.8, 1))

    # -- activities ----------------------------------------------------------------------------

    def _activities(self, plan: _PersonPlan) -> None:
        person = plan.person
        low = max(person.created_at, self.start)
        times = sorted(self._at(low, self.now - timedelta(minutes=5)) for _ in range(plan.touches))
        if person.created_at >= self.start and times:
            times[0] = person.created_at  # the touch that created the person
        for number, at in enumerate(times):
            campaign, cplan = self._pick_campaign(plan, at, first=number == 0)
            if campaign is not None and plan.first_campaign_id is None:
                plan.first_campaign_id = campaign.id
            self._touch(plan, at, campaign, cplan)
        plan.activities.sort(key=lambda a: a.occurred_at)
        self._score(plan)

    def _pick_campaign(
        self, plan: _PersonPlan, at: datetime, *, first: bool
    ) -> tuple[WorldCampaign | None, _CampaignPlan | None]:
        """The campaign behind a touch at ``at``; None means organic web browsing."""
        # Poor-fit people created in the expo week are the expo's badge scans.
        if first and not plan.good_fit:
            for campaign, cplan in self.campaign_plans:
                if cplan.vanity and campaign.start_date <= at <= campaign.end_date:
                    return campaign, cplan
        active = [
            (c, p)
            for c, p in self.campaign_plans
            if not p.vanity and c.start_date <= at <= c.end_date
        ]
        weights = [p.weight for _, p in active]
        organic = 2.0
        pick = self.rng.uniform(0, sum(weights) + organic)
        for (campaign, cplan), weight in zip(active, weights, strict=True):
            if pick < weight:
                return campaign, cplan
            pick -= weight
        return None, None

    def _add(
        self,
        plan: _PersonPlan,
        kind: TouchKind,
        at: datetime,
        campaign: WorldCampaign | None,
        asset: str,
        **attributes: str,
    ) -> None:
        if at > self.now:
            return
        plan.activities.append(
            WorldActivity(
                id=0,
                person_id=plan.person.id,
                kind=kind.value,
                occurred_at=at,
                campaign_id=campaign.id if campaign else None,
                asset=asset,
                attributes=dict(attributes),
            )
        )

    def _page_views(self, plan: _PersonPlan, at: datetime, count: int, referrer: str) -> None:
        for step in range(count):
            page = self.rng.choice(PAGES)
            when = at + timedelta(seconds=30 + 45 * step + self.rng.randint(0, 40))
            self._add(plan, TouchKind.PAGE_VIEW, when, None, WEBSITE + page, referrer=referrer)

    def _touch(
        self,
        plan: _PersonPlan,
        at: datetime,
        campaign: WorldCampaign | None,
        cplan: _CampaignPlan | None,
    ) -> None:
        rng = self.rng
        eng = plan.engagement
        if campaign is None or cplan is None:
            self._page_views(plan, at, 1 + int(rng.expovariate(1 / (1.5 * eng))), "google.com")
            return
        channel = cplan.channel
        if channel == "email":
            issue = (at - campaign.start_date).days // EMAIL_ISSUE_DAYS + 1
            email_name = f"{cplan.asset} #{issue}"
            self._add(plan, TouchKind.EMAIL_SENT, at, campaign, email_name)
            if rng.random() < 0.03:
                self._add(
                    plan,
                    TouchKind.EMAIL_BOUNCE,
                    at + timedelta(minutes=1),
                    campaign,
                    email_name,
                    category="hard",
                )
                return
            self._add(
                plan, TouchKind.EMAIL_DELIVERED, at + timedelta(minutes=1), campaign, email_name
            )
            if rng.random() >= min(0.85, 0.28 * eng):
                return
            opened = at + timedelta(minutes=rng.randint(5, 60 * 36))
            self._add(plan, TouchKind.EMAIL_OPEN, opened, campaign, email_name)
            if rng.random() < 0.02:
                self._add(
                    plan,
                    TouchKind.EMAIL_UNSUBSCRIBE,
                    opened + timedelta(minutes=1),
                    campaign,
                    email_name,
                )
                return
            if rng.random() >= min(0.6, 0.22 * eng):
                return
            link = WEBSITE + rng.choice(PAGES)
            clicked = opened + timedelta(minutes=rng.randint(0, 10))
            self._add(plan, TouchKind.EMAIL_CLICK, clicked, campaign, email_name, link=link)
            self._page_views(plan, clicked, 1 + int(rng.expovariate(1 / eng)), "email")
            if rng.random() < 0.15:
                self._add(
                    plan,
                    TouchKind.FORM_FILL,
                    clicked + timedelta(minutes=4),
                    campaign,
                    "Contact Us",
                    webpage=WEBSITE + "/contact",
                )
        elif channel == "webinar":
            self._add(
                plan,
                TouchKind.FORM_FILL,
                at,
                campaign,
                "Webinar Registration",
                webpage=WEBSITE + "/webinars",
            )
            self._add(
                plan, TouchKind.WEBINAR_REGISTERED, at, campaign, cplan.asset, status="Registered"
            )
            if rng.random() < 0.45:
                self._add(
                    plan,
                    TouchKind.WEBINAR_ATTENDED,
                    campaign.end_date,
                    campaign,
                    cplan.asset,
                    status="Attended",
                )
        elif channel in ("event", "trade_show"):
            in_window = campaign.start_date <= at <= campaign.end_date
            when = at if in_window else self._at(campaign.start_date, campaign.end_date)
            if channel == "trade_show":
                self._add(
                    plan, TouchKind.LIST_IMPORT, when, campaign, f"{cplan.asset} badge scans.csv"
                )
            self._add(
                plan, TouchKind.EVENT_ATTENDED, when, campaign, cplan.asset, status="Attended"
            )
        elif channel in ("paid_search", "paid_social"):
            network = "google" if channel == "paid_search" else "linkedin"
            self._add(plan, TouchKind.AD_CLICK, at, campaign, cplan.asset, network=network)
            self._page_views(plan, at, 1 + int(rng.expovariate(1 / eng)), network)
            if rng.random() < 0.08:
                self._add(
                    plan,
                    TouchKind.FORM_FILL,
                    at + timedelta(minutes=3),
                    campaign,
                    "Demo Request",
                    webpage=WEBSITE + "/demo",
                )
        else:  # content
            self._add(
                plan,
                TouchKind.PAGE_VIEW,
                at,
                campaign,
                f"{WEBSITE}/resources/{cplan.asset}",
                referrer="linkedin.com",
            )
            if rng.random() < 0.6:
                self._add(
                    plan,
                    TouchKind.FORM_FILL,
                    at + timedelta(minutes=2),
                    campaign,
                    "Gated Content",
                    webpage=f"{WEBSITE}/resources/{cplan.asset}",
                )
                self._add(
                    plan,
                    TouchKind.CONTENT_DOWNLOAD,
                    at + timedelta(minutes=2),
                    campaign,
                    f"{cplan.asset}.pdf",
                )

    def _score(self, plan: _PersonPlan) -> None:
        """Walk the person's activities, adding points; crossing the threshold makes an MQL."""
        person = plan.person
        score = 30 if plan.good_fit else 0
        crossing: WorldActivity | None = None
        for activity in plan.activities:
            points = SCORES.get(activity.kind, 0)
            if activity.kind == TouchKind.PAGE_VIEW and activity.asset.endswith("/pricing"):
                points = PRICING_PAGE_SCORE
            old, score = score, max(0, score + points)
            if crossing is None and old < MQL_THRESHOLD <= score:
                crossing = WorldActivity(
                    id=0,
                    person_id=person.id,
                    kind=TouchKind.SCORE_CHANGE.value,
                    occurred_at=activity.occurred_at + timedelta(seconds=1),
                    campaign_id=None,
                    asset="Lead Score",
                    attributes={
                        "old_score": str(old),
                        "new_score": str(score),
                        "reason": "MQL threshold",
                    },
                )
        if crossing is not None and crossing.occurred_at <= self.now:
            plan.activities.append(crossing)
            plan.mql_at = crossing.occurred_at
            self._lifecycle(person, "inquiry", "mql", crossing.occurred_at)
            if person.crm_kind == "lead":  # the hand-off shows in the lead's Status too
                self._lead_change(person, LEAD_OPEN, LEAD_MQL, crossing.occurred_at)
        person.score = score
        if plan.activities:
            person.updated_at = max(person.updated_at, plan.activities[-1].occurred_at)

    # -- sales ---------------------------------------------------------------------------------

    def _sales_follow_up(self) -> None:
        """Reps act on MQLs after a delay and then convert, recycle or disqualify them."""
        for plan in self.plans:
            person = plan.person
            if plan.mql_at is None or person.crm_kind == "none":
                continue
            if person.crm_kind == "contact":
                continue  # an existing contact turning MQL goes to the account owner's queue
            rng = self.rng
            median = self.owner_delay[person.owner_id]
            accepted = plan.mql_at + timedelta(hours=rng.lognormvariate(math.log(median), 0.9))
            if accepted > self.now:
                continue  # still waiting for a rep: open SLA clock
            self._lead_change(person, LEAD_MQL, LEAD_WORKING, accepted)
            self._lifecycle(person, "mql", "sal", accepted)
            decided = accepted + timedelta(days=rng.lognormvariate(math.log(6), 0.8))
            if decided > self.now:
                continue
            roll = rng.random()
            convert = 0.5 if plan.good_fit and person.duplicate_of is None else 0.0
            if roll < convert:
                self._convert(plan, decided)
            elif roll < convert + 0.3:
                reason = rng.choice(RECYCLE_REASONS)
                self._lead_change(person, LEAD_WORKING, LEAD_RECYCLED, decided, reason)
                self._lifecycle(person, "sal", "recycled", decided, reason=reason)
            elif roll < convert + 0.55:
                reason = "Bad data" if person.duplicate_of else rng.choice(DISQUALIFY_REASONS)
                self._lead_change(person, LEAD_WORKING, LEAD_DISQUALIFIED, decided, reason)
                self._lifecycle(person, "sal", "disqualified", decided, reason=reason)
                person.disqualified_reason = reason

    def _lead_change(
        self, person: WorldPerson, old: str, new: str, at: datetime, reason: str | None = None
    ) -> None:
        self.events.append(
            WorldStatusEvent(
                "lead", person.id, "lead_status", old, new, at, person.owner_id, reason
            )
        )
        person.lead_status = new
        person.updated_at = max(person.updated_at, at)

    def _convert(self, plan: _PersonPlan, at: datetime) -> None:
        """Convert a lead: contact at its (matched) account, usually with a new opportunity."""
        person = plan.person
        account = self.account_by_name.get(person.company)
        if account is None:  # a free-mail lead whose company is new to the CRM
            index = len(self.accounts) + 1
            name = person.company
            account = WorldAccount(
                id=f"acct-{index:05d}",
                name=name,
                domain=name.lower().replace(" ", "").replace(".", "") + ".example.com",
                industry=self.rng.choice(INDUSTRIES),
                employees=max(5, int(self.rng.lognormvariate(math.log(40), 1.0))),
                created_at=at,
            )
            self.accounts.append(account)
            self.account_by_name[name] = account
            self.account_owner[account.id] = person.owner_id
        self._lead_change(person, LEAD_WORKING, LEAD_CONVERTED, at)
        self._lifecycle(person, "sal", "sql", at)
        person.crm_kind = "contact"
        person.account_id = account.id
        person.converted_at = at
        self.contacts_at.setdefault(account.id, []).append(person)
        if self.rng.random() < 0.75:
            opp = self._opportunity(account, at, plan.first_campaign_id, person.id)
            self._lifecycle(person, "sql", "opportunity", at)
            if opp.is_won:
                self._lifecycle(person, "opportunity", "customer", opp.close_date)

    def _sales_sourced_opportunities(self) -> None:
        """Deals reps found themselves (no marketing lead), so attribution has a baseline."""
        count = max(2, len(self.accounts))
        for _ in range(count):
            account = self.rng.choice(self.accounts)
            created = self._at(self.start - timedelta(days=60), self.now - timedelta(days=3))
            self._opportunity(account, created, None, None)

    def _opportunity(
        self,
        account: WorldAccount,
        created: datetime,
        campaign_id: str | None,
        lead_person_id: str | None,
    ) -> WorldOpportunity:
        rng = self.rng
        index = len(self.opportunities) + 1
        owner = self.account_owner[account.id]
        amount = Decimal(max(2_000, round(rng.lognormvariate(math.log(35_000), 0.8), -2)))
        close = created + timedelta(days=rng.lognormvariate(math.log(45), 0.6))
        won = False
        if close <= self.now:
            won = rng.random() < 0.35
            final = "Closed Won" if won else "Closed Lost"
            # Lost deals die somewhere along the way; won deals walk every stage.
            reached = len(OPEN_STAGES) if won else rng.randint(1, len(OPEN_STAGES))
            path = [*OPEN_STAGES[:reached], final]
            end = close
        else:
            progress = (self.now - created) / (close - created)
            reached = max(1, min(len(OPEN_STAGES), 1 + int(progress * len(OPEN_STAGES))))
            path = list(OPEN_STAGES[:reached])
            end = self.now
        opp = WorldOpportunity(
            id=f"opp-{index:05d}",
            name=f"{account.name} - {rng.choice(('New Business', 'Expansion', 'Platform'))}",
            account_id=account.id,
            stage=path[-1],
            amount=amount,
            is_closed=close <= self.now,
            is_won=won,
            created_at=created,
            close_date=close,
            owner_id=owner,
            campaign_id=campaign_id,
            lead_person_id=lead_person_id,
        )
        self.opportunities.append(opp)
        step = (end - created) / len(path)
        previous: str | None = None
        for number, stage in enumerate(path):
            at = created if number == 0 else created + step * number
            if number == len(path) - 1 and opp.is_closed:
                at = close
            self.events.append(
                WorldStatusEvent("opportunity", opp.id, "stage", previous, stage, at, owner)
            )
            previous = stage
        self._contact_roles(opp, lead_person_id)
        return opp

    def _contact_roles(self, opp: WorldOpportunity, lead_person_id: str | None) -> None:
        # Roughly one opportunity in seven has no contact roles: reps skip the related list.
        if self.rng.random() < 0.15:
            return
        contacts = [
            p.id
            for p in self.contacts_at.get(opp.account_id, [])
            if p.id != lead_person_id and p.created_at <= opp.created_at
        ]
        chosen: list[str] = [lead_person_id] if lead_person_id else []
        extra = self.rng.randint(1, 3) - len(chosen)
        if extra > 0 and contacts:
            chosen += self.rng.sample(contacts, min(extra, len(contacts)))
        for number, person_id in enumerate(chosen):
            self.roles.append(
                WorldContactRole(
                    id=f"ocr-{len(self.roles) + 1:06d}",
                    opportunity_id=opp.id,
                    person_id=person_id,
                    role="Decision Maker" if number == 0 else self.rng.choice(CONTACT_ROLES),
                    is_primary=number == 0,
                )
            )
