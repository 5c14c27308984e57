"""The reports page for supervisors and ops: headline KPIs and charts for a period, and
the same figures as CSV or JSON (cti/reports/kpis.py computes them; docs/kpis.md
defines them).

Filters come from a GET form: ``from`` and ``to`` (dates, both included, in the
center's time zone, ``reports.timezone``), ``queue`` (a queue name, or none for all) and,
for the exports, ``by`` (one of the KPI dimensions, or none). Bad input gets a message
naming the field (400), never a 500.

Charts are pygal SVG drawn here and put inline in the page: no script and nothing
loaded from elsewhere (pygal's tooltips script lives on a CDN, so it is turned off).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pygal
from flask import Blueprint, Response, render_template, request
from markupsafe import Markup, escape
from pygal.style import Style
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.reports.export import to_csv, to_json
from cti.reports.intervals import dropoff
from cti.reports.kpis import (
    DIMENSIONS,
    Kpis,
    Period,
    Thresholds,
    breakdowns,
    commitments_past_due,
    kpis,
)
from cti.reports.traffic import NodeDropoff
from cti.store.models import Call
from ivr.config import ReportSettings

View = Callable[..., Any]
QUEUE_NAME = r"[A-Za-z0-9_.-]{1,64}"
DEFAULT_DAYS = 7
NONE = "\N{EN DASH}"  # a figure without a denominator
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)  # room for any zone's offset
DROPOFF_NODES = 12  # the nodes most left from, at most, in the drop-off chart
OUTCOMES = (  # cti/outcomes.py, in the order docs/kpis.md gives them
    "survey_completed",
    "answered",
    "callback_requested",
    "abandoned_queue",
    "transferred",
    "contained",
    "abandoned_ivr",
    "failed",
)
OUTCOME_COLORS = {
    "survey_completed": "#7b5ea7",
    "answered": "#1b7f3b",
    "callback_requested": "#2c6fbb",
    "abandoned_queue": "#b00020",
    "transferred": "#8a8a8a",
    "contained": "#4caf50",
    "abandoned_ivr": "#e69500",
    "failed": "#5d4037",
}
STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#333333",
    foreground_strong="#111111",
    foreground_subtle="#dddddd",
    font_family="system-ui, sans-serif",
    label_font_size=12,
    major_label_font_size=12,
    value_font_size=11,
    legend_font_size=12,
    title_font_size=14,
    colors=("#2c6fbb", "#e69500", "#1b7f3b", "#b00020", "#7b5ea7", "#8a8a8a"),
)


class FilterError(ValueError):
    """Bad filter input: `field` is the form field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Filters:
    first: date  # the first day shown
    last: date  # the last day shown (included)
    queue: str | None
    by: str | None = None

    def period(self, zone: ZoneInfo) -> Period:
        start = datetime.combine(self.first, time(), zone)
        end = datetime.combine(self.last + timedelta(days=1), time(), zone)
        return Period(start=start, end=end, queue=self.queue)

    def query(self, **more: str) -> dict[str, str]:
        """The filters as the page's query string has them."""
        args = {"from": self.first.isoformat(), "to": self.last.isoformat()}
        if self.queue:
            args["queue"] = self.queue
        return args | more

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def parse_date(args: dict[str, str], name: str, default: date) -> date:
    text = args.get(name, "").strip()
    if not text:
        return default
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise FilterError(name, f"{text!r} is not a date (YYYY-MM-DD)") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise FilterError(name, f"{text!r} is out of range ({FIRST_DAY} to {LAST_DAY})")
    return day


def parse_filters(args: dict[str, str], today: date, export: bool = False) -> Filters:
    """The filters a request gives; the last `DEFAULT_DAYS` days up to `today` by default."""
    last = parse_date(args, "to", today)
    first = parse_date(args, "from", last - timedelta(days=DEFAULT_DAYS - 1))
    if first > last:
        raise FilterError("from", f"{first} is after to ({last})")
    queue = args.get("queue", "").strip()
    if queue in ("", "all"):
        queue = ""
    elif not re.fullmatch(QUEUE_NAME, queue):
        raise FilterError("queue", "a queue name is letters, digits, '_', '.' or '-'")
    by = args.get("by", "").strip() if export else ""
    if by in ("", "none"):
        by = ""
    elif by not in DIMENSIONS:
        raise FilterError("by", f"{by!r} is not one of none, {', '.join(DIMENSIONS)}")
    return Filters(first, last, queue or None, by or None)


# Figures as the page shows them ------------------------------------------------------


def percent(ratio: float | None) -> str:
    return NONE if ratio is None else f"{ratio * 100:.1f}%"


def duration(seconds: float | None) -> str:
    """m:ss (h:mm:ss from an hour on)."""
    if seconds is None:
        return NONE
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def score(nps: float | None) -> str:
    return NONE if nps is None else f"{nps:+.0f}"


def count(n: int | None) -> str:
    return NONE if n is None else str(n)


@dataclass(frozen=True)
class Tile:
    key: str
    label: str
    value: str
    detail: str = ""


def tiles(total: Kpis | None, thresholds: Thresholds, past_due: int) -> list[Tile]:
    """The headline figures, in the order the page shows them."""
    t = total
    answer = f"{thresholds.answer_seconds:g}"
    short = f"{thresholds.short_abandon_seconds:g}"
    repeat = f"{thresholds.repeat_hours:g}"

    def of(part: int | None, whole: int | None, what: str) -> str:
        return "" if t is None or not whole else f"{part} of {whole} {what}"

    if t is None:
        return [
            Tile("service_level", f"Service level (answered ≤ {answer} s)", NONE),
            Tile("asa", "Average speed of answer", NONE),
            Tile("abandon_rate_queue", f"Abandoned in queue (≥ {short} s)", NONE),
            Tile("abandon_rate_ivr", "Abandoned in IVR", NONE),
            Tile("aht", "Average handle time", NONE),
            Tile("fcr", f"First-contact resolution ({repeat} h)", NONE),
            Tile("repeat_rate", "Repeat-call rate", NONE),
            Tile("containment", "IVR containment", NONE),
            Tile("callback_success", "Callback success", NONE),
            Tile("time_to_callback", "Time to callback", NONE),
            Tile("csat", "CSAT (4 or 5 of 5)", NONE),
            Tile("nps", "NPS", NONE),
            Tile("past_due", "Open commitments past due", str(past_due), "as of today"),
        ]
    offered = t.offered - t.short_abandons
    return [
        Tile(
            "service_level",
            f"Service level (answered ≤ {answer} s)",
            percent(t.service_level),
            of(t.answered_in_time, offered, "offered"),
        ),
        Tile(
            "asa",
            "Average speed of answer",
            duration(t.asa),
            f"{t.answered} answered" if t.answered else "",
        ),
        Tile(
            "abandon_rate_queue",
            f"Abandoned in queue (≥ {short} s)",
            percent(t.abandon_rate_queue),
            of(t.abandoned_queue, offered, "offered"),
        ),
        Tile(
            "abandon_rate_ivr",
            "Abandoned in IVR",
            percent(t.abandon_rate_ivr),
            of(t.abandoned_ivr, t.ivr_calls, "in the IVR"),
        ),
        Tile(
            "aht",
            "Average handle time",
            duration(t.aht),
            ""
            if t.aht is None
            else f"talk {duration(t.avg_talk)}, hold {duration(t.avg_hold)}, "
            f"wrap-up {duration(t.avg_wrapup)}",
        ),
        Tile("fcr", f"First-contact resolution ({repeat} h)", percent(t.fcr)),
        Tile("repeat_rate", "Repeat-call rate", percent(t.repeat_rate)),
        Tile(
            "containment",
            "IVR containment",
            percent(t.containment),
            of(t.contained, t.ivr_calls, "in the IVR"),
        ),
        Tile(
            "callback_success",
            "Callback success",
            percent(t.callback_success),
            of(t.callbacks_reached, t.callbacks, "dialled"),
        ),
        Tile("time_to_callback", "Time to callback", duration(t.time_to_callback)),
        Tile(
            "csat",
            "CSAT (4 or 5 of 5)",
            percent(t.csat),
            f"{t.csat_answers} answers" if t.csat_answers else "",
        ),
        Tile("nps", "NPS", score(t.nps), f"{t.nps_answers} answers" if t.nps_answers else ""),
        Tile("past_due", "Open commitments past due", str(past_due), "as of today"),
    ]


# Charts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    svg: Markup | None  # None: nothing to draw; `empty` says why
    empty: str = ""
    points: int = 0  # bars, slices or dots drawn


SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>|<script\b[^>]*/>|<!--.*?-->", re.S)
VALUE_DESC = re.compile(r'<desc class="value">(.*?)</desc>', re.S)


def svg(chart: pygal.graph.graph.Graph, title: str) -> Markup:
    """The chart as inline SVG: no scripts (pygal's config script and CDN tooltips),
    no comments; values become native tooltips (<title>)."""
    text = SCRIPT.sub("", chart.render(is_unicode=True))
    text = text.replace("<title>Pygal</title>", f"<title>{escape(title)}</title>", 1)
    return Markup(VALUE_DESC.sub(r"<title>\1</title>", text))


def config(**more: Any) -> dict[str, Any]:
    return {
        "js": [],  # the default is pygal-tooltips.min.js from a CDN
        "disable_xml_declaration": True,
        "style": STYLE,
        "width": 560,
        "height": 320,
        "margin": 12,
        "show_legend": False,
        "print_values": True,
        "no_data_text": "no data",
        "truncate_legend": -1,
        "truncate_label": -1,
    } | more


def hour_of(group: Any) -> int | None:
    """An hour-of-day group (0..23) from however the KPI rows name it."""
    if isinstance(group, int):
        return group
    if isinstance(group, datetime | time):
        return group.hour
    match = re.match(r"\s*(\d{1,2})", str(group))
    return int(match[1]) if match else None


def day_of(group: Any) -> date | None:
    if isinstance(group, datetime):
        return group.date()
    if isinstance(group, date):
        return group
    try:
        return date.fromisoformat(str(group)[:10])
    except ValueError:
        return None


def service_level_chart(by_hour: Iterable[Kpis], answer_seconds: float) -> Chart:
    title = f"Service level by hour (answered ≤ {answer_seconds:g} s)"
    levels = {hour_of(row.group): row.service_level for row in by_hour}
    values = [levels.get(hour) for hour in range(24)]
    drawn = [v for v in values if v is not None]
    if not drawn:
        return Chart("service-level", title, None, "no calls joined a queue in this period")
    chart = pygal.Bar(
        **config(
            range=(0, 100),
            value_formatter=lambda v: f"{v:.0f}%",
            y_labels=[0, 20, 40, 60, 80, 100],
            print_values=len(drawn) <= 12,
        )
    )
    chart.x_labels = [f"{hour:02}" for hour in range(24)]
    chart.add("service level", [None if v is None else v * 100 for v in values])
    return Chart("service-level", title, svg(chart, title), points=len(drawn))


def outcomes_chart(outcomes: dict[str, int]) -> Chart:
    title = "Call outcomes"
    known = [name for name in OUTCOMES if outcomes.get(name)]
    known += sorted(name for name, n in outcomes.items() if n and name not in OUTCOMES)
    if not known:
        return Chart("outcomes", title, None, "no ended calls in this period")
    total = sum(outcomes[name] for name in known)
    colors = tuple(OUTCOME_COLORS.get(name, "#999999") for name in known)
    style = Style(**{**STYLE.to_dict(), "colors": colors})
    chart = pygal.Pie(
        **config(
            style=style,
            show_legend=True,
            legend_at_bottom=False,
            inner_radius=0.45,
            print_values=False,
            value_formatter=lambda n: f"{n} ({n / total:.0%})",
        )
    )
    for name in known:
        chart.add(f"{name.replace('_', ' ')}: {outcomes[name]}", outcomes[name])
    return Chart("outcomes", title, svg(chart, title), points=len(known))


def dropoff_chart(nodes: Sequence[NodeDropoff], containment: float | None) -> Chart:
    title = f"IVR containment {percent(containment)} · drop-off per node"
    shown = sorted(
        (n for n in nodes if n.visits),
        key=lambda n: (-(n.hangups + n.escapes) / n.visits, -n.visits, n.flow, n.node),
    )[:DROPOFF_NODES]
    if not shown:
        return Chart("dropoff", title, None, "no calls went through the IVR in this period")
    top = max(100 * (n.hangups + n.escapes) / n.visits for n in shown)
    step = next((s for s in (1, 2, 5, 10, 20, 25) if top <= 5 * s), 50)
    ticks = list(range(0, step * math.ceil(max(top, 1) / step) + 1, step))
    chart = pygal.HorizontalStackedBar(
        **config(
            height=max(200, 70 + 26 * len(shown)),
            show_legend=True,
            legend_at_bottom=True,
            legend_at_bottom_columns=2,
            print_values=False,
            range=(0, ticks[-1]),
            y_labels=ticks,
            value_formatter=lambda v: f"{v:.1f}".removesuffix(".0") + "%",
        )
    )
    # Highest drop-off on top: horizontal bars are drawn from the bottom.
    ordered = list(reversed(shown))
    chart.x_labels = [f"{n.flow}/{n.node} ({n.visits})" for n in ordered]
    chart.add("hung up", [100 * n.hangups / n.visits for n in ordered])
    chart.add("asked for an agent", [100 * n.escapes / n.visits for n in ordered])
    return Chart("dropoff", title, svg(chart, title), points=len(shown))


def satisfaction_chart(by_day: Iterable[Kpis], days: list[date]) -> Chart:
    title = "CSAT and NPS by day"
    rows = {day_of(row.group): row for row in by_day}
    csat = [None if (r := rows.get(d)) is None or r.csat is None else r.csat * 100 for d in days]
    nps = [None if (r := rows.get(d)) is None or r.nps is None else r.nps for d in days]
    points = sum(v is not None for v in csat + nps)
    if not points:
        return Chart("satisfaction", title, None, "no survey answers in this period")
    every = max(1, len(days) // 10)
    chart = pygal.Line(
        **config(
            range=(-100, 100),
            y_labels=[-100, -50, 0, 50, 100],
            show_legend=True,
            legend_at_bottom=True,
            legend_at_bottom_columns=2,
            print_values=len(days) <= 14,
            allow_interruptions=True,
            dots_size=4,
            margin_right=28,
            x_label_rotation=0 if len(days) <= 10 else 30,
            x_labels_major_every=every,
            show_minor_x_labels=every == 1,
            value_formatter=lambda v: f"{v:.0f}",
        )
    )
    chart.x_labels = [d.strftime("%b %d") for d in days]
    chart.add("CSAT %", csat)
    chart.add("NPS", nps)
    return Chart("satisfaction", title, svg(chart, title), points=points)


# The page and the exports ------------------------------------------------------------


@dataclass
class Report:
    filters: Filters
    total: Kpis | None
    tiles: list[Tile]
    charts: list[Chart] = field(default_factory=list)


def build(db: Session, filters: Filters, settings: ReportSettings, today: date) -> Report:
    zone = settings.zone()
    thresholds = settings.thresholds()
    period = filters.period(zone)
    found = breakdowns(db, period, thresholds, zone, None, "hour", "day")
    total = found[None][0] if found[None][0].calls else None
    past_due = commitments_past_due(db, today)
    report = Report(filters, total, tiles(total, thresholds, past_due))
    if total is None:
        return report
    report.charts = [
        service_level_chart(found["hour"], thresholds.answer_seconds),
        outcomes_chart(total.outcomes),
        dropoff_chart(dropoff(db, period, thresholds), total.containment),
        satisfaction_chart(found["day"], filters.days()),
    ]
    return report


def queues_in_log(db: Session) -> list[str]:
    return list(db.scalars(select(Call.queue).where(Call.queue.is_not(None)).distinct()))


def reports_blueprint(
    sessions: sessionmaker[Session],
    settings: ReportSettings,
    guard: Callable[[View], View],
) -> Blueprint:
    """/reports and its exports; `guard` wraps each view (login and roles)."""
    pages = Blueprint("reports", __name__)

    def today() -> date:
        return datetime.now(settings.zone()).date()

    @pages.get("/reports")
    @guard
    def page() -> Any:
        now = today()
        error = None
        try:
            filters = parse_filters(request.args.to_dict(), now)
        except FilterError as exc:
            error = exc
            filters = parse_filters({}, now)
        with sessions() as db:
            queues = sorted(set(queues_in_log(db)) | ({filters.queue} if filters.queue else set()))
            report = None if error else build(db, filters, settings, now)
        shown = request.args.to_dict() if error else filters.query()
        page = render_template(
            "reports.html",
            report=report,
            filters=filters,
            shown=shown,
            error=error,
            queues=queues,
            dimensions=DIMENSIONS,
            zone=settings.timezone,
        )
        return page, 400 if error else 200

    def export(kind: str, render: Callable[[list[Kpis]], str], mimetype: str) -> Any:
        now = today()
        try:
            filters = parse_filters(request.args.to_dict(), now, export=True)
        except FilterError as exc:
            return Response(f"{exc}\n", 400, mimetype="text/plain")
        zone = settings.zone()
        with sessions() as db:
            rows = kpis(db, filters.period(zone), settings.thresholds(), zone, by=filters.by)
        name = "_".join(
            part
            for part in (
                "kpis",
                filters.first.isoformat(),
                filters.last.isoformat(),
                filters.queue,
                filters.by and f"by-{filters.by}",
            )
            if part
        )
        return Response(
            render(rows),
            mimetype=mimetype,
            headers={"Content-Disposition": f'attachment; filename="{name}.{kind}"'},
        )

    @pages.get("/reports/export.csv")
    @guard
    def export_csv() -> Any:
        return export("csv", to_csv, "text/csv")

    @pages.get("/reports/export.json")
    @guard
    def export_json() -> Any:
        return export("json", to_json, "application/json")

    return pages
