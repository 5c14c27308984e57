"""Campaigns in the database: their settings, contacts, attempts and the do-not-call
list, and how dialers claim contacts so that no one is dialled twice.

A dialer claims due contacts in a transaction of its own (`claim`): on PostgreSQL with
``SELECT ... FOR UPDATE SKIP LOCKED``, so two dialers never take the same row, and
everywhere with a conditional UPDATE that only a pending contact passes. Before it
dials, the attempt is committed (`start_attempts`) with the call id the call will carry;
a dialer that restarts finds its open attempts there (`open_attempts`) instead of
dialling them again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cti.campaigns.schedule import in_window, retry_at, zones_for
from cti.campaigns.spec import CampaignSpec, Result
from cti.store.models import Attempt, Callback, Campaign, Contact, DoNotCall, utcnow


class CampaignNotFound(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no campaign named {name!r}")


@dataclass(frozen=True)
class Claimed:
    """A contact a dialer took to call now."""

    contact_id: int
    number: str
    timezone: str | None
    attempts: int  # made before this one
    customer_id: int | None
    reason: str
    origin_call_id: str | None
    callback_id: int | None
    start_at: datetime | None = None  # not before (the campaign's calls per second)


# A dialer that stopped and never came back: its claims and calls stop counting against
# the campaign's max_concurrent after this long.
STALE = timedelta(hours=2)
FINISHED = ("done", "exhausted", "expired", "cancelled")  # contacts no longer called


def create(sessions: sessionmaker[Session], spec: CampaignSpec, by: str | None) -> int:
    """A new campaign (active); ValueError if the name is taken."""
    try:
        with sessions.begin() as db:
            campaign = Campaign(
                name=spec.name, kind=spec.kind, spec=spec.model_dump(mode="json"), created_by=by
            )
            db.add(campaign)
            db.flush()
            return campaign.id
    except IntegrityError:
        raise ValueError(f"a campaign named {spec.name!r} exists already") from None


def find(db: Session, name: str) -> tuple[Campaign, CampaignSpec]:
    campaign = db.scalar(select(Campaign).where(Campaign.name == name))
    if campaign is None:
        raise CampaignNotFound(name)
    return campaign, CampaignSpec.model_validate(campaign.spec)


def set_status(sessions: sessionmaker[Session], name: str, status: str) -> None:
    """Pause ("paused") or resume ("active") a campaign: a paused one dials no one new;
    calls already under way go on."""
    with sessions.begin() as db:
        campaign, _ = find(db, name)
        campaign.status = status


def active(db: Session) -> list[tuple[Campaign, CampaignSpec]]:
    campaigns = db.scalars(select(Campaign).where(Campaign.status == "active")).all()
    return [(c, CampaignSpec.model_validate(c.spec)) for c in campaigns]


def add_contact(
    db: Session, campaign_id: int, number: str, source: str, **more: Any
) -> Contact | None:
    """Add someone to call; None when the campaign has them already for the same reason
    (callback requests for one number and reason are one contact)."""
    reason = more.pop("reason", "")
    same = select(Contact.id).where(
        Contact.campaign_id == campaign_id, Contact.number == number, Contact.reason == reason
    )
    if db.scalar(same) is not None:
        return None
    contact = Contact(campaign_id=campaign_id, number=number, reason=reason, source=source, **more)
    db.add(contact)
    db.flush()
    return contact


def add_dnc(
    sessions: sessionmaker[Session],
    number: str,
    campaign_id: int | None = None,
    source: str = "ops",
    note: str = "",
) -> bool:
    """Put a number on the do-not-call list (every campaign's when `campaign_id` is
    None); False when it is there already."""
    own_list = (
        DoNotCall.campaign_id.is_(None)
        if campaign_id is None
        else DoNotCall.campaign_id == campaign_id
    )
    with sessions.begin() as db:
        if db.scalar(select(DoNotCall.id).where(DoNotCall.number == number, own_list)):
            return False
        db.add(DoNotCall(number=number, campaign_id=campaign_id, source=source, note=note))
        return True


def dnc_reasons(db: Session, campaign_id: int, numbers: list[str]) -> dict[str, str]:
    """Why each of `numbers` that must not be called by this campaign must not be."""
    found = db.execute(
        select(DoNotCall.number, DoNotCall.campaign_id).where(
            DoNotCall.number.in_(numbers),
            or_(DoNotCall.campaign_id.is_(None), DoNotCall.campaign_id == campaign_id),
        )
    ).all()
    reasons = {number: "do-not-call (campaign)" for number, _ in found}
    reasons |= {number: "do-not-call (global)" for number, owner in found if owner is None}
    return reasons


def claim(
    sessions: sessionmaker[Session],
    campaign_id: int,
    dialer: str,
    now: datetime,
    max_concurrent: int,
    calls_per_second: float | None = None,
) -> list[Claimed]:
    """Take contacts due by `now` for `dialer` (status "dialing"): as many as the
    campaign has room for under `max_concurrent`, counting every dialer's calls. With
    `calls_per_second`, each gets the moment its call may start (`start_at`), spaced from
    the campaign's last one whichever dialer placed it. The campaign's row is locked
    meanwhile (PostgreSQL), so that dialers claim one after the other."""
    wall = utcnow()  # slots are real time, whatever clock judges the windows
    with sessions.begin() as db:
        campaign = db.scalars(
            select(Campaign).where(Campaign.id == campaign_id).with_for_update()
        ).one()
        room = max_concurrent - _under_way(db, campaign_id, wall)
        if room <= 0:
            return []
        is_due = (
            Contact.status == "pending",
            or_(Contact.next_attempt_at.is_(None), Contact.next_attempt_at <= now),
        )
        due = (
            select(Contact)
            .where(Contact.campaign_id == campaign_id, *is_due)
            .order_by(Contact.next_attempt_at.is_not(None), Contact.next_attempt_at, Contact.id)
            .limit(room)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer anyway
        )
        taken = []
        for contact in db.scalars(due).all():
            took = db.execute(
                update(Contact)
                .where(Contact.id == contact.id, *is_due)  # still: another may have had it
                .values(status="dialing", claimed_by=dialer, claimed_at=wall)
                .execution_options(synchronize_session=False)
            )
            if took.rowcount == 1:
                taken.append(
                    Claimed(
                        contact.id,
                        contact.number,
                        contact.timezone,
                        contact.attempts,
                        contact.customer_id,
                        contact.reason,
                        contact.origin_call_id,
                        contact.callback_id,
                    )
                )
        if calls_per_second and taken:
            gap = timedelta(seconds=1 / calls_per_second)
            last = campaign.next_start_at
            first = wall if last is None else max(wall, last)
            taken = [replace(c, start_at=first + n * gap) for n, c in enumerate(taken)]
            campaign.next_start_at = first + len(taken) * gap
        return taken


def _under_way(db: Session, campaign_id: int, wall: datetime) -> int:
    """The campaign's contacts being dialled and its calls still going on (a call goes
    on after its result: a person answered), by every dialer."""
    recent = wall - STALE
    dialling = db.scalar(
        select(func.count()).where(
            Contact.campaign_id == campaign_id,
            Contact.status == "dialing",
            Contact.claimed_at >= recent,
        )
    )
    talking = db.scalar(
        select(func.count()).where(
            Attempt.campaign_id == campaign_id,
            Attempt.call_id.is_not(None),
            Attempt.result.is_not(None),
            Attempt.ended_at.is_(None),
            Attempt.started_at >= recent,
        )
    )
    return (dialling or 0) + (talking or 0)


def call_ended(sessions: sessionmaker[Session], attempt_id: int, at: datetime) -> None:
    """The attempt's call is gone: it no longer counts against max_concurrent."""
    with sessions.begin() as db:
        db.execute(
            update(Attempt)
            .where(Attempt.id == attempt_id, Attempt.ended_at.is_(None))
            .values(ended_at=at)
        )


def cancel_callbacks(db: Session, callback_ids: Collection[int], why: str) -> int:
    """Cancel these callback requests, those still pending, and their contacts still
    waiting to be dialled (last result `why`): the calls are owed no more. A contact
    being dialled goes on. The number of contacts cancelled."""
    if not callback_ids:
        return 0
    db.execute(
        update(Callback)
        .where(Callback.id.in_(callback_ids), Callback.status == "pending")
        .values(status="cancelled")
    )
    return db.execute(
        update(Contact)
        .where(Contact.callback_id.in_(callback_ids), Contact.status == "pending")
        .values(status="cancelled", last_result=why)
    ).rowcount


def release(sessions: sessionmaker[Session], contact_id: int, until: datetime | None) -> None:
    """Give a claimed contact back without calling it: it waits for its calling window
    (`until`), or, with no window ahead, is finished as "expired"."""
    with sessions.begin() as db:
        values: dict[str, Any] = {"claimed_by": None, "next_attempt_at": until}
        values["status"] = "pending" if until is not None else "expired"
        db.execute(update(Contact).where(Contact.id == contact_id).values(values))


def start_attempts(
    sessions: sessionmaker[Session],
    campaign_id: int,
    dialer: str,
    calls: list[tuple[Claimed, str]],
    now: datetime,
) -> list[int]:
    """Commit the attempts, each with the id its call will carry, before the calls are
    placed; their ids, in order."""
    with sessions.begin() as db:
        attempts = [
            Attempt(
                contact_id=claimed.contact_id,
                campaign_id=campaign_id,
                call_id=call_id,
                dialer=dialer,
                started_at=now,
            )
            for claimed, call_id in calls
        ]
        db.add_all(attempts)
        db.execute(
            update(Contact)
            .where(Contact.id.in_([claimed.contact_id for claimed, _ in calls]))
            .values(attempts=Contact.attempts + 1)
        )
        db.flush()
        return [attempt.id for attempt in attempts]


def block(
    sessions: sessionmaker[Session],
    claimed: Claimed,
    campaign_id: int,
    dialer: str,
    reason: str,
    now: datetime,
) -> None:
    """A contact the dialer must not call (do-not-call): logged as a blocked attempt, and
    finished."""
    with sessions.begin() as db:
        db.add(
            Attempt(
                contact_id=claimed.contact_id,
                campaign_id=campaign_id,
                dialer=dialer,
                started_at=now,
                ended_at=now,
                result="blocked",
                detail=reason,
            )
        )
        db.execute(
            update(Contact)
            .where(Contact.id == claimed.contact_id)
            .values(status="blocked", claimed_by=None, last_result="blocked")
        )


def finish_attempt(
    sessions: sessionmaker[Session],
    attempt_id: int,
    result: Result,
    spec: CampaignSpec,
    now: datetime,
    detail: str = "",
) -> None:
    """Record an attempt's result; the contact is done (a person answered), waits for
    its next attempt, or is exhausted."""
    with sessions.begin() as db:
        attempt = db.get(Attempt, attempt_id)
        contact = db.get(Contact, attempt.contact_id) if attempt else None
        if attempt is None or contact is None or attempt.result is not None:
            return  # finished already (e.g. by a restarted dialer): once only
        attempt.result, attempt.detail = result, detail
        again = retry_at(spec, result, contact.attempts, now)
        contact.last_result, contact.claimed_by, contact.next_attempt_at = result, None, again
        if result == "human":
            contact.status = "done"
            if contact.callback_id is not None:  # the request it answers is kept
                db.execute(
                    update(Callback).where(Callback.id == contact.callback_id).values(status="done")
                )
        else:
            contact.status = "pending" if again is not None else "exhausted"


def open_attempts(sessions: sessionmaker[Session], dialer: str) -> list[tuple[int, str, int]]:
    """(attempt id, call id, campaign id) of the calls this dialer placed and never saw
    end (with a result or not): what it must resolve after a restart instead of
    dialling again."""
    with sessions() as db:
        rows = db.execute(
            select(Attempt.id, Attempt.call_id, Attempt.campaign_id).where(
                Attempt.dialer == dialer,
                or_(
                    Attempt.result.is_(None),
                    and_(Attempt.call_id.is_not(None), Attempt.ended_at.is_(None)),
                ),
            )
        ).all()
        return [(row.id, row.call_id or "", row.campaign_id) for row in rows]


def unclaim_undialled(sessions: sessionmaker[Session], dialer: str) -> int:
    """Give back the contacts this dialer claimed but never dialled (it stopped in
    between); how many."""
    dialled = select(Attempt.contact_id).where(Attempt.dialer == dialer, Attempt.result.is_(None))
    with sessions.begin() as db:
        found = db.execute(
            update(Contact)
            .where(
                Contact.claimed_by == dialer,
                Contact.status == "dialing",
                Contact.id.not_in(dialled),
            )
            .values(status="pending", claimed_by=None)
        )
        return found.rowcount


def adopt_stale(
    sessions: sessionmaker[Session], dialer: str, wall: datetime
) -> list[tuple[int, str, int]]:
    """The contacts another dialer claimed over STALE ago and never finished: it
    stopped and has not come back under its name. Those it never dialled wait again;
    the calls it placed become this dialer's to resolve: (attempt id, call id, campaign
    id), as `open_attempts` gives them."""
    with sessions.begin() as db:
        stale = select(Contact.id).where(
            Contact.status == "dialing",
            Contact.claimed_at < wall - STALE,
            or_(Contact.claimed_by.is_(None), Contact.claimed_by != dialer),
        )
        ids = set(db.scalars(stale.with_for_update(skip_locked=True)))
        if not ids:
            return []
        placed = db.execute(
            select(Attempt.id, Attempt.call_id, Attempt.campaign_id, Attempt.contact_id).where(
                Attempt.contact_id.in_(ids), Attempt.result.is_(None)
            )
        ).all()
        dialled = {row.contact_id for row in placed}
        db.execute(
            update(Contact)
            .where(Contact.id.in_(ids - dialled))
            .values(status="pending", claimed_by=None)
        )
        db.execute(
            update(Contact)
            .where(Contact.id.in_(dialled))
            .values(claimed_by=dialer, claimed_at=wall)
        )
        db.execute(
            update(Attempt).where(Attempt.id.in_([row.id for row in placed])).values(dialer=dialer)
        )
        return [(row.id, row.call_id or "", row.campaign_id) for row in placed]


@dataclass(frozen=True)
class Progress:
    contacts: int
    dialled: int  # attempts that placed a call
    reached: int  # contacts a person answered
    completed: int  # finished: reached, exhausted or expired
    remaining: int  # still to call (pending or being dialled)
    blocked: int  # held back by the do-not-call list
    outside_window: int  # pending, and their calling window is closed now


def progress(db: Session, campaign_id: int, spec: CampaignSpec, now: datetime) -> Progress:
    statuses = Counter(
        dict(
            db.execute(
                select(Contact.status, func.count())
                .where(Contact.campaign_id == campaign_id)
                .group_by(Contact.status)
            ).all()
        )
    )
    dialled = db.scalar(
        select(func.count()).where(Attempt.campaign_id == campaign_id, Attempt.call_id.is_not(None))
    )
    pending = db.execute(
        select(Contact.number, Contact.timezone).where(
            Contact.campaign_id == campaign_id, Contact.status == "pending"
        )
    ).all()
    closed = sum(
        1 for p in pending if not in_window(spec, zones_for(p.number, p.timezone, spec), now)
    )
    return Progress(
        contacts=sum(statuses.values()),
        dialled=dialled or 0,
        reached=statuses["done"],
        completed=sum(statuses[s] for s in FINISHED),
        remaining=statuses["pending"] + statuses["dialing"],
        blocked=statuses["blocked"],
        outside_window=closed,
    )
