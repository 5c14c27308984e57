"""Schema migrations and call writers, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

from cti.store.calls import CallLog, IvrPart
from cti.store.db import (
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    session_factory,
    upgrade,
)
from cti.store.models import Account, Base, Call, Customer, Order
from cti.store.users import UserError, add_user, authenticate

TABLES = {"calls", "journey_events", "users", "customers", "accounts"}


def test_upgrade_creates_the_schema_and_downgrade_removes_it(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) >= TABLES
    upgrade(engine)  # a second run is a no-op
    command.downgrade(alembic_config(engine), "base")
    assert not TABLES & set(inspect(engine).get_table_names())
    engine.dispose()


def test_the_models_and_the_migrations_agree(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_a_customers_account_becomes_an_account_row_and_comes_back_on_downgrade(
    db_url: str,
) -> None:
    engine = make_engine(db_url)
    config = alembic_config(engine)
    command.upgrade(config, "0003")
    with engine.begin() as conn:  # as 0003 kept them: the account on the customer row
        conn.execute(
            text(
                "INSERT INTO customers (id, account_number, name, tier, balance, currency,"
                " created_at) VALUES (10, '12345674', 'Ana Lopez', 'vip', 1250.50, 'EUR',"
                " :at), (11, NULL, 'Kim Office', 'standard', 0, 'USD', :at)"
            ),
            {"at": "2026-11-20 09:00:00+00:00"},
        )
        conn.execute(text("INSERT INTO customer_phones (customer_id, e164) VALUES (10, '+1415')"))
        conn.execute(
            text(
                "INSERT INTO orders (number, customer_id, status, updated_at)"
                " VALUES ('123456', 10, 'shipped', :at)"
            ),
            {"at": "2026-11-20 09:00:00+00:00"},
        )
    command.upgrade(config, "head")
    sessions = session_factory(engine)
    with sessions() as db:
        ana, kim = db.scalars(select(Customer).order_by(Customer.id)).all()
        assert [(a.number, a.balance, a.currency, a.status) for a in ana.accounts] == [
            ("12345674", Decimal("1250.50"), "EUR", "open")
        ]
        assert kim.accounts == []
        # What referred to the customer survived the customers table being rebuilt.
        assert [p.e164 for p in ana.phones] == ["+1415"]
        assert db.scalars(select(Order.customer_id)).all() == [10]
    with sessions.begin() as db:  # a second account: only the first goes back
        db.add(Account(number="87654323", customer_id=10, balance=Decimal(7)))
    command.downgrade(config, "0003")
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, account_number, balance, currency FROM customers ORDER BY id")
        ).all()
        assert [(r[0], r[1], Decimal(str(r[2])), r[3]) for r in rows] == [
            (10, "12345674", Decimal("1250.50"), "EUR"),
            (11, None, Decimal("0"), "USD"),
        ]
        assert conn.execute(text("SELECT count(*) FROM customer_phones")).scalar() == 1
    command.upgrade(config, "head")  # and up again, from the downgraded schema
    with sessions() as db:
        assert db.scalars(select(Account.number)).all() == ["12345674"]
    command.downgrade(config, "base")
    engine.dispose()


def test_call_log_writes_each_ivr_part_once_and_appends_the_next(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    sessions = session_factory(engine)
    log = CallLog(sessions)
    first = IvrPart("c1", {"entry": "5551000", "caller_number": "+14155550100"})
    first.fields["linkedid"] = "1795.1"
    first.note("choice", "welcome", {"key": "2"})
    first.note("route", "support", {"queue": "support"})
    log.save(first, "routed", "queue:support", ended=False)
    with sessions() as db:
        call = db.scalars(select(Call)).one()
        assert (call.entry, call.linkedid, call.ivr_end) == ("5551000", "1795.1", "routed")
        assert call.ivr_ended_at is not None and call.ended_at is None
        assert [(e.seq, e.kind) for e in call.journey] == [(1, "choice"), (2, "route")]
    # The call comes back from its queue (overflow): a second part, same row, events after.
    second = IvrPart("c1")
    second.note("overflow", "support", {})
    second.note("hangup", "goodbye", {})
    log.save(second, "contained", "hangup", ended=True)
    with sessions() as db:
        call = db.scalars(select(Call)).one()
        assert (call.entry, call.ivr_end, call.route) == ("5551000", "contained", "hangup")
        assert call.ended_at is not None
        assert [(e.seq, e.kind) for e in call.journey] == [
            (1, "choice"),
            (2, "route"),
            (3, "overflow"),
            (4, "hangup"),
        ]
    engine.dispose()


def test_users_have_hashed_passwords(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    sessions = session_factory(engine)
    add_user(sessions, "ana", "correct horse battery", "agent")
    with pytest.raises(UserError, match="exists already"):
        add_user(sessions, "ana", "another long password", "agent")
    with pytest.raises(UserError, match="role must be one of"):
        add_user(sessions, "bo", "another long password", "boss")
    assert authenticate(sessions, "ana", "wrong password!") is None
    user = authenticate(sessions, "ana", "correct horse battery")
    assert user is not None and user.password_hash != "correct horse battery"
    engine.dispose()
