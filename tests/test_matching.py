"""Who is calling, for the screen pop: on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from cti.matching import add_phone, match_customer
from cti.store.db import make_engine, session_factory, upgrade
from cti.store.demo import seed
from cti.store.models import Account, Customer
from ivr.numbers import normalise_number


@pytest.fixture
def db(db_url: str) -> Iterator[Session]:
    engine = make_engine(db_url)
    upgrade(engine)
    sessions = session_factory(engine)
    seed(sessions, "a long demo password")
    with sessions() as session:
        yield session
    engine.dispose()


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+1 555 0100", "US", "+15550100"),
        ("5550100", "US", "+15550100"),
        ("(415) 555-0123", "US", "+14155550123"),
        ("020 7946 0018", "GB", "+442079460018"),
        ("+86 10 6552 9988", "US", "+861065529988"),
        ("anonymous", "US", ""),  # a withheld caller ID matches nobody
    ],
)
def test_numbers_compare_in_e164(raw: str, region: str, e164: str) -> None:
    assert normalise_number(raw, region) == e164


def test_a_number_stored_formatted_matches_the_bare_caller_id(db: Session) -> None:
    customer = Customer(name="Rosa Diaz", accounts=[Account(number="55501000")])
    add_phone(customer, "+1 555 0100", "US", "mobile")
    db.add(customer)
    db.commit()
    match = match_customer(db, "5550100", "US")
    assert match.how == "phone" and [c.name for c in match.customers] == ["Rosa Diaz"]


def test_typed_account_then_order_come_before_the_caller_id(db: Session) -> None:
    # Ana's phone calls, but the caller typed Li Wei's account: the account wins.
    by_account = match_customer(db, "+14155550100", "US", account="87654323")
    assert by_account.how == "account" and by_account.customers[0].name == "Li Wei"
    by_order = match_customer(db, "+14155550100", "US", account="00000000", order="234567")
    assert by_order.how == "order" and by_order.customers[0].name == "Li Wei"
    by_phone = match_customer(db, "(415) 555-0124", "US", order="999999")
    assert by_phone.how == "phone" and by_phone.customers[0].name == "Li Wei"


def test_any_of_a_customers_accounts_matches_them(db: Session) -> None:
    rosa = Customer(name="Rosa Diaz", accounts=[Account(number="55501000")])
    rosa.accounts.append(Account(number="55501018"))
    db.add(rosa)
    db.commit()
    for number in ("55501000", " 55501018 "):
        match = match_customer(db, "", "US", account=number)
        assert match.how == "account" and [c.name for c in match.customers] == ["Rosa Diaz"]


def test_a_shared_number_offers_the_choice_and_an_unknown_one_nothing(db: Session) -> None:
    for name in ("Sam Office", "Kim Office"):
        customer = Customer(name=name)
        add_phone(customer, "+1 415 555 0177", "US")
        db.add(customer)
    db.commit()
    shared = match_customer(db, "4155550177", "US")
    assert shared.ambiguous and [c.name for c in shared.customers] == ["Sam Office", "Kim Office"]
    unknown = match_customer(db, "+14155550199", "US")
    assert unknown.how == "none" and not unknown.customers and not unknown.ambiguous
    assert match_customer(db, "", "US").how == "none"  # a withheld caller ID
