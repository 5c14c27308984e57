"""What agents record about their calls, on SQLite and on the real PostgreSQL: the
disposition (code, notes, customer, commitment, callback) written all or nothing and
only by the agent who answered, and the customer records an agent creates or edits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cti.matching import add_phone
from cti.store.calls import CallLog, IvrPart
from cti.store.db import make_engine, session_factory, upgrade
from cti.store.dispositions import (
    CallNotFound,
    CustomerEdit,
    Disposition,
    answered_by,
    linked_to_agent,
    save_customer,
    save_disposition,
    save_notes,
)
from cti.store.models import (
    Account,
    AgentLeg,
    Call,
    Callback,
    Campaign,
    Commitment,
    Contact,
    Customer,
)
from cti.store.users import add_user

ALICE, BOB = "PJSIP/1001", "PJSIP/1002"
CALL = "1800.1"  # answered by Bob, caller +14155550100


@dataclass
class Desk:
    sessions: sessionmaker[Session]
    ana: int  # the customer on the phone
    li: int  # another customer


@pytest.fixture
def desk(db_url: str) -> Iterator[Desk]:
    engine = make_engine(db_url)
    upgrade(engine)
    sessions = session_factory(engine)
    add_user(sessions, "alice", "a long test password", "agent", ALICE)
    add_user(sessions, "bob", "a long test password", "agent", BOB)
    with sessions.begin() as db:
        ana = Customer(name="Ana Lopez", accounts=[Account(number="12345674")])
        add_phone(ana, "+1 415 555 0100", "US")
        li = Customer(name="Li Wei", accounts=[Account(number="87654323")])
        add_phone(li, "+1 415 555 0124", "US")
        db.add_all([ana, li])
    part = IvrPart("chan-1", {"linkedid": CALL, "caller_number": "+14155550100"})
    part.note("route", "to_support", {"queue": "support"})
    CallLog(sessions).save(part, "routed", "queue:support", ended=False)
    answered_by(sessions, CALL, BOB)
    yield Desk(sessions, ana.id, li.id)
    engine.dispose()


def stored_call(desk: Desk, linkedid: str = CALL) -> Call:
    with desk.sessions() as db:
        return db.scalars(select(Call).where(Call.linkedid == linkedid)).one()


def count(desk: Desk, model: type) -> int:
    with desk.sessions() as db:
        return db.scalar(select(func.count()).select_from(model)) or 0


# -- dispositions


def test_a_disposition_stores_the_code_notes_and_customer(desk: Desk) -> None:
    given = Disposition("resolved", notes="paid by card", customer_id=desk.ana)
    save_disposition(desk.sessions, CALL, "bob", given)
    call = stored_call(desk)
    assert (call.disposition, call.notes, call.customer_id) == (
        "resolved",
        "paid by card",
        desk.ana,
    )
    assert count(desk, Commitment) == count(desk, Callback) == 0


def test_the_disposition_ends_the_wrap_up_which_counts_in_the_outcome_log(desk: Desk) -> None:
    done = datetime.now(UTC) - timedelta(seconds=45)
    log = CallLog(desk.sessions)
    log.record("chan-1", {"answered_at": done - timedelta(seconds=100), "agent_done_at": done})
    assert stored_call(desk).wrapup_seconds is None  # still wrapping up
    save_disposition(desk.sessions, CALL, "bob", Disposition("resolved"))
    call = stored_call(desk)
    assert call.disposed_at is not None and call.talk_seconds == 100.0
    assert call.wrapup_seconds is not None and 45 <= call.wrapup_seconds < 75


def test_a_commitment_is_stored_with_its_due_date_for_the_calls_customer(desk: Desk) -> None:
    given = Disposition(
        "promise",
        customer_id=desk.ana,
        commitment="refund the late fee",
        commitment_due=date(2025, 6, 1),
    )
    save_disposition(desk.sessions, CALL, "bob", given)
    with desk.sessions() as db:
        promise = db.scalars(select(Commitment)).one()
    assert (promise.linkedid, promise.customer_id, promise.created_by) == (CALL, desk.ana, "bob")
    assert (promise.text, promise.due, promise.status) == (
        "refund the late fee",
        date(2025, 6, 1),
        "open",
    )


def test_a_callback_calls_the_caller_back_unless_told_another_number(desk: Desk) -> None:
    due = datetime(2025, 6, 2, 15, 0, tzinfo=UTC)
    save_disposition(
        desk.sessions, CALL, "bob", Disposition("callback", customer_id=desk.ana, callback_at=due)
    )
    with desk.sessions() as db:
        callback = db.scalars(select(Callback)).one()
    assert (callback.number, callback.reason, callback.status) == (
        "+14155550100",
        "callback",  # no reason given: the code says why
        "pending",
    )
    assert (callback.linkedid, callback.customer_id, callback.created_by) == (
        CALL,
        desk.ana,
        "bob",
    )
    stored = callback.due_at if callback.due_at.tzinfo else callback.due_at.replace(tzinfo=UTC)
    assert stored == due

    save_disposition(
        desk.sessions,
        CALL,
        "bob",
        Disposition(
            "callback",
            callback_at=due,
            callback_number="+14155550999",
            callback_reason="call the office line",
        ),
    )
    with desk.sessions() as db:
        numbers = db.execute(select(Callback.number, Callback.reason).order_by(Callback.id)).all()
    assert [tuple(n) for n in numbers] == [
        ("+14155550100", "callback"),
        ("+14155550999", "call the office line"),
    ]


def owed(desk: Desk, customer: int, contact_status: str | None) -> int:
    """A pending callback of `customer`, with a contact of the callbacks campaign in
    `contact_status` (None: no contact yet); its id."""
    with desk.sessions.begin() as db:
        campaign = db.scalar(select(Campaign).filter_by(name="callbacks"))
        if campaign is None:
            campaign = Campaign(name="callbacks", kind="callback", spec={})
            db.add(campaign)
        owed_already = db.scalar(select(func.count()).select_from(Callback))
        request = Callback(
            customer_id=customer, number="+14155550100", reason=f"reason {owed_already}",
            due_at=datetime(2025, 6, 2, 15, 0, tzinfo=UTC),
        )  # fmt: skip
        db.add(request)
        db.flush()
        if contact_status is not None:
            db.add(
                Contact(
                    campaign_id=campaign.id, number=request.number, reason=request.reason,
                    source="ivr", callback_id=request.id, status=contact_status,
                )
            )  # fmt: skip
        return request.id


def statuses(desk: Desk) -> dict[int, tuple[str, str | None, str | None]]:
    """Each callback's status, and its contact's status and last result."""
    with desk.sessions() as db:
        rows = db.execute(
            select(Callback.id, Callback.status, Contact.status, Contact.last_result).outerjoin(
                Contact, Contact.callback_id == Callback.id
            )
        ).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def test_callbacks_the_call_resolved_are_cancelled_with_their_waiting_contacts(
    desk: Desk,
) -> None:
    waiting, dialling, unswept = (owed(desk, desk.ana, s) for s in ("pending", "dialing", None))
    kept, others = owed(desk, desk.ana, "pending"), owed(desk, desk.li, "pending")
    given = Disposition(
        "resolved", customer_id=desk.ana, resolved_callbacks=(waiting, dialling, unswept)
    )
    save_disposition(desk.sessions, CALL, "bob", given)
    assert statuses(desk) == {
        waiting: ("cancelled", "cancelled", "resolved"),
        dialling: ("cancelled", "dialing", None),  # its call is on its way
        unswept: ("cancelled", None, None),
        kept: ("pending", "pending", None),
        others: ("pending", "pending", None),
    }
    assert stored_call(desk).disposition == "resolved"


def test_a_callback_not_the_customers_or_not_pending_is_refused_and_nothing_changes(
    desk: Desk,
) -> None:
    mine, others = owed(desk, desk.ana, "pending"), owed(desk, desk.li, "pending")
    before = statuses(desk)
    for ids, error in [
        ((mine, others), f"callback {others} is not one of this customer's"),
        ((mine, 999_999), "callback 999999 is not one of this customer's"),
    ]:
        given = Disposition("resolved", customer_id=desk.ana, resolved_callbacks=ids)
        with pytest.raises(ValueError, match=error):
            save_disposition(desk.sessions, CALL, "bob", given)
        assert statuses(desk) == before and stored_call(desk).disposition is None
    # No customer on the call: no callback is its customer's.
    with pytest.raises(ValueError, match=f"callback {mine} is not"):
        save_disposition(desk.sessions, CALL, "bob", Disposition("x", resolved_callbacks=(mine,)))
    given = Disposition("resolved", customer_id=desk.ana, resolved_callbacks=(mine,))
    save_disposition(desk.sessions, CALL, "bob", given)
    with pytest.raises(ValueError, match=f"callback {mine} is cancelled already"):
        save_disposition(desk.sessions, CALL, "bob", given)


def test_notes_during_the_call_are_the_answering_agents(desk: Desk) -> None:
    save_notes(desk.sessions, CALL, "bob", "wants a refund")
    assert stored_call(desk).notes == "wants a refund"


def test_another_agent_can_neither_disposition_nor_take_notes_on_the_call(desk: Desk) -> None:
    with pytest.raises(CallNotFound):
        save_disposition(desk.sessions, CALL, "alice", Disposition("resolved", notes="mine"))
    with pytest.raises(CallNotFound):
        save_notes(desk.sessions, CALL, "alice", "mine")
    with pytest.raises(CallNotFound):  # nor anyone, on a call nobody answered
        save_notes(desk.sessions, "no-such-call", "bob", "mine")
    call = stored_call(desk)
    assert (call.disposition, call.notes) == (None, None)


def test_a_commitment_without_a_due_date_writes_nothing(desk: Desk) -> None:
    save_disposition(desk.sessions, CALL, "bob", Disposition("resolved", notes="first try"))
    undated = Disposition(
        "promise",
        notes="second try",
        customer_id=desk.ana,
        commitment="refund the late fee",
        callback_at=datetime(2025, 6, 2, 15, 0, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="due date"):
        save_disposition(desk.sessions, CALL, "bob", undated)
    call = stored_call(desk)
    assert (call.disposition, call.notes, call.customer_id) == ("resolved", "first try", None)
    assert count(desk, Commitment) == count(desk, Callback) == 0


def test_a_callback_without_a_number_undoes_the_commitment_before_it(desk: Desk) -> None:
    answered_by(desk.sessions, "no-ivr", BOB)  # a call with no caller number
    no_number = Disposition(
        "promise",
        commitment="refund the late fee",
        commitment_due=date(2025, 6, 1),
        callback_at=datetime(2025, 6, 2, 15, 0, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="number"):
        save_disposition(desk.sessions, "no-ivr", "bob", no_number)
    assert stored_call(desk, "no-ivr").disposition is None
    assert count(desk, Commitment) == count(desk, Callback) == 0


def test_an_unknown_customer_is_refused_and_nothing_changes(desk: Desk) -> None:
    save_disposition(desk.sessions, CALL, "bob", Disposition("resolved", customer_id=desk.ana))
    with pytest.raises(ValueError, match="does not exist"):
        save_disposition(desk.sessions, CALL, "bob", Disposition("sale", customer_id=99999))
    call = stored_call(desk)
    assert (call.disposition, call.customer_id) == ("resolved", desk.ana)


# -- who answered


def test_after_a_transfer_each_agent_keeps_their_own_disposition(desk: Desk) -> None:
    assert stored_call(desk).agent == "bob"
    save_notes(desk.sessions, CALL, "bob", "wants a refund")
    answered_by(desk.sessions, CALL, ALICE)  # transferred to Alice, who answers
    assert stored_call(desk).agent == "alice"
    save_disposition(desk.sessions, CALL, "bob", Disposition("escalated", notes="to billing"))
    save_disposition(desk.sessions, CALL, "alice", Disposition("resolved", notes="refunded"))
    with desk.sessions() as db:
        legs = db.execute(
            select(AgentLeg.username, AgentLeg.disposition, AgentLeg.notes).order_by(AgentLeg.id)
        ).all()
    assert [tuple(leg) for leg in legs] == [
        ("bob", "escalated", "to billing"),
        ("alice", "resolved", "refunded"),
    ]
    call = stored_call(desk)  # the call shows the latest
    assert (call.disposition, call.notes) == ("resolved", "refunded")


def test_a_call_that_skipped_the_ivr_gets_a_row_when_answered(desk: Desk) -> None:
    answered_by(desk.sessions, "1900.4", ALICE)
    call = stored_call(desk, "1900.4")
    assert (call.id, call.agent, call.direction) == ("1900.4", "alice", "inbound")
    assert call.started_at is not None
    save_notes(desk.sessions, "1900.4", "alice", "came in on the direct line")
    assert stored_call(desk, "1900.4").notes == "came in on the direct line"


def test_an_interface_without_a_user_claims_no_call(desk: Desk) -> None:
    answered_by(desk.sessions, "1900.5", "PJSIP/9999")
    answered_by(desk.sessions, CALL, "PJSIP/9999")
    with desk.sessions() as db:
        assert db.scalar(select(Call).where(Call.linkedid == "1900.5")) is None
    assert stored_call(desk).agent == "bob"


def test_an_agent_is_linked_only_to_the_customers_on_their_calls(desk: Desk) -> None:
    assert not linked_to_agent(desk.sessions, desk.ana, "bob")  # the call has no customer yet
    save_disposition(desk.sessions, CALL, "bob", Disposition("resolved", customer_id=desk.ana))
    assert linked_to_agent(desk.sessions, desk.ana, "bob")
    assert not linked_to_agent(desk.sessions, desk.ana, "alice")
    assert not linked_to_agent(desk.sessions, desk.li, "bob")


# -- customer records


def phones_of(desk: Desk, customer_id: int) -> list[str]:
    with desk.sessions() as db:
        customer = db.get(Customer, customer_id)
        assert customer is not None
        return sorted(phone.e164 for phone in customer.phones)


def test_a_new_customer_is_stored_with_the_phone_in_e164(desk: Desk) -> None:
    edit = CustomerEdit("Rosa Diaz", account="55501000", language="es", phone="(415) 555-0123")
    rosa = save_customer(desk.sessions, edit, "US", None)
    with desk.sessions() as db:
        customer = db.get(Customer, rosa)
        assert customer is not None
        assert (customer.name, customer.tier, customer.language) == ("Rosa Diaz", "standard", "es")
        assert [(a.number, a.balance, a.currency) for a in customer.accounts] == [
            ("55501000", Decimal("0"), "USD")
        ]
    assert phones_of(desk, rosa) == ["+14155550123"]


def test_editing_a_customer_adds_a_new_number_once(desk: Desk) -> None:
    edit = CustomerEdit("Ana López", tier="vip", phone="(415) 555-0100")  # hers already
    assert save_customer(desk.sessions, edit, "US", desk.ana) == desk.ana
    assert phones_of(desk, desk.ana) == ["+14155550100"]
    save_customer(desk.sessions, CustomerEdit("Ana López", phone="4155550111"), "US", desk.ana)
    save_customer(desk.sessions, CustomerEdit("Ana López", phone="+14155550111"), "US", desk.ana)
    assert phones_of(desk, desk.ana) == ["+14155550100", "+14155550111"]
    with desk.sessions() as db:
        ana = db.get(Customer, desk.ana)
        assert ana is not None
        assert (ana.name, [a.number for a in ana.accounts]) == ("Ana López", ["12345674"])  # kept


def test_an_account_of_another_customer_is_refused(desk: Desk) -> None:
    taken = CustomerEdit("Ana Lopez", account="87654323")  # Li's
    with pytest.raises(ValueError, match="another customer"):
        save_customer(desk.sessions, taken, "US", desk.ana)
    with pytest.raises(ValueError, match="another customer"):
        save_customer(desk.sessions, CustomerEdit("Li Copy", account="87654323"), "US", None)
    assert accounts_of(desk, desk.ana) == ["12345674"]
    assert accounts_of(desk, desk.li) == ["87654323"]
    assert (count(desk, Customer), count(desk, Account)) == (2, 2)
    # Its own account is no conflict, and is not added twice.
    save_customer(desk.sessions, CustomerEdit("Ana L.", account="12345674"), "US", desk.ana)
    assert accounts_of(desk, desk.ana) == ["12345674"]


def accounts_of(desk: Desk, customer_id: int) -> list[str]:
    with desk.sessions() as db:
        query = select(Account.number).where(Account.customer_id == customer_id)
        return list(db.scalars(query.order_by(Account.id)))


def test_a_new_account_number_adds_an_account_to_the_customer(desk: Desk) -> None:
    save_customer(desk.sessions, CustomerEdit("Ana Lopez", account="55501000"), "US", desk.ana)
    assert accounts_of(desk, desk.ana) == ["12345674", "55501000"]
    save_customer(desk.sessions, CustomerEdit("Ana Lopez", account="55501000"), "US", desk.ana)
    assert accounts_of(desk, desk.ana) == ["12345674", "55501000"]
    assert accounts_of(desk, desk.li) == ["87654323"]


def test_editing_an_unknown_customer_is_refused(desk: Desk) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        save_customer(desk.sessions, CustomerEdit("Nobody"), "US", 99999)
    assert count(desk, Customer) == 2
