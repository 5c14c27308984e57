"""A campaign's settings, as ops write them (web form, ``ivr campaign``): validated here
once, with messages that name the field at fault."""

from __future__ import annotations

from datetime import date
from typing import Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    model_validator,
)

from ivr.flows.hours import Day, HolidayCalendar, Hours, Ranges, Zone

Kind = Literal["callback", "survey"]
# What one attempt came to: the dialer's reading of Asterisk's answer.
Result = Literal["human", "machine", "busy", "no_answer", "failed"]
RETRIED: tuple[Result, ...] = ("machine", "busy", "no_answer", "failed")
RESULTS: tuple[Result, ...] = get_args(Result)


def _weekdays(ranges: str) -> dict[Day, list[str]]:
    return {day: [ranges] for day in ("mon", "tue", "wed", "thu", "fri")}


class CampaignSpec(BaseModel):
    """One campaign: whom it calls is its contacts; this is how and when."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    kind: Kind
    entry: str = Field(
        "",
        pattern=r"^[A-Za-z0-9_-]{0,64}$",
        description="The dial-plan entry an answered call runs; by default the kind's name.",
    )
    windows: dict[Day, Ranges] = Field(
        default_factory=lambda: _weekdays("09:00-20:00") | {"sat": ["10:00-16:00"]},
        description="When calls may go out, in the callee's local time; a missing day: never.",
    )
    holidays: HolidayCalendar | None = Field(None, description="No calls on these holidays.")
    timezone: Zone = Field(
        "America/New_York",
        description="The callee's zone when neither the contact nor the number tells it.",
    )
    max_attempts: int = Field(3, ge=1, le=20)
    retry_minutes: dict[Result, int] = Field(
        default_factory=lambda: {"machine": 120, "busy": 10, "no_answer": 60, "failed": 30},
        description="Minutes to wait before the next attempt, by the last attempt's result.",
    )
    max_concurrent: int = Field(5, ge=1, le=500)
    calls_per_second: float = Field(1.0, gt=0, le=100)
    ring_seconds: int = Field(30, ge=5, le=120)
    starts_on: date | None = None
    ends_on: date | None = None
    amd: bool = True
    machine_action: Literal["hangup", "continue"] = "hangup"
    agent_queue: str = Field(
        "",
        pattern=r"^([a-z0-9][a-z0-9_-]{0,63})?$",
        description="callback: an agent of this queue first, then the customer; '': the"
        " customer first, who runs the entry's flow",
    )

    _calendars: dict[str, Hours] = PrivateAttr(default_factory=dict)

    def calendar(self, zone: str) -> Hours:
        """The calling windows as business hours in `zone` (made once per zone)."""
        if zone not in self._calendars:
            self._calendars[zone] = Hours.model_construct(  # its parts are validated here
                timezone=zone, weekly=self.windows, holidays=self.holidays, closed=frozenset()
            )
        return self._calendars[zone]

    @model_validator(mode="after")
    def _consistent(self) -> CampaignSpec:
        if not self.entry:
            self.entry = self.kind
        missing = [r for r in RETRIED if r not in self.retry_minutes]
        if missing:
            raise ValueError(f"retry_minutes: give a delay for {', '.join(missing)}")
        if "human" in self.retry_minutes:
            raise ValueError("retry_minutes: a person answered: that attempt is not retried")
        if self.starts_on and self.ends_on and self.ends_on < self.starts_on:
            raise ValueError(f"ends_on {self.ends_on} is before starts_on {self.starts_on}")
        if self.agent_queue and self.kind != "callback":
            raise ValueError("agent_queue: only a callback campaign puts an agent first")
        if not any(self.windows.values()):
            raise ValueError("windows: the campaign could never call anyone")
        return self
