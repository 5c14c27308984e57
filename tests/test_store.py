"""Schema migrations and call writers, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select

from cti.store.calls import CallLog, IvrPart
from cti.store.db import current_revision, head_revision, make_engine, session_factory, upgrade
from cti.store.models import Call
from cti.store.users import UserError, add_user, authenticate

TABLES = {"calls", "journey_events", "users"}


def test_upgrade_creates_the_schema_and_downgrade_removes_it(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) >= TABLES
    upgrade(engine)  # a second run is a no-op
    from alembic import command

    from cti.store.db import alembic_config

    command.downgrade(alembic_config(engine), "base")
    assert not TABLES & set(inspect(engine).get_table_names())
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
        assert (call.entry, call.linkedid, call.outcome) == ("5551000", "1795.1", "routed")
        assert call.ivr_ended_at is not None and call.ended_at is None
        assert [(e.seq, e.kind) for e in call.journey] == [(1, "choice"), (2, "route")]
    # The call comes back from its queue (overflow): a second part, same row, events after.
    second = IvrPart("c1")
    second.note("overflow", "support", {})
    second.note("hangup", "goodbye", {})
    log.save(second, "contained", "hangup", ended=True)
    with sessions() as db:
        call = db.scalars(select(Call)).one()
        assert (call.entry, call.outcome, call.route) == ("5551000", "contained", "hangup")
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
