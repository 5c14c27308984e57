"""Phone numbers in E.164, made by `phonenumbers`: one form for the IVR's caller ID,
the customer records and the screen pop's match."""

from __future__ import annotations

import phonenumbers


def normalise_number(raw: str, region: str) -> str:
    """E.164 for `raw` read in `region`; digits that cannot be parsed stay as they are.

    Validity is not required: a short internal or test number still matches itself
    however it was written."""
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return "".join(c for c in raw if c.isdigit() or c == "+")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
