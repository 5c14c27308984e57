"""Screen pops: who is calling and what they did in the IVR, sent to the agent whose
phone rings, and only to that agent.

The pop is built ahead: when the call appears (``call.started``), again when our IVR
queues it with what the caller did there (``ivr.queued``; otherwise the stored journey
is read), and from the customer records; a database read never sits between the
agent's phone ringing and the pop leaving. Each change reaches the agent as a
``pop`` event: ``ringing``, ``withdrawn`` (rang without answer), ``answered``,
``transferred`` and ``ended``. A transferred call pops at the next agent with the notes
taken so far.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from cti.bus import Bus
from cti.matching import match_customer
from cti.store.dispositions import answered_by
from cti.store.models import (
    Attempt,
    Call,
    Callback,
    Commitment,
    Contact,
    Customer,
    JourneyEvent,
)
from ivr.numbers import normalise_number

log = logging.getLogger("cti.pop")

# Journey events an agent cares about, and the facts of each worth showing.
STEP_KINDS = {
    "language": ("language",),
    "match": ("mode", "value", "utterance", "confidence"),
    "confirmed": ("mode", "value", "utterance", "confidence"),
    "rejected": ("mode", "utterance", "confidence"),
    "nomatch": ("mode", "value", "utterance", "confidence"),
    "noinput": (),
    "valid": ("mode", "value", "utterance", "confidence"),
    "invalid": ("mode", "value"),
    "answer": ("question", "answer"),
    "lookup": ("find", "value", "result"),
    "speech_error": ("reason",),
    "failure": ("reason",),
    "route": ("queue", "transfer"),
    "error": ("reason",),
}
KEYS_TYPED = {"customer": "account", "account": "account", "order": "order"}


def journey_steps(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    steps = []
    for event in events:
        facts = STEP_KINDS.get(event["kind"])
        if facts is None:
            continue
        data = event.get("data") or {}
        steps.append(
            {"kind": event["kind"], "node": event.get("node")}
            | {name: data[name] for name in facts if data.get(name) not in (None, "")}
        )
    return steps


def typed_keys(events: list[dict[str, Any]]) -> dict[str, str]:
    """The account and order numbers the caller gave that the IVR found."""
    keys: dict[str, str] = {}
    for event in events:
        data = event.get("data") or {}
        if event["kind"] == "lookup" and data.get("result") == "found" and data.get("value"):
            keys[KEYS_TYPED.get(data["find"], "")] = data["value"]
    keys.pop("", None)
    return keys


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


class PopBuilder:
    """The database side: customer cards, history, the journey kept in the store."""

    def __init__(self, sessions: sessionmaker[Session], region: str, history: int) -> None:
        self.sessions = sessions
        self.region = region
        self.history = history

    def build(self, linkedid: str, caller: str, part: dict[str, Any] | None) -> dict[str, Any]:
        with self.sessions() as db:
            if part is None:
                part = self._stored_part(db, linkedid)
            events = part.get("events", []) if part else []
            keys = typed_keys(events)
            found = match_customer(db, caller, self.region, keys.get("account"), keys.get("order"))
            customers = [self.card(db, c, linkedid) for c in found.customers[:5]]
            callback = self.callback(db, linkedid)
        return {
            "linkedid": linkedid,
            "caller": caller,
            "caller_e164": normalise_number(caller, self.region) if caller else "",
            "match": found.how,
            "customers": customers,
            "journey": self.journey(part, events),
            "notes": "",
            "callback": callback,
        }

    def callback(self, db: Session, linkedid: str) -> dict[str, Any] | None:
        """For a campaign's callback call: why we call back, and the call it follows
        (when, what the caller did in the IVR, how it ended); None for other calls."""
        found = db.execute(
            select(Call.campaign, Contact.reason, Contact.origin_call_id)
            .outerjoin(Attempt, Attempt.call_id == Call.id)
            .outerjoin(Contact, Contact.id == Attempt.contact_id)
            .where(Call.id == linkedid, Call.kind == "callback")
        ).first()
        if found is None:
            return None
        original = None
        if found.origin_call_id:
            call = db.execute(
                select(Call.id, Call.started_at, Call.outcome)
                .where(or_(Call.id == found.origin_call_id, Call.linkedid == found.origin_call_id))
                .order_by(Call.started_at)
                .limit(1)
            ).first()
            if call is not None:
                part = self._stored_part(db, found.origin_call_id, call.id)
                original = {
                    "id": found.origin_call_id,
                    "at": _iso(call.started_at),
                    "outcome": call.outcome,
                    "journey": self.journey(part, part["events"] if part else []),
                }
        return {"campaign": found.campaign, "reason": found.reason or "", "original": original}

    @staticmethod
    def journey(part: dict[str, Any] | None, events: list[dict[str, Any]]) -> dict[str, Any]:
        if not part:
            return {"flow": None, "language": None, "steps": [], "ivr_seconds": None}
        started = part.get("started_at")
        ended = part.get("ended_at")
        seconds = None
        if started and ended:
            seconds = round(
                (
                    datetime.fromisoformat(str(ended)) - datetime.fromisoformat(str(started))
                ).total_seconds(),
                1,
            )
        languages = [e["data"]["language"] for e in events if e["kind"] == "language"]
        return {
            "flow": part.get("flow"),
            "entry": part.get("entry"),
            "language": languages[-1] if languages else part.get("language"),
            "steps": journey_steps(events),
            "ivr_seconds": seconds,
        }

    def card(self, db: Session, customer: Customer, linkedid: str = "") -> dict[str, Any]:
        calls = db.execute(
            select(Call.started_at, Call.outcome, Call.disposition, Call.agent, Call.notes)
            # Not this call: a campaign's call has its customer before it rings.
            .where(Call.customer_id == customer.id, Call.id != linkedid)
            .order_by(Call.started_at.desc())
            .limit(self.history)
        ).all()
        commitments = db.scalars(
            select(Commitment)
            .where(Commitment.customer_id == customer.id, Commitment.status == "open")
            .order_by(Commitment.due)
        ).all()
        callbacks = db.scalars(
            select(Callback)
            .where(Callback.customer_id == customer.id, Callback.status == "pending")
            .order_by(Callback.due_at)
        ).all()
        surveys = db.execute(
            select(JourneyEvent.at, JourneyEvent.data)
            .join(Call)
            .where(Call.customer_id == customer.id, JourneyEvent.kind == "answer")
            .order_by(JourneyEvent.at.desc())
            .limit(self.history)
        ).all()
        return {
            "id": customer.id,
            "name": customer.name,
            # The first account's number, for display; all of them in `accounts`.
            "account": customer.accounts[0].number if customer.accounts else "",
            "accounts": [
                {
                    "number": a.number,
                    "balance": str(a.balance),
                    "currency": a.currency,
                    "status": a.status,
                }
                for a in customer.accounts
            ],
            "tier": customer.tier,
            "language": customer.language or "",
            "phones": [phone.e164 for phone in customer.phones],
            "calls": [
                {
                    "at": _iso(c.started_at),
                    "outcome": c.outcome,
                    "disposition": c.disposition,
                    "agent": c.agent,
                    "notes": c.notes,
                }
                for c in calls
            ],
            "commitments": [{"text": c.text, "due": c.due.isoformat()} for c in commitments],
            "callbacks": [
                {"id": c.id, "due": _iso(c.due_at), "reason": c.reason} for c in callbacks
            ],
            "surveys": [
                {"at": _iso(at), "question": d.get("question"), "answer": d.get("answer")}
                for at, d in surveys
            ],
        }

    @staticmethod
    def _stored_part(
        db: Session, linkedid: str, call_id: str | None = None
    ) -> dict[str, Any] | None:
        """The stored IVR part of the call `linkedid` (or of the row `call_id`)."""
        call = (
            db.connection()
            .execute(
                select(Call.id, Call.flow, Call.entry, Call.started_at, Call.ivr_ended_at)
                .where(Call.linkedid == linkedid if call_id is None else Call.id == call_id)
                .order_by(Call.started_at)
                .limit(1)
            )
            .first()
        )
        if call is None:  # the call did not pass our IVR
            return None
        events = db.execute(
            select(JourneyEvent.kind, JourneyEvent.node, JourneyEvent.data)
            .where(JourneyEvent.call_id == call.id)
            .order_by(JourneyEvent.seq)
        )
        return {
            "flow": call.flow,
            "entry": call.entry,
            "started_at": _iso(call.started_at),
            "ended_at": _iso(call.ivr_ended_at),
            "events": [{"kind": kind, "node": node, "data": data} for kind, node, data in events],
        }

    def notes(self, linkedid: str) -> str:
        with self.sessions() as db:
            found = db.scalar(select(Call.notes).where(Call.linkedid == linkedid).limit(1))
        return found or ""


class ScreenPops:
    """The live side: follows the tracker's ``call.*`` events and sends ``pop`` events.

    Nothing here makes the event stream wait: each call's pop events go out from a task
    of their own, in the order of that call's events. `live`: the Linkedids Asterisk
    carries now (the tracker's): after an AMI gap, the calls that ended meanwhile end
    on the agents' screens too."""

    def __init__(
        self, bus: Bus, builder: PopBuilder, live: Callable[[], Collection[str]] = frozenset
    ) -> None:
        self.bus = bus
        self.builder = builder
        self.live = live
        self.pops: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.answered: dict[str, str] = {}  # linkedid -> interface of the agent on it
        # linkedid -> agents whose pop shows it ringing. Asterisk cancels the other phones
        # of a ringall queue without AgentRingNoAnswer: their pops are withdrawn here.
        self.rung: dict[str, set[str]] = {}
        self.sending: dict[str, asyncio.Task[None]] = {}  # linkedid -> its latest send
        # One thread builds pops, first come first served: the first call to ring has
        # its pop soonest, and the event loop competes with one thread, not a pool.
        self.building = ThreadPoolExecutor(1, thread_name_prefix="pop")
        bus.subscribe("ivr.queued", self._on_ivr)
        bus.subscribe("*", self._on_call)

    async def _on_ivr(self, _topic: str, part: dict[str, Any]) -> None:
        """The IVR is about to queue the call: build its pop again, with the journey and
        what the caller typed, while Asterisk gets it there."""
        if part.get("linkedid"):
            self._pop(part["linkedid"], part.get("caller") or "", part, again=True)

    def _pop(
        self, linkedid: str, caller: str, part: dict[str, Any] | None = None, again: bool = False
    ) -> asyncio.Future[dict[str, Any]]:
        task = self.pops.get(linkedid)
        if task is None or again:
            task = self.pops[linkedid] = asyncio.get_running_loop().run_in_executor(
                self.building, self.builder.build, linkedid, caller, part
            )
        return task

    async def _on_call(self, topic: str, call: dict[str, Any]) -> None:
        if topic == "ami.resynced":
            self._gone(set(self.live()))
        if not topic.startswith("call."):
            return
        linkedid, agent = call["linkedid"], call.get("agent")
        if topic in ("call.started", "call.offered"):
            # From the first channel on: a call straight to a queue rings an agent about
            # a millisecond after it joins, too soon to start the pop's database reads.
            self._pop(linkedid, call.get("caller", ""))
        elif topic == "call.ringing" and agent:
            self.rung.setdefault(linkedid, set()).add(agent)
            again = linkedid in self.answered  # rung again after a transfer: notes so far
            self._in_order(linkedid, self._ring(call, agent, again))
        elif topic == "call.ring_no_answer" and agent:
            self.rung.get(linkedid, set()).discard(agent)
            self._in_order(linkedid, self._send(agent, "withdrawn", call, None))
        elif topic == "call.answered" and agent:
            self.answered[linkedid] = agent
            others = sorted(self.rung.pop(linkedid, set()) - {agent})
            self._in_order(linkedid, self._answer(call, agent, others))
        elif topic == "call.transferred" and linkedid in self.answered:
            self._in_order(linkedid, self._send(self.answered[linkedid], "transferred", call, None))
        elif topic in ("call.ended", "call.abandoned"):
            told = {*self.rung.pop(linkedid, set())}
            if linkedid in self.answered:
                told.add(self.answered.pop(linkedid))
            self._in_order(linkedid, self._end(call, sorted(told)))
            if topic == "call.ended":
                self.pops.pop(linkedid, None)

    def _gone(self, live: set[str]) -> None:
        """End the pops of the calls Asterisk no longer has (their end went unseen)."""
        for linkedid in (self.pops.keys() | self.answered.keys() | self.rung.keys()) - live:
            told = self.rung.pop(linkedid, set())
            if linkedid in self.answered:
                told.add(self.answered.pop(linkedid))
            self.pops.pop(linkedid, None)
            call = {"linkedid": linkedid, "state": "ended"}
            self._in_order(linkedid, self._end(call, sorted(told)))

    def _in_order(self, linkedid: str, work: Coroutine[Any, Any, None]) -> None:
        previous = self.sending.get(linkedid)

        async def run() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            try:
                await work
            except Exception:
                log.exception("screen pop not sent", extra={"linkedid": linkedid})

        task = self.sending[linkedid] = asyncio.create_task(run())
        task.add_done_callback(
            lambda done: self.sending.pop(linkedid) if self.sending.get(linkedid) is done else None
        )

    async def settle(self) -> None:
        """Until every pop event due has been sent."""
        while self.sending:
            await asyncio.wait(list(self.sending.values()))

    async def _ring(self, call: dict[str, Any], agent: str, again: bool) -> None:
        pop = await self._ready(call)
        if pop is not None and again:
            pop["notes"] = await asyncio.to_thread(self.builder.notes, call["linkedid"])
        await self._send(agent, "ringing", call, pop)

    async def _answer(self, call: dict[str, Any], agent: str, others: list[str]) -> None:
        for other in others:  # they lost the race
            await self._send(other, "withdrawn", call, None)
        pop = await self._ready(call)
        # The call is now this agent's, theirs to see and to disposition; and the
        # customer's, when the pop found exactly one (written now, not while it rang).
        # Written before the page hears of the answer, so what it posts next is allowed.
        known = pop["customers"][0]["id"] if pop and len(pop["customers"]) == 1 else None
        try:
            await asyncio.to_thread(
                answered_by, self.builder.sessions, call["linkedid"], agent, known
            )
        except Exception:
            log.exception("could not record who answered", extra={"linkedid": call["linkedid"]})
        await self._send(agent, "answered", call, pop)

    async def _end(self, call: dict[str, Any], agents: list[str]) -> None:
        for agent in agents:
            await self._send(agent, "ended", call, None)

    async def _ready(self, call: dict[str, Any]) -> dict[str, Any] | None:
        linkedid = call["linkedid"]
        try:
            return dict(await self._pop(linkedid, call.get("caller", "")))
        except Exception:  # the agent still gets the call; the next ring tries again
            log.exception("screen pop could not be built", extra={"linkedid": linkedid})
            self.pops.pop(linkedid, None)
            return None

    async def _send(
        self, agent: str, state: str, call: dict[str, Any], pop: dict[str, Any] | None
    ) -> None:
        await self.bus.publish(
            "pop", {"agent": agent, "state": state, "call": _call_facts(call), "pop": pop}
        )


def _call_facts(call: dict[str, Any]) -> dict[str, Any]:
    return {k: call.get(k) for k in ("linkedid", "caller", "queue", "state", "queued_at")}
