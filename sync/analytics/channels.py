"""Channel names as readers see them: one name per channel, whatever each system calls it.

Channels reach the ledger in each source's own words: Salesforce's ``Campaign.Type`` picklist
("Advertisement", "Banner Ads", "Conference"), HubSpot's and Marketo's touch channels ("web",
"email"), a CSV file's ``channel`` column ("paid_search", "Trade show"). The report reads every
channel through :func:`channel_name`, the one place where they are folded:

- Case, spaces, ``_`` and ``-`` do not matter: ``paid_search``, ``Paid Search`` and
  ``paid-search`` are one channel.
- Known aliases fold into one display name (``CHANNEL_ALIASES`` below), e.g. ``web`` /
  ``website`` / ``web visit`` -> "Website"; ``advertisement`` / ``advertising`` / ``ads`` ->
  "Advertising"; ``conference`` / ``event`` -> "Event"; ``e-mail`` / ``email`` -> "Email".
- Any other channel keeps its words in sentence case ("Referral Program" -> "Referral
  program"); short all-capital words stay as written ("PR", "SEO").
"""

from __future__ import annotations

import re

__all__ = ["CHANNEL_ALIASES", "channel_key", "channel_name"]

#: folded key (lower case, words separated by one space) -> the name the report shows
CHANNEL_ALIASES: dict[str, str] = {
    # e-mail
    "email": "Email",
    "e mail": "Email",
    "email marketing": "Email",
    "newsletter": "Email",
    # the website (Marketo's web activities, HubSpot's page views and forms)
    "web": "Website",
    "website": "Website",
    "web visit": "Website",
    "web form": "Website",
    "organic": "Website",
    # webinars
    "webinar": "Webinar",
    "webinars": "Webinar",
    "virtual event": "Webinar",
    # events (Salesforce calls them Conference)
    "event": "Event",
    "events": "Event",
    "conference": "Event",
    "roadshow": "Event",
    "trade show": "Trade show",
    "tradeshow": "Trade show",
    "expo": "Trade show",
    # paid media (Salesforce: Advertisement, Banner Ads)
    "advertisement": "Advertising",
    "advertising": "Advertising",
    "ads": "Advertising",
    "paid ads": "Advertising",
    "banner ads": "Banner ads",
    "banner": "Banner ads",
    "display": "Banner ads",
    "paid search": "Paid search",
    "ppc": "Paid search",
    "cpc": "Paid search",
    "sem": "Paid search",
    "paid social": "Paid social",
    "social ads": "Paid social",
    # content
    "content": "Content",
    "content syndication": "Content",
    # the rest of Salesforce's default Campaign.Type picklist
    "direct mail": "Direct mail",
    "partners": "Partners",
    "partner": "Partners",
    "public relations": "Public relations",
    "pr": "Public relations",
    "referral program": "Referral program",
    "referral": "Referral program",
    "telemarketing": "Telemarketing",
    "other": "Other",
}

_SEPARATORS = re.compile(r"[\s_\-]+")


def channel_key(raw: str) -> str:
    """The folded form of a channel name: lower case, one space between words."""
    return _SEPARATORS.sub(" ", raw).strip().lower()


def channel_name(raw: str | None) -> str | None:
    """The report's name for a channel (None or blank stays None)."""
    if raw is None:
        return None
    key = channel_key(raw)
    if not key:
        return None
    known = CHANNEL_ALIASES.get(key)
    if known is not None:
        return known
    words = _SEPARATORS.sub(" ", raw).strip().split(" ")
    shown = [w if w.isupper() and len(w) <= 4 else w.lower() for w in words]
    first = shown[0]
    shown[0] = first if first.isupper() else first[:1].upper() + first[1:]
    return " ".join(shown)
