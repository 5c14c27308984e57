"""Demo data for a first look (`ivr db demo`): web users, customers, orders.

The customers and orders match the shipped customer_service flow, so a demo
call can hear an order status or a balance read back.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from cti.matching import add_phone
from cti.store.models import Account, Customer, Order
from cti.store.users import add_user, user_exists

# name, role, phone: the demo agents are simulated phones in the sandbox ([ivr-agent]).
USERS = (
    ("ops", "ops", None),
    ("supervisor", "supervisor", None),
    ("agent1", "agent", "Local/agent1@ivr-agent/n"),
    ("agent2", "agent", "Local/agent2@ivr-agent/n"),
)
CUSTOMERS = (
    # name, tier, account (Luhn-valid), balance, phones
    ("Ana Lopez", "vip", "12345674", "1250.00", ("+14155550100",)),
    ("Li Wei", "standard", "87654323", "42.50", ("+14155550123", "+14155550124")),
)
ORDERS = (
    ("123456", "Ana Lopez", "shipped", date(2026, 11, 25)),
    ("234567", "Li Wei", "processing", None),
    ("345678", "Li Wei", "delivered", None),
)


def seed(sessions: sessionmaker[Session], password: str) -> bool:
    """Add the demo data once; False when it is there already."""
    if user_exists(sessions, USERS[0][0]):
        return False
    for name, role, interface in USERS:
        add_user(sessions, name, password, role, interface)
    with sessions.begin() as db:
        by_name = {}
        for name, tier, account, balance, phones in CUSTOMERS:
            customer = Customer(
                name=name,
                tier=tier,
                accounts=[Account(number=account, balance=Decimal(balance), currency="USD")],
            )
            for number in phones:
                add_phone(customer, number, "US")
            db.add(customer)
            by_name[name] = customer
        for number, owner, status, eta in ORDERS:
            db.add(Order(number=number, customer=by_name[owner], status=status, eta=eta))
    return True
