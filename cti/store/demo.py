"""Demo data for a first look (`ivr db demo`): web users, customers, orders, and a
paused survey campaign.

The customers and orders match the shipped customer_service flow, so a demo
call can hear an order status or a balance read back. The campaign's contacts are
the sandbox's simulated callees (extensions.conf [ivr-callee]): resume it on the
campaigns page and they answer the survey, one is busy, one is a machine.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from cti.campaigns.spec import CampaignSpec
from cti.matching import add_phone
from cti.store import campaigns
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
CAMPAIGN = "demo-survey"
CALLEES = ("+12025550154", "+12025550131", "+12025550200", "+12025550400")
RETRIES = {"machine": 5, "busy": 1, "no_answer": 2, "failed": 2}  # minutes: a quick demo
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
    always = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    spec = CampaignSpec(name=CAMPAIGN, kind="survey", windows=always, retry_minutes=RETRIES)
    campaign_id = campaigns.create(sessions, spec, "demo")
    campaigns.set_status(sessions, CAMPAIGN, "paused")
    with sessions.begin() as db:
        for number in CALLEES:
            campaigns.add_contact(db, campaign_id, number, "import")
    return True
