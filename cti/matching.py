"""Who is calling: the customer record a screen pop shows.

First by what the caller typed in the IVR (an account number, then an order number),
then by caller ID. Phone numbers are compared in E.164 form, made by `phonenumbers`
from the number as stored or as it arrives ("+1 555 0100" and "5550100" in the US are
the same number); a customer's several numbers all count. Several customers may share
a number (a family, an office): the pop then offers the choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cti.store.models import Account, Customer, CustomerPhone, Order
from ivr.numbers import normalise_number


@dataclass
class Match:
    """How the caller was recognised, and the customers it points at (none, one, several)."""

    how: Literal["account", "order", "phone", "none"]
    customers: list[Customer] = field(default_factory=list)

    @property
    def ambiguous(self) -> bool:
        return len(self.customers) > 1


def match_customer(
    db: Session,
    caller: str,
    region: str,
    account: str | None = None,
    order: str | None = None,
) -> Match:
    if account:
        found = db.scalar(select(Account).where(Account.number == account.strip()))
        if found is not None:
            return Match("account", [found.customer])
    if order:
        placed = db.scalar(select(Order).where(Order.number == order.strip()))
        if placed is not None and placed.customer is not None:
            return Match("order", [placed.customer])
    number = normalise_number(caller, region) if caller.strip() else ""
    customers = customers_with_number(db, number) if number else []
    return Match("phone", customers) if customers else Match("none")


def customers_with_number(db: Session, e164: str) -> list[Customer]:
    """Every customer with this number among theirs, oldest first."""
    # Ids first: most callers are nobody we know, and this plain query is the cheap part
    # of a screen pop that must be ready before the phone rings.
    ids = db.execute(
        select(CustomerPhone.customer_id).where(CustomerPhone.e164 == e164).distinct()
    ).scalars()
    found = sorted(ids)
    if not found:
        return []
    return list(db.scalars(select(Customer).where(Customer.id.in_(found)).order_by(Customer.id)))


def add_phone(customer: Customer, raw: str, region: str, label: str | None = None) -> None:
    """Store a number the way it is matched: in E.164."""
    customer.phones.append(CustomerPhone(e164=normalise_number(raw, region), label=label))
