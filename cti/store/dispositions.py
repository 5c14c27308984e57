"""What an agent records about a call they answered: an outcome code, notes, a
commitment with a due date, a callback to make, the customer's pending callbacks this
call resolved, and changes to the customer record.

Everything of one disposition is written in one transaction. Only an agent who
answered the call may write to it (`CallNotFound` otherwise: agents see only their
own calls). Each agent's notes and disposition are kept on their leg of the call
(`AgentLeg`); the call row shows the latest, which is what the next agent of a
transferred call sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from cti.matching import add_phone
from cti.store.calls import merge, settle
from cti.store.campaigns import cancel_callbacks
from cti.store.models import (
    Account,
    AgentLeg,
    Call,
    Callback,
    Commitment,
    Customer,
    User,
    utcnow,
)
from ivr.numbers import normalise_number


class CallNotFound(LookupError):
    """No call with this Linkedid answered by this agent."""


@dataclass
class Disposition:
    code: str
    notes: str = ""
    customer_id: int | None = None
    commitment: str = ""
    commitment_due: date | None = None
    callback_at: datetime | None = None
    callback_number: str = ""
    callback_reason: str = ""
    resolved_callbacks: tuple[int, ...] = ()  # the customer's pending callbacks, now moot


@dataclass
class CustomerEdit:
    name: str
    account: str = ""
    tier: str = "standard"
    language: str = ""
    phone: str = ""  # one more number for the record, any format


def answered_by(
    sessions: sessionmaker[Session], linkedid: str, interface: str, customer_id: int | None = None
) -> None:
    """Mark the call as the agent's on this interface (the queue connected them), and
    as `customer_id`'s unless it has a customer already."""
    with sessions.begin() as db:
        username = db.scalar(select(User.username).where(User.interface == interface))
        if username is None:
            return
        found = db.execute(
            update(Call)
            .where(Call.linkedid == linkedid)
            .values(agent=username, customer_id=func.coalesce(Call.customer_id, customer_id))
        )
        if found.rowcount == 0:  # a call that reached the queue without our IVR
            row = {"id": linkedid, "linkedid": linkedid, "agent": username}
            row |= {"customer_id": customer_id} if customer_id else {}
            merge(db, [row])
        leg = {"linkedid": linkedid, "username": username}
        if db.scalar(select(AgentLeg.id).filter_by(**leg)) is None:
            db.add(AgentLeg(**leg))


def _own_leg(db: Session, linkedid: str, username: str) -> tuple[Call, AgentLeg]:
    leg = db.scalar(select(AgentLeg).filter_by(linkedid=linkedid, username=username))
    call = db.scalar(select(Call).where(Call.linkedid == linkedid).limit(1))
    if leg is None or call is None:
        raise CallNotFound(linkedid)
    return call, leg


def save_notes(sessions: sessionmaker[Session], linkedid: str, username: str, notes: str) -> None:
    """Notes while the call goes on: the next agent sees them if it is transferred."""
    with sessions.begin() as db:
        call, leg = _own_leg(db, linkedid, username)
        call.notes = leg.notes = notes


def save_disposition(
    sessions: sessionmaker[Session], linkedid: str, username: str, given: Disposition
) -> None:
    with sessions.begin() as db:
        call, leg = _own_leg(db, linkedid, username)
        call.disposition = leg.disposition = given.code
        call.notes = leg.notes = given.notes
        leg.disposed_at = call.disposed_at = utcnow()  # the end of the agent's wrap-up
        if given.customer_id is not None:
            if db.get(Customer, given.customer_id) is None:
                raise ValueError(f"customer {given.customer_id} does not exist")
            call.customer_id = given.customer_id
        if given.commitment:
            if given.commitment_due is None:
                raise ValueError("a commitment needs a due date")
            db.add(
                Commitment(
                    linkedid=linkedid,
                    customer_id=call.customer_id,
                    text=given.commitment,
                    due=given.commitment_due,
                    created_by=username,
                )
            )
        if given.callback_at is not None:
            number = given.callback_number or call.caller_number or ""
            if not number:
                raise ValueError("a callback needs a number to call")
            db.add(
                Callback(
                    linkedid=linkedid,
                    customer_id=call.customer_id,
                    number=number,
                    due_at=given.callback_at,
                    reason=given.callback_reason or given.code,
                    created_by=username,
                )
            )
        if given.resolved_callbacks:
            _resolve_callbacks(db, call, given.resolved_callbacks)
        db.flush()
        settle(db, [call.id])


def _resolve_callbacks(db: Session, call: Call, ids: tuple[int, ...]) -> None:
    """Cancel pending callbacks of the call's customer that this call made moot, with
    their contacts still waiting to be dialled (last result `resolved`)."""
    found = db.scalars(select(Callback).where(Callback.id.in_(ids)).with_for_update()).all()
    by_id = {request.id: request for request in found}
    for request_id in ids:
        request = by_id.get(request_id)
        if (
            request is None
            or request.customer_id is None
            or request.customer_id != call.customer_id
        ):
            raise ValueError(f"callback {request_id} is not one of this customer's")
        if request.status != "pending":
            raise ValueError(f"callback {request_id} is {request.status} already")
    cancel_callbacks(db, ids, "resolved")


def linked_to_agent(sessions: sessionmaker[Session], customer_id: int, username: str) -> bool:
    """Whether the customer is on one of this agent's calls: all an agent may edit."""
    with sessions() as db:
        found = (
            select(Call.id)
            .join(AgentLeg, AgentLeg.linkedid == Call.linkedid)
            .where(Call.customer_id == customer_id, AgentLeg.username == username)
        )
        return db.scalar(found.limit(1)) is not None


def save_customer(
    sessions: sessionmaker[Session], edit: CustomerEdit, region: str, customer_id: int | None
) -> int:
    """Create a customer (`customer_id` None) or change one; its id."""
    with sessions.begin() as db:
        customer = Customer() if customer_id is None else db.get(Customer, customer_id)
        if customer is None:
            raise ValueError(f"customer {customer_id} does not exist")
        if edit.account:
            owner = db.scalar(select(Account.customer_id).where(Account.number == edit.account))
            if owner is None:  # new: one more account of theirs
                customer.accounts.append(Account(number=edit.account, balance=Decimal("0")))
            elif owner != customer.id:
                raise ValueError(f"account {edit.account} belongs to another customer")
        customer.name = edit.name
        customer.tier = edit.tier or "standard"
        customer.language = edit.language or None
        if edit.phone and normalise_number(edit.phone, region) not in {
            phone.e164 for phone in customer.phones
        }:
            add_phone(customer, edit.phone, region)
        db.add(customer)
        db.flush()
        return customer.id
