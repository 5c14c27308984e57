"""Contacts the service makes by itself, from what the outcome log already holds.

The sweeper never touches the log's writer: it reads the calls that ended in the last
24 hours and, for each, what its caller asked for or went through:

- an IVR callback request (the ``callback`` node): a contact of the ``callbacks``
  campaign, due when the caller was told to expect the call;
- an abandon in a queue after a wait of at least ``abandon_min_wait_seconds``
  (inbound calls): a contact of the ``abandons`` campaign;
- a post-call survey opt-in (the ``survey_opt_in`` node) on a call an agent answered:
  a contact of the ``surveys`` campaign, at most one per number and day;
- a do-not-call request (the ``do_not_call`` node): the number on the global
  do-not-call list, and its pending contacts in every campaign blocked.

An abandon's contact waiting to be dialled is cancelled (status ``cancelled``, its
request too) once the same number calls in again and an agent answers: nobody is called
back for a call they got through on.

Sweeping again adds nothing: a contact made from a call carries its id
(``origin_call_id``), and requests for the same number and reason are one contact
(the store's dedupe). A finished contact (done, exhausted, expired, cancelled) that a
newer call asks for again is reopened rather than lost.

Cost: a sweep reads the calls that ended since the last one (bounded by the indexed
start time) and looks up only those calls' journeys, by call id; calls swept are
remembered. Every hour, and after a restart, it reads the whole day again, checked
against the database, for facts that reached the log late (its spool).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import phonenumbers
from pydantic import ValidationError
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, sessionmaker

from cti.campaigns.spec import CampaignSpec, Kind
from cti.store import campaigns as store
from cti.store.models import (
    Attempt,
    Call,
    Callback,
    Campaign,
    Contact,
    JourneyEvent,
    utcnow,
)
from ivr.config import CampaignSettings

log = logging.getLogger("cti.campaigns.sweeper")

WINDOW = timedelta(hours=24)  # calls that ended this long ago at most
# A call that ended in the window started at most this long before it: the bound on
# the indexed start time that keeps the query to about a day's calls.
LONGEST_CALL = timedelta(hours=12)
# Facts about a call (an agent's answer, its end) may reach the log in any order and
# a little late: a call is remembered as swept only once it ended this long ago.
SETTLE = timedelta(minutes=2)
# Swept calls are remembered, and skipped, until this long has passed: then the whole
# window is read again, for facts that reached the log very late (from its spool).
RECHECK = timedelta(hours=1)
REQUESTS = ("callback", "survey_opt_in", "do_not_call")  # the journey steps read
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
CHUNK = 500  # call ids per IN (...)

# The campaign settings' fields this sweeper fills: the kind of a campaign it creates
# when the named one is missing, the contacts' source, and the key it counts under.
ROLES: dict[str, tuple[Kind, str, str]] = {
    "callbacks": ("callback", "ivr", "callbacks"),
    "abandons": ("callback", "abandon", "abandons"),
    "surveys": ("survey", "survey_optin", "survey_optins"),
}


@dataclass(frozen=True)
class Ask:
    """A contact one call asks for; `number` None when it has no number to call."""

    role: str  # a key of ROLES
    number: str | None
    reason: str
    due: datetime | None = None  # not before (the caller's preferred time); None: now
    promised: datetime | None = None  # by when we told the caller to expect the call


def e164(raw: str | None) -> str | None:
    """`raw` if it is a valid E.164 number; None for anything else (anonymous,
    withheld, national digits, nonsense)."""
    if not raw or not E164.fullmatch(raw):
        return None
    try:
        return raw if phonenumbers.is_valid_number(phonenumbers.parse(raw, None)) else None
    except phonenumbers.NumberParseException:
        return None


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


class Sweeper:
    """Turns the outcome log's requests into campaign contacts; `sweep` now and then."""

    def __init__(self, sessions: sessionmaker[Session], settings: CampaignSettings) -> None:
        self.sessions = sessions
        self.settings = settings
        self.swept: dict[str, datetime] = {}  # call id -> when it ended
        self.checked_at: datetime | None = None  # when the window was last read whole
        self.read_to: datetime | None = None  # the last sweep's time
        if not settings.callbacks:
            log.warning("campaigns.callbacks is empty: IVR callback requests are not dialled")

    def sweep(self, now: datetime) -> dict[str, int]:
        """One pass over the calls that ended in the 24 hours to `now`: how many
        contacts it added (callbacks, abandons, survey_optins), reopened or merged
        into one already there (merged), numbers put on the do-not-call list
        (do_not_call), contacts blocked, calls skipped for want of a valid number
        (withheld), and campaigns created. Only what happened is counted."""
        now = _utc(now)
        since = now - WINDOW
        if self.checked_at is None or now - self.checked_at >= RECHECK:
            self.swept, self.checked_at = {}, now  # facts that came late are read too
            lower = since
        else:  # what ended since the last sweep, and what had not settled then
            lower = max(since, self.read_to - SETTLE) if self.read_to else since
        self.read_to = now
        self.swept = {key: ended for key, ended in self.swept.items() if ended >= since}
        counts: Counter[str] = Counter()
        new = self._new_calls(since, lower)
        calls, events = self._candidates(list(new))
        campaigns: dict[str, int | None] = {}
        for call in calls:
            try:
                self._sweep_call(call, events.get(call.id, []), campaigns, counts)
            except IntegrityError:  # someone added the same contact meanwhile
                log.warning("contact added meanwhile; next sweep", extra={"call_id": call.id})
                new.pop(call.id)
        settled = now - SETTLE
        self.swept |= {key: ended for key, ended in new.items() if ended <= settled}
        if self.settings.callbacks:
            self._scheduled(since, campaigns, counts)
        self._called_in(since, lower, counts)
        return dict(counts)

    def _called_in(self, since: datetime, ended_after: datetime, counts: Counter[str]) -> None:
        """Cancel the requests of the abandons' contacts still waiting, with the contacts,
        whose caller has since called in and been answered by an agent (matched by E.164
        number, the log's form): among the answered calls of this sweep's window, as
        `_new_calls` bounds it."""
        abandoned, later = aliased(Call), aliased(Call)
        waiting = (
            select(Contact.callback_id)
            .distinct()
            .join(abandoned, abandoned.id == Contact.origin_call_id)
            .join(
                later,
                and_(
                    later.caller_number == Contact.number,
                    later.started_at > abandoned.started_at,
                ),
            )
            .where(
                Contact.source == "abandon",
                Contact.status == "pending",
                Contact.callback_id.is_not(None),  # an abandon's request: always kept
                later.kind == "inbound",
                later.outcome == "answered",
                later.started_at >= since - LONGEST_CALL,
                later.ended_at >= ended_after,
            )
        )
        with self.sessions.begin() as db:
            cancelled = store.cancel_callbacks(db, db.scalars(waiting).all(), "called_in")
        if not cancelled:
            return
        counts["cancelled"] += cancelled
        log.info(
            "abandon callbacks cancelled: the callers got through", extra={"contacts": cancelled}
        )

    def _scheduled(
        self, since: datetime, campaigns: dict[str, int | None], counts: Counter[str]
    ) -> None:
        """Callbacks agents scheduled (dispositions) that no contact carries yet: contacts
        of the callbacks campaign, due when the agent said."""
        owned = select(Contact.callback_id).where(Contact.callback_id.is_not(None))
        waiting = select(Callback).where(
            Callback.status == "pending", Callback.created_at >= since, Callback.id.not_in(owned)
        )
        with self.sessions() as db:
            requests = db.scalars(waiting).all()
        for request in requests:
            number = e164(request.number)
            if number is None:
                counts["withheld"] += 1
                continue
            if "callbacks" not in campaigns:
                campaigns["callbacks"] = self._campaign("callbacks", counts)
            campaign_id = campaigns["callbacks"]
            if campaign_id is None:
                return
            with self.sessions.begin() as db:
                # Locked and read again: an agent may have resolved it meanwhile.
                status = select(Callback.status).where(Callback.id == request.id)
                if db.scalar(status.with_for_update()) != "pending":
                    continue
                added = store.add_contact(
                    db,
                    campaign_id,
                    number,
                    "agent",
                    reason=request.reason,
                    origin_call_id=request.linkedid,
                    customer_id=request.customer_id,
                    callback_id=request.id,
                    next_attempt_at=_utc(request.due_at),
                )
            if added:  # else one for this number and reason waits already
                counts["scheduled"] += 1

    # -- what to look at
    def _new_calls(self, since: datetime, ended_after: datetime) -> dict[str, datetime]:
        """The calls of the window that ended after `ended_after` and were not swept
        yet, with their end. The indexed start time bounds the scan to about a day's
        calls; the end time keeps what comes back to those that ended lately."""
        window = select(Call.id, Call.ended_at).where(
            Call.started_at >= since - LONGEST_CALL, Call.ended_at >= ended_after
        )
        with self.sessions() as db:
            rows = db.execute(window).all()
        return {row.id: _utc(row.ended_at) for row in rows if row.id not in self.swept}

    def _candidates(self, call_ids: list[str]) -> tuple[list[Call], dict[str, list[JourneyEvent]]]:
        """Those of these calls that may ask for something, oldest end first, and their
        journeys' request steps in order. Looked up by call id, a few hundred at a time."""
        settings = self.settings
        calls: list[Call] = []
        events: dict[str, list[JourneyEvent]] = {}
        with self.sessions() as db:
            for start in range(0, len(call_ids), CHUNK):
                chunk = call_ids[start : start + CHUNK]
                steps = select(JourneyEvent).where(
                    JourneyEvent.call_id.in_(chunk), JourneyEvent.kind.in_(REQUESTS)
                )
                for event in db.scalars(steps.order_by(JourneyEvent.call_id, JourneyEvent.seq)):
                    events.setdefault(event.call_id, []).append(event)
                wants = [Call.id.in_([key for key in chunk if key in events])]
                if settings.callbacks:
                    wants.append(Call.callback_requested.is_(True))
                if settings.abandons:
                    wants.append(
                        and_(
                            Call.outcome == "abandoned_queue",
                            Call.kind == "inbound",
                            Call.wait_seconds >= settings.abandon_min_wait_seconds,
                        )
                    )
                calls += db.scalars(select(Call).where(Call.id.in_(chunk), or_(*wants)))
            db.expunge_all()
        calls.sort(key=lambda call: (_utc(call.ended_at), call.id))
        return calls, events

    # -- one call
    def _sweep_call(
        self,
        call: Call,
        events: list[JourneyEvent],
        campaigns: dict[str, int | None],
        counts: Counter[str],
    ) -> None:
        caller = e164(call.caller_number)
        asks = self._asks(call, events, caller)
        stop = any(event.kind == "do_not_call" for event in events)
        if (stop and caller is None) or any(ask.number is None for ask in asks):
            counts["withheld"] += 1
            log.info("no valid number to act on", extra={"call_id": call.id})
        if stop and caller is not None:
            self._do_not_call(call.id, caller, counts)
        for ask in asks:
            if ask.number is None:
                continue
            if ask.role not in campaigns:
                campaigns[ask.role] = self._campaign(ask.role, counts)
            campaign_id = campaigns[ask.role]
            if campaign_id is not None:
                with self.sessions.begin() as db:
                    self._add(db, campaign_id, call, ask, counts)

    def _asks(self, call: Call, events: list[JourneyEvent], caller: str | None) -> list[Ask]:
        settings = self.settings
        asks = []
        if settings.callbacks and call.callback_requested:
            asks += _callbacks(call, [e for e in events if e.kind == "callback"], caller)
        if (
            settings.abandons
            and call.outcome == "abandoned_queue"
            and call.kind == "inbound"
            and (call.wait_seconds or 0) >= settings.abandon_min_wait_seconds
        ):
            asks.append(Ask("abandons", caller, f"abandoned in queue {call.queue or ''}".strip()))
        opted_in = any(event.kind == "survey_opt_in" for event in events)
        if settings.surveys and opted_in and call.answered_at is not None and call.ended_at:
            day = _utc(call.ended_at).date().isoformat()
            asks.append(Ask("surveys", caller, f"post-call survey {day}"))
        return asks

    def _add(
        self, db: Session, campaign_id: int, call: Call, ask: Ask, counts: Counter[str]
    ) -> None:
        """The contact `ask` wants: added, found (this call's, or another's: merged),
        or, finished since this call's request came, reopened."""
        assert ask.number is not None
        _, source, counted = ROLES[ask.role]
        added = store.add_contact(
            db,
            campaign_id,
            ask.number,
            source,
            reason=ask.reason,
            origin_call_id=call.id,
            customer_id=call.customer_id,
            next_attempt_at=ask.due,
        )
        if added:
            if ask.role != "surveys":  # a call owed: kept as a request (time to callback)
                added.callback_id = _request(db, call, ask, source).id
            counts[counted] += 1
            return
        contact = db.scalars(
            select(Contact).where(
                Contact.campaign_id == campaign_id,
                Contact.number == ask.number,
                Contact.reason == ask.reason,
            )
        ).one()
        if contact.origin_call_id == call.id:
            return  # swept before
        if contact.status in store.FINISHED and _newer(call, _last_touched(db, contact)):
            _reopen(db, contact, call, ask)
            counts["reopened"] += 1
            log.info("contact reopened", extra={"call_id": call.id, "contact_id": contact.id})
        elif contact.status in ("pending", "dialing"):
            counts["merged"] += 1

    def _do_not_call(self, call_id: str, number: str, counts: Counter[str]) -> None:
        note = f"asked in call {call_id}"
        if store.add_dnc(self.sessions, number, None, source="survey", note=note):
            counts["do_not_call"] += 1
            log.info("number on the do-not-call list", extra={"call_id": call_id})
        with self.sessions.begin() as db:
            campaign_ids = db.scalars(select(Campaign.id)).all()
            blocked = db.execute(
                update(Contact)
                .where(  # by (campaign, number): the contacts' unique index serves it
                    Contact.campaign_id.in_(campaign_ids),
                    Contact.number == number,
                    Contact.status == "pending",
                )
                .values(status="blocked")
            ).rowcount
        if blocked:
            counts["blocked"] += blocked

    def _campaign(self, role: str, counts: Counter[str]) -> int | None:
        """The id of the campaign `role` names; created (default settings) when it is
        missing, so that requests are kept; None when its name cannot be a campaign's."""
        name = getattr(self.settings, role)
        with self.sessions() as db:
            found = db.scalar(select(Campaign.id).where(Campaign.name == name))
        if found is not None:
            return found
        kind = ROLES[role][0]
        try:
            spec = CampaignSpec(name=name, kind=kind)
        except ValidationError as exc:
            log.error(
                "campaigns.%s names no possible campaign: requests wait", role,
                extra={"campaign": name, "error": str(exc.errors()[0]["msg"])},
            )  # fmt: skip
            return None
        try:
            created = store.create(self.sessions, spec, by="sweeper")
        except ValueError:  # created meanwhile by someone else
            with self.sessions() as db:
                return db.scalar(select(Campaign.id).where(Campaign.name == name))
        counts["campaigns_created"] += 1
        log.warning(
            "campaign missing: created it with default settings",
            extra={"campaign": name, "kind": kind, "for": f"campaigns.{role}"},
        )
        return created


def _callbacks(call: Call, events: list[JourneyEvent], caller: str | None) -> list[Ask]:
    """The callback requests of a call: one per ``callback`` step (its number, reason
    and time), or, without a step, one for the caller."""
    if not events:
        return [Ask("callbacks", caller, "")]
    asks = []
    for event in events:
        data = event.data or {}
        # On an outbound call the flow's caller ID is ours: the log's number is the callee's.
        number = e164(data.get("number")) if call.direction != "outbound" else None
        reason = str(data.get("reason") or "")
        asks.append(Ask("callbacks", number or caller, reason, *_when(event)))
    return asks


def _when(event: JourneyEvent) -> tuple[datetime | None, datetime | None]:
    """When to call back, and by when we promised it: from the caller's preferred time
    if it reads as one (ISO 8601, with its offset), else as soon as the calling windows
    allow (the prompt said "within N minutes": the promise is the step's time plus N)."""
    data = event.data or {}
    minutes = data.get("eta_minutes")
    promised = None
    if isinstance(minutes, int | float) and not isinstance(minutes, bool):
        promised = _utc(event.at) + timedelta(minutes=minutes)
    preferred = data.get("preferred")
    if isinstance(preferred, str) and preferred:
        try:
            when = datetime.fromisoformat(preferred)
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None:
            return when.astimezone(UTC), when.astimezone(UTC)
    return None, promised


def _request(db: Session, call: Call, ask: Ask, source: str) -> Callback:
    """The callback request a call made (or its abandon stands for), as agents' are
    kept: what the time to callback counts from, linked to the call that asked."""
    assert ask.number is not None
    request = Callback(
        linkedid=call.id,
        customer_id=call.customer_id,
        number=ask.number,
        due_at=ask.promised or ask.due or _utc(call.ended_at or utcnow()),
        reason=ask.reason[:256],
        created_by=source,
        created_at=_utc(call.ended_at or utcnow()),
    )
    db.add(request)
    db.flush()
    return request


def _last_touched(db: Session, contact: Contact) -> datetime:
    """When the contact last changed: its last attempt's end, or its creation."""
    last = db.scalar(select(func.max(Attempt.ended_at)).where(Attempt.contact_id == contact.id))
    return _utc(max(filter(None, (last, contact.created_at)), key=_utc))


def _newer(call: Call, than: datetime) -> bool:
    return call.ended_at is not None and _utc(call.ended_at) > than


def _reopen(db: Session, contact: Contact, call: Call, ask: Ask) -> None:
    """A finished contact asked for again by a newer call: to be called afresh."""
    db.execute(
        update(Contact)
        .where(Contact.id == contact.id, Contact.status.in_(store.FINISHED))
        .values(
            status="pending",
            attempts=0,
            next_attempt_at=ask.due,
            last_result=None,
            claimed_by=None,
            origin_call_id=call.id,
            customer_id=call.customer_id or contact.customer_id,
        )
    )


async def run(
    sweeper: Sweeper, interval: float = 10.0, clock: Callable[[], datetime] = utcnow
) -> None:
    """Sweep every `interval` seconds until cancelled. The database work runs in a
    worker thread; a failed sweep is logged and the next one tries again."""
    while True:
        try:
            counts = await asyncio.to_thread(sweeper.sweep, clock())
        except Exception:
            log.exception("campaign sweep failed")
        else:
            if counts:
                log.info("campaign sweep", extra=counts)
        await asyncio.sleep(interval)
