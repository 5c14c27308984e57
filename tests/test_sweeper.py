"""The campaigns' sweeper on SQLite and the real PostgreSQL: calls written to the
outcome log as the IVR and Asterisk write them, then swept into campaign contacts
and the do-not-call list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cti.campaigns.spec import CampaignSpec
from cti.campaigns.sweeper import Sweeper, e164
from cti.store import campaigns as store
from cti.store.calls import CallLog, IvrPart
from cti.store.models import Attempt, Call, Callback, Contact, DoNotCall
from cti.store.spool import Write
from ivr.config import CampaignSettings

NOW = datetime.now(UTC).replace(microsecond=0)
ANA, BEN = "+14155550100", "+14155550123"
SETTINGS = CampaignSettings(
    callbacks="callbacks", abandons="abandons", abandon_min_wait_seconds=30, surveys="surveys"
)


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def inbound(
    call_id: str,
    caller: str | None = ANA,
    ended: datetime | None = None,
    steps: tuple[tuple[str, str, dict[str, Any]], ...] = (),
    route: str = "queue:support",
    **facts: Any,
) -> list[Write]:
    """An inbound call as the log gets it: the IVR's part (its journey `steps`, each
    (kind, node, data)) and Asterisk's facts, ending at `ended` (10 minutes ago)."""
    ended = ended or ago(10)
    started = ended - timedelta(minutes=5)
    part = IvrPart(call_id, {"linkedid": call_id, "entry": "5551000", "started_at": started})
    part.fields["caller_number"] = caller
    for kind, node, data in steps:
        part.events.append({"at": started + timedelta(seconds=30), "kind": kind, "node": node,
                            "data": data})  # fmt: skip
    if any(kind == "callback" for kind, _, _ in steps):
        part.fields["callback_requested"] = True
        route = "hangup"
    ivr_end = "contained" if route == "hangup" else "routed"
    return [
        CallLog.facts_write(call_id, {"started_at": started, **facts, "ended_at": ended}),
        CallLog.part_write(part, ivr_end, route, False),
    ]


def queued(wait: float, answered: bool, **more: Any) -> dict[str, Any]:
    """Asterisk's facts of a call that waited `wait` seconds in the support queue."""
    ended = more.pop("ended", ago(10))
    entered = ended - timedelta(seconds=wait + (120 if answered else 0))
    facts: dict[str, Any] = {"queue": "support", "queue_entered_at": entered, "ended": ended}
    if answered:
        facts["answered_at"] = entered + timedelta(seconds=wait)
    else:
        facts["abandoned"] = True
    return facts | more


def callback(reason: str = "queue_overflow", eta: int = 30, number: str = ANA) -> tuple:
    data = {"number": number, "reason": reason, "preferred": None, "eta_minutes": eta}
    return ("callback", "busy_callback", data)


OPT_IN = ("survey_opt_in", "survey_yes", {})
STOP = ("do_not_call", "stop", {})


@pytest.fixture
def log(sessions: sessionmaker[Session]) -> CallLog:
    return CallLog(sessions)


def campaign(sessions: sessionmaker[Session], name: str, kind: str = "callback") -> int:
    return store.create(sessions, CampaignSpec(name=name, kind=kind), by="test")


@pytest.fixture
def campaigns(sessions: sessionmaker[Session]) -> dict[str, int]:
    return {
        "callbacks": campaign(sessions, "callbacks"),
        "abandons": campaign(sessions, "abandons"),
        "surveys": campaign(sessions, "surveys", "survey"),
    }


def write(log: CallLog, *calls: list[Write]) -> None:
    log.apply([w for call in calls for w in call])


def contacts(sessions: sessionmaker[Session], campaign_id: int | None = None) -> list[Contact]:
    query = select(Contact).order_by(Contact.id)
    if campaign_id is not None:
        query = query.where(Contact.campaign_id == campaign_id)
    with sessions() as db:
        return list(db.scalars(query))


def as_utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def test_a_callback_request_becomes_a_contact_due_at_once_and_promised_by_its_eta(
    log: CallLog, campaigns: dict[str, int]
) -> None:
    write(log, inbound("cb-1", steps=(callback(),)))
    counts = Sweeper(log.sessions, SETTINGS).sweep(NOW)
    assert counts == {"callbacks": 1}
    (found,) = contacts(log.sessions, campaigns["callbacks"])
    assert (found.number, found.source, found.reason, found.origin_call_id, found.status) == (
        ANA, "ivr", "queue_overflow", "cb-1", "pending"
    )  # fmt: skip
    assert found.next_attempt_at is None  # as soon as the calling windows allow
    asked_at = ago(15) + timedelta(seconds=30)  # the step's time, in the call's fifth minute
    with log.sessions() as db:
        assert db.get(Call, "cb-1").outcome == "callback_requested"
        promised = db.get(Callback, found.callback_id).due_at
    assert as_utc(promised) == asked_at + timedelta(minutes=30)


def test_requests_for_one_number_and_reason_are_one_contact(
    log: CallLog, campaigns: dict[str, int]
) -> None:
    write(
        log,
        inbound("cb-1", steps=(callback(),), ended=ago(30)),
        inbound("cb-2", steps=(callback(),), ended=ago(20)),  # asked again
        inbound("cb-3", steps=(callback("after_hours", 720),), ended=ago(10)),
    )
    counts = Sweeper(log.sessions, SETTINGS).sweep(NOW)
    assert counts == {"callbacks": 2, "merged": 1}
    found = contacts(log.sessions, campaigns["callbacks"])
    assert [(c.reason, c.origin_call_id) for c in found] == [
        ("queue_overflow", "cb-1"),
        ("after_hours", "cb-3"),
    ]


def test_sweeping_again_adds_nothing(log: CallLog, campaigns: dict[str, int]) -> None:
    write(
        log,
        inbound("cb-1", steps=(callback(),)),
        inbound("cb-2", steps=(callback(),)),
        inbound("ab-1", caller=BEN, **queued(45, answered=False)),
        inbound("sv-1", steps=(OPT_IN,), **queued(20, answered=True)),
        inbound("no-1", caller="+14155550177", steps=(STOP,)),
    )
    sweeper = Sweeper(log.sessions, SETTINGS)
    first = sweeper.sweep(NOW)
    assert first == {
        "callbacks": 1, "merged": 1, "abandons": 1, "survey_optins": 1, "do_not_call": 1
    }  # fmt: skip
    stored = [(c.id, c.status, c.origin_call_id) for c in contacts(log.sessions)]
    assert sweeper.sweep(NOW + timedelta(seconds=5)) == {}  # the calls it has seen: skipped
    restarted = Sweeper(log.sessions, SETTINGS).sweep(NOW + timedelta(seconds=10))
    assert restarted == {"merged": 1}  # checked again, against the database: nothing added
    assert [(c.id, c.status, c.origin_call_id) for c in contacts(log.sessions)] == stored
    with log.sessions() as db:
        assert len(db.scalars(select(DoNotCall)).all()) == 1


def test_a_missing_campaign_is_created_rather_than_requests_lost(
    log: CallLog, caplog: pytest.LogCaptureFixture
) -> None:
    write(log, inbound("cb-1", steps=(callback(),)))
    settings = CampaignSettings(callbacks="ivr-callbacks")
    with caplog.at_level("WARNING", "cti.campaigns.sweeper"):
        counts = Sweeper(log.sessions, settings).sweep(NOW)
    assert counts == {"campaigns_created": 1, "callbacks": 1}
    assert "created it with default settings" in caplog.text
    with log.sessions() as db:
        created, spec = store.find(db, "ivr-callbacks")
        assert (created.kind, spec) == (
            "callback",
            CampaignSpec(name="ivr-callbacks", kind="callback"),
        )
        assert created.created_by == "sweeper"
    assert [c.campaign_id for c in contacts(log.sessions)] == [created.id]


def test_queue_abandons_after_the_minimum_wait_are_called_back(
    log: CallLog, campaigns: dict[str, int]
) -> None:
    write(
        log,
        inbound("ab-long", caller=ANA, **queued(45, answered=False)),
        inbound("ab-short", caller=BEN, **queued(10, answered=False)),
        inbound("answered", caller="+14155550142", **queued(60, answered=True)),
    )
    outbound = inbound("ab-out", caller="+14155550143", **queued(60, answered=False))
    outbound[0][1] |= {"kind": "callback", "direction": "outbound"}
    write(log, outbound)
    counts = Sweeper(log.sessions, SETTINGS).sweep(NOW)
    assert counts == {"abandons": 1}
    (found,) = contacts(log.sessions, campaigns["abandons"])
    assert (found.number, found.source, found.reason, found.origin_call_id) == (
        ANA, "abandon", "abandoned in queue support", "ab-long"
    )  # fmt: skip
    assert found.next_attempt_at is None  # as soon as the campaign may call
    off = CampaignSettings(callbacks="callbacks", abandons="")
    write(log, inbound("ab-later", caller=BEN, **queued(300, answered=False)))
    assert Sweeper(log.sessions, off).sweep(NOW) == {}


def test_an_abandons_contact_is_cancelled_once_the_caller_gets_through(
    log: CallLog, campaigns: dict[str, int]
) -> None:
    """Ana abandons, then calls in again and is answered: nobody calls her back. Ben was
    answered before he abandoned, and after it only reached the IVR: he is called back."""
    write(
        log,
        inbound("ben-before", caller=BEN, **queued(20, answered=True, ended=ago(90))),
        inbound("ana-gone", caller=ANA, **queued(45, answered=False, ended=ago(60))),
        inbound("ben-gone", caller=BEN, **queued(45, answered=False, ended=ago(60))),
    )
    sweeper = Sweeper(log.sessions, SETTINGS)
    assert sweeper.sweep(NOW) == {"abandons": 2}
    write(
        log,
        inbound("ana-through", caller=ANA, **queued(15, answered=True, ended=ago(1))),
        inbound("ben-ivr", caller=BEN, route="hangup", ended=ago(1)),
    )  # since the last sweep
    assert sweeper.sweep(NOW) == {"cancelled": 1}
    ana, ben = contacts(log.sessions, campaigns["abandons"])
    assert (ana.number, ana.status, ana.last_result) == (ANA, "cancelled", "called_in")
    assert (ben.number, ben.status) == (BEN, "pending")
    with log.sessions() as db:
        requests = dict(db.execute(select(Callback.linkedid, Callback.status)).all())
    assert requests == {"ana-gone": "cancelled", "ben-gone": "pending"}
    assert sweeper.sweep(NOW) == {}  # cancelled once
    with log.sessions.begin() as db:  # as if swept when Ana's abandon ended
        db.execute(update(Contact).where(Contact.id == ana.id).values(created_at=ago(59)))
    write(log, inbound("ana-again", caller=ANA, **queued(45, answered=False, ended=ago(0))))
    assert Sweeper(log.sessions, SETTINGS).sweep(NOW) == {"reopened": 1}  # called back again


def test_survey_opt_ins_once_an_agent_answered_and_the_call_ended(
    log: CallLog, campaigns: dict[str, int]
) -> None:
    write(
        log,
        inbound("sv-yes", caller=ANA, steps=(OPT_IN,), **queued(20, answered=True)),
        inbound("sv-gave-up", caller=BEN, steps=(OPT_IN,), **queued(20, answered=False)),
    )
    going_on = inbound("sv-going-on", caller="+14155550142", steps=(OPT_IN,))
    going_on[0][1].pop("ended_at")  # answered, still talking
    going_on[0][1]["answered_at"] = ago(3)
    write(log, going_on)
    sweeper = Sweeper(log.sessions, SETTINGS)
    assert sweeper.sweep(NOW) == {"survey_optins": 1}
    (found,) = contacts(log.sessions, campaigns["surveys"])
    assert (found.number, found.source, found.origin_call_id) == (ANA, "survey_optin", "sv-yes")
    assert found.reason == f"post-call survey {ago(10).date().isoformat()}"
    write(log, [CallLog.facts_write("sv-going-on", {"ended_at": NOW})])  # it ends
    assert sweeper.sweep(NOW + timedelta(seconds=5)) == {"survey_optins": 1}


def test_a_do_not_call_request_lists_the_number_and_blocks_its_contacts(
    log: CallLog, campaigns: dict[str, int]
) -> None:
    other = campaign(log.sessions, "collections")
    with log.sessions.begin() as db:
        for campaign_id in (campaigns["surveys"], other):
            store.add_contact(db, campaign_id, ANA, "import")
        store.add_contact(db, campaigns["callbacks"], ANA, "ivr", reason="old", status="done")
        store.add_contact(db, other, BEN, "import")
    survey = [  # a survey campaign's call: the log's number is the one it dialled
        CallLog.facts_write(
            "sv-out",
            {
                "direction": "outbound",
                "kind": "survey",
                "campaign": "surveys",
                "caller_number": ANA,
                "started_at": ago(12),
            },
        ),
        *inbound("sv-out", caller="+12025550100", steps=(STOP,), route="hangup"),
    ]
    write(log, survey)
    counts = Sweeper(log.sessions, SETTINGS).sweep(NOW)
    assert counts == {"do_not_call": 1, "blocked": 2}
    with log.sessions() as db:
        (listed,) = db.scalars(select(DoNotCall)).all()
    assert (listed.number, listed.campaign_id, listed.source) == (ANA, None, "survey")
    assert "sv-out" in listed.note
    statuses = {(c.campaign_id, c.number, c.status) for c in contacts(log.sessions)}
    assert statuses == {
        (campaigns["surveys"], ANA, "blocked"),
        (other, ANA, "blocked"),
        (campaigns["callbacks"], ANA, "done"),  # finished: left as it was
        (other, BEN, "pending"),
    }


@pytest.mark.parametrize("withheld", [None, "anonymous", "", "4155550100", "+1415555"])
def test_a_withheld_number_is_skipped_and_counted(
    log: CallLog, campaigns: dict[str, int], withheld: str | None
) -> None:
    write(
        log,
        inbound("cb-anon", caller=withheld, steps=(callback(number=withheld or ""),)),
        inbound("ab-anon", caller=withheld, **queued(60, answered=False)),
        inbound("no-anon", caller=withheld, steps=(STOP,)),
    )
    counts = Sweeper(log.sessions, SETTINGS).sweep(NOW)
    assert counts == {"withheld": 3}
    assert contacts(log.sessions) == []
    with log.sessions() as db:
        assert db.scalars(select(DoNotCall)).all() == []


def test_the_callback_steps_number_serves_a_caller_who_withheld_theirs(
    log: CallLog, campaigns: dict[str, int]
) -> None:
    write(log, inbound("cb-typed", caller="anonymous", steps=(callback(number=BEN),)))
    assert Sweeper(log.sessions, SETTINGS).sweep(NOW) == {"callbacks": 1}
    assert [c.number for c in contacts(log.sessions)] == [BEN]


def test_a_finished_contact_asked_for_again_by_a_newer_call_is_reopened(
    log: CallLog, campaigns: dict[str, int]
) -> None:
    write(log, inbound("ab-1", **queued(60, answered=False, ended=ago(120))))
    assert Sweeper(log.sessions, SETTINGS).sweep(NOW) == {"abandons": 1}
    (first,) = contacts(log.sessions)
    with log.sessions.begin() as db:  # made when it ended; called back an hour ago
        db.add(
            Attempt(contact_id=first.id, campaign_id=first.campaign_id, dialer="d",
                    started_at=ago(61), ended_at=ago(60), result="human")
        )  # fmt: skip
        db.execute(
            update(Contact)
            .where(Contact.id == first.id)
            .values(status="done", attempts=1, created_at=ago(119))
        )
    write(log, inbound("ab-2", **queued(60, answered=False, ended=ago(10))))  # abandons again
    assert Sweeper(log.sessions, SETTINGS).sweep(NOW) == {"reopened": 1}
    (again,) = contacts(log.sessions)
    assert (again.id, again.status, again.attempts, again.origin_call_id) == (
        first.id, "pending", 0, "ab-2"
    )  # fmt: skip
    with log.sessions.begin() as db:
        db.execute(update(Contact).where(Contact.id == first.id).values(status="done"))
    # A restarted sweeper sees both calls again: the older one does not reopen it.
    assert Sweeper(log.sessions, SETTINGS).sweep(NOW + timedelta(seconds=1)) == {}
    assert contacts(log.sessions)[0].status == "done"


def test_calls_that_ended_over_a_day_ago_are_left_alone(
    log: CallLog, campaigns: dict[str, int]
) -> None:
    write(log, inbound("cb-old", steps=(callback(),), ended=NOW - timedelta(hours=25)))
    assert Sweeper(log.sessions, SETTINGS).sweep(NOW) == {}
    assert Sweeper(log.sessions, SETTINGS).sweep(NOW - timedelta(hours=2)) == {"callbacks": 1}


def test_e164_takes_valid_numbers_only() -> None:
    assert e164("+14155550100") == "+14155550100"
    assert [e164(raw) for raw in (None, "", "anonymous", "4155550100", "+1415", "+44163296")] == [
        None
    ] * 6


def test_a_callback_request_is_kept_as_a_request_linked_to_the_call_that_asked(
    log: CallLog, campaigns: dict[str, int]
) -> None:
    """The time to callback counts from the request; a reached callback closes it."""
    write(log, inbound("cb-link", steps=(callback("billing"),)))
    Sweeper(log.sessions, SETTINGS).sweep(NOW)
    (contact,) = contacts(log.sessions, campaigns["callbacks"])
    with log.sessions() as db:
        request = db.get(Callback, contact.callback_id)
        assert request is not None
        assert (request.linkedid, request.number, request.reason, request.status) == (
            "cb-link",
            ANA,
            "billing",
            "pending",
        )
    spec = CampaignSpec(name="callbacks", kind="callback")
    (claimed,) = store.claim(log.sessions, campaigns["callbacks"], "d", ago(-60), 1)
    (attempt,) = store.start_attempts(
        log.sessions, campaigns["callbacks"], "d", [(claimed, "o")], NOW
    )
    store.finish_attempt(log.sessions, attempt, "human", spec, NOW)
    with log.sessions() as db:
        assert db.get(Callback, contact.callback_id).status == "done"


def test_a_callback_an_agent_scheduled_becomes_a_contact_due_when_they_said(
    log: CallLog, campaigns: dict[str, int]
) -> None:
    due = ago(-120)
    with log.sessions.begin() as db:
        db.add(
            Callback(linkedid="agent-1", number=BEN, due_at=due, reason="quote", created_by="ann")
        )
    assert Sweeper(log.sessions, SETTINGS).sweep(NOW) == {"scheduled": 1}
    assert Sweeper(log.sessions, SETTINGS).sweep(NOW) == {}  # once only
    (contact,) = contacts(log.sessions, campaigns["callbacks"])
    assert (contact.number, contact.reason, contact.source, contact.origin_call_id) == (
        BEN,
        "quote",
        "agent",
        "agent-1",
    )
    assert as_utc(contact.next_attempt_at) == due
