"""When a campaign may call: calling windows in the callee's zone, retries by result,
and the campaign's settings refused with the field at fault. Pure: no clock, no fakes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from cti.campaigns.schedule import in_window, next_window, retry_at, zones_for
from cti.campaigns.spec import CampaignSpec

SPEC = CampaignSpec(name="csat", kind="survey")  # weekdays 09-20, Saturday 10-16
NEW_YORK = ("America/New_York",)
LOS_ANGELES = ("America/Los_Angeles",)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_the_callee_zone_comes_from_the_contact_then_the_number_then_the_campaign() -> None:
    assert zones_for("+14155550100", None, SPEC) == LOS_ANGELES
    assert zones_for("+442079460123", None, SPEC) == ("Europe/London",)
    assert zones_for("+14155550100", "Europe/Paris", SPEC) == ("Europe/Paris",)
    assert zones_for("not a number", None, SPEC) == ("America/New_York",)
    toll_free = zones_for("+18005550100", None, SPEC)
    assert "Pacific/Honolulu" in toll_free and "America/New_York" in toll_free


def test_the_window_is_judged_on_the_callees_own_clock() -> None:
    monday_noon_in_new_york = utc(2026, 11, 23, 17, 0)  # 09:00 in Los Angeles
    assert in_window(SPEC, NEW_YORK, monday_noon_in_new_york)
    assert in_window(SPEC, LOS_ANGELES, monday_noon_in_new_york)
    early = utc(2026, 11, 23, 16, 59)  # 08:59 in Los Angeles, 11:59 in New York
    assert in_window(SPEC, NEW_YORK, early) and not in_window(SPEC, LOS_ANGELES, early)
    late = utc(2026, 11, 24, 1, 0)  # Monday 20:00 New York: the window has closed
    assert not in_window(SPEC, NEW_YORK, late) and in_window(SPEC, LOS_ANGELES, late)
    sunday = utc(2026, 11, 22, 17, 0)
    assert not in_window(SPEC, NEW_YORK, sunday)


def test_a_number_in_several_zones_is_called_only_when_all_of_them_are_in_the_window() -> None:
    both = NEW_YORK + LOS_ANGELES
    assert not in_window(SPEC, both, utc(2026, 11, 23, 16, 0))  # 08:00 in Los Angeles
    assert in_window(SPEC, both, utc(2026, 11, 23, 17, 0))
    assert not in_window(SPEC, both, utc(2026, 11, 24, 1, 0))  # 20:00 in New York
    assert next_window(SPEC, both, utc(2026, 11, 23, 12, 0)) == utc(2026, 11, 23, 17, 0)


def test_the_next_window_skips_the_night_and_sunday_and_follows_dst() -> None:
    friday_night = utc(2026, 11, 28, 2, 0)  # Friday 21:00 in New York
    assert next_window(SPEC, NEW_YORK, friday_night) == utc(2026, 11, 28, 15, 0)  # Sat 10:00
    saturday_evening = utc(2026, 11, 28, 22, 0)  # Saturday 17:00: Sunday is closed
    assert next_window(SPEC, NEW_YORK, saturday_evening) == utc(2026, 11, 30, 14, 0)  # Mon 9
    open_now = utc(2026, 11, 23, 15, 30)
    assert next_window(SPEC, NEW_YORK, open_now) == open_now
    # Clocks go forward on Sunday 8 March 2026: Monday 09:00 is 13:00 UTC, not 14:00.
    assert next_window(SPEC, NEW_YORK, utc(2026, 3, 7, 22, 0)) == utc(2026, 3, 9, 13, 0)


def test_holidays_and_the_campaign_dates_close_the_window() -> None:
    spec = CampaignSpec(
        name="xmas",
        kind="callback",
        holidays={"country": "US"},
        starts_on=date(2026, 12, 24),
        ends_on=date(2026, 12, 28),
    )
    before = utc(2026, 12, 1, 15, 0)
    assert not in_window(spec, NEW_YORK, before)
    # 24 Dec 09:00 New York; Christmas Day is a holiday, the 26th a Saturday.
    assert next_window(spec, NEW_YORK, before) == utc(2026, 12, 24, 14, 0)
    christmas = utc(2026, 12, 25, 15, 0)
    assert next_window(spec, NEW_YORK, christmas) == utc(2026, 12, 26, 15, 0)
    after = utc(2026, 12, 29, 15, 0)  # past ends_on
    assert not in_window(spec, NEW_YORK, after) and next_window(spec, NEW_YORK, after) is None


def test_retries_follow_the_result_until_the_attempts_run_out() -> None:
    at = utc(2026, 11, 23, 15, 0)
    assert retry_at(SPEC, "busy", 1, at) == utc(2026, 11, 23, 15, 10)
    assert retry_at(SPEC, "no_answer", 2, at) == utc(2026, 11, 23, 16, 0)
    assert retry_at(SPEC, "machine", 1, at) == utc(2026, 11, 23, 17, 0)
    assert retry_at(SPEC, "failed", 3, at) is None  # the third of three attempts
    assert retry_at(SPEC, "human", 1, at) is None  # reached: finished


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"retry_minutes": {"busy": 5}}, "give a delay for machine, no_answer, failed"),
        (
            {"retry_minutes": {"human": 1, "busy": 1, "machine": 1, "no_answer": 1, "failed": 1}},
            "a person answered",
        ),
        ({"windows": {"mon": ["20:00-09:00"]}}, "windows.mon.0"),
        ({"windows": {}}, "could never call anyone"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"starts_on": "2026-12-02", "ends_on": "2026-12-01"}, "is before starts_on"),
        ({"name": "Bad Name!"}, "name"),
        ({"calls_per_second": 0}, "calls_per_second"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CampaignSpec.model_validate({"name": "csat", "kind": "survey", **fields})
