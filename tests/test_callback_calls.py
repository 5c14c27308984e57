"""A callback from request to agent on the real Asterisk 22: a caller asks for a
callback in the IVR and hangs up; the service's sweeper makes it a contact of the
callbacks campaign, its dialer calls the caller back, the caller presses 1 to be put
through, and the agent's screen pop says why we call and shows the call that asked."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.campaigns.spec import CampaignSpec
from cti.store import campaigns as store
from cti.store.db import make_engine, session_factory
from cti.store.models import Call, Callback, Contact
from cti.store.users import add_user
from tests.conftest import Sandbox
from tests.support.service import ServiceProcess, own_plans
from tests.support.web import WebUser
from tests.test_dialer_calls import ALWAYS

PASSWORD = "a long enough password"
CALLER = "+12025550600"  # [ivr-callee]: answers a callback by pressing 1, stays 30 s
PLAN = """
entries:
  "5554001": ask_callback
  cb_call: callback_call
flows:
  ask_callback:
    start: offer
    language: en
    nodes:
      offer:
        type: callback
        reason: billing question
        eta_minutes: 30
        prompt: callback-within
        next: bye
      bye: {type: hangup, prompt: goodbye}
  callback_call:
    start: intro
    language: en
    nodes:
      intro:
        type: menu
        prompt: callback-intro
        options:
          - {key: "1", goto: connect}
        failure: connect
      connect: {type: queue, queue: callback-agent}
"""


@pytest.mark.asterisk
def test_a_callback_asked_for_in_the_ivr_rings_an_agent_whose_pop_shows_why(
    asterisk: Sandbox, place_call, tmp_path: Path
) -> None:
    _, env = own_plans(tmp_path, **{"callback_test.yaml": PLAN})
    env |= {"IVR_CAMPAIGNS__CALLBACKS": "callbacks", "IVR_CAMPAIGNS__SWEEP_SECONDS": "1"}
    spec = CampaignSpec(name="callbacks", kind="callback", entry="cb_call", windows=ALWAYS)
    service, sessions, agent, _ = callbacks_with_an_agent(asterisk, tmp_path, env, spec)
    try:
        place_call("5554001", hold=1, caller_id=CALLER, agi_server=service.agi_server)
        ringing = agent.next_event("pop", lambda event: event["state"] == "ringing")
    finally:
        assert service.stop() == 0, service.log()
    with sessions() as db:
        asked = db.scalars(select(Call).where(Call.entry == "5554001")).one()
    pop = ringing["pop"]
    callback = pop["callback"]
    assert (callback["campaign"], callback["reason"]) == ("callbacks", "billing question")
    original = callback["original"]
    assert original["id"] == asked.id and original["outcome"] == "callback_requested"
    assert original["journey"]["flow"] == "ask_callback"
    with sessions() as db:
        contact = db.scalars(select(Contact)).one()
        callback_call = db.get(Call, pop["linkedid"])
        request = db.get(Callback, contact.callback_id)
    assert (contact.number, contact.origin_call_id) == (CALLER, asked.id)
    assert (
        callback_call.kind,
        callback_call.direction,
        callback_call.callback_id,
        callback_call.origin_call_id,
    ) == ("callback", "outbound", request.id, asked.id)
    assert request.linkedid == asked.id


@pytest.mark.asterisk
def test_an_agent_first_callback_rings_the_agent_then_puts_the_customer_through(
    asterisk: Sandbox, tmp_path: Path
) -> None:
    """A campaign with an agent_queue calls an agent of the queue first; their pop says
    why we call; once they answer, the customer is dialled and answers."""
    spec = CampaignSpec(
        name="quotes", kind="callback", agent_queue="callback-agent", windows=ALWAYS
    )
    service, sessions, agent, campaign_id = callbacks_with_an_agent(asterisk, tmp_path, {}, spec)
    try:
        with sessions.begin() as db:
            store.add_contact(db, campaign_id, CALLER, "import", reason="promised a quote")
        ringing = agent.next_event("pop", lambda event: event["state"] == "ringing")
        deadline = time.monotonic() + 30
        while (contact := contacts_of(sessions)[0]).status != "done":
            assert time.monotonic() < deadline, (contact.status, contact.last_result)
            time.sleep(0.3)
    finally:
        assert service.stop() == 0, service.log()
    callback = ringing["pop"]["callback"]
    assert (callback["campaign"], callback["reason"]) == ("quotes", "promised a quote")
    assert (contact.attempts, contact.last_result) == (1, "human")


def callbacks_with_an_agent(
    asterisk: Sandbox, tmp_path: Path, env: dict[str, str], spec: CampaignSpec
) -> tuple[ServiceProcess, sessionmaker[Session], WebUser, int]:
    """`ivr serve` dialling the sandbox's callees, the campaign `spec`, and the agent of
    the callback-agent queue's phone logged in and listening for pops."""
    env = {  # own_plans' env turns AMI off: on here
        **env,
        "IVR_AMI__ENABLED": "true",
        "IVR_AMI__SECRET": asterisk.ami.secret.get_secret_value(),
        "IVR_DIALER__CHANNEL": "Local/{number}@ivr-callee",
        "IVR_DIALER__POLL_SECONDS": "0.5",
    }
    service = ServiceProcess(tmp_path, env).start()
    sessions = session_factory(make_engine(service.db_url))
    campaign_id = store.create(sessions, spec, "test")
    add_user(sessions, "cbagent", PASSWORD, "agent", "Local/cbagent@ivr-agent/n")
    agent = WebUser(service.web_url, "cbagent", PASSWORD)
    agent.listen()
    return service, sessions, agent, campaign_id


def contacts_of(sessions: sessionmaker[Session]) -> list[Contact]:
    with sessions() as db:
        return list(db.scalars(select(Contact)))
