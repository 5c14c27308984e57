"""The agent desktop end to end: real Asterisk 22, real `ivr serve`, two agents in two
real headless Chromium sessions.

The agents are simulated phones, Local channels in ``[ivr-agent]`` that ring for a
second and answer, made members of the ``desktop`` queue from the browser. No other
test uses that queue. Screenshots go to var/test-artifacts/.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import select

from cti.matching import add_phone
from cti.store.db import make_engine, session_factory
from cti.store.models import Account, Call, Callback, Commitment, Customer
from cti.store.users import add_user
from tests.conftest import Sandbox
from tests.support.ami import AmiClient
from tests.support.service import REPO, ServiceProcess, own_plans
from tests.test_web import chromium

pytestmark = pytest.mark.asterisk

QUEUE = "desktop"
PASSWORD = "a long enough password"
ARTIFACTS = REPO / "var" / "test-artifacts"


def desk_plan(queue: str) -> str:
    """Two entries into `queue`: one asks for an account number first, one goes straight."""
    return f"""
entries:
  "5553001": desk_account
  "5553002": desk_direct
flows:
  desk_account:
    start: account
    language: en
    nodes:
      account:
        type: collect
        prompt: enter-account-number
        var: account_number
        min_length: 8
        max_length: 8
        next: find
        failure: queue
      find:
        type: lookup
        find: account
        value: ${{account_number}}
        found: queue
        not_found: queue
      queue: {{type: queue, queue: {queue}}}
  desk_direct:
    start: queue
    language: en
    nodes:
      queue: {{type: queue, queue: {queue}}}
"""


class Agent:
    """One agent: a user with a simulated phone, logged in to the desktop in a browser."""

    def __init__(self, name: str, browser: webdriver.Chrome) -> None:
        self.name = name
        self.interface = f"Local/{name}@ivr-agent/n"
        self.browser = browser

    def log_in(self, url: str) -> None:
        self.browser.get(url)
        self.browser.find_element(By.NAME, "username").send_keys(self.name)
        self.browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        self.browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        self.until(
            lambda b: b.find_element(By.ID, "live").get_attribute("data-state") == "connected"
        )

    def until(self, check: Callable[[webdriver.Chrome], Any], timeout: float = 20) -> Any:
        # The page redraws what Asterisk reports: an element found a moment ago may be gone.
        return WebDriverWait(
            self.browser, timeout, ignored_exceptions=(StaleElementReferenceException,)
        ).until(check)

    def queue_row(self) -> Any:
        """The queue's row, once the page has Asterisk's state to draw it from."""
        return self.until(
            lambda b: b.find_element(By.CSS_SELECTOR, f".queue[data-queue='{QUEUE}']")
        )

    def membership(self) -> str:
        return self.queue_row().get_attribute("data-member")

    def pop(self) -> Any:
        return self.browser.find_element(By.ID, "pop")

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        self.browser.save_screenshot(str(path))
        return path


def member_of(ami: AmiClient, interface: str) -> dict[str, Any] | None:
    """The QueueMember event Asterisk's QueueStatus gives for `interface`, if a member."""
    replies = ami.action({"Action": "QueueStatus", "Queue": QUEUE})
    for reply in replies if isinstance(replies, list) else [replies]:
        if reply.get("Event") == "QueueMember" and interface in (
            reply.get("Interface"),
            reply.get("Location"),
        ):
            return dict(reply)
    return None


@pytest.fixture
def desk(asterisk: Sandbox, ami: AmiClient, tmp_path: Path) -> Iterator[dict[str, Any]]:
    _, env = own_plans(tmp_path, **{"desk.yaml": desk_plan(QUEUE)})
    env |= {"IVR_AMI__ENABLED": "true", "IVR_AMI__SECRET": asterisk.ami.secret.get_secret_value()}
    service = ServiceProcess(tmp_path, env).start()
    sessions = session_factory(make_engine(service.db_url))
    tag = uuid.uuid4().hex[:6]
    account = "4" + str(int(tag, 16) % 10**7).zfill(7)
    with sessions.begin() as db:
        ana = Customer(
            name="Ana Lopez", tier="vip", accounts=[Account(number=account, balance=Decimal(5))]
        )
        add_phone(ana, "+14155550100", "US")
        cid = Customer(name="Carl Idris", tier="standard")
        add_phone(cid, "+1 555 0100", "US")
        db.add_all([ana, cid])
        db.flush()
        owed = Callback(  # asked for in an earlier call: this call deals with it
            customer_id=ana.id, number="+14155550100", reason="the October fee",
            due_at=datetime.now(UTC) + timedelta(hours=2),
        )  # fmt: skip
        db.add(owed)
    browsers: list[webdriver.Chrome] = []
    agents = []
    for letter in "ab":
        name = f"desk{letter}{tag}"
        add_user(sessions, name, PASSWORD, "agent", f"Local/{name}@ivr-agent/n")
        browsers.append(chromium())
        agents.append(Agent(name, browsers[-1]))
    boss = f"boss{tag}"
    add_user(sessions, boss, PASSWORD, "supervisor")
    browsers.append(chromium())
    supervisor = Agent(boss, browsers[-1])  # logs in the same way, and sees the floor
    try:
        yield {
            "service": service,
            "sessions": sessions,
            "agents": agents,
            "supervisor": supervisor,
            "account": account,
        }
    finally:
        for agent in agents:  # queues.conf keeps members over restarts: never leave one
            ami.action({"Action": "QueueRemove", "Queue": QUEUE, "Interface": agent.interface})
        for browser in browsers:
            browser.quit()
        assert service.stop() == 0, service.log()


def test_pop_reaches_only_the_ringing_agent_and_the_disposition_is_stored(
    desk: dict[str, Any], ami: AmiClient, place_call
) -> None:
    service: ServiceProcess = desk["service"]
    a, b = desk["agents"]
    boss: Agent = desk["supervisor"]
    boss.log_in(service.web_url)
    for agent in (a, b):
        agent.log_in(service.web_url)
        agent.queue_row().find_element(By.CSS_SELECTOR, "button.join").click()
        agent.until(lambda _, agent=agent: agent.membership() == "yes")
        assert member_of(ami, agent.interface) is not None

    # Pause and resume from the browser change the state in Asterisk.
    Select(b.browser.find_element(By.NAME, "reason")).select_by_visible_text("lunch")
    b.browser.find_element(By.ID, "pause").click()
    b.until(lambda br: br.find_element(By.ID, "agent-state").text == "paused")
    assert b.browser.find_element(By.ID, "pause-reason").text == "lunch"
    paused = member_of(ami, b.interface)
    assert paused is not None and (paused["Paused"], paused["PausedReason"]) == ("1", "lunch")

    # A caller types their account number and waits; only the unpaused agent rings.
    place_call(
        "5553001",
        press=desk["account"],
        wait=2,
        hold=30,
        caller_id="+14155550199",
        agi_server=service.agi_server,
    )
    a.until(lambda _: a.pop().get_attribute("data-state") in ("ringing", "answered"))
    card = a.browser.find_element(By.CSS_SELECTOR, "#customers .customer")
    assert card.find_element(By.CLASS_NAME, "name").text == "Ana Lopez"
    assert "matched by account" in card.text
    assert f"accounts {desk['account']} (5.00 USD)" in card.text
    steps = [li.text for li in a.browser.find_elements(By.CSS_SELECTOR, "#journey li")]
    assert any("account" in s and desk["account"] in s and "found" in s for s in steps), steps
    assert any(f"pressed {desk['account']}" in s for s in steps), steps
    a.screenshot("desktop-pop.png")

    # While on the call, the agent corrects the customer's record.
    a.until(lambda _: a.pop().get_attribute("data-state") == "answered")
    card = a.browser.find_element(By.CSS_SELECTOR, "#customers .customer")
    card.find_element(By.CSS_SELECTOR, "details.edit summary").click()
    edit = card.find_element(By.CSS_SELECTOR, "form.edit-customer")
    edit.find_element(By.NAME, "tier").clear()
    edit.find_element(By.NAME, "tier").send_keys("gold")
    edit.find_element(By.NAME, "phone").send_keys("(415) 555-0177")
    second = "9" + desk["account"][1:]
    edit.find_element(By.NAME, "account").send_keys(second)
    edit.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    a.until(lambda _: edit.find_element(By.CLASS_NAME, "result").text == "Saved.")
    with desk["sessions"]() as db:
        ana = db.scalar(select(Customer).where(Customer.name == "Ana Lopez"))
        assert ana is not None and ana.tier == "gold"
        assert sorted(p.e164 for p in ana.phones) == ["+14155550100", "+14155550177"]
        assert [a.number for a in ana.accounts] == [desk["account"], second]
    assert not b.pop().is_displayed()
    b.screenshot("desktop-other-agent.png")

    # Answered (the simulated phone picks up after a ring): the agent records the outcome.
    a.until(lambda _: a.browser.find_element(By.ID, "wrapup").is_displayed())
    linkedid = a.pop().get_attribute("data-linkedid")

    # The supervisor's floor shows the call in progress and the agents by state.
    def floor(table: str) -> list[str]:  # read at once: the floor redraws twice a second
        script = f"return [...document.querySelectorAll('#{table} tbody tr')].map(r => r.innerText)"
        return boss.browser.execute_script(script)

    boss.until(lambda _: any(linkedid in r and "answered" in r for r in floor("calls")))
    agents = floor("agents")
    assert any(b.interface in r and "paused (lunch)" in r for r in agents), agents
    queues = floor("queues")
    assert any(r.startswith(QUEUE + "\t") and "1 paused" in r for r in queues), queues
    boss.screenshot("floor.png")
    form = a.browser.find_element(By.ID, "disposition")
    Select(form.find_element(By.NAME, "code")).select_by_value("needs_follow_up")
    form.find_element(By.NAME, "notes").send_keys("Disputes the October fee.")
    form.find_element(By.NAME, "commitment").send_keys("Refund the October fee")
    due = date.today() + timedelta(days=3)
    a.browser.execute_script(
        "arguments[0].value = arguments[1]",
        form.find_element(By.NAME, "commitment_due"),
        due.isoformat(),
    )
    # The fee was the reason for the pending callback: ticked, the disposition cancels it.
    [pending] = a.browser.find_elements(By.CSS_SELECTOR, "#customers ul.pending-callbacks li")
    assert "the October fee" in pending.text
    pending.find_element(By.NAME, "resolved_callbacks").click()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    a.until(lambda br: br.find_element(By.ID, "wrapup-result").text)
    assert a.browser.find_element(By.ID, "wrapup-result").text == "Saved."
    with desk["sessions"]() as db:
        call = db.scalar(select(Call).where(Call.linkedid == linkedid))
        assert call is not None
        assert (call.agent, call.disposition, call.notes) == (
            a.name,
            "needs_follow_up",
            "Disputes the October fee.",
        )
        ana = db.scalar(select(Customer).where(Customer.name == "Ana Lopez"))
        assert ana is not None and call.customer_id == ana.id
        promise = db.scalar(select(Commitment).where(Commitment.linkedid == linkedid))
        assert promise is not None
        assert (promise.text, promise.due, promise.customer_id, promise.created_by) == (
            "Refund the October fee",
            due,
            ana.id,
            a.name,
        )
        assert db.scalars(select(Callback.status)).all() == ["cancelled"]

    # B resumes, A leaves the queue: the next call, known only by its caller ID
    # ("5550100", stored as "+1 555 0100"), pops at B.
    b.browser.find_element(By.ID, "resume").click()
    b.until(lambda br: br.find_element(By.ID, "agent-state").text == "available")
    resumed = member_of(ami, b.interface)
    assert resumed is not None and resumed["Paused"] == "0"
    a.queue_row().find_element(By.CSS_SELECTOR, "button.leave").click()
    a.until(lambda _: a.membership() == "no")
    assert member_of(ami, a.interface) is None

    place_call("5553002", hold=20, caller_id="5550100", agi_server=service.agi_server)
    b.until(lambda _: b.pop().get_attribute("data-state") in ("ringing", "answered"))
    card = b.browser.find_element(By.CSS_SELECTOR, "#customers .customer")
    assert card.find_element(By.CLASS_NAME, "name").text == "Carl Idris"
    assert "matched by phone" in card.text and "+15550100" in card.text
    b.screenshot("desktop-caller-id-pop.png")
    assert not a.pop().is_displayed()

    # The first call's record in the outcome log, from the IVR's part and Asterisk's events.
    def first_call() -> Call:
        with desk["sessions"]() as db:
            return db.scalars(select(Call).where(Call.id == linkedid)).one()

    deadline = time.monotonic() + 20
    while first_call().outcome is None and time.monotonic() < deadline:
        time.sleep(0.2)
    logged = first_call()
    assert (logged.outcome, logged.ivr_end, logged.queue) == ("answered", "routed", QUEUE)
    assert logged.wait_seconds is not None and 0 <= logged.wait_seconds < 5
    assert logged.talk_seconds is not None and 3 < logged.talk_seconds < 8  # it talks 5 s
