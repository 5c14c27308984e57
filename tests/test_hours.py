from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from ivr.flows.hours import Hours, TimeRange, is_open, next_open

NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = {day: ["08:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")}


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def local(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A New York wall-clock time (the first one, in the repeated hour)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=NEW_YORK)


def calendar(**fields: Any) -> Hours:
    return Hours.model_validate({"timezone": "America/New_York", "weekly": WEEKDAYS, **fields})


SUPPORT = Hours.model_validate(
    yaml.safe_load(
        """
        timezone: America/New_York
        weekly:
          mon: ["08:00-12:00", "13:00-18:00"]
          tue: ["08:00-18:00"]
          sat: ["10:00-14:00"]
          sun: []
        holidays: {country: US, subdiv: NY}
        closed: [2026-12-24]
        special:
          2026-11-26: ["09:00-12:00"]
        """
    )
)


def test_yaml_ranges_are_parsed_once_and_dump_back_as_text() -> None:
    assert SUPPORT.weekly["mon"] == [TimeRange(480, 720), TimeRange(780, 1080)]
    assert SUPPORT.special == {date(2026, 11, 26): [TimeRange(540, 720)]}
    assert SUPPORT.model_dump(mode="json")["weekly"]["mon"] == ["08:00-12:00", "13:00-18:00"]


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (local(2026, 11, 16, 8, 0), True),  # Monday: start is inclusive
        (local(2026, 11, 16, 7, 59, 59), False),
        (local(2026, 11, 16, 11, 59), True),
        (local(2026, 11, 16, 12, 0), False),  # end is exclusive: the lunch break
        (local(2026, 11, 16, 13, 0), True),
        (local(2026, 11, 16, 18, 0), False),
        (local(2026, 11, 17, 17, 59), True),  # Tuesday
        (local(2026, 11, 18, 10, 0), False),  # Wednesday is not listed: closed
        (local(2026, 11, 22, 10, 0), False),  # Sunday has no ranges
        (local(2026, 11, 21, 10, 0), True),  # Saturday
        (local(2026, 12, 24, 10, 0), False),  # Thursday, but in `closed`
        (local(2026, 12, 29, 10, 0), True),  # an ordinary Tuesday
        (local(2026, 1, 19, 10, 0), False),  # Martin Luther King Jr. Day, a Monday
        (local(2026, 11, 26, 10, 0), True),  # Thanksgiving, but special 09:00-12:00
        (local(2026, 11, 26, 12, 30), False),
        (utc(2026, 11, 16, 15, 0), True),  # 10:00 in New York, given in UTC
        (utc(2026, 11, 17, 3, 0), False),  # 22:00 Monday in New York, Tuesday in UTC
    ],
)
def test_is_open(at: datetime, expected: bool) -> None:
    assert is_open(SUPPORT, at) is expected


def test_24_00_ends_the_day() -> None:
    hours = calendar(weekly={"mon": ["22:00-24:00"], "tue": ["00:00-02:00"]})
    assert is_open(hours, local(2026, 11, 16, 23, 59, 59))
    assert is_open(hours, local(2026, 11, 17, 0, 0))
    assert not is_open(hours, local(2026, 11, 17, 2, 0))


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # 2026-03-08, a Sunday: clocks go from 02:00 EST to 03:00 EDT (UTC-4 from then on).
        (utc(2026, 3, 8, 12, 30), True),  # 08:30 EDT
        (utc(2026, 3, 8, 11, 30), False),  # 07:30 EDT
        (utc(2026, 3, 8, 12, 0), True),  # 08:00 EDT
        (utc(2026, 3, 8, 11, 59), False),  # 07:59 EDT (12:59 would be 07:59 in EST)
        # 2026-11-01, a Sunday: clocks go from 02:00 EDT back to 01:00 EST (UTC-5 from then on).
        (utc(2026, 11, 1, 13, 30), True),  # 08:30 EST
        (utc(2026, 11, 1, 12, 30), False),  # 07:30 EST (08:30 in EDT)
        (utc(2026, 11, 1, 13, 0), True),  # 08:00 EST
        (utc(2026, 11, 1, 12, 59), False),  # 07:59 EST
    ],
)
def test_is_open_across_dst(at: datetime, expected: bool) -> None:
    assert is_open(calendar(weekly={"sun": ["08:00-18:00"]}), at) is expected


def test_next_open_is_now_when_open() -> None:
    at = utc(2026, 11, 16, 15, 0)
    opening = next_open(SUPPORT, at)
    assert opening == at and opening.tzinfo == NEW_YORK


def test_next_open_over_a_weekend() -> None:
    friday_evening = local(2026, 11, 20, 18, 30)
    opening = next_open(calendar(), friday_evening)
    assert opening == utc(2026, 11, 23, 13, 0)  # Monday 08:00 EST
    assert opening is not None and opening.tzinfo == NEW_YORK and opening.hour == 8


def test_next_open_over_a_holiday() -> None:
    hours = calendar(holidays={"country": "US"})
    opening = next_open(hours, local(2026, 11, 25, 19, 0))  # Wednesday before Thanksgiving
    assert opening == local(2026, 11, 27, 8, 0)  # Friday
    assert not is_open(hours, local(2026, 11, 26, 10, 0))


def test_next_open_over_the_fall_back_weekend() -> None:
    opening = next_open(calendar(), utc(2026, 10, 30, 23, 0))  # Friday 19:00 EDT
    assert opening == utc(2026, 11, 2, 13, 0)  # Monday 08:00 EST


def test_next_open_when_a_range_starts_in_the_spring_gap() -> None:
    # 02:30 does not exist on 2026-03-08; the clocks jump from 02:00 EST to 03:00 EDT.
    hours = calendar(weekly={"sun": ["02:30-05:00"]})
    assert next_open(hours, utc(2026, 3, 8, 5, 0)) == utc(2026, 3, 8, 7, 0)  # 03:00 EDT
    assert not is_open(hours, utc(2026, 3, 8, 6, 59))  # 01:59 EST


def test_next_open_in_the_repeated_hour() -> None:
    # On 2026-11-01 the hour from 01:00 runs twice: first in EDT, then in EST.
    hours = calendar(weekly={"sun": ["00:30-01:45"]})
    after_first_pass = utc(2026, 11, 1, 5, 50)  # 01:50 EDT
    opening = next_open(hours, after_first_pass)
    assert opening is not None and (opening.hour, opening.minute, opening.fold) == (1, 0, 1)
    # A datetime in the repeated hour never equals one in another zone (PEP 495): compare in UTC.
    assert opening.astimezone(UTC) == utc(2026, 11, 1, 6, 0)  # 01:00 EST
    late = next_open(calendar(weekly={"sun": ["01:15-01:30"]}), after_first_pass)
    assert late is not None and late.astimezone(UTC) == utc(2026, 11, 1, 6, 15)  # 01:15 EST


def test_next_open_gives_up_after_two_weeks() -> None:
    assert next_open(calendar(weekly={}), utc(2026, 11, 16, 12, 0)) is None
    first_of_december = calendar(special={"2026-12-01": ["08:00-09:00"]}, weekly={})
    assert next_open(first_of_december, local(2026, 11, 17, 8, 0)) == local(2026, 12, 1, 8, 0)
    assert next_open(first_of_december, local(2026, 11, 17, 7, 59)) is None


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2026, 11, 16, 10, 0)
    with pytest.raises(ValueError, match="no time zone"):
        is_open(SUPPORT, naive)
    with pytest.raises(ValueError, match="no time zone"):
        next_open(SUPPORT, naive)


@pytest.mark.parametrize(
    ("fields", "loc", "message"),
    [
        ({"timezone": "Mars/Base"}, ("timezone",), "unknown time zone 'Mars/Base'"),
        ({"timezone": "../etc/passwd"}, ("timezone",), "unknown time zone '../etc/passwd'"),
        ({"weekly": {"mon": ["8-18"]}}, ("weekly", "mon", 0), "'8-18' is not HH:MM-HH:MM"),
        ({"weekly": {"mon": [800]}}, ("weekly", "mon", 0), "800 is not HH:MM-HH:MM"),
        (
            {"weekly": {"tue": ["08:00-12:00", "13:00-25:00"]}},
            ("weekly", "tue", 1),
            "bad clock time '25:00'",
        ),
        ({"weekly": {"mon": ["08:60-09:00"]}}, ("weekly", "mon", 0), "bad clock time '08:60'"),
        ({"weekly": {"mon": ["24:00-24:00"]}}, ("weekly", "mon", 0), "bad clock time '24:00'"),
        (
            {"weekly": {"mon": ["18:00-08:00"]}},
            ("weekly", "mon", 0),
            "'18:00-08:00' ends before it starts; split a range across midnight"
            " into '18:00-24:00' and '00:00-08:00'",
        ),
        ({"weekly": {"mon": ["08:00-08:00"]}}, ("weekly", "mon", 0), "'08:00-08:00' is empty"),
        (
            {"weekly": {"mon": ["11:00-13:00", "09:00-12:00"]}},
            ("weekly", "mon"),
            "'09:00-12:00' overlaps '11:00-13:00'",
        ),
        (
            {"special": {date(2026, 12, 31): ["08:00-12:00", "08:00-09:00"]}},
            ("special", "2026-12-31"),
            "'08:00-09:00' overlaps '08:00-12:00'",
        ),
        (
            {"special": {date(2026, 12, 31): ["8:00-12:00"]}},
            ("special", "2026-12-31", 0),
            "'8:00-12:00' is not HH:MM-HH:MM",
        ),
        ({"weekly": {"monday": []}}, ("weekly", "monday", "[key]"), "Input should be 'mon'"),
        (
            {"holidays": {"country": "XX"}},
            ("holidays", "country"),
            "no holiday calendar for country 'XX'",
        ),
        (
            {"holidays": {"country": "US", "subdiv": "XX"}},
            ("holidays", "subdiv"),
            "no holiday calendar for subdivision 'XX' of country 'US'",
        ),
        (
            {"closed": [date(2026, 12, 24)], "special": {date(2026, 12, 24): ["08:00-12:00"]}},
            ("special",),
            "2026-12-24 is both closed and special",
        ),
        ({"opens": "08:00"}, ("opens",), "Extra inputs are not permitted"),
    ],
)
def test_validation_errors_name_the_field(
    fields: dict[str, Any], loc: tuple[str | int, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        calendar(**fields)
    [error] = caught.value.errors()
    assert error["loc"] == loc
    assert message in error["msg"]
