"""Business-hours calendars for dial plans: "is the support line open now, and if not, when?"

A plan file names calendars under ``hours``; a branch node tests one with `is_open`, and
`next_open` gives a caller the time we reopen. Everything here is pure: the instant to
judge is always passed in. Ranges are parsed once, at validation, into `TimeRange`s.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Annotated, Any, Literal, NamedTuple, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    field_validator,
)

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = get_args(Day)  # Monday first, as date.weekday() counts
DAY_MINUTES = 24 * 60
SEARCH = timedelta(days=14)  # how far ahead next_open looks
_RANGE = re.compile(r"(\d\d:\d\d)-(\d\d:\d\d)")


class TimeRange(NamedTuple):
    """Local wall-clock minutes after midnight: start inclusive, end exclusive (1440 = 24:00)."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(clock: str, *, latest: int) -> int:
    hour, minute = int(clock[:2]), int(clock[3:])
    if minute > 59 or hour * 60 + minute > latest:
        raise ValueError(f"bad clock time {clock!r} (use 00:00-23:59, and 24:00 only as an end)")
    return hour * 60 + minute


def _parse_range(text: object) -> TimeRange:
    match = _RANGE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not HH:MM-HH:MM")
    start_text, end_text = match.groups()
    start = _minutes(start_text, latest=DAY_MINUTES - 1)
    end = _minutes(end_text, latest=DAY_MINUTES)
    if end < start:
        raise ValueError(
            f"{text!r} ends before it starts; split a range across midnight into"
            f" '{start_text}-24:00' and '00:00-{end_text}'"
        )
    if end == start:
        raise ValueError(f"{text!r} is empty")
    return TimeRange(start, end)


def _no_overlaps(ranges: list[TimeRange]) -> list[TimeRange]:
    ordered = sorted(ranges)
    for first, second in pairwise(ordered):
        if second.start < first.end:
            raise ValueError(f"'{first}' overlaps '{second}'")
    return ranges


def _dates_as_text(value: Any) -> Any:
    """YAML reads ``2026-12-31:`` as a date; as text it makes a readable error location."""
    if isinstance(value, dict):
        return {key.isoformat() if isinstance(key, date) else key: v for key, v in value.items()}
    return value


def _known_zone(key: str) -> str:
    try:
        ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {key!r}") from None
    return key


Range = Annotated[TimeRange, PlainValidator(_parse_range), PlainSerializer(str)]
Zone = Annotated[str, AfterValidator(_known_zone)]  # an IANA time zone name
Ranges = Annotated[list[Range], AfterValidator(_no_overlaps)]


class HolidayCalendar(BaseModel):
    """Public holidays from the `holidays` package, e.g. ``{country: US, subdiv: NY}``."""

    model_config = ConfigDict(extra="forbid")

    country: str
    subdiv: str | None = None

    @field_validator("country")
    @classmethod
    def _known_country(cls, country: str) -> str:
        try:
            holidays.country_holidays(country)
        except NotImplementedError:
            raise ValueError(f"no holiday calendar for country {country!r}") from None
        return country

    @field_validator("subdiv")
    @classmethod
    def _known_subdiv(cls, subdiv: str | None, info: ValidationInfo) -> str | None:
        country = info.data.get("country")  # absent when the country itself failed
        if subdiv is not None and country is not None:
            try:
                holidays.country_holidays(country, subdiv=subdiv)
            except NotImplementedError:
                raise ValueError(
                    f"no holiday calendar for subdivision {subdiv!r} of country {country!r}"
                ) from None
        return subdiv


class Hours(BaseModel):
    """One named calendar: a plan file's ``hours.<name>``."""

    model_config = ConfigDict(extra="forbid")

    timezone: Zone = Field(description="IANA time zone name, e.g. America/New_York.")
    weekly: dict[Day, Ranges] = Field(description="Day -> open ranges; a missing day is closed.")
    holidays: HolidayCalendar | None = None
    closed: frozenset[date] = Field(frozenset(), description="Extra closed local dates.")
    special: Annotated[dict[date, Ranges], BeforeValidator(_dates_as_text)] = Field(
        default_factory=dict, description="Dates with their own ranges, overriding the rest."
    )

    @field_validator("special")
    @classmethod
    def _not_also_closed(
        cls, special: dict[date, list[TimeRange]], info: ValidationInfo
    ) -> dict[date, list[TimeRange]]:
        both = sorted(special.keys() & info.data.get("closed", frozenset()))
        if both:
            raise ValueError(f"{both[0]} is both closed and special; keep one")
        return special


@lru_cache(maxsize=256)
def _holiday_dates(country: str, subdiv: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdiv, years=year))


def _ranges_on(hours: Hours, day: date) -> list[TimeRange]:
    """The open ranges of one local date."""
    if day in hours.special:
        return hours.special[day]
    calendar = hours.holidays
    if day in hours.closed or (
        calendar is not None and day in _holiday_dates(calendar.country, calendar.subdiv, day.year)
    ):
        return []
    return hours.weekly.get(DAYS[day.weekday()], [])


def _as_utc(at: datetime) -> datetime:
    if at.utcoffset() is None:
        raise ValueError(f"{at} has no time zone; pass a timezone-aware datetime")
    return at.astimezone(UTC)


def is_open(hours: Hours, at: datetime) -> bool:
    """Whether the calendar is open at the aware instant `at`, judged on local wall-clock time."""
    local = _as_utc(at).astimezone(ZoneInfo(hours.timezone))
    minute = local.hour * 60 + local.minute
    return any(r.start <= minute < r.end for r in _ranges_on(hours, local.date()))


def next_open(hours: Hours, at: datetime) -> datetime | None:
    """The first instant at or after `at`, within `SEARCH`, when the calendar is open.

    The answer is in the calendar's zone; None when it stays closed that long. Opening
    can only happen at `at`, when the wall clock reaches a range's start (twice in a
    repeated hour: both folds), or when the clocks move (a range entered by a DST jump).
    """
    zone = ZoneInfo(hours.timezone)
    start = _as_utc(at)
    end = start + SEARCH
    candidates = [start, *_clock_changes(zone, start, end)]
    day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    while day <= last:
        for r in _ranges_on(hours, day):
            wall = datetime.combine(day, time()) + timedelta(minutes=r.start)
            candidates += [wall.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1)]
        day += timedelta(days=1)
    opening = min((c for c in candidates if start <= c <= end and is_open(hours, c)), default=None)
    return None if opening is None else opening.astimezone(zone)


def _clock_changes(zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The UTC instants in [start's hour, end) when `zone` changes its UTC offset, to the minute.

    Assumes at most one change an hour, on a whole minute, as in all current tz data.
    """
    changes = []
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour < end:
        before = hour.astimezone(zone).utcoffset()
        if (hour + timedelta(hours=1)).astimezone(zone).utcoffset() != before:
            minutes = (hour + timedelta(minutes=m) for m in range(1, 61))
            changes.append(next(t for t in minutes if t.astimezone(zone).utcoffset() != before))
        hour += timedelta(hours=1)
    return changes
