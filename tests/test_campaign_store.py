"""Campaign contacts in the database, on SQLite and PostgreSQL: claims never overlap,
attempts move a contact along per the retry rules, do-not-call holds, progress adds up."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cti.campaigns.spec import CampaignSpec
from cti.store import campaigns as store
from cti.store.models import Attempt, Contact

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
SPEC = CampaignSpec(name="csat", kind="survey", max_attempts=2)


def campaign_with(sessions: sessionmaker[Session], count: int, spec: CampaignSpec = SPEC) -> int:
    campaign_id = store.create(sessions, spec, "ops")
    with sessions.begin() as db:
        for n in range(count):
            store.add_contact(db, campaign_id, f"+1202555{n:04d}", "import")
    return campaign_id


def contact(sessions: sessionmaker[Session], number: str) -> Contact:
    with sessions() as db:
        return db.scalars(select(Contact).where(Contact.number == number)).one()


def test_dialers_claiming_at_once_never_take_the_same_contact(
    sessions: sessionmaker[Session],
) -> None:
    """Three dialers, each taking up to the campaign's room of 7 and giving the contacts
    back for tomorrow (which frees the room), until none is due."""
    campaign_id = campaign_with(sessions, 60)
    taken: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def dialer(name: str) -> None:
        mine: list[int] = []
        try:
            while claimed := store.claim(sessions, campaign_id, name, NOW, 7):
                assert len(claimed) <= 7
                for contact in claimed:
                    mine.append(contact.contact_id)
                    store.release(sessions, contact.contact_id, NOW + timedelta(days=1))
        except BaseException as exc:
            errors.append(exc)
        taken[name] = mine

    threads = [threading.Thread(target=dialer, args=(f"d{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    everyone = [c for mine in taken.values() for c in mine]
    assert len(everyone) == len(set(everyone)) == 60


def test_the_room_and_the_pace_are_the_campaigns_whichever_dialer_claims(
    sessions: sessionmaker[Session],
) -> None:
    """max_concurrent counts every dialer's contacts and calls; calls_per_second spaces
    the start of each claimed call from the campaign's last, across claims."""
    campaign_id = campaign_with(sessions, 10)
    first = store.claim(sessions, campaign_id, "d1", NOW, 3, calls_per_second=2)
    assert len(first) == 3 and store.claim(sessions, campaign_id, "d2", NOW, 3) == []
    (attempt,) = store.start_attempts(sessions, campaign_id, "d1", [(first[0], "c0")], NOW)
    store.finish_attempt(sessions, attempt, "human", SPEC, NOW)  # answered: goes on
    store.release(sessions, first[1].contact_id, NOW + timedelta(days=1))
    (second,) = store.claim(sessions, campaign_id, "d2", NOW, 3, calls_per_second=2)
    store.call_ended(sessions, attempt, NOW)  # the call is over: room again
    (third,) = store.claim(sessions, campaign_id, "d1", NOW, 3, calls_per_second=2)
    starts = [c.start_at for c in (*first, second, third)]
    assert all(start is not None for start in starts)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert gaps[:2] == [0.5, 0.5] and all(gap >= 0.5 for gap in gaps)  # never closer


def test_an_attempt_moves_the_contact_along_by_its_result(sessions: sessionmaker[Session]) -> None:
    campaign_id = campaign_with(sessions, 3)
    claimed = {c.number: c for c in store.claim(sessions, campaign_id, "d1", NOW, 10)}
    for n, result in enumerate(("human", "busy", "failed")):
        number = f"+1202555{n:04d}"
        dialling = [(claimed[number], f"c{n}")]
        (attempt,) = store.start_attempts(sessions, campaign_id, "d1", dialling, NOW)
        store.finish_attempt(sessions, attempt, result, SPEC, NOW)
        store.finish_attempt(sessions, attempt, "human", SPEC, NOW)  # once only
    reached, busy, failed = (contact(sessions, f"+1202555{n:04d}") for n in range(3))
    assert (reached.status, reached.attempts, reached.last_result) == ("done", 1, "human")
    assert (busy.status, busy.last_result) == ("pending", "busy")
    assert (failed.status, failed.last_result) == ("pending", "failed")
    assert failed.next_attempt_at.replace(tzinfo=UTC) == NOW + timedelta(minutes=30)
    assert busy.next_attempt_at.replace(tzinfo=UTC) == NOW + timedelta(minutes=10)
    assert store.claim(sessions, campaign_id, "d1", NOW, 10) == []  # busy waits 10 minutes
    (again,) = store.claim(sessions, campaign_id, "d1", NOW + timedelta(minutes=10), 10)
    assert again.number == busy.number and again.attempts == 1
    (attempt,) = store.start_attempts(sessions, campaign_id, "d1", [(again, "c9")], NOW)
    store.finish_attempt(sessions, attempt, "busy", SPEC, NOW + timedelta(minutes=11))
    assert contact(sessions, busy.number).status == "exhausted"  # 2 of max_attempts 2
    with sessions() as db:
        results = db.scalars(select(Attempt.result).order_by(Attempt.id)).all()
    assert results == ["human", "busy", "failed", "busy"]
    with sessions() as db:
        seen = store.progress(db, campaign_id, SPEC, NOW)
    assert (seen.contacts, seen.dialled, seen.reached, seen.completed, seen.remaining) == (
        3,
        4,
        1,
        2,
        1,
    )


def test_do_not_call_numbers_are_blocked_and_logged(sessions: sessionmaker[Session]) -> None:
    campaign_id = campaign_with(sessions, 2)
    other = store.create(sessions, CampaignSpec(name="other", kind="callback"), "ops")
    assert store.add_dnc(sessions, "+12025550000", source="survey")
    assert not store.add_dnc(sessions, "+12025550000")  # there already
    assert store.add_dnc(sessions, "+12025550001", other)
    with sessions() as db:
        numbers = ["+12025550000", "+12025550001"]
        assert store.dnc_reasons(db, campaign_id, numbers) == {  # not other's list
            "+12025550000": "do-not-call (global)"
        }
        assert store.dnc_reasons(db, other, numbers) == {
            "+12025550000": "do-not-call (global)",
            "+12025550001": "do-not-call (campaign)",
        }
    (first, _) = store.claim(sessions, campaign_id, "d1", NOW, 10)
    store.block(sessions, first, campaign_id, "d1", "do-not-call (global)", NOW)
    assert contact(sessions, first.number).status == "blocked"
    with sessions() as db:
        assert store.progress(db, campaign_id, SPEC, NOW).blocked == 1
        blocked = db.scalars(select(Attempt)).one()
    assert (blocked.result, blocked.call_id, blocked.detail) == (
        "blocked",
        None,
        "do-not-call (global)",
    )


def test_a_callback_request_for_the_same_number_and_reason_is_one_contact(
    sessions: sessionmaker[Session],
) -> None:
    campaign_id = store.create(sessions, CampaignSpec(name="callbacks", kind="callback"), None)
    with sessions.begin() as db:
        assert store.add_contact(db, campaign_id, "+12025550100", "ivr", reason="billing")
        assert not store.add_contact(db, campaign_id, "+12025550100", "ivr", reason="billing")
        assert store.add_contact(db, campaign_id, "+12025550100", "ivr", reason="support")


def test_a_dialer_that_stopped_between_claim_and_dial_gives_its_contacts_back(
    sessions: sessionmaker[Session],
) -> None:
    campaign_id = campaign_with(sessions, 3)
    claimed = store.claim(sessions, campaign_id, "d1", NOW, 3)
    store.start_attempts(sessions, campaign_id, "d1", [(claimed[0], "c0")], NOW)
    assert store.unclaim_undialled(sessions, "d1") == 2  # the dialled one stays its own
    assert store.open_attempts(sessions, "d1") == [(1, "c0", campaign_id)]
    assert [c.contact_id for c in store.claim(sessions, campaign_id, "d2", NOW, 3)] == [
        c.contact_id for c in claimed[1:]
    ]


def test_what_a_dialer_that_stopped_for_good_left_is_taken_over_after_two_hours(
    sessions: sessionmaker[Session],
) -> None:
    """d1 claimed three contacts and dialled one, then stopped and never came back."""
    campaign_id = campaign_with(sessions, 4)
    claimed = store.claim(sessions, campaign_id, "d1", NOW, 3)
    [attempt] = store.start_attempts(sessions, campaign_id, "d1", [(claimed[0], "c0")], NOW)
    wall = datetime.now(UTC)
    assert store.adopt_stale(sessions, "d2", wall) == []  # d1 may still be at work
    with sessions.begin() as db:  # three hours on
        db.execute(update(Contact).where(Contact.claimed_by == "d1").values(
            claimed_at=wall - timedelta(hours=3)))  # fmt: skip
    assert store.adopt_stale(sessions, "d1", wall) == []  # its own: its restart resolves them
    assert store.adopt_stale(sessions, "d2", wall) == [(attempt, "c0", campaign_id)]
    dialled, *undialled = (contact(sessions, c.number) for c in claimed)
    assert (dialled.status, dialled.claimed_by) == ("dialing", "d2")
    assert [(c.status, c.claimed_by) for c in undialled] == [("pending", None)] * 2
    assert store.open_attempts(sessions, "d2") == [(attempt, "c0", campaign_id)]
    assert store.open_attempts(sessions, "d1") == []
    assert store.adopt_stale(sessions, "d3", wall) == []  # taken over once
    store.finish_attempt(sessions, attempt, "human", SPEC, NOW)
    assert contact(sessions, claimed[0].number).status == "done"
