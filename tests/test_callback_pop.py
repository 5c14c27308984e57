"""The screen pop of a campaign's callback call: "Callback" with the reason, and the call
it follows (when, what the caller did in the IVR, its outcome).

The rows are written as the real parts write them: the original call by the IVR's
`CallLog.save`, the contact with its `origin_call_id`, the claim and the attempt by the
campaign store, and the call's first facts by the dialer's own `_facts`. `PopBuilder`
is checked on SQLite and PostgreSQL; then a real headless Chromium shows the pop on the
agent's desktop, sent through the real ScreenPops, LiveHub and ``/events`` (screenshot in
var/test-artifacts/callback-pop.png).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from selenium.webdriver.common.by import By
from sqlalchemy.orm import Session, sessionmaker

from cti.agents import AgentStates
from cti.bus import InProcessBus
from cti.campaigns.dialer import _facts
from cti.campaigns.spec import CampaignSpec
from cti.pop import PopBuilder, ScreenPops, journey_steps
from cti.store import campaigns as store
from cti.store.calls import CallLog, IvrPart
from cti.store.db import make_engine, session_factory, upgrade
from cti.store.models import Campaign
from cti.store.users import add_user
from cti.tracker import CallTracker
from cti.web.app import create_app
from cti.web.live import LiveHub, web_app
from ivr.config import CtiSettings, ReportSettings
from tests.support.service import REPO
from tests.test_pop import ANA_ACCOUNT, ANA_PHONE, add_customer, lookup
from tests.test_web import chromium, wait

ORIGIN, CALL = "1762.41", "out-5f0c2a"
CALLER = "+14155550100"
IVR_SECONDS = 42  # the original call's time in the IVR, up to its end (when written)
ASKED = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=IVR_SECONDS)
DIALLED = ASKED + timedelta(hours=1)
SPEC = CampaignSpec(name="ivr-callbacks", kind="callback")
ARTIFACTS = REPO / "var" / "test-artifacts"
PASSWORD = "a long enough password"
ALICE = "PJSIP/1001"
ORIGIN_EVENTS = [
    ("valid", "account", {"mode": "dtmf", "value": ANA_ACCOUNT}),
    ("lookup", "find_account", lookup("account", "found", ANA_ACCOUNT)),
    ("match", "menu", {"mode": "dtmf", "value": "billing"}),
    ("play", "callback_offer", {}),
    ("answer", "callback_offer", {"question": "call you back?", "answer": "yes"}),
]


def the_original_call(sessions: sessionmaker[Session]) -> int:
    """An inbound call of Ana's that asked for a callback in the IVR, then hung up;
    Ana's customer id."""
    customer = add_customer(sessions, "Ana Lopez", ANA_ACCOUNT, ANA_PHONE)
    part = IvrPart(
        ORIGIN,
        {
            "linkedid": ORIGIN,
            "flow": "customer_service",
            "entry": "5551000",
            "started_at": ASKED,
            "caller_number": CALLER,
            "callback_requested": True,
            "customer_id": customer,
        },
    )
    for kind, node, data in ORIGIN_EVENTS:
        part.note(kind, node, data)
    CallLog(sessions).save(part, "contained", "hangup", ended=True)
    return customer


def the_callback_call(
    sessions: sessionmaker[Session],
    customer: int,
    reason: str = "billing question",
    origin: str | None = ORIGIN,
) -> None:
    """The contact the callback request made, claimed and dialled as the dialer does."""
    campaign_id = store.create(sessions, SPEC, "ops")
    with sessions.begin() as db:
        store.add_contact(
            db,
            campaign_id,
            CALLER,
            "ivr",
            reason=reason,
            origin_call_id=origin,
            customer_id=customer,
        )
    [claimed] = store.claim(sessions, campaign_id, "dialer-1", DIALLED, 1)
    store.start_attempts(sessions, campaign_id, "dialer-1", [(claimed, CALL)], DIALLED)
    with sessions() as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        facts = _facts(campaign, claimed, DIALLED)
    CallLog(sessions).record(CALL, facts)


def test_a_callback_pop_tells_the_reason_and_the_call_it_follows(
    sessions: sessionmaker[Session],
) -> None:
    the_callback_call(sessions, the_original_call(sessions))
    pop = PopBuilder(sessions, "US", 5).build(CALL, CALLER, None)
    callback = pop["callback"]
    assert callback is not None
    original = callback.pop("original")
    assert callback == {"campaign": "ivr-callbacks", "reason": "billing question"}
    assert original["id"] == ORIGIN
    assert datetime.fromisoformat(original["at"]) == ASKED
    assert original["outcome"] == "callback_requested"
    journey = original["journey"]
    assert (journey["flow"], journey["entry"]) == ("customer_service", "5551000")
    events = [{"kind": kind, "node": node, "data": data} for kind, node, data in ORIGIN_EVENTS]
    assert journey["steps"] == journey_steps(events)  # as an inbound pop shows its journey
    # From its start to when its part was written: at least 42 s, at most until now
    # (the pop rounds it to a tenth).
    elapsed = (datetime.now(UTC) - ASKED).total_seconds()
    assert IVR_SECONDS <= journey["ivr_seconds"] <= elapsed + 0.1
    # The customer is still matched from the number, as for any pop; their card's
    # history has the original call, not this one (the dialer set its customer).
    [card] = pop["customers"]
    assert card["name"] == "Ana Lopez"
    assert [c["outcome"] for c in card["calls"]] == ["callback_requested"]


def test_a_callback_without_its_original_call_in_the_log_still_says_callback(
    sessions: sessionmaker[Session],
) -> None:
    ana = add_customer(sessions, "Ana Lopez", ANA_ACCOUNT, ANA_PHONE)
    the_callback_call(sessions, ana, reason="", origin="gone-from-the-log")
    pop = PopBuilder(sessions, "US", 5).build(CALL, CALLER, None)
    assert pop["callback"] == {"campaign": "ivr-callbacks", "reason": "", "original": None}


def test_inbound_and_survey_calls_have_no_callback_part(sessions: sessionmaker[Session]) -> None:
    the_original_call(sessions)
    CallLog(sessions).record("out-survey", {"direction": "outbound", "kind": "survey"})
    builder = PopBuilder(sessions, "US", 5)
    assert builder.build(ORIGIN, CALLER, None)["callback"] is None
    assert builder.build("out-survey", CALLER, None)["callback"] is None
    assert builder.build("not-logged", CALLER, None)["callback"] is None


# -- the agent's desktop in a real browser ---------------------------------------------------


@contextmanager
def live_desk(
    sessions: sessionmaker[Session],
) -> Iterator[tuple[str, Callable[[str, dict[str, Any]], None]]]:
    """The web app with its live side (ScreenPops, LiveHub, /events) as `ivr serve` wires
    them, on uvicorn in a thread; (its URL, publish on its bus)."""
    bus = InProcessBus()
    ScreenPops(bus, PopBuilder(sessions, "US", 5))
    hub = LiveHub(bus, sessions, CallTracker(bus), AgentStates(bus))
    app = create_app(sessions, "test secret", lambda: {}, CtiSettings(), ReportSettings())
    listener = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(
            web_app(app, hub, 4),
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=1,
        )
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(server.serve(sockets=[listener]),), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)

    def publish(topic: str, event: dict[str, Any]) -> None:
        asyncio.run_coroutine_threadsafe(bus.publish(topic, event), loop).result(10)

    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/", publish
    finally:
        loop.call_soon_threadsafe(hub.close)
        server.should_exit = True
        thread.join(10)
        loop.close()


def tracked(linkedid: str, state: str, agent: str | None = None) -> dict[str, Any]:
    """A call as the tracker publishes it (TrackedCall.public())."""
    return {
        "linkedid": linkedid,
        "caller": CALLER,
        "queue": "callbacks",
        "state": state,
        "agent": agent,
        "queued_at": time.time(),
        "ringing": [agent] if agent else [],
        "channels": [],
    }


def test_the_agent_sees_callback_the_reason_and_the_original_call(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'desk.sqlite3'}")
    upgrade(engine)
    sessions = session_factory(engine)
    the_callback_call(sessions, the_original_call(sessions))
    add_user(sessions, "alice", PASSWORD, "agent", ALICE)
    browser = None
    try:
        with live_desk(sessions) as (url, publish):
            browser = chromium()
            browser.get(url)
            browser.find_element(By.NAME, "username").send_keys("alice")
            browser.find_element(By.NAME, "password").send_keys(PASSWORD)
            browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            wait(browser).until(
                lambda b: b.find_element(By.ID, "live").get_attribute("data-state") == "connected"
            )
            publish("call.started", tracked(CALL, "dialing"))
            publish("call.ringing", tracked(CALL, "ringing", ALICE))
            wait(browser).until(lambda b: b.find_element(By.ID, "pop").is_displayed())
            box = browser.find_element(By.ID, "callback")
            assert box.is_displayed()
            heading = box.find_element(By.TAG_NAME, "h3").text
            assert heading == "Callback: billing question campaign ivr-callbacks"
            said = browser.find_element(By.ID, "callback-original").text
            asked = browser.execute_script(
                "return new Date(arguments[0]).toLocaleString()", ASKED.isoformat()
            )
            assert said.startswith(f"Follows the call of {asked} · callback requested · ")
            assert "IVR customer_service (" in said
            steps = [li.text for li in box.find_elements(By.CSS_SELECTOR, "#callback-journey li")]
            assert len(steps) == 4  # "play" is not a step an agent is shown
            assert steps[0] == f"account: valid · pressed {ANA_ACCOUNT}"
            assert steps[-1] == "callback_offer: answer · call you back? = yes"
            customers = browser.find_element(By.ID, "customers").text
            assert "Ana Lopez" in customers and "callback_requested" in customers
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(ARTIFACTS / "callback-pop.png"))

            # The next call is an inbound one: no callback part on its pop.
            publish("call.ended", tracked(CALL, "ended"))
            wait(browser).until(lambda b: not b.find_element(By.ID, "pop").is_displayed())
            publish("call.started", tracked(ORIGIN, "queued"))
            publish("call.ringing", tracked(ORIGIN, "ringing", ALICE))
            wait(browser).until(
                lambda b: b.find_element(By.ID, "pop").get_attribute("data-linkedid") == ORIGIN
            )
            assert not browser.find_element(By.ID, "callback").is_displayed()
    finally:
        if browser is not None:
            browser.quit()
        engine.dispose()
