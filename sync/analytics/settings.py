"""The optional ``analytics:`` section of closedloop.yaml: SLAs, teams, costs, experiments.

Everything here is optional; a config without the section reports with the mapping's SLA
targets, the CRM's campaign costs and no experiments. Example::

    analytics:
      currency: USD
      crms: [salesforce]            # the CRM connections the report reads (default: all)
      period: last-90d              # default of `closedloop report --period`
      default_model: w_shaped       # model of the ROI headline (crm_primary_campaign, linear, ...)
      teams:                        # rep (CRM owner id) -> team, for SLA and recycle tables
        east: [005A1, 005A2]
        west: [005A3]
      rep_names: {005A1: Dana Ross} # shown instead of owner ids
      sla:                          # MQL overrides of each CRM's mapping lifecycle.sla
        default: 1d                 # hand-off -> first sales action, every CRM
        teams: {east: 4h}
        reps: {005A3: 2h}           # a rep's own target wins over the team's
      campaign_aliases:             # a touch's campaign (e.g. a Marketo program id) -> the
        2001: Monthly Newsletter    # CRM campaign it is (external id or name)
      campaign_costs:               # spend the CRM does not know (replaces the CRM's figure)
        - campaign: Spring Expo     # external id or name
          amount: 100000
          start: 2026-03-01
          end: 2026-03-31
      experiments:
        marketing-leads:
          groups:                   # exactly two groups; the first is the "treatment"
            marketing_leads: [005A1, 005A2]
            prospecting_only: [005A3, 005A4]
          metric: won_revenue       # or won_deals, new_opportunities
          confidence: 0.95
      nurture_lists:                # recycle pipeline name -> the marketing side's list id
        recycle-to-marketo: 1042

The section is declared here (pure pydantic, no I/O) so ``sync.config`` can validate it with
every other key and ``closedloop config check`` reports its mistakes at file:line.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from sync.mapping.model import parse_duration

__all__ = [
    "AnalyticsSettings",
    "CampaignCost",
    "ExperimentSettings",
    "SlaSettings",
    "parse_duration",
]

METRICS = ("won_revenue", "won_deals", "new_opportunities")


def _duration(value: Any) -> str:
    # The same duration syntax as the mapping's lifecycle.sla (30m, 4h, 2d, 1d12h, 1w).
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 30m, 4h, 2d or 1d12h")
    if parse_duration(value) <= timedelta(0):
        raise ValueError("expected a duration greater than zero")
    return value.strip()


def _period(value: str) -> str:
    from sync.analytics.periods import parse_period

    parse_period(value)
    return value


def _ids(value: Any) -> Any:
    # YAML reads bare ids like 12345 as numbers; owner and list ids are text to closedloop.
    if isinstance(value, list):
        return [str(v) if isinstance(v, int) else v for v in value]
    return value


def _id(value: Any) -> Any:
    return str(value) if isinstance(value, int) else value


Duration = Annotated[str, BeforeValidator(_duration)]
Ids = Annotated[list[str], BeforeValidator(_ids)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlaSettings(_Strict):
    """Explicit MQL targets overriding each CRM's mapping ``lifecycle.sla.MQL`` (later stages
    keep their mapping's targets, per CRM)."""

    default: Duration | None = None
    teams: dict[str, Duration] = Field(default_factory=dict)
    reps: dict[Annotated[str, BeforeValidator(_id)], Duration] = Field(default_factory=dict)


class CampaignCost(_Strict):
    """Spend on one campaign over a date range (both ends included)."""

    campaign: Annotated[str, BeforeValidator(_id)] = Field(min_length=1)
    amount: Decimal = Field(ge=0, max_digits=18, decimal_places=2)
    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> CampaignCost:
        if self.end < self.start:
            raise ValueError("'end' is before 'start'")
        return self


class ExperimentSettings(_Strict):
    """Two groups of reps whose sales production is compared per rep and month."""

    groups: dict[str, Ids]
    metric: Literal["won_revenue", "won_deals", "new_opportunities"] = "won_revenue"
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    start: date | None = None
    end: date | None = None

    @model_validator(mode="after")
    def _two_groups(self) -> ExperimentSettings:
        if len(self.groups) != 2:
            raise ValueError(f"expected exactly two groups of reps; got {len(self.groups)}")
        first, second = (set(v) for v in self.groups.values())
        both = sorted(first & second)
        if both:
            raise ValueError(f"reps in both groups: {', '.join(both)}")
        if any(not reps for reps in self.groups.values()):
            raise ValueError("every group needs at least one rep")
        return self


class AnalyticsSettings(_Strict):
    """The ``analytics:`` section: report defaults, SLA overrides, teams, costs, experiments."""

    currency: str = Field(default="USD", min_length=3, max_length=3)
    # Two CRMs that mirror one company would count every person and deal twice.
    crms: list[str] | None = None
    period: Annotated[str, AfterValidator(_period)] = "all"
    default_model: str = "w_shaped"  # the attribution model of ROI headlines and red rows
    teams: dict[str, Ids] = Field(default_factory=dict)
    rep_names: dict[Annotated[str, BeforeValidator(_id)], str] = Field(default_factory=dict)
    sla: SlaSettings = SlaSettings()
    campaign_costs: list[CampaignCost] = Field(default_factory=list)
    # Touches name campaigns the way their source does (Marketo: a program id); ROI and funnel
    # rows need the CRM campaign that carries the spend.
    campaign_aliases: dict[
        Annotated[str, BeforeValidator(_id)], Annotated[str, BeforeValidator(_id)]
    ] = Field(default_factory=dict)
    experiments: dict[str, ExperimentSettings] = Field(default_factory=dict)
    nurture_lists: dict[str, Annotated[str, BeforeValidator(_id)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _checked(self) -> AnalyticsSettings:
        seen: dict[str, str] = {}
        for team, reps in self.teams.items():
            for rep in reps:
                if rep in seen and seen[rep] != team:
                    raise ValueError(f"rep {rep} is in two teams: {seen[rep]} and {team}")
                seen[rep] = team
        unknown = sorted(set(self.sla.teams) - set(self.teams))
        if unknown:
            raise ValueError(f"sla.teams names undefined teams: {', '.join(unknown)}")
        return self

    def team_of(self, rep: str | None) -> str | None:
        """The team a rep (CRM owner id) belongs to, if any."""
        if rep is None:
            return None
        for team, reps in self.teams.items():
            if rep in reps:
                return team
        return None
