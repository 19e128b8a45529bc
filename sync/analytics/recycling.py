"""How many handed-over leads sales sends back to marketing (DOMAIN.md sections 3 and 6).

The recycle rate of a group is: people the group was handed (entered MQL at least once) that
were later recycled, over people the group was handed. A rep is credited with the people whose
first hand-off was theirs; a source (Web, Trade Show, ...) with the people it brought in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sync.analytics.lifecycle import History
from sync.analytics.records import PersonFacts
from sync.mapping.model import Stage

__all__ = ["RecycleGroup", "recycle_rates", "rep_of"]


@dataclass(frozen=True, slots=True)
class RecycleGroup:
    """Recycling figures of one rep or source."""

    group: str
    handed_off: int
    recycled: int
    disqualified: int

    @property
    def rate(self) -> float | None:
        """Recycled / handed off (None when nothing was handed off)."""
        return self.recycled / self.handed_off if self.handed_off else None


def _handed_off(history: History) -> bool:
    return any(v.stage is Stage.MQL for v in history.visits)


def _recycled_after_hand_off(history: History, stage: Stage) -> bool:
    first = history.first_entered(Stage.MQL)
    return first is not None and any(
        v.stage is stage and v.entered_at >= first for v in history.visits
    )


def rep_of(history: History, facts: PersonFacts | None) -> str | None:
    """The rep who got the person's first hand-off (else the person's owner)."""
    for visit in history.visits:
        if visit.stage is Stage.MQL and visit.owner:
            return visit.owner
    return facts.owner if facts else None


def recycle_rates(
    histories: Mapping[str, History],
    people: Mapping[str, PersonFacts],
    key: Callable[[History, PersonFacts | None], str | None],
    unknown: str = "(none)",
) -> list[RecycleGroup]:
    """Recycle (and disqualify) rates grouped by ``key``, highest recycle rate first."""
    handed: Counter[str] = Counter()
    recycled: Counter[str] = Counter()
    disqualified: Counter[str] = Counter()
    for person, history in histories.items():
        if not _handed_off(history):
            continue
        group = key(history, people.get(person)) or unknown
        handed[group] += 1
        if _recycled_after_hand_off(history, Stage.RECYCLED):
            recycled[group] += 1
        if _recycled_after_hand_off(history, Stage.DISQUALIFIED):
            disqualified[group] += 1
    rows = [RecycleGroup(g, handed[g], recycled[g], disqualified[g]) for g in handed]
    rows.sort(key=lambda r: (-(r.rate or 0.0), -r.handed_off, r.group))
    return rows
