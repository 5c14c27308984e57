"""Screen pops, on SQLite and on the real PostgreSQL: the journey facts an agent sees,
who the caller is (typed account, then caller ID), the customer's history on the card,
the stored journey when this process did not see the IVR's ``ivr.queued``, and the
live sequence of ``pop`` events through a real InProcessBus, sent only to agents the
call rang.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.bus import InProcessBus
from cti.matching import add_phone
from cti.pop import PopBuilder, ScreenPops, journey_steps, typed_keys
from cti.store.calls import CallLog, IvrPart
from cti.store.dispositions import answered_by, save_notes
from cti.store.models import Account, Call, Callback, Commitment, Customer, Order
from cti.store.users import add_user

ANA_PHONE, LI_PHONE = "+1 415 555 0100", "+1 415 555 0124"
ANA_ACCOUNT, LI_ACCOUNT = "12345674", "87654323"


def add_customer(
    sessions: sessionmaker[Session], name: str, account: str | None = None, *phones: str
) -> int:
    with sessions.begin() as db:
        customer = Customer(name=name)
        if account is not None:
            customer.accounts.append(Account(number=account, balance=Decimal("12.50")))
        for phone in phones:
            add_phone(customer, phone, "US")
        db.add(customer)
        db.flush()
        return customer.id


def store_call(
    sessions: sessionmaker[Session],
    call_id: str,
    events: Iterable[tuple[str, str | None, dict[str, Any]]] = (),
    **fields: Any,
) -> None:
    """Write a call the way the IVR does when its part ends."""
    part = IvrPart(call_id, {"linkedid": call_id, **fields})
    for kind, node, data in events:
        part.note(kind, node, data)
    CallLog(sessions).save(part, "routed", "queue:support", ended=False)


def found_lookup(find: str, value: str) -> dict[str, Any]:
    return {"kind": "lookup", "node": f"find_{find}", "data": lookup(find, "found", value)}


def lookup(find: str, result: str, value: str) -> dict[str, Any]:
    return {"find": find, "result": result, "value": value, "ms": 12}


def ivr_part(linkedid: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """What the IVR publishes as ``ivr.queued``."""
    return {
        "call_id": linkedid,
        "linkedid": linkedid,
        "flow": "customer_service",
        "entry": "5551000",
        "language": "en",
        "started_at": "2025-05-01T09:00:00+00:00",
        "ended_at": "2025-05-01T09:00:42.5+00:00",
        "events": events,
    }


def instant(iso: str) -> datetime:
    """A stored time as an aware datetime (SQLite gives it back naive, in UTC)."""
    moment = datetime.fromisoformat(iso)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- journey facts and typed keys (no database)


def test_journey_steps_keep_agent_relevant_kinds_with_their_facts() -> None:
    events = [
        {"kind": "play", "node": "welcome", "data": {"prompt": "welcome"}},
        {"kind": "language", "node": "pick_language", "data": {"language": "es"}},
        {
            "kind": "match",
            "node": "intent",
            "data": {
                "mode": "speech",
                "value": "billing",
                "utterance": "a question about my bill",
                "confidence": 0.87,
                "ms": 1400,
            },
        },
        {"kind": "noinput", "node": "account", "data": {"ms": 5000}},
        {"kind": "valid", "node": "account", "data": {"mode": "dtmf", "value": "12345674"}},
        {"kind": "answer", "node": "nps", "data": {"question": "Recommend us?", "answer": "9"}},
        found_lookup("account", "12345674"),
        {"kind": "route", "node": "to_billing", "data": {"queue": "billing", "priority": 1}},
    ]
    assert journey_steps(events) == [
        {"kind": "language", "node": "pick_language", "language": "es"},
        {
            "kind": "match",
            "node": "intent",
            "mode": "speech",
            "value": "billing",
            "utterance": "a question about my bill",
            "confidence": 0.87,
        },
        {"kind": "noinput", "node": "account"},
        {"kind": "valid", "node": "account", "mode": "dtmf", "value": "12345674"},
        {"kind": "answer", "node": "nps", "question": "Recommend us?", "answer": "9"},
        {
            "kind": "lookup",
            "node": "find_account",
            "find": "account",
            "value": "12345674",
            "result": "found",
        },
        {"kind": "route", "node": "to_billing", "queue": "billing"},
    ]


def test_journey_steps_drop_empty_facts() -> None:
    events = [
        {
            "kind": "valid",
            "node": "account",
            "data": {"mode": "dtmf", "value": "42", "utterance": "", "confidence": None},
        }
    ]
    assert journey_steps(events) == [
        {"kind": "valid", "node": "account", "mode": "dtmf", "value": "42"}
    ]


def test_typed_keys_are_the_found_account_and_order_only() -> None:
    events = [
        {"kind": "lookup", "node": "a1", "data": lookup("account", "not_found", "11111111")},
        found_lookup("account", "12345674"),
        {"kind": "lookup", "node": "o1", "data": lookup("order", "found", "234567")},
        {"kind": "lookup", "node": "o2", "data": lookup("order", "not_found", "999999")},
        {"kind": "lookup", "node": "o3", "data": lookup("order", "error", "888888")},
        {"kind": "valid", "node": "account", "data": {"mode": "dtmf", "value": "55555555"}},
    ]
    assert typed_keys(events) == {"account": "12345674", "order": "234567"}


def test_typed_keys_count_a_found_customer_lookup_as_an_account() -> None:
    assert typed_keys([found_lookup("customer", "87654323")]) == {"account": "87654323"}
    assert typed_keys([]) == {}


# -- who is calling


def test_a_found_account_lookup_wins_over_another_customers_caller_id(
    sessions: sessionmaker[Session],
) -> None:
    add_customer(sessions, "Ana Lopez", ANA_ACCOUNT, ANA_PHONE)
    li = add_customer(sessions, "Li Wei", LI_ACCOUNT, LI_PHONE)
    store_call(sessions, "call-1", caller_number="+14155550100")
    part = ivr_part("call-1", [found_lookup("account", LI_ACCOUNT)])
    pop = PopBuilder(sessions, "US", 5).build("call-1", "4155550100", part)  # Ana's phone
    assert pop["match"] == "account"
    assert [c["name"] for c in pop["customers"]] == ["Li Wei"]
    assert pop["caller_e164"] == "+14155550100"
    assert pop["customers"][0]["id"] == li
    with sessions() as db:  # building writes nothing: the answer links the call
        assert db.scalar(select(Call.customer_id).where(Call.linkedid == "call-1")) is None


def test_a_found_order_lookup_matches_the_orders_customer(
    sessions: sessionmaker[Session],
) -> None:
    add_customer(sessions, "Ana Lopez", ANA_ACCOUNT, ANA_PHONE)
    li = add_customer(sessions, "Li Wei", LI_ACCOUNT, LI_PHONE)
    with sessions.begin() as db:
        db.add(Order(number="234567", customer_id=li, status="processing"))
    events = [
        {"kind": "lookup", "node": "find_account", "data": lookup("account", "not_found", "0")},
        found_lookup("order", "234567"),
    ]
    pop = PopBuilder(sessions, "US", 5).build("call-6", "4155550100", ivr_part("call-6", events))
    assert pop["match"] == "order"
    assert [c["id"] for c in pop["customers"]] == [li]


def test_without_a_typed_key_the_caller_id_matches_in_e164(
    sessions: sessionmaker[Session],
) -> None:
    rosa = add_customer(sessions, "Rosa Diaz", "55501000", "+1 555 0100")
    part = ivr_part("call-2", [{"kind": "play", "node": "welcome", "data": {}}])
    pop = PopBuilder(sessions, "US", 5).build("call-2", "5550100", part)
    assert (pop["match"], pop["caller_e164"]) == ("phone", "+15550100")
    [card] = pop["customers"]
    assert (card["id"], card["name"], card["account"]) == (rosa, "Rosa Diaz", "55501000")
    assert card["phones"] == ["+15550100"]
    assert card["accounts"] == [
        {"number": "55501000", "balance": "12.50", "currency": "USD", "status": "open"}
    ]
    assert card["tier"] == "standard"


def test_a_shared_number_offers_both_customers_and_links_neither(
    sessions: sessionmaker[Session],
) -> None:
    add_customer(sessions, "Sam Office", None, "+1 415 555 0177")
    add_customer(sessions, "Kim Office", None, "+1 415 555 0177")
    store_call(sessions, "call-3", caller_number="+14155550177")
    pop = PopBuilder(sessions, "US", 5).build("call-3", "4155550177", ivr_part("call-3", []))
    assert pop["match"] == "phone"
    assert [c["name"] for c in pop["customers"]] == ["Sam Office", "Kim Office"]
    with sessions() as db:  # ambiguous: the agent chooses, the pop does not
        assert db.scalar(select(Call.customer_id).where(Call.linkedid == "call-3")) is None


@pytest.mark.parametrize("caller", ["", "anonymous"])
def test_a_withheld_caller_id_matches_nobody(sessions: sessionmaker[Session], caller: str) -> None:
    add_customer(sessions, "Ana Lopez", ANA_ACCOUNT, ANA_PHONE)
    pop = PopBuilder(sessions, "US", 5).build("call-4", caller, ivr_part("call-4", []))
    assert (pop["match"], pop["customers"], pop["caller_e164"]) == ("none", [], "")


def test_the_pop_carries_the_ivr_journey(sessions: sessionmaker[Session]) -> None:
    events = [
        {"kind": "language", "node": "pick_language", "data": {"language": "es"}},
        {"kind": "play", "node": "welcome", "data": {}},
        found_lookup("order", "234567"),
    ]
    pop = PopBuilder(sessions, "US", 5).build("call-5", "", ivr_part("call-5", events))
    assert pop["journey"] == {
        "flow": "customer_service",
        "entry": "5551000",
        "language": "es",  # what the caller chose, over the part's starting language
        "steps": journey_steps(events),
        "ivr_seconds": 42.5,
    }
    assert (pop["linkedid"], pop["notes"]) == ("call-5", "")


# -- the customer's history on the card


def test_the_card_lists_earlier_calls_open_commitments_pending_callbacks_and_surveys(
    sessions: sessionmaker[Session],
) -> None:
    ana = add_customer(sessions, "Ana Lopez", ANA_ACCOUNT, ANA_PHONE)
    li = add_customer(sessions, "Li Wei", LI_ACCOUNT, LI_PHONE)
    survey = ("answer", "nps", {"question": "Would you recommend us?", "answer": "9"})
    store_call(
        sessions,
        "earlier",
        [("match", "intent", {"mode": "dtmf", "value": "billing"}), survey],
        started_at=datetime(2025, 3, 1, 10, 0, tzinfo=UTC),
        caller_number="+14155550100",
        customer_id=ana,
        disposition="resolved",
        agent="bob",
        notes="explained the late fee",
    )
    answered = datetime(2025, 3, 1, 10, 1, tzinfo=UTC)  # Asterisk's side of the call
    CallLog(sessions).record(
        "earlier",
        {
            "queue_entered_at": answered,
            "answered_at": answered,
            "ended_at": answered + timedelta(minutes=5),
        },
    )
    store_call(  # Li's call: nothing of it on Ana's card
        sessions,
        "lis-call",
        [("answer", "nps", {"question": "Would you recommend us?", "answer": "2"})],
        customer_id=li,
        disposition="complaint",
        agent="bob",
        notes="Li is unhappy",
    )
    with sessions.begin() as db:
        db.add_all(
            [
                Commitment(
                    linkedid="earlier",
                    customer_id=ana,
                    text="waive the late fee",
                    due=date(2025, 4, 1),
                    created_by="bob",
                ),
                Commitment(
                    linkedid="earlier",
                    customer_id=ana,
                    text="send the statement",
                    due=date(2025, 3, 5),
                    status="kept",
                    created_by="bob",
                ),
                Commitment(
                    linkedid="lis-call",
                    customer_id=li,
                    text="escalate",
                    due=date(2025, 4, 2),
                    created_by="bob",
                ),
                Callback(
                    linkedid="earlier",
                    customer_id=ana,
                    number="+14155550100",
                    due_at=datetime(2025, 4, 2, 15, 0, tzinfo=UTC),
                    reason="confirm the fee is gone",
                ),
                Callback(
                    linkedid="earlier",
                    customer_id=ana,
                    number="+14155550100",
                    due_at=datetime(2025, 3, 2, 15, 0, tzinfo=UTC),
                    reason="already called",
                    status="done",
                ),
            ]
        )
    pop = PopBuilder(sessions, "US", 5).build("now", "4155550100", ivr_part("now", []))
    [card] = pop["customers"]
    assert card["name"] == "Ana Lopez"
    assert [(c["outcome"], c["disposition"], c["agent"], c["notes"]) for c in card["calls"]] == [
        ("answered", "resolved", "bob", "explained the late fee")
    ]
    assert instant(card["calls"][0]["at"]) == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert card["commitments"] == [{"text": "waive the late fee", "due": "2025-04-01"}]
    assert [c["reason"] for c in card["callbacks"]] == ["confirm the fee is gone"]
    assert instant(card["callbacks"][0]["due"]) == datetime(2025, 4, 2, 15, 0, tzinfo=UTC)
    assert [(s["question"], s["answer"]) for s in card["surveys"]] == [
        ("Would you recommend us?", "9")
    ]


def test_the_card_shows_only_the_newest_calls_up_to_the_history_size(
    sessions: sessionmaker[Session],
) -> None:
    ana = add_customer(sessions, "Ana Lopez", ANA_ACCOUNT, ANA_PHONE)
    for month in (1, 3, 2):  # stored out of order
        store_call(
            sessions,
            f"month-{month}",
            started_at=datetime(2025, month, 10, 9, 0, tzinfo=UTC),
            customer_id=ana,
            disposition=f"code-{month}",
        )
    pop = PopBuilder(sessions, "US", 2).build("now", "4155550100", ivr_part("now", []))
    assert [c["disposition"] for c in pop["customers"][0]["calls"]] == ["code-3", "code-2"]


def test_a_call_answered_for_the_popped_customer_shows_in_their_next_pop(
    sessions: sessionmaker[Session],
) -> None:
    ana = add_customer(sessions, "Ana Lopez", ANA_ACCOUNT, ANA_PHONE)
    add_user(sessions, "alice", "a long test password", "agent", ALICE)
    builder = PopBuilder(sessions, "US", 5)
    store_call(sessions, "first", started_at=datetime(2025, 1, 1, tzinfo=UTC))
    first = builder.build("first", "4155550100", ivr_part("first", []))
    assert first["customers"][0]["calls"] == []  # its own call is not its history
    answered_by(sessions, "first", ALICE, ana)
    CallLog(sessions).record("first", {"ended_at": datetime(2025, 1, 1, 0, 5, tzinfo=UTC)})
    store_call(sessions, "second")
    second = builder.build("second", "4155550100", ivr_part("second", []))
    assert [c["outcome"] for c in second["customers"][0]["calls"]] == ["failed"]  # unqueued


# -- the stored journey when ivr.queued was not seen


def test_without_the_ivr_part_the_pop_reads_the_stored_journey(
    sessions: sessionmaker[Session],
) -> None:
    add_customer(sessions, "Ana Lopez", ANA_ACCOUNT, ANA_PHONE)
    add_customer(sessions, "Li Wei", LI_ACCOUNT, LI_PHONE)
    part = IvrPart("1714.7", {"linkedid": "1714.5", "flow": "billing", "entry": "5552000"})
    part.note("valid", "account", {"mode": "dtmf", "value": LI_ACCOUNT})
    part.note("lookup", "find_account", lookup("account", "found", LI_ACCOUNT))
    CallLog(sessions).save(part, "routed", "queue:billing", ended=False)

    pop = PopBuilder(sessions, "US", 5).build("1714.5", "4155550100", None)
    assert pop["match"] == "account"
    assert [c["name"] for c in pop["customers"]] == ["Li Wei"]
    journey = pop["journey"]
    assert (journey["flow"], journey["entry"]) == ("billing", "5552000")
    assert [step["kind"] for step in journey["steps"]] == ["valid", "lookup"]
    assert journey["ivr_seconds"] is not None and journey["ivr_seconds"] >= 0


def test_without_the_ivr_part_or_a_stored_call_the_pop_still_matches_the_caller(
    sessions: sessionmaker[Session],
) -> None:
    add_customer(sessions, "Ana Lopez", ANA_ACCOUNT, ANA_PHONE)
    pop = PopBuilder(sessions, "US", 5).build("no-ivr", "+14155550100", None)
    assert pop["match"] == "phone" and pop["customers"][0]["name"] == "Ana Lopez"
    assert pop["journey"]["flow"] is None and pop["journey"]["steps"] == []


# -- the live sequence


ALICE, BOB, CAROL, DAVE = "PJSIP/1001", "PJSIP/1002", "PJSIP/1003", "PJSIP/1004"
LINKEDID = "1800.3"


def tracked(state: str, ringing: tuple[str, ...] = (), agent: str | None = None) -> dict[str, Any]:
    """A call as the tracker publishes it (TrackedCall.public())."""
    return {
        "linkedid": LINKEDID,
        "caller": "4155550100",
        "queue": "support",
        "state": state,
        "agent": agent,
        "queued_at": 1746090000.0,
        "ringing": sorted(ringing),
        "channels": ["PJSIP/trunk-00000001"],
    }


class Desks:
    """Every ``pop`` event, as the agents' desktops would receive them."""

    def __init__(self, bus: InProcessBus, pops: ScreenPops) -> None:
        self.pops = pops
        self.seen: list[dict[str, Any]] = []  # not taken yet
        self.all: list[dict[str, Any]] = []  # taken
        bus.subscribe("pop", self._record)

    async def _record(self, _topic: str, event: dict[str, Any]) -> None:
        self.seen.append(event)

    async def take(self) -> list[tuple[str, str]]:
        """(agent, state) of the events since the last take, once all due are sent."""
        await self.pops.settle()
        taken, self.seen = self.seen, []
        self.all.extend(taken)
        return [(e["agent"], e["state"]) for e in taken]


def test_pops_follow_the_call_and_reach_only_the_agents_it_rang(
    sessions: sessionmaker[Session],
) -> None:
    for name, interface in (("alice", ALICE), ("bob", BOB), ("carol", CAROL), ("dave", DAVE)):
        add_user(sessions, name, "a long test password", "agent", interface)
    ana = add_customer(sessions, "Ana Lopez", ANA_ACCOUNT, ANA_PHONE)
    store_call(sessions, LINKEDID, caller_number="+14155550100")
    bus = InProcessBus()
    desks = Desks(bus, ScreenPops(bus, PopBuilder(sessions, "US", 5)))
    rang: set[str] = set()

    def agent_of_call() -> str | None:
        with sessions() as db:
            return db.scalar(select(Call.agent).where(Call.linkedid == LINKEDID))

    async def ring(agent: str, ringing: tuple[str, ...], state: str = "ringing") -> None:
        rang.add(agent)
        await bus.publish("call.ringing", tracked(state, ringing) | {"agent": agent})

    async def scenario() -> None:
        await bus.publish("ivr.queued", ivr_part(LINKEDID, [found_lookup("account", ANA_ACCOUNT)]))
        await bus.publish("call.offered", tracked("queued") | {"position": 1})
        assert await desks.take() == []  # built, not sent: no phone rings yet

        await ring(ALICE, (ALICE,))
        assert await desks.take() == [(ALICE, "ringing")]
        pop = desks.all[-1]["pop"]
        assert pop["match"] == "account" and [c["id"] for c in pop["customers"]] == [ana]
        assert pop["journey"]["flow"] == "customer_service" and pop["notes"] == ""
        assert desks.all[-1]["call"] == {
            "linkedid": LINKEDID,
            "caller": "4155550100",
            "queue": "support",
            "state": "ringing",
            "queued_at": 1746090000.0,
        }

        await bus.publish("call.ring_no_answer", tracked("queued") | {"agent": ALICE})
        assert await desks.take() == [(ALICE, "withdrawn")]
        assert desks.all[-1]["pop"] is None

        await ring(BOB, (BOB,))
        assert await desks.take() == [(BOB, "ringing")]
        assert desks.all[-1]["pop"]["customers"][0]["name"] == "Ana Lopez"

        await bus.publish("call.answered", tracked("answered", agent=BOB) | {"hold_seconds": 9})
        assert await desks.take() == [(BOB, "answered")]
        assert desks.all[-1]["pop"]["customers"][0]["id"] == ana
        assert agent_of_call() == "bob"  # the call is now Bob's to disposition

        await asyncio.to_thread(save_notes, sessions, LINKEDID, "bob", "wants a refund")
        await bus.publish("call.transferred", tracked("answered", agent=BOB) | {"how": "Blind"})
        assert await desks.take() == [(BOB, "transferred")]

        # Transferred into a queue: the call is offered again and rings Carol.
        await bus.publish("call.offered", tracked("queued", agent=BOB) | {"position": 1})
        await ring(CAROL, (CAROL,))
        assert await desks.take() == [(CAROL, "ringing")]
        assert desks.all[-1]["pop"]["notes"] == "wants a refund"
        assert desks.all[-1]["pop"]["customers"][0]["id"] == ana

        await bus.publish("call.ended", tracked("ended", (CAROL,), agent=BOB))
        assert sorted(await desks.take()) == [(BOB, "ended"), (CAROL, "ended")]

    asyncio.run(scenario())
    assert {e["agent"] for e in desks.all} <= rang
    assert DAVE not in {e["agent"] for e in desks.all}
    # Earlier pops keep what they were sent with: Bob's ringing pop had no notes.
    bobs_ringing = [e for e in desks.all if (e["agent"], e["state"]) == (BOB, "ringing")]
    assert bobs_ringing[0]["pop"]["notes"] == ""


def test_a_call_that_ends_unanswered_tells_only_the_agent_still_ringing(
    sessions: sessionmaker[Session],
) -> None:
    add_customer(sessions, "Ana Lopez", ANA_ACCOUNT, ANA_PHONE)
    bus = InProcessBus()
    desks = Desks(bus, ScreenPops(bus, PopBuilder(sessions, "US", 5)))

    async def scenario() -> list[tuple[str, str]]:
        # No ivr.queued and no stored call: the pop is built from the caller ID alone.
        await bus.publish("call.offered", tracked("queued"))
        await bus.publish("call.ringing", tracked("ringing", (ALICE,)) | {"agent": ALICE})
        await bus.publish("call.ring_no_answer", tracked("queued") | {"agent": ALICE})
        await bus.publish("call.ringing", tracked("ringing", (BOB,)) | {"agent": BOB})
        await bus.publish("call.ended", tracked("ended", (BOB,)))

        return await desks.take()

    assert asyncio.run(scenario()) == [
        (ALICE, "ringing"),
        (ALICE, "withdrawn"),
        (BOB, "ringing"),
        (BOB, "ended"),
    ]
    assert desks.all[0]["pop"]["match"] == "phone"
    assert desks.all[0]["pop"]["journey"]["steps"] == []


def test_an_abandoned_call_ends_the_pop_at_the_agent_it_was_ringing(
    sessions: sessionmaker[Session],
) -> None:
    bus = InProcessBus()
    desks = Desks(bus, ScreenPops(bus, PopBuilder(sessions, "US", 5)))

    async def scenario() -> list[tuple[str, str]]:
        await bus.publish("call.offered", tracked("queued"))
        await bus.publish("call.ringing", tracked("ringing", (ALICE,)) | {"agent": ALICE})
        await bus.publish("call.abandoned", tracked("abandoned", (ALICE,)) | {"hold_seconds": 4})

        return await desks.take()

    assert asyncio.run(scenario()) == [(ALICE, "ringing"), (ALICE, "ended")]


def test_in_a_ringall_queue_the_agents_who_did_not_answer_lose_the_pop(
    sessions: sessionmaker[Session],
) -> None:
    bus = InProcessBus()
    desks = Desks(bus, ScreenPops(bus, PopBuilder(sessions, "US", 5)))

    async def scenario() -> list[tuple[str, str]]:
        await bus.publish("call.offered", tracked("queued"))
        await bus.publish("call.ringing", tracked("ringing", (ALICE,)) | {"agent": ALICE})
        await bus.publish("call.ringing", tracked("ringing", (ALICE, BOB)) | {"agent": BOB})
        # AgentConnect: the tracker clears `ringing`; Asterisk cancels Alice's phone
        # (DialEnd CANCEL) without an AgentRingNoAnswer.
        await bus.publish("call.answered", tracked("answered", agent=BOB))
        await bus.publish("call.ended", tracked("ended", agent=BOB))

        return await desks.take()

    seen = asyncio.run(scenario())
    assert seen == [
        (ALICE, "ringing"),
        (BOB, "ringing"),
        (ALICE, "withdrawn"),  # Bob took it
        (BOB, "answered"),
        (BOB, "ended"),
    ]


def test_calls_that_ended_during_an_ami_gap_end_on_the_agents_screens(
    sessions: sessionmaker[Session],
) -> None:
    """After a resync, the pops of calls Asterisk no longer has end (their end went
    unseen), at the agent on the call and at the one still ringing; nothing is kept."""
    add_customer(sessions, "Ana Lopez", ANA_ACCOUNT, ANA_PHONE)
    bus = InProcessBus()
    live = {LINKEDID, "1900.1"}
    pops = ScreenPops(bus, PopBuilder(sessions, "US", 5), lambda: live)
    desks = Desks(bus, pops)
    other = {"linkedid": "1900.1", "caller": "4155550123", "queue": "support"}

    async def scenario() -> list[list[tuple[str, str]]]:
        await bus.publish("call.ringing", tracked("ringing", (ALICE,)) | {"agent": ALICE})
        await bus.publish("call.answered", tracked("answered", agent=ALICE) | {"agent": ALICE})
        await bus.publish("call.ringing", other | {"state": "ringing", "agent": BOB})
        first = await desks.take()
        await bus.publish("ami.resynced", {"resyncs": 1})  # both still there
        unchanged = await desks.take()
        live.clear()  # both ended while the AMI connection was down
        await bus.publish("ami.resynced", {"resyncs": 2})
        return [first, unchanged, await desks.take()]

    first, unchanged, after = asyncio.run(scenario())
    assert [e for e in first if e[0] == ALICE] == [(ALICE, "ringing"), (ALICE, "answered")]
    assert [e for e in first if e[0] == BOB] == [(BOB, "ringing")]  # calls go side by side
    assert unchanged == []
    assert sorted(after) == [(ALICE, "ended"), (BOB, "ended")]
    assert (pops.pops, pops.answered, pops.rung, pops.sending) == ({}, {}, {}, {})
