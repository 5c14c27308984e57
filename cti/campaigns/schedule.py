"""When a campaign may call a contact: inside its calling windows in the callee's own
time zone, and when the last attempt's result says to try again.

Pure: the instant to judge is always passed in (the dialer's clock), so tests move
time by hand. A number whose country spans several zones (e.g. +1 800) is called only
when the window is open in every zone it may be in: never outside the window.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as number_zones

from cti.campaigns.spec import CampaignSpec, Result
from ivr.flows.hours import is_open, next_open

UNKNOWN_ZONE = "Etc/Unknown"


def zones_for(number: str, contact_zone: str | None, spec: CampaignSpec) -> tuple[str, ...]:
    """The callee's possible zones: the contact's own if given, else the number's
    (`phonenumbers`), else the campaign's default."""
    if contact_zone:
        return (contact_zone,)
    try:
        found = number_zones.time_zones_for_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        found = ()
    return tuple(z for z in found if z != UNKNOWN_ZONE) or (spec.timezone,)


def in_window(spec: CampaignSpec, zones: tuple[str, ...], at: datetime) -> bool:
    """Whether a callee in `zones` may be called at the aware instant `at`."""
    days = [at.astimezone(ZoneInfo(zone)).date() for zone in zones]
    if (spec.starts_on and min(days) < spec.starts_on) or (
        spec.ends_on and max(days) > spec.ends_on
    ):
        return False
    return all(is_open(spec.calendar(zone), at) for zone in zones)


def next_window(spec: CampaignSpec, zones: tuple[str, ...], at: datetime) -> datetime | None:
    """The first instant at or after `at` when the callee may be called; None when not
    within two weeks (`hours.SEARCH`) or before the campaign ends."""
    moment = at
    if spec.starts_on:  # from the first minute of starts_on wherever the callee is
        first = (datetime.combine(spec.starts_on, time(), ZoneInfo(zone)) for zone in zones)
        moment = max(moment, *first)
    while True:  # each round moves to a later opening, so this ends
        openings = [next_open(spec.calendar(zone), moment) for zone in zones]
        if any(opening is None for opening in openings):
            return None
        latest = max(o for o in openings if o is not None)
        if all(is_open(spec.calendar(zone), latest) for zone in zones):
            return latest if in_window(spec, zones, latest) else None
        moment = latest


def retry_at(spec: CampaignSpec, result: Result, attempts: int, at: datetime) -> datetime | None:
    """When to try a contact again after an attempt (the `attempts`th) came to `result`
    at `at`; None when the contact is finished: a person answered, or no attempts left."""
    if result == "human" or attempts >= spec.max_attempts:
        return None
    return at + timedelta(minutes=spec.retry_minutes[result])
