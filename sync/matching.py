"""Lead-to-account matching: which account an unconverted lead belongs to, and how sure we are.

Evidence, strongest first (confidence in [0, 1]):

- ``domain``: the lead's email domain (or a subdomain of it) is an account's domain; free-mail
  domains (``FREE_MAIL_DOMAINS``) say nothing and are ignored. 0.97, 0.99 when the company
  name agrees too; shared by several accounts it only proposes (0.6) unless a name decides.
- ``name``: the normalized company names are equal (case, accents, punctuation, "&"/"and", a
  leading "the" and legal suffixes such as Inc, LLC, Ltd, GmbH, SA, BV are ignored): 0.95.
- ``acronym``: one name is the acronym of the other ("IBM" and "International Business
  Machines"): 0.85, so a human confirms it.
- ``fuzzy``: rapidfuzz similarity of the normalized names, lowered when the runner-up is
  nearly as similar (a typo could point either way): ``similarity * 0.97 - ambiguity``.

``AUTO_LINK_THRESHOLD`` and above links automatically; ``REVIEW_THRESHOLD`` and above is
queued for review (``closedloop matches review``); lower is dropped. Decisions are stored in
the ledger (``account_match``) and reused by ``reconcile_matches``: an accepted link stays,
a rejected account is never proposed again for that lead.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rapidfuzz import fuzz, process

if TYPE_CHECKING:
    from sqlmodel import Session

    from sync.ledger.models import AccountMatchRow

__all__ = [
    "AUTO_LINK_THRESHOLD",
    "FREE_MAIL_DOMAINS",
    "LEGAL_SUFFIXES",
    "REVIEW_THRESHOLD",
    "AccountCandidate",
    "AccountMatcher",
    "LeadToMatch",
    "MatchProposal",
    "MatchSummary",
    "acronym",
    "decide",
    "email_domain",
    "linked_accounts",
    "normalize_company",
    "reconcile_matches",
]

AUTO_LINK_THRESHOLD = 0.9
REVIEW_THRESHOLD = 0.6

FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "ymail.com",
        "outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "live.com", "msn.com",
        "icloud.com", "me.com", "mac.com", "aol.com", "protonmail.com", "proton.me",
        "gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com", "zoho.com", "yandex.com",
        "yandex.ru", "mail.ru", "qq.com", "163.com", "126.com", "orange.fr", "free.fr",
        "laposte.net", "libero.it", "t-online.de", "comcast.net", "verizon.net", "att.net",
        "fastmail.com", "hey.com", "tutanota.com", "rediffmail.com",
    }
)  # fmt: skip
LEGAL_SUFFIXES = frozenset(
    {
        "inc", "incorporated", "corp", "corporation", "co", "company", "llc", "llp", "lp",
        "ltd", "limited", "plc", "gmbh", "ag", "kg", "ug", "sa", "sas", "sarl", "srl", "spa",
        "bv", "nv", "ab", "as", "asa", "oy", "aps", "pty", "pte", "kk", "sl", "sp", "zoo",
        "group", "holding", "holdings",
    }
)  # fmt: skip
_STOPWORDS = frozenset({"the", "of", "for", "and"})
_PUNCTUATION = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")
# "S.A.", "B.V.", "G.m.b.H." lose their dots before the suffix check.
_DOTTED = re.compile(r"\b((?:[a-z]\.){2,})")

DOMAIN_CONFIDENCE = 0.97
DOMAIN_AND_NAME_CONFIDENCE = 0.99
NAME_CONFIDENCE = 0.95
ACRONYM_CONFIDENCE = 0.85
SHARED_CONFIDENCE = 0.6
FUZZY_FLOOR = 70.0  # similarities below this (0-100) are not worth a reviewer's time


def normalize_company(name: str | None) -> str:
    """A company name reduced to what identifies it: ``"The Acme & Co., Inc."`` -> ``"acme"``."""
    if not name:
        return ""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = text.replace("&", " and ")
    text = _DOTTED.sub(lambda m: m.group(1).replace(".", ""), text)
    text = _PUNCTUATION.sub(" ", text)
    tokens = [t for t in _SPACES.split(text) if t and t != "and"]
    if tokens and tokens[0] == "the":
        tokens = tokens[1:]
    while len(tokens) > 1 and tokens[-1] in LEGAL_SUFFIXES:
        tokens.pop()
    return " ".join(tokens)


def acronym(normalized: str) -> str:
    """The initials of a normalized multi-word name (``"international business machines"``)."""
    words = [w for w in normalized.split() if w not in _STOPWORDS]
    return "".join(w[0] for w in words) if len(words) >= 2 else ""


def email_domain(email: str | None) -> str | None:
    """The domain of an address, lower-cased; None for free-mail or malformed addresses."""
    if not email or "@" not in email:
        return None
    domain = email.rsplit("@", 1)[1].strip().lower().rstrip(".")
    if not domain or "." not in domain or domain in FREE_MAIL_DOMAINS:
        return None
    return domain


def _domain_key(domain: str | None) -> str | None:
    if not domain:
        return None
    text = domain.strip().lower()
    text = re.sub(r"^[a-z]+://", "", text).split("/", 1)[0]
    text = text.removeprefix("www.")
    return text or None


@dataclass(frozen=True, slots=True)
class AccountCandidate:
    """An account a lead may belong to."""

    id: str
    name: str
    domain: str | None = None


@dataclass(frozen=True, slots=True)
class LeadToMatch:
    """An unconverted lead without an account: its email and the company it typed."""

    id: str
    email: str | None
    company: str | None


@dataclass(frozen=True, slots=True)
class MatchProposal:
    """A proposed link of a lead to an account, with its confidence and why."""

    lead_id: str
    account_id: str
    confidence: float
    method: str
    evidence: dict[str, Any] = field(default_factory=dict)


class AccountMatcher:
    """Indexes accounts once (domain, normalized name, acronym) and proposes matches for leads."""

    def __init__(self, accounts: Iterable[AccountCandidate]) -> None:
        self.accounts = sorted(accounts, key=lambda a: a.id)
        self._by_domain: dict[str, list[AccountCandidate]] = {}
        self._by_name: dict[str, list[AccountCandidate]] = {}
        self._by_acronym: dict[str, list[AccountCandidate]] = {}
        self._normalized: dict[str, str] = {}
        for account in self.accounts:
            domain = _domain_key(account.domain)
            if domain:
                self._by_domain.setdefault(domain, []).append(account)
            normalized = normalize_company(account.name)
            self._normalized[account.id] = normalized
            if normalized:
                self._by_name.setdefault(normalized, []).append(account)
                initials = acronym(normalized)
                if len(initials) >= 2:
                    self._by_acronym.setdefault(initials, []).append(account)
        self._choices = sorted(self._by_name)

    def _domain_accounts(self, domain: str) -> list[AccountCandidate]:
        parts = domain.split(".")
        for start in range(len(parts) - 1):  # mail.eu.acme.com -> eu.acme.com -> acme.com
            found = self._by_domain.get(".".join(parts[start:]))
            if found:
                return found
        return []

    def propose(
        self, lead: LeadToMatch, exclude: frozenset[str] = frozenset()
    ) -> list[MatchProposal]:
        """Proposals for one lead, most confident first (accounts in ``exclude`` are skipped)."""
        best: dict[str, MatchProposal] = {}

        def offer(account: AccountCandidate, confidence: float, method: str, **why: Any) -> None:
            if account.id in exclude:
                return
            current = best.get(account.id)
            if current is None or confidence > current.confidence:
                best[account.id] = MatchProposal(
                    lead.id, account.id, round(confidence, 4), method, why
                )

        company = normalize_company(lead.company)
        domain = email_domain(lead.email)
        if domain:
            by_domain = [a for a in self._domain_accounts(domain) if a.id not in exclude]
            agreeing = [a for a in by_domain if company and self._similar(company, a) >= 85]
            if len(by_domain) == 1:
                account = by_domain[0]
                sure = DOMAIN_AND_NAME_CONFIDENCE if agreeing else DOMAIN_CONFIDENCE
                offer(account, sure, "domain", domain=domain)
            elif len(agreeing) == 1:
                offer(agreeing[0], DOMAIN_CONFIDENCE, "domain", domain=domain, shared=True)
            else:
                for account in by_domain:
                    offer(account, SHARED_CONFIDENCE, "domain", domain=domain, shared=True)
        if company:
            named = self._by_name.get(company, [])
            for account in named:
                confidence = NAME_CONFIDENCE if len(named) == 1 else SHARED_CONFIDENCE
                offer(account, confidence, "name", company=company)
            self._acronyms(company, offer)
            if not named:
                self._fuzzy(company, offer, exclude)
        return sorted(best.values(), key=lambda p: (-p.confidence, p.account_id))

    def _similar(self, company: str, account: AccountCandidate) -> float:
        return float(fuzz.token_sort_ratio(company, self._normalized.get(account.id, "")))

    def _acronyms(self, company: str, offer: Any) -> None:
        compact = company.replace(" ", "")
        if 2 <= len(compact) <= 6:
            for account in self._by_acronym.get(compact, []):
                offer(account, ACRONYM_CONFIDENCE, "acronym", company=company)
        initials = acronym(company)
        if len(initials) >= 2:
            for account in self._by_name.get(initials, []):
                offer(account, ACRONYM_CONFIDENCE, "acronym", company=company)

    def _fuzzy(self, company: str, offer: Any, exclude: frozenset[str]) -> None:
        hits = process.extract(
            company,
            self._choices,
            scorer=fuzz.WRatio,
            processor=None,
            limit=4,
            score_cutoff=FUZZY_FLOOR,
        )
        scored: list[tuple[float, AccountCandidate, str]] = []
        for name, _, _ in hits:
            # WRatio finds candidates; the plain ratio, stricter on extra words, scores them.
            similarity = float(fuzz.ratio(company, name))
            scored.extend(
                (similarity, account, name)
                for account in self._by_name[name]
                if account.id not in exclude
            )
        scored.sort(key=lambda s: (-s[0], s[1].id))
        if not scored:
            return
        top = scored[0][0]
        runner_up = scored[1][0] if len(scored) > 1 else 0.0
        for similarity, account, name in scored:
            # A close runner-up means a typo could point either way: a human should decide.
            ambiguity = max(0.0, 0.15 - (top - runner_up) / 100) if similarity == top else 0.15
            confidence = similarity / 100 * 0.97 - ambiguity
            if confidence >= REVIEW_THRESHOLD:
                offer(account, confidence, "fuzzy", company=company, name=name, similarity=top)


# --- the ledger side: proposals stored, decisions reused ---------------------------------------


@dataclass
class MatchSummary:
    """What one reconciliation did."""

    leads: int = 0
    linked: int = 0  # auto-linked now or accepted earlier
    pending: int = 0
    unmatched: int = 0


def reconcile_matches(
    session: Session,
    crm: str,
    *,
    auto_threshold: float = AUTO_LINK_THRESHOLD,
    review_threshold: float = REVIEW_THRESHOLD,
) -> MatchSummary:
    """Match every unconverted lead without an account of ``crm`` and store the proposals.

    A lead with an accepted match keeps it (no new proposal); rejected accounts are excluded;
    the best remaining proposal is stored as ``auto`` (at or above ``auto_threshold``) or
    ``pending`` (at or above ``review_threshold``); older undecided proposals of the lead go.
    """
    from sqlmodel import col, select

    from sync.ledger.models import AccountMatchRow, AccountRow, MatchStatus, PersonRow
    from sync.ledger.types import utcnow

    accounts = session.exec(
        select(AccountRow).where(AccountRow.crm == crm, col(AccountRow.deleted).is_(False))
    ).all()
    matcher = AccountMatcher(AccountCandidate(a.external_id, a.name, a.domain) for a in accounts)
    leads = session.exec(
        select(PersonRow).where(
            PersonRow.crm == crm,
            PersonRow.kind == "lead",
            col(PersonRow.converted).is_(False),
            col(PersonRow.deleted).is_(False),
            col(PersonRow.merged_into).is_(None),
            col(PersonRow.account_external_id).is_(None),
        )
    ).all()
    existing: dict[str, list[AccountMatchRow]] = {}
    for row in session.exec(select(AccountMatchRow).where(AccountMatchRow.crm == crm)).all():
        existing.setdefault(row.person_external_id, []).append(row)
    summary = MatchSummary()
    now = utcnow()
    eligible = set()
    for lead in sorted(leads, key=lambda p: p.external_id):
        eligible.add(lead.external_id)
        summary.leads += 1
        rows = existing.get(lead.external_id, [])
        if any(r.status == MatchStatus.ACCEPTED for r in rows):
            summary.linked += 1
            continue
        rejected = frozenset(r.account_external_id for r in rows if r.status == "rejected")
        proposals = matcher.propose(
            LeadToMatch(lead.external_id, lead.email, lead.company), rejected
        )
        chosen = proposals[0] if proposals else None
        if chosen is not None and chosen.confidence < review_threshold:
            chosen = None
        for row in rows:
            undecided = row.status in (MatchStatus.AUTO, MatchStatus.PENDING)
            if undecided and (chosen is None or row.account_external_id != chosen.account_id):
                session.delete(row)
        if chosen is None:
            summary.unmatched += 1
            continue
        status = MatchStatus.AUTO if chosen.confidence >= auto_threshold else MatchStatus.PENDING
        found = next((r for r in rows if r.account_external_id == chosen.account_id), None)
        if found is None:
            found = AccountMatchRow(
                crm=crm,
                person_external_id=lead.external_id,
                account_external_id=chosen.account_id,
                confidence=chosen.confidence,
                method=chosen.method,
                evidence=chosen.evidence,
                status=status.value,
            )
        else:
            found.confidence, found.method = chosen.confidence, chosen.method
            found.evidence, found.status, found.updated_at = chosen.evidence, status.value, now
        session.add(found)
        if status is MatchStatus.AUTO:
            summary.linked += 1
        else:
            summary.pending += 1
    # Leads converted, merged or given an account since: their undecided proposals are moot.
    for person_id, rows in existing.items():
        if person_id not in eligible:
            for row in rows:
                if row.status in (MatchStatus.AUTO, MatchStatus.PENDING):
                    session.delete(row)
    session.flush()
    return summary


def linked_accounts(session: Session, crm: str) -> dict[str, str]:
    """Lead id -> account id for every auto-linked or accepted match of ``crm``."""
    from sqlmodel import col, select

    from sync.ledger.models import AccountMatchRow, MatchStatus

    rows = session.exec(
        select(AccountMatchRow)
        .where(
            AccountMatchRow.crm == crm,
            col(AccountMatchRow.status).in_([MatchStatus.AUTO.value, MatchStatus.ACCEPTED.value]),
        )
        .order_by(col(AccountMatchRow.person_external_id), col(AccountMatchRow.id))
    ).all()
    links: dict[str, str] = {}
    for row in rows:
        # An accepted decision beats an automatic link of the same lead.
        if row.person_external_id not in links or row.status == MatchStatus.ACCEPTED:
            links[row.person_external_id] = row.account_external_id
    return links


def decide(session: Session, match_id: int, accept: bool) -> AccountMatchRow:
    """Record a human decision on a match (kept and reused by every later reconciliation)."""
    from sync.ledger.models import AccountMatchRow, MatchStatus
    from sync.ledger.types import utcnow

    row = session.get(AccountMatchRow, match_id)
    if row is None:
        from connectors.errors import ConfigError

        raise ConfigError(f"no match with id {match_id}: see `closedloop matches list`")
    row.status = (MatchStatus.ACCEPTED if accept else MatchStatus.REJECTED).value
    row.decided_at = utcnow()
    row.updated_at = row.decided_at
    session.add(row)
    session.flush()
    return row
