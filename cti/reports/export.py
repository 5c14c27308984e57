"""The KPIs' export formats, CSV and JSON (the reports page's and `ivr report`'s), and
the terminal table of `ivr report`."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

from cti.reports.kpis import OUTCOMES, Kpis

SCALARS = tuple(f.name for f in fields(Kpis) if f.name != "outcomes")


def _export_value(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _export_row(row: Kpis) -> dict[str, Any]:
    found = {name: _export_value(getattr(row, name)) for name in SCALARS}
    return found | {"outcomes": {name: row.outcomes.get(name, 0) for name in OUTCOMES}}


def to_csv(rows: Sequence[Kpis]) -> str:
    """One line per group: every figure (ratios 0..1, seconds, NPS -100..100, rounded
    to 4 decimals; empty where there is none), then outcome_<name> counts."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*SCALARS, *(f"outcome_{name}" for name in OUTCOMES)])
    for row in rows:
        data = _export_row(row)
        writer.writerow(
            [
                *("" if data[name] is None else data[name] for name in SCALARS),
                *(data["outcomes"][name] for name in OUTCOMES),
            ]
        )
    return out.getvalue()


def to_json(rows: Sequence[Kpis]) -> str:
    """A JSON array, one object per group: the figures as in to_csv (null where there is
    none), and `outcomes` an object of counts."""
    return json.dumps([_export_row(row) for row in rows], indent=2) + "\n"


def _count(value: Any) -> str:
    return str(value)


def _percent(value: Any) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _score(value: Any) -> str:
    return "-" if value is None else f"{value:+.1f}"


FIGURES: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("calls", "calls", _count),
    ("ivr_calls", "entered the IVR", _count),
    ("contained", "  contained", _count),
    ("containment", "IVR containment", _percent),
    ("abandoned_ivr", "  abandoned in the IVR", _count),
    ("abandon_rate_ivr", "IVR abandon rate", _percent),
    ("offered", "joined a queue", _count),
    ("short_abandons", "  short abandons", _count),
    ("answered", "answered", _count),
    ("answered_in_time", "  within the threshold", _count),
    ("service_level", "service level", _percent),
    ("asa", "average speed of answer", _seconds),
    ("abandoned_queue", "abandoned in the queue", _count),
    ("abandon_rate_queue", "queue abandon rate", _percent),
    ("callback_requested", "callback requested", _count),
    ("transferred", "transferred", _count),
    ("failed", "failed", _count),
    ("aht", "average handle time", _seconds),
    ("avg_talk", "  talk", _seconds),
    ("avg_hold", "  hold", _seconds),
    ("avg_wrapup", "  wrap-up", _seconds),
    ("fcr_calls", "answered, customer known", _count),
    ("fcr", "first-contact resolution", _percent),
    ("repeat_rate", "repeat-call rate", _percent),
    ("callbacks", "callback calls", _count),
    ("callbacks_reached", "  reached", _count),
    ("callback_success", "callback success", _percent),
    ("time_to_callback", "time to callback", _seconds),
    ("csat_answers", "CSAT answers", _count),
    ("csat", "CSAT", _percent),
    ("nps_answers", "NPS answers", _count),
    ("nps", "NPS", _score),
)


def to_table(rows: Sequence[Kpis], width: int | None = None) -> str:
    """The figures as a table for the terminal: one line per figure, one column per
    group (blocks of columns as wide as the terminal), percentages as %, seconds as s."""
    if not rows:
        return "no calls in this period\n"
    width = width or shutil.get_terminal_size((100, 24)).columns
    lines = [(label, [show(getattr(row, name)) for row in rows]) for name, label, show in FIGURES]
    lines += [
        (f"outcome {name}", [str(row.outcomes.get(name, 0)) for row in rows]) for name in OUTCOMES
    ]
    heads = [
        ("all" if len(rows) == 1 else "(none)") if row.group is None else row.group for row in rows
    ]
    label_width = max(len(label) for label, _ in lines)
    widths = [
        max(len(head), *(len(values[i]) for _, values in lines)) for i, head in enumerate(heads)
    ]
    blocks: list[list[int]] = [[]]
    used = label_width
    for i, column in enumerate(widths):
        if blocks[-1] and used + 2 + column > width:
            blocks.append([])
            used = label_width
        blocks[-1].append(i)
        used += 2 + column
    out = []
    for block in blocks:
        if out:
            out.append("")
        out.append(
            ("".ljust(label_width) + "".join(f"  {heads[i]:>{widths[i]}}" for i in block)).rstrip()
        )
        for label, values in lines:
            out.append(
                label.ljust(label_width) + "".join(f"  {values[i]:>{widths[i]}}" for i in block)
            )
    return "\n".join(out) + "\n"
