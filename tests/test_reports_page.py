"""The reports page (/reports) and its exports, on a hand-made outcome log: ten calls over
two days, written through the outcome log's own writer (`CallLog.record`), with journeys
for the IVR drop-off, survey answers and commitments. The figures below are worked out by
hand from that log (see `fill`).

The Flask test client checks access, filters, bad input and the exports; a real headless
Chromium on the real `ivr serve` checks the page draws the four charts and the figures
(screenshot in var/test-artifacts/reports.png).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from selenium.webdriver.common.by import By
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.store.calls import CallLog
from cti.store.db import make_engine, session_factory, upgrade
from cti.store.models import Callback, Commitment, Customer, JourneyEvent, SurveyAnswer, User
from cti.store.users import add_user
from cti.web.app import create_app
from ivr.config import CtiSettings, ReportSettings
from tests.support.service import REPO, ServiceProcess, own_plans
from tests.test_web import chromium, log_in, wait

PASSWORD = "a long enough password"
ARTIFACTS = REPO / "var" / "test-artifacts"
NEW_YORK = ZoneInfo("America/New_York")
DAY1, DAY2 = date(2026, 3, 2), date(2026, 3, 3)
PERIOD = {"from": DAY1.isoformat(), "to": DAY2.isoformat()}

# What the page shows for DAY1..DAY2, all queues, worked out by hand from `fill`.
HEADLINE = {
    "service_level": "50.0%",  # in time A1, B1 of offered A1 A2 A3 B1 (A4 a short abandon)
    "asa": "0:17",  # (10 + 35 + 5) / 3: B3, a callback call, never waited in a queue
    "abandon_rate_queue": "25.0%",  # A3 of the 4
    "abandon_rate_ivr": "11.1%",  # A6 of the 9 calls that ran a flow
    "aht": "2:30",  # talk (120 + 180 + 100 + 60) / 4 + hold 20 / 4 + wrap-up 120 / 4
    "fcr": "66.7%",  # A2, B1 resolved; A1 followed by B1 within 72 h
    "repeat_rate": "33.3%",
    "containment": "11.1%",  # A5 of 9
    "callback_success": "100.0%",  # B3 reached
    "time_to_callback": "1:00:00",  # B2 asked at 14:00, B3 at 15:00
    "csat": "75.0%",  # 5, 2, 4, 5
    "nps": "+25",  # 10, 6, 9, 8: 2 promoters, 1 detractor of 4
    "past_due": "1",
}


def at(day: date, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(UTC)


def fill(sessions: sessionmaker[Session], zone: ZoneInfo) -> None:
    """The outcome log the figures above come from. Times are the center's (`zone`).

    | call | start      | what                                           | wait | talk | hold | wrap
    | A1   | day1 09:05 | sales, answered, customer 1                    | 10   | 120  |      | 30
    | A2   | day1 09:40 | pressed 0 at menu, sales, answered, customer 2 | 35   | 180  | 20   | 60
    | A3   | day1 10:10 | support, abandoned                             | 60   |      |      |
    | A4   | day1 10:30 | support, abandoned (short)                     | 3    |      |      |
    | A5   | day1 11:00 | contained at balance                           |      |      |      |
    | A6   | day1 11:20 | hung up at menu                                |      |      |      |
    | B1   | day2 09:15 | sales, answered, customer 1                    | 5    | 100  |      | 20
    | B2   | day2 14:00 | asked for a callback                           |      |      |      |
    | B3   | day2 15:00 | the callback, answered                         |      | 60   |      | 10
    | B4   | day2 16:00 | our flow failed at welcome                     |      |      |      |
    X1 (day1 less 30 minutes) and X2 (the day after day2, 00:10) are outside the period.
    """
    log = CallLog(sessions)
    with sessions.begin() as db:
        db.add_all([Customer(id=1, name="Ana Lopez"), Customer(id=2, name="Carl Idris")])

    def call(call_id: str, start: datetime, path: list[str] | None = None, **facts: Any) -> None:
        flow = {"flow": "main", "entry": "5551000"} if path else {}
        log.record(call_id, {"started_at": start, "caller_number": "+14155550100"} | flow | facts)
        with sessions.begin() as db:
            for seq, node in enumerate(path or [], start=1):
                db.add(
                    JourneyEvent(
                        call_id=call_id,
                        seq=seq,
                        at=start + timedelta(seconds=5 * seq),
                        kind="prompt",
                        node=node,
                        data={},
                    )
                )

    def answered(
        call_id: str, start: datetime, queue: str, wait: int, talk: int, wrap: int, **more: Any
    ) -> None:
        joined = start + timedelta(seconds=20)
        answer = joined + timedelta(seconds=wait)
        done = answer + timedelta(seconds=talk + (more.get("hold_seconds") or 0))
        call(
            call_id,
            start,
            ["welcome", "menu", f"{queue}_queue"],
            ivr_end="routed",
            route=f"queue:{queue}",
            queue=queue,
            queue_entered_at=joined,
            answered_at=answer,
            agent_done_at=done,
            disposed_at=done + timedelta(seconds=wrap),
            ended_at=done,
            agent="agent1",
            **more,
        )

    def abandoned(call_id: str, start: datetime, queue: str, wait: int) -> None:
        joined = start + timedelta(seconds=20)
        call(
            call_id,
            start,
            ["welcome", "menu", f"{queue}_queue"],
            ivr_end="routed",
            route=f"queue:{queue}",
            queue=queue,
            queue_entered_at=joined,
            abandoned=True,
            ended_at=joined + timedelta(seconds=wait),
            caller_number=None,
        )

    answered("A1", at(DAY1, 9, 5, zone), "sales", 10, 120, 30, customer_id=1)
    answered("A2", at(DAY1, 9, 40, zone), "sales", 35, 180, 60, customer_id=2, hold_seconds=20.0)
    log.record("A2", {"escape_node": "menu"})
    abandoned("A3", at(DAY1, 10, 10, zone), "support", 60)
    abandoned("A4", at(DAY1, 10, 30, zone), "support", 3)
    start = at(DAY1, 11, 0, zone)
    call(
        "A5",
        start,
        ["welcome", "menu", "balance"],
        ivr_end="contained",
        route="hangup",
        exit_node="balance",
        ended_at=start + timedelta(seconds=45),
        caller_number=None,
    )
    start = at(DAY1, 11, 20, zone)
    call(
        "A6",
        start,
        ["welcome", "menu"],
        ivr_end="abandoned_ivr",
        exit_node="menu",
        ended_at=start + timedelta(seconds=15),
        caller_number=None,
    )
    answered("B1", at(DAY2, 9, 15, zone), "sales", 5, 100, 20, customer_id=1)
    asked = at(DAY2, 14, 0, zone)
    call(
        "B2",
        asked,
        ["welcome", "menu", "callback"],
        ivr_end="contained",
        route="hangup",
        exit_node="callback",
        callback_requested=True,
        ended_at=asked + timedelta(seconds=40),
        caller_number=None,
    )
    with sessions.begin() as db:
        request = Callback(
            linkedid="B2", number="+14155550177", due_at=asked, reason="ivr", created_at=asked
        )
        db.add(request)
        db.flush()
        request_id = request.id
    start = at(DAY2, 15, 0, zone)
    call(
        "B3",
        start,
        kind="callback",
        direction="outbound",
        callback_id=request_id,
        answered_at=start + timedelta(seconds=8),
        agent_done_at=start + timedelta(seconds=68),
        disposed_at=start + timedelta(seconds=78),
        ended_at=start + timedelta(seconds=68),
        agent="agent1",
        caller_number=None,
    )
    start = at(DAY2, 16, 0, zone)
    call(
        "B4",
        start,
        ["welcome"],
        ivr_end="failed",
        exit_node="welcome",
        ended_at=start + timedelta(seconds=5),
        caller_number=None,
    )
    for call_id, start in (
        ("X1", at(DAY1, 0, 0, zone) - timedelta(minutes=30)),
        ("X2", at(DAY2 + timedelta(days=1), 0, 10, zone)),
    ):
        answered(call_id, start, "sales", 50, 100, 10, caller_number=None)
    today = datetime.now(zone).date()
    with sessions.begin() as db:
        for call_id, csat, nps in (("A1", 5, 10), ("A2", 2, 6), ("B1", 4, 9), ("B3", 5, 8)):
            db.add(SurveyAnswer(call_id=call_id, question="csat", scale="scale5", value=str(csat)))
            db.add(SurveyAnswer(call_id=call_id, question="nps", scale="nps", value=str(nps)))
        db.add(SurveyAnswer(call_id="X1", question="csat", scale="scale5", value="1"))
        for due, status in ((-3, "open"), (5, "open"), (-10, "kept")):
            db.add(
                Commitment(
                    linkedid="A1",
                    customer_id=1,
                    text="send the refund form",
                    due=today + timedelta(days=due),
                    status=status,
                    created_by="agent1",
                )
            )


# -- the Flask test client ---------------------------------------------------------------


@pytest.fixture
def log_db(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'reports.sqlite3'}")
    upgrade(engine)
    sessions = session_factory(engine)
    for name, role in (("sup", "supervisor"), ("opsy", "ops"), ("agent1", "agent")):
        add_user(sessions, name, PASSWORD, role, "PJSIP/1001" if role == "agent" else None)
    yield sessions
    engine.dispose()


@pytest.fixture
def app(log_db: sessionmaker[Session]) -> Flask:
    fill(log_db, NEW_YORK)
    return create_app(
        log_db,
        "test secret",
        lambda: {},
        CtiSettings(),
        ReportSettings(timezone="America/New_York"),
    )


def client_as(app: Flask, sessions: sessionmaker[Session], username: str | None) -> FlaskClient:
    client = app.test_client()
    if username is not None:
        with sessions() as db:
            user_id = db.scalar(select(User.id).where(User.username == username))
        with client.session_transaction() as session:
            session["user_id"] = user_id
    return client


def figures(html: str) -> dict[str, str]:
    """The headline tiles: data-kpi -> the value shown."""
    found = re.findall(
        r'<div class="kpi" data-kpi="([a-z_]+)">.*?<div class="value">([^<]*)</div>', html, re.S
    )
    return dict(found)


URLS = ("/reports", "/reports/export.csv", "/reports/export.json")


@pytest.mark.parametrize("url", URLS)
def test_anonymous_users_go_to_the_login_and_agents_get_403(
    app: Flask, log_db: sessionmaker[Session], url: str
) -> None:
    reply = client_as(app, log_db, None).get(url)
    assert reply.status_code == 302
    assert reply.headers["Location"] == f"/login?next={url}"
    assert client_as(app, log_db, "agent1").get(url).status_code == 403


def test_supervisors_and_ops_see_the_figures_worked_out_by_hand(
    app: Flask, log_db: sessionmaker[Session]
) -> None:
    for user in ("sup", "opsy"):
        reply = client_as(app, log_db, user).get("/reports", query_string=PERIOD)
        assert reply.status_code == 200
        html = reply.get_data(as_text=True)
        assert figures(html) == HEADLINE
        assert "Service level (answered ≤ 20 s)" in html
        assert "10 calls, 5 offered to a queue, 4 answered" in html
        # Every chart drawn, inline, with nothing loaded from elsewhere.
        charts = re.findall(r'<figure class="chart" id="chart-([a-z-]+)" data-points="(\d+)"', html)
        assert charts == [
            ("service-level", "2"),  # 09 (A1 A2 B1: 2 of 3 in time) and 10 (A3: 0 of 1)
            ("outcomes", "6"),
            ("dropoff", "6"),  # welcome menu sales_queue support_queue balance callback
            ("satisfaction", "4"),  # CSAT and NPS on both days
        ]
        assert html.count("<svg") == 4
        assert "<script" not in html
        assert not re.search(r'(src|href)="(https?:)?//', html)
        assert "kozea.github.io" not in html and "xml-stylesheet" not in html


def test_the_nav_links_the_floor_and_the_reports_for_supervisors_only(
    app: Flask, log_db: sessionmaker[Session]
) -> None:
    floor = client_as(app, log_db, "sup").get("/").get_data(as_text=True)
    assert 'href="/reports"' in floor
    desktop = client_as(app, log_db, "agent1").get("/").get_data(as_text=True)
    assert 'href="/reports"' not in desktop


def test_filters_pick_the_days_in_the_centers_zone_and_the_queue(
    app: Flask, log_db: sessionmaker[Session]
) -> None:
    client = client_as(app, log_db, "sup")
    # X1, at 23:30 in New York the day before, is already day 1 in UTC: not counted.
    html = client.get("/reports", query_string={"from": "2026-03-02", "to": "2026-03-02"}).text
    assert "6 calls, 4 offered to a queue, 2 answered" in html
    shown = figures(html)
    assert (shown["service_level"], shown["abandon_rate_queue"]) == ("33.3%", "33.3%")

    html = client.get("/reports", query_string=PERIOD | {"queue": "sales"}).text
    assert "queue sales" in html and "3 calls, 3 offered to a queue, 3 answered" in html
    assert figures(html)["service_level"] == "66.7%"
    assert re.search(r'<option value="sales" selected>sales</option>', html)
    assert '<option value="support">support</option>' in html
    assert 'href="/reports/export.csv?from=2026-03-02&amp;to=2026-03-03&amp;queue=sales"' in html

    # A day without calls, and by default the last 7 days (the log is from March).
    for query in ({"from": "2026-03-05", "to": "2026-03-05"}, {}):
        html = client.get("/reports", query_string=query).text
        assert "No calls in this period." in html and "<svg" not in html
        assert figures(html)["service_level"] == "\N{EN DASH}"
        assert figures(html)["past_due"] == "1"
    today = datetime.now(NEW_YORK).date()
    assert f'name="from" value="{today - timedelta(days=6)}"' in html
    assert f'name="to" value="{today}"' in html


@pytest.mark.parametrize(
    ("query", "field", "says"),
    [
        ({"from": "2026-03-04", "to": "2026-03-02"}, "from", "2026-03-04 is after to (2026-03-02)"),
        ({"from": "yesterday"}, "from", "'yesterday' is not a date (YYYY-MM-DD)"),
        ({"to": "2026-02-30"}, "to", "'2026-02-30' is not a date"),
        ({"to": "9999-12-31"}, "to", "is out of range (1900-01-01 to 9998-12-31)"),
        ({"queue": "sales; drop"}, "queue", "a queue name is"),
    ],
)
def test_bad_filters_name_the_field(
    app: Flask, log_db: sessionmaker[Session], query: dict[str, str], field: str, says: str
) -> None:
    client = client_as(app, log_db, "sup")
    reply = client.get("/reports", query_string=query)
    assert reply.status_code == 400
    message = re.search(
        r'<p class="error" id="filter-error" data-field="(\w+)">([^<]*)</p>', reply.text
    )
    assert message and message[1] == field
    assert message[2].startswith(f"{field}: ") and says in message[2].replace("&#39;", "'")
    for url in URLS[1:]:
        reply = client.get(url, query_string=query)
        assert reply.status_code == 400
        assert reply.text.startswith(f"{field}: ") and says in reply.text


def test_exports_refuse_an_unknown_breakdown(app: Flask, log_db: sessionmaker[Session]) -> None:
    client = client_as(app, log_db, "sup")
    reply = client.get("/reports/export.json", query_string=PERIOD | {"by": "weekday"})
    assert reply.status_code == 400
    assert (
        reply.text == "by: 'weekday' is not one of none, queue, agent, campaign, flow, hour, day\n"
    )
    assert client.get("/reports", query_string=PERIOD | {"by": "weekday"}).status_code == 200


def test_the_csv_export_has_the_figures(app: Flask, log_db: sessionmaker[Session]) -> None:
    client = client_as(app, log_db, "sup")
    reply = client.get("/reports/export.csv", query_string=PERIOD)
    assert reply.status_code == 200
    assert reply.mimetype == "text/csv"
    assert (
        reply.headers["Content-Disposition"]
        == 'attachment; filename="kpis_2026-03-02_2026-03-03.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(reply.text)))
    header = reply.text.splitlines()[0].split(",")
    assert header[:4] == ["group", "calls", "ivr_calls", "contained"]
    assert "service_level" in header and "outcome_answered" in header
    assert len(rows) == 1
    row = rows[0]
    assert row["group"] == ""
    expected = {
        "calls": "10",
        "ivr_calls": "9",
        "offered": "5",
        "short_abandons": "1",
        "answered": "4",
        "answered_in_time": "2",
        "service_level": "0.5",
        "asa": "16.6667",
        "abandon_rate_queue": "0.25",
        "aht": "150.0",
        "fcr": "0.6667",
        "containment": "0.1111",
        "callback_success": "1.0",
        "time_to_callback": "3600.0",
        "csat": "0.75",
        "nps": "25.0",
        "outcome_answered": "4",
        "outcome_abandoned_queue": "2",
        "outcome_failed": "1",
    }
    assert {name: row[name] for name in expected} == expected

    reply = client.get("/reports/export.csv", query_string=PERIOD | {"by": "queue"})
    assert reply.headers["Content-Disposition"].endswith(
        'filename="kpis_2026-03-02_2026-03-03_by-queue.csv"'
    )
    by_queue = {r["group"]: r for r in csv.DictReader(io.StringIO(reply.text))}
    assert set(by_queue) == {"sales", "support", ""}
    assert (by_queue["sales"]["calls"], by_queue["sales"]["service_level"]) == ("3", "0.6667")
    assert (by_queue["support"]["calls"], by_queue["support"]["service_level"]) == ("2", "0.0")


def test_the_json_export_parses_and_keeps_the_filters(
    app: Flask, log_db: sessionmaker[Session]
) -> None:
    client = client_as(app, log_db, "opsy")
    reply = client.get(
        "/reports/export.json", query_string=PERIOD | {"queue": "sales", "by": "hour"}
    )
    assert reply.status_code == 200
    assert reply.mimetype == "application/json"
    assert (
        reply.headers["Content-Disposition"]
        == 'attachment; filename="kpis_2026-03-02_2026-03-03_sales_by-hour.json"'
    )
    rows = json.loads(reply.text)
    assert [(r["group"], r["calls"], r["answered_in_time"]) for r in rows] == [("09", 3, 2)]
    assert rows[0]["outcomes"]["answered"] == 3

    total = json.loads(client.get("/reports/export.json", query_string=PERIOD).text)
    assert len(total) == 1 and total[0]["calls"] == 10 and total[0]["nps"] == 25.0
    assert total[0]["outcomes"] == {
        "contained": 1,
        "answered": 4,
        "abandoned_queue": 2,
        "abandoned_ivr": 1,
        "callback_requested": 1,
        "survey_completed": 0,
        "transferred": 0,
        "failed": 1,
    }


# -- the real page in a real browser -------------------------------------------------------


def test_a_supervisor_sees_the_charts_and_figures_in_the_browser(tmp_path: Path) -> None:
    _, env = own_plans(tmp_path)
    env["IVR_REPORTS__TIMEZONE"] = "America/New_York"  # the page lays out the days in it
    service = ServiceProcess(tmp_path, env).start()
    browser = None
    try:
        sessions = session_factory(make_engine(service.db_url))
        fill(sessions, NEW_YORK)
        add_user(sessions, "boss", PASSWORD, "supervisor")
        browser = chromium()
        log_in(browser, service.web_url, "boss", PASSWORD)
        browser.find_element(By.LINK_TEXT, "Reports").click()
        wait(browser).until(lambda b: b.find_elements(By.ID, "filters"))
        for name, value in PERIOD.items():  # type the dates as a supervisor would
            field = browser.find_element(By.NAME, name)
            browser.execute_script("arguments[0].value = arguments[1]", field, value)
        browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
        wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#charts svg"))
        assert browser.current_url.endswith("/reports?from=2026-03-02&to=2026-03-03&queue=")

        shown = {
            tile.get_attribute("data-kpi"): tile.find_element(By.CLASS_NAME, "value").text
            for tile in browser.find_elements(By.CSS_SELECTOR, "#kpis .kpi")
        }
        assert shown == HEADLINE

        def drawn(chart: str, css: str) -> list[Any]:
            return browser.find_elements(By.CSS_SELECTOR, f"#chart-{chart} svg {css}")

        # Service level by hour: bars at 09 (67%) and 10 (0%) of the 24 hours.
        bars = drawn("service-level", ".series rect.rect")
        assert len(bars) == 2
        labels = [e.get_attribute("textContent") for e in drawn("service-level", ".series title")]
        assert {"67%", "0%"} <= set(labels)
        heights = sorted(float(bar.get_attribute("height")) for bar in bars)
        assert heights[0] == 0 and heights[1] > 50
        # Outcomes: one slice per outcome that happened, the legend with the counts.
        assert len(drawn("outcomes", ".series path.slice")) == 6
        legend = {e.text for e in drawn("outcomes", ".legend text")}
        assert {"answered: 4", "abandoned queue: 2", "contained: 1", "failed: 1"} <= legend
        # Drop-off: six nodes, two stacked series; only menu (1 hang-up, 1 escape of 8) lost any.
        assert len(drawn("dropoff", ".serie-0 rect.rect")) == 6
        assert len(drawn("dropoff", ".serie-1 rect.rect")) == 6
        widths = [r.get_attribute("width") for r in drawn("dropoff", ".series rect.rect")]
        assert sum(float(w or 0) > 0 for w in widths) == 2  # pygal leaves out a width of 0
        assert "main/menu (8)" in {e.text for e in drawn("dropoff", ".axis.y text")}
        assert "IVR containment 11.1%" in browser.find_element(By.ID, "chart-dropoff").text
        # CSAT and NPS by day: a line of two dots each.
        assert len(drawn("satisfaction", ".series circle.dot")) == 4
        assert len(drawn("satisfaction", ".series path.line")) == 2
        trend = {e.get_attribute("textContent") for e in drawn("satisfaction", ".series title")}
        assert {"50", "100", "0"} <= trend  # CSAT day 1, day 2; NPS day 1 (and 50 day 2)

        # Everything the page loaded came from the service itself.
        loaded = browser.execute_script(
            "return performance.getEntriesByType('resource').map((e) => e.name)"
        )
        assert loaded and all(url.startswith(service.web_url) for url in loaded), loaded

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.set_window_size(1280, 1900)
        browser.save_screenshot(str(ARTIFACTS / "reports.png"))
    finally:
        if browser is not None:
            browser.quit()
        assert service.stop() == 0, service.log()
