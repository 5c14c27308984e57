"""The campaigns pages (/campaigns): ops create, pause and resume campaigns, upload and
export contacts and add do-not-call numbers; supervisors read; agents get 403.

The Flask test client drives the forms on a real SQLite database with the CSRF check
on (the token read from the page, as a browser would); the export is compared with
what `ivr campaign export` writes for the same database. A real headless Chromium on
the real `ivr serve` draws the list and a campaign's progress for fixture data
(screenshot in var/test-artifacts/campaigns.png).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from selenium.webdriver.common.by import By
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cti.campaigns.spec import CampaignSpec
from cti.store import campaigns as store
from cti.store.db import make_engine, session_factory, upgrade
from cti.store.models import Attempt, Campaign, Contact, DoNotCall, User
from cti.store.users import add_user
from cti.web.app import create_app
from cti.web.campaigns import MAX_UPLOAD
from ivr.config import CtiSettings, ReportSettings
from tests.support.service import IVR, REPO, ServiceProcess, own_plans
from tests.test_web import chromium, log_in, wait

PASSWORD = "a long enough password"
ARTIFACTS = REPO / "var" / "test-artifacts"
ALL_DAY = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
# Calls only from 2099 on: every pending contact is outside its window now.
LATER = CampaignSpec(name="winter-survey", kind="survey", starts_on=date(2099, 1, 4))
OPEN = CampaignSpec(name="callbacks", kind="callback", windows=ALL_DAY)  # always open
START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def fill(sessions: sessionmaker[Session]) -> None:
    """Two campaigns. `callbacks` has 8 contacts: 2 reached (one at the 2nd attempt),
    1 exhausted, 1 blocked by the global do-not-call list, 1 being dialled, 3 pending;
    `winter-survey` 2 contacts, pending, and paused.

    Progress of `callbacks`: contacts 8, dialled 6 (attempts with a call), reached 2,
    completed 3, remaining 4, blocked 1, outside the window 0."""
    callbacks = store.create(sessions, OPEN, "opsy")
    survey = store.create(sessions, LATER, "opsy")
    store.set_status(sessions, LATER.name, "paused")
    with sessions.begin() as db:
        for n, status, attempts in (
            (1, "done", ["human"]),
            (2, "done", ["no_answer", "human"]),
            (3, "exhausted", ["busy", "no_answer"]),
            (4, "blocked", []),
            (5, "dialing", [None]),
            (6, "pending", []),
            (7, "pending", []),
            (8, "pending", []),
        ):
            contact = Contact(
                campaign_id=callbacks,
                number=f"+1202555{n:04d}",
                name=f"Caller {n}",
                source="ivr",
                reason="billing question" if n % 2 else "",
                status=status,
                attempts=len(attempts),
            )
            db.add(contact)
            db.flush()
            for i, result in enumerate(attempts):
                began = START + timedelta(hours=i)
                db.add(
                    Attempt(
                        contact_id=contact.id,
                        campaign_id=callbacks,
                        call_id=f"out-{n}-{i}",
                        dialer="d1",
                        started_at=began,
                        ended_at=None if result is None else began + timedelta(seconds=40),
                        result=result,
                    )
                )
        blocked = db.scalar(select(Contact).where(Contact.number == "+12025550004"))
        assert blocked is not None
        db.add(
            Attempt(
                contact_id=blocked.id,
                campaign_id=callbacks,
                dialer="d1",
                started_at=START,
                ended_at=START,
                result="blocked",
                detail="do-not-call (global)",
            )
        )
        db.add(DoNotCall(number="+12025550004", source="ops"))
        for n in (1, 2):
            store.add_contact(db, survey, f"+1212555{n:04d}", "import")


CALLBACKS_PROGRESS = {
    "contacts": "8",
    "dialled": "6",
    "reached": "2",
    "completed": "3",
    "remaining": "4",
    "blocked": "1",
    "outside_window": "0",
}
SURVEY_PROGRESS = CALLBACKS_PROGRESS | {
    "contacts": "2",
    "dialled": "0",
    "reached": "0",
    "completed": "0",
    "remaining": "2",
    "blocked": "0",
    "outside_window": "2",
}


# -- the Flask test client ---------------------------------------------------------------


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "campaigns.sqlite3"


@pytest.fixture
def db(db_file: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{db_file}")
    upgrade(engine)
    sessions = session_factory(engine)
    for name, role in (("sup", "supervisor"), ("opsy", "ops"), ("agent1", "agent")):
        add_user(sessions, name, PASSWORD, role, "PJSIP/1001" if role == "agent" else None)
    fill(sessions)
    yield sessions
    engine.dispose()


@pytest.fixture
def app(db: sessionmaker[Session]) -> Flask:
    return create_app(db, "test secret", lambda: {}, CtiSettings(), ReportSettings())


class LoggedIn:
    """A logged-in test client and the CSRF token its pages carry."""

    def __init__(self, app: Flask, sessions: sessionmaker[Session], username: str) -> None:
        self.client: FlaskClient = app.test_client()
        with sessions() as db:
            user_id = db.scalar(select(User.id).where(User.username == username))
        with self.client.session_transaction() as session:
            session["user_id"] = user_id
        page = self.client.get("/").text  # the desktop or the floor: both carry the token
        self.token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)[1]  # type: ignore[index]

    def get(self, url: str) -> Any:
        return self.client.get(url)

    def post(self, url: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.client.post(url, data={"csrf_token": self.token, **(data or {})}, **kwargs)


@pytest.fixture
def ops(app: Flask, db: sessionmaker[Session]) -> LoggedIn:
    return LoggedIn(app, db, "opsy")


def shown_progress(html: str) -> dict[str, str]:
    found = re.findall(
        r'<div class="kpi" data-progress="(\w+)">.*?<div class="value">([^<]*)</div>', html, re.S
    )
    return dict(found)


def row_of(html: str, name: str) -> dict[str, str]:
    row = re.search(rf'<tr data-campaign="{name}">(.*?)</tr>', html, re.S)
    assert row, f"no row for {name}"
    cells = dict(re.findall(r'<td class="n" data-progress="(\w+)">([^<]*)</td>', row[1]))
    status = re.search(r'data-status="(\w+)"', row[1])
    return cells | {"status": status[1] if status else ""}


def form(**more: str) -> dict[str, str]:
    """A complete create form, as the page posts it."""
    fields = {
        "name": "csat-april",
        "kind": "survey",
        "entry": "",
        "window_mon": "09:00-12:00, 13:00-20:00",
        "window_tue": "09:00-20:00",
        "window_wed": "",
        "window_thu": "",
        "window_fri": "09:00-18:00",
        "window_sat": "",
        "window_sun": "",
        "timezone": "America/Chicago",
        "max_attempts": "4",
        "retry_machine": "240",
        "retry_busy": "15",
        "retry_no_answer": "90",
        "retry_failed": "30",
        "max_concurrent": "10",
        "calls_per_second": "2.5",
        "ring_seconds": "25",
        "starts_on": "2026-04-01",
        "ends_on": "2026-04-30",
        "amd": "on",
        "machine_action": "continue",
    }
    return fields | more


def campaign_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as db:
        return db.scalar(select(func.count()).select_from(Campaign)) or 0


GETS = ("/campaigns", "/campaigns/new", "/campaigns/callbacks", "/campaigns/callbacks/export.csv")
POSTS = (
    "/campaigns/new",
    "/campaigns/callbacks/pause",
    "/campaigns/callbacks/resume",
    "/campaigns/callbacks/contacts",
    "/campaigns/callbacks/dnc",
)


def test_agents_get_403_everywhere_and_anonymous_users_go_to_the_login(
    app: Flask, db: sessionmaker[Session]
) -> None:
    agent = LoggedIn(app, db, "agent1")
    for url in GETS:
        assert agent.get(url).status_code == 403, url
        anonymous = app.test_client().get(url)
        assert (anonymous.status_code, anonymous.headers["Location"]) == (
            302,
            f"/login?next={url}",
        )
    for url in POSTS:  # with a good CSRF token: the role is what refuses them
        assert (
            agent.post(url, form() | {"number": "2025550199", "scope": "global"}).status_code == 403
        )
    with db() as session:
        assert (
            session.scalar(select(Campaign.status).where(Campaign.name == "callbacks")) == "active"
        )
        assert session.scalar(select(func.count()).select_from(DoNotCall)) == 1
    assert campaign_count(db) == 2
    desktop = agent.get("/").text
    assert 'href="/campaigns"' not in desktop


def test_supervisors_read_but_change_nothing(app: Flask, db: sessionmaker[Session]) -> None:
    sup = LoggedIn(app, db, "sup")
    listing = sup.get("/campaigns")
    assert listing.status_code == 200
    assert 'href="/campaigns"' in listing.text and "Read-only" in listing.text
    assert 'href="/campaigns/new"' not in listing.text
    page = sup.get("/campaigns/callbacks")
    assert page.status_code == 200
    assert shown_progress(page.text) == CALLBACKS_PROGRESS
    assert "<form" not in page.text.split("</nav>", 1)[1]
    assert 'id="export"' in page.text
    assert sup.get("/campaigns/callbacks/export.csv").status_code == 200
    assert sup.get("/campaigns/new").status_code == 403
    for url in POSTS:
        assert sup.post(url, form()).status_code == 403, url
    assert campaign_count(db) == 2


def test_a_post_without_the_csrf_token_is_refused(
    app: Flask, db: sessionmaker[Session], ops: LoggedIn
) -> None:
    assert ops.client.post("/campaigns/callbacks/pause").status_code == 400
    assert ops.client.post("/campaigns/new", data=form()).status_code == 400
    with db() as session:
        assert (
            session.scalar(select(Campaign.status).where(Campaign.name == "callbacks")) == "active"
        )
    assert campaign_count(db) == 2


def test_the_list_shows_kind_status_and_progress(ops: LoggedIn) -> None:
    html = ops.get("/campaigns").text
    assert row_of(html, "callbacks") == CALLBACKS_PROGRESS | {"status": "active"}
    assert row_of(html, "winter-survey") == SURVEY_PROGRESS | {"status": "paused"}
    assert re.search(r'<a href="/campaigns/callbacks">callbacks</a></td>\s*<td>callback</td>', html)
    assert 'href="/campaigns/new"' in html


def error_of(html: str, field: str) -> str:
    found = re.search(rf'<span class="field-error" id="error-{field}"[^>]*>([^<]*)</span>', html)
    assert found, f"no error shown for {field}"
    return found[1].replace("&#39;", "'")


def test_a_bad_form_shows_each_error_next_to_its_field_and_creates_nothing(
    ops: LoggedIn, db: sessionmaker[Session]
) -> None:
    bad = form(
        name="CSAT April",
        timezone="Mars/Olympus",
        max_attempts="0",
        window_tue="09:00-12:00, 11:00-13:00",
        window_fri="25:00-26:00",
        retry_busy="soon",
        calls_per_second="0",
    )
    reply = ops.post("/campaigns/new", bad)
    assert reply.status_code == 400
    html = reply.text
    assert "should match pattern" in error_of(html, "name")
    assert error_of(html, "timezone") == "unknown time zone 'Mars/Olympus'"
    assert error_of(html, "max_attempts") == "Input should be greater than or equal to 1"
    assert error_of(html, "window_tue") == "'09:00-12:00' overlaps '11:00-13:00'"
    assert "bad clock time '25:00'" in error_of(html, "window_fri")
    assert "valid integer" in error_of(html, "retry_busy")
    assert error_of(html, "calls_per_second") == "Input should be greater than 0"
    # Only the fields at fault are marked; what was typed is kept.
    marked = re.findall(r'name="(\w+)" value="[^"]*"[^>]*aria-invalid="true"', html)
    assert sorted(marked) == sorted(
        [
            "name",
            "timezone",
            "max_attempts",
            "window_tue",
            "window_fri",
            "retry_busy",
            "calls_per_second",
        ]
    )
    assert 'name="window_mon" value="09:00-12:00, 13:00-20:00"' in html
    assert 'name="timezone" value="Mars/Olympus"' in html
    assert campaign_count(db) == 2

    # Checks across fields land on the field they name.
    reply = ops.post("/campaigns/new", form(starts_on="2026-05-02", ends_on="2026-05-01"))
    assert reply.status_code == 400
    assert error_of(reply.text, "ends_on") == "ends_on 2026-05-01 is before starts_on 2026-05-02"
    reply = ops.post("/campaigns/new", form(window_mon="", window_tue="", window_fri=""))
    assert error_of(reply.text, "windows") == "the campaign could never call anyone"
    reply = ops.post("/campaigns/new", form(name="callbacks"))
    assert reply.status_code == 409
    assert error_of(reply.text, "name") == "a campaign named 'callbacks' exists already"
    assert campaign_count(db) == 2


def test_a_good_form_creates_the_campaign(ops: LoggedIn, db: sessionmaker[Session]) -> None:
    new = ops.get("/campaigns/new").text  # the form starts from CampaignSpec's defaults
    assert 'name="window_sat" value="10:00-16:00"' in new and 'name="amd" checked' in new
    reply = ops.post("/campaigns/new", form())
    assert (reply.status_code, reply.headers["Location"]) == (
        302,
        "/campaigns/csat-april?created=1",
    )
    with db() as session:
        campaign, spec = store.find(session, "csat-april")
        assert (campaign.kind, campaign.status, campaign.created_by) == ("survey", "active", "opsy")
    assert spec == CampaignSpec(
        name="csat-april",
        kind="survey",
        windows={
            "mon": ["09:00-12:00", "13:00-20:00"],
            "tue": ["09:00-20:00"],
            "fri": ["09:00-18:00"],
        },
        timezone="America/Chicago",
        max_attempts=4,
        retry_minutes={"machine": 240, "busy": 15, "no_answer": 90, "failed": 30},
        max_concurrent=10,
        calls_per_second=2.5,
        ring_seconds=25,
        starts_on=date(2026, 4, 1),
        ends_on=date(2026, 4, 30),
        amd=True,
        machine_action="continue",
    )
    page = ops.get(reply.headers["Location"]).text
    assert "Campaign created." in page and "mon 09:00-12:00, 13:00-20:00; tue 09:00-20:00" in page
    assert shown_progress(page)["contacts"] == "0"
    # AMD off is an unticked box: the field is not posted at all.
    fields = form(name="no-amd")
    del fields["amd"]
    assert ops.post("/campaigns/new", fields).status_code == 302
    with db() as session:
        assert store.find(session, "no-amd")[1].amd is False


def test_pause_and_resume(ops: LoggedIn, db: sessionmaker[Session]) -> None:
    def status() -> str | None:
        with db() as session:
            return session.scalar(select(Campaign.status).where(Campaign.name == "callbacks"))

    page = ops.get("/campaigns/callbacks").text
    assert 'id="pause"' in page and 'id="resume"' not in page
    reply = ops.post("/campaigns/callbacks/pause")
    assert (reply.status_code, reply.headers["Location"]) == (302, "/campaigns/callbacks")
    assert status() == "paused"
    page = ops.get("/campaigns/callbacks").text
    assert 'id="resume"' in page and 'data-status="paused"' in page
    assert ops.post("/campaigns/callbacks/resume").status_code == 302
    assert status() == "active"
    assert ops.post("/campaigns/nothing-here/pause").status_code == 404


def upload(user: LoggedIn, text: str, name: str = "list.csv") -> Any:
    return user.post(
        "/campaigns/callbacks/contacts",
        {"file": (BytesIO(text.encode()), name)},
        content_type="multipart/form-data",
    )


def numbers_of(sessions: sessionmaker[Session], campaign: str) -> list[str]:
    with sessions() as db:
        query = (
            select(Contact.number)
            .join(Campaign, Campaign.id == Contact.campaign_id)
            .where(Campaign.name == campaign)
            .order_by(Contact.number)
        )
        return list(db.scalars(query))


def test_a_clean_csv_is_imported_and_do_not_call_numbers_skipped(
    ops: LoggedIn, db: sessionmaker[Session]
) -> None:
    before = numbers_of(db, "callbacks")
    csv_text = (
        "number,name,timezone\n"
        "(202) 555-0101,Ann,America/Chicago\n"
        "+1 202 555 0004,On the global list,\n"  # an existing contact, but on the DNC list
        "2025550102,Bo,\n"
    )
    reply = upload(ops, csv_text, "april.csv")
    assert reply.status_code == 200
    html = reply.text
    assert "Added 2 contacts from april.csv; skipped 1." in html
    assert "line 3: +12025550004: do-not-call (global)" in html
    assert numbers_of(db, "callbacks") == sorted([*before, "+12025550101", "+12025550102"])
    with db() as session:
        ann = session.scalar(select(Contact).where(Contact.number == "+12025550101"))
        assert ann is not None and (ann.name, ann.timezone, ann.source) == (
            "Ann",
            "America/Chicago",
            "import",
        )
    assert shown_progress(html)["contacts"] == "10"


def test_an_upload_over_the_limit_is_refused_before_it_is_read(
    app: Flask, ops: LoggedIn, db: sessionmaker[Session]
) -> None:
    assert app.config["MAX_CONTENT_LENGTH"] == MAX_UPLOAD
    before = numbers_of(db, "callbacks")
    app.config["MAX_CONTENT_LENGTH"] = 2_000  # not 20 MB of test data
    big = "number\n" + "".join(f"+1202555{n:04d}\n" for n in range(200))  # 2.6 kB
    assert upload(ops, big).status_code == 413
    assert numbers_of(db, "callbacks") == before
    assert upload(ops, "number\n+12025550199\n").status_code == 200


def test_a_bad_csv_imports_nothing_and_shows_the_errors_by_line(
    ops: LoggedIn, db: sessionmaker[Session]
) -> None:
    before = numbers_of(db, "callbacks")
    csv_text = (
        "number,name,timezone\n"
        "2025550111,Good,\n"
        "12345,Short,\n"
        "2025550112,Zone,Mars/Olympus\n"
        "2025550111,Again,\n"
    )
    reply = upload(ops, csv_text, "bad.csv")
    assert reply.status_code == 400
    html = reply.text.replace("&#39;", "'")
    assert "Nothing imported from bad.csv: 3 errors." in html
    errors = re.findall(r'<li data-line="(\d+)" data-field="(\w+)">([^<]*)</li>', html)
    assert [(line, field) for line, field, _ in errors] == [
        ("3", "number"),
        ("4", "timezone"),
        ("5", "number"),
    ]
    assert "unknown time zone 'Mars/Olympus'" in errors[1][2]
    assert "+12025550111 is also on line 2" in errors[2][2]
    assert numbers_of(db, "callbacks") == before

    # Not UTF-8, no file, an unknown column: said, nothing imported, no temp paths shown.
    reply = ops.post(
        "/campaigns/callbacks/contacts",
        {"file": (BytesIO("number\n2025550113 é\n".encode("latin-1")), "latin.csv")},
        content_type="multipart/form-data",
    )
    assert reply.status_code == 400
    said = re.search(r'<p class="error" id="upload-error"[^>]*>([^<]*)</p>', reply.text)
    assert said and said[1] == "latin.csv: not UTF-8 text; save it as CSV UTF-8"
    reply = ops.post("/campaigns/callbacks/contacts", {}, content_type="multipart/form-data")
    assert reply.status_code == 400 and "choose a CSV file to upload" in reply.text
    reply = upload(ops, "phone\n2025550114\n", "../..")  # the client's name is only shown
    assert reply.status_code == 400 and "no &#39;number&#39; column" in reply.text
    assert "Nothing imported from ..: 2 errors." in reply.text  # unknown column, no number
    assert numbers_of(db, "callbacks") == before


def test_the_export_is_what_ivr_campaign_export_writes(
    ops: LoggedIn, db_file: Path, tmp_path: Path
) -> None:
    reply = ops.get("/campaigns/callbacks/export.csv")
    assert reply.status_code == 200 and reply.mimetype == "text/csv"
    assert reply.is_streamed  # in chunks as they are read, not built in memory first
    assert reply.headers["Content-Disposition"] == 'attachment; filename="callbacks_contacts.csv"'
    cli = subprocess.run(
        [IVR, "campaign", "export", "callbacks"],
        env={"IVR_DATABASE__URL": f"sqlite:///{db_file}", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert reply.data == cli.stdout
    lines = reply.text.splitlines()
    assert lines[0].startswith("number,name,timezone,reason,source,status,attempts,")
    assert len(lines) == 1 + 10  # 2 + 2 + 1 (blocked) + 1 attempts; 3 contacts without
    assert "+12025550002,Caller 2,,,ivr,done,2,,,out-2-1,2026-03-02T16:00:00+00:00" in reply.text
    assert ops.get("/campaigns/nothing-here/export.csv").status_code == 404


def test_numbers_go_on_the_campaigns_or_the_global_do_not_call_list(
    ops: LoggedIn, db: sessionmaker[Session]
) -> None:
    def listed() -> list[tuple[str, int | None, str]]:
        with db() as session:
            rows = session.execute(
                select(DoNotCall.number, DoNotCall.campaign_id, DoNotCall.note).order_by(
                    DoNotCall.id
                )
            )
            return [tuple(row) for row in rows]  # type: ignore[misc]

    with db() as session:
        callbacks = store.find(session, "callbacks")[0].id
    reply = ops.post(
        "/campaigns/callbacks/dnc",
        {"number": "(202) 555-0190", "scope": "campaign", "note": "asked"},
    )
    assert reply.status_code == 200
    assert "+12025550190 added to campaign callbacks&#39;s do-not-call list" in reply.text
    reply = ops.post("/campaigns/callbacks/dnc", {"number": "+1 202 555 0191", "scope": "global"})
    assert "+12025550191 added to the global do-not-call list" in reply.text
    reply = ops.post("/campaigns/callbacks/dnc", {"number": "2025550190", "scope": "campaign"})
    assert "+12025550190 is on campaign callbacks&#39;s do-not-call list already" in reply.text
    assert listed()[1:] == [("+12025550190", callbacks, "asked"), ("+12025550191", None, "")]

    reply = ops.post("/campaigns/callbacks/dnc", {"number": "12345", "scope": "global"})
    assert reply.status_code == 400
    said = re.search(r'<span class="field-error" id="dnc-error-number">([^<]*)</span>', reply.text)
    assert said and "not a valid phone number in US" in said[1]
    assert 'name="number" value="12345" aria-invalid="true"' in reply.text
    reply = ops.post("/campaigns/callbacks/dnc", {"number": "2025550192", "scope": "everyone"})
    assert reply.status_code == 400 and 'id="dnc-error-scope"' in reply.text
    assert len(listed()) == 3


# -- the real pages in a real browser ------------------------------------------------------


def test_ops_see_the_list_and_a_campaigns_progress_in_the_browser(tmp_path: Path) -> None:
    _, env = own_plans(tmp_path)
    service = ServiceProcess(tmp_path, env).start()
    browser = None
    try:
        sessions = session_factory(make_engine(service.db_url))
        fill(sessions)
        add_user(sessions, "opsy", PASSWORD, "ops")
        browser = chromium()
        log_in(browser, service.web_url, "opsy", PASSWORD)
        browser.find_element(By.LINK_TEXT, "Campaigns").click()
        wait(browser).until(lambda b: b.find_elements(By.ID, "campaigns"))

        def cells(name: str) -> dict[str, str]:
            row = browser.find_element(By.CSS_SELECTOR, f'tr[data-campaign="{name}"]')
            found = {
                td.get_attribute("data-progress"): td.text
                for td in row.find_elements(By.CSS_SELECTOR, "td[data-progress]")
            }
            return found | {"status": row.find_element(By.CLASS_NAME, "status").text}

        assert cells("callbacks") == CALLBACKS_PROGRESS | {"status": "active"}
        assert cells("winter-survey") == SURVEY_PROGRESS | {"status": "paused"}
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "campaigns-list.png"))

        browser.find_element(By.LINK_TEXT, "callbacks").click()
        wait(browser).until(lambda b: b.find_elements(By.ID, "progress"))
        tiles = {
            tile.get_attribute("data-progress"): tile.find_element(By.CLASS_NAME, "value").text
            for tile in browser.find_elements(By.CSS_SELECTOR, "#progress .kpi")
        }
        assert tiles == CALLBACKS_PROGRESS
        # The bar: reached 2, finished unreached 1, blocked 1, remaining 4 of 8 contacts.
        bar = browser.find_element(By.ID, "progress-bar")
        width = bar.size["width"]
        parts = {
            part.get_attribute("class"): part.size["width"] / width
            for part in bar.find_elements(By.TAG_NAME, "span")
        }
        assert parts.keys() == {"reached", "finished", "blocked", "remaining"}
        assert abs(parts["reached"] - 2 / 8) < 0.02 and abs(parts["remaining"] - 4 / 8) < 0.02
        assert browser.find_element(By.ID, "pause").is_displayed()
        assert "\nTime zone America/New_York\n" in browser.find_element(By.ID, "settings").text

        # Pausing from the page: the same page comes back, paused.
        browser.find_element(By.ID, "pause").click()
        wait(browser).until(lambda b: b.find_elements(By.ID, "resume"))
        assert browser.find_element(By.ID, "status").text == "paused"
        browser.find_element(By.ID, "resume").click()
        wait(browser).until(lambda b: b.find_elements(By.ID, "pause"))

        loaded = browser.execute_script(
            "return performance.getEntriesByType('resource').map((e) => e.name)"
        )
        assert loaded and all(url.startswith(service.web_url) for url in loaded), loaded
        browser.set_window_size(1280, 1500)
        browser.save_screenshot(str(ARTIFACTS / "campaigns.png"))
    finally:
        if browser is not None:
            browser.quit()
        assert service.stop() == 0, service.log()
