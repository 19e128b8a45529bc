"""The ``attribution:`` section of closedloop.yaml: scope, lookback, kinds, half-life, weights.

Example::

    attribution:
      scope: contact_roles        # whose touches count for a deal: contact_roles (else the
                                  # account when it has none), primary_contact_role, account
      lookback_days: 365          # null: no limit
      counted_kinds: [email_click, form_fill, webinar_attended, event_attended]
      half_life_days: 7           # time decay
      custom:                     # the custom model, in percent; must add up to 100
        first_touch: 20
        lead_creation: 20
        opportunity_creation: 20
        closed_won: 30
        others: 10

Every key is optional; the defaults are ``AttributionParams()``'s.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.base import TouchKind
from sync.attribution.models import (
    DEFAULT_COUNTED_KINDS,
    AttributionParams,
    PositionWeights,
    Scope,
)

__all__ = ["AttributionConfig", "CustomWeights"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CustomWeights(_Strict):
    """Shares of the custom model in percent per milestone, plus the spread over other touches."""

    first_touch: Decimal = Field(default=Decimal(0), ge=0, le=100, decimal_places=4)
    lead_creation: Decimal = Field(default=Decimal(0), ge=0, le=100, decimal_places=4)
    opportunity_creation: Decimal = Field(default=Decimal(0), ge=0, le=100, decimal_places=4)
    closed_won: Decimal = Field(default=Decimal(0), ge=0, le=100, decimal_places=4)
    others: Decimal = Field(default=Decimal(0), ge=0, le=100, decimal_places=4)

    @model_validator(mode="after")
    def _add_up_to_100(self) -> CustomWeights:
        total = (
            self.first_touch
            + self.lead_creation
            + self.opportunity_creation
            + self.closed_won
            + self.others
        )
        if total != 100:
            raise ValueError(
                "the custom weights (first_touch, lead_creation, opportunity_creation, "
                f"closed_won, others) must add up to 100; they add up to {total}"
            )
        return self

    def weights(self) -> PositionWeights:
        """The weights in the models' own units."""
        return PositionWeights.from_percent(**self.model_dump())


class AttributionConfig(_Strict):
    """How attribution counts touches and weighs them (see ``sync.attribution.models``)."""

    scope: Literal["contact_roles", "primary_contact_role", "account"] = "contact_roles"
    lookback_days: int | None = Field(default=365, gt=0)
    counted_kinds: list[str] = Field(default_factory=lambda: sorted(DEFAULT_COUNTED_KINDS))
    half_life_days: float = Field(default=7.0, gt=0)
    custom: CustomWeights | None = None

    @field_validator("counted_kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        known = {k.value for k in TouchKind}
        unknown = [k for k in kinds if k not in known]
        if unknown:
            raise ValueError(
                f"unknown touch kind(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        if not kinds:
            raise ValueError("count at least one touch kind")
        return kinds

    def params(self) -> AttributionParams:
        """The run parameters this section describes."""
        return AttributionParams(
            scope=Scope(self.scope),
            lookback_days=self.lookback_days,
            counted_kinds=frozenset(self.counted_kinds),
            half_life_days=self.half_life_days,
            custom=self.custom.weights() if self.custom is not None else None,
        )
