"""Screen pops: who is calling and what they did in the IVR, sent to the agent whose
phone rings, and only to that agent.

The pop is built when the call joins its queue (``call.offered``), from what the IVR
published when it queued the call (``ivr.queued``, or the stored journey if this
process did not see it) and the customer records; a database read never sits between
the agent's phone ringing and the pop leaving. Each change reaches the agent as a
``pop`` event: ``ringing``, ``withdrawn`` (rang without answer), ``answered``,
``transferred`` and ``ended``. A transferred call pops at the next agent with the notes
taken so far.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cti.bus import Bus
from cti.matching import match_customer, normalise_number
from cti.store.dispositions import answered_by
from cti.store.models import Call, Callback, Commitment, Customer, JourneyEvent

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
            customers = [self.card(db, customer) for customer in found.customers[:5]]
            if len(found.customers) == 1:
                db.execute(
                    update(Call)
                    .where(Call.linkedid == linkedid)
                    .values(customer_id=found.customers[0].id)
                )
                db.commit()
        return {
            "linkedid": linkedid,
            "caller": caller,
            "caller_e164": normalise_number(caller, self.region) if caller else "",
            "match": found.how,
            "customers": customers,
            "journey": self.journey(part, events),
            "notes": "",
        }

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

    def card(self, db: Session, customer: Customer) -> dict[str, Any]:
        calls = db.execute(
            select(Call.started_at, Call.outcome, Call.disposition, Call.agent, Call.notes)
            .where(Call.customer_id == customer.id)
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
            "account": customer.account_number or "",
            "tier": customer.tier,
            "language": customer.language or "",
            "balance": str(customer.balance),
            "currency": customer.currency,
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
            "callbacks": [{"due": _iso(c.due_at), "reason": c.reason} for c in callbacks],
            "surveys": [
                {"at": _iso(at), "question": d.get("question"), "answer": d.get("answer")}
                for at, d in surveys
            ],
        }

    @staticmethod
    def _stored_part(db: Session, linkedid: str) -> dict[str, Any] | None:
        call = db.scalar(
            select(Call).where(Call.linkedid == linkedid).order_by(Call.started_at).limit(1)
        )
        if call is None:
            return None
        return {
            "flow": call.flow,
            "entry": call.entry,
            "started_at": _iso(call.started_at),
            "ended_at": _iso(call.ivr_ended_at),
            "events": [{"kind": e.kind, "node": e.node, "data": e.data} for e in call.journey],
        }

    def notes(self, linkedid: str) -> str:
        with self.sessions() as db:
            found = db.scalar(select(Call.notes).where(Call.linkedid == linkedid).limit(1))
        return found or ""


class ScreenPops:
    """The live side: follows the tracker's ``call.*`` events and sends ``pop`` events."""

    def __init__(self, bus: Bus, builder: PopBuilder) -> None:
        self.bus = bus
        self.builder = builder
        self.parts: dict[str, dict[str, Any]] = {}  # linkedid -> what the IVR published
        self.pops: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self.answered: dict[str, str] = {}  # linkedid -> interface of the agent on it
        # linkedid -> agents whose pop shows it ringing. Asterisk cancels the other phones
        # of a ringall queue without AgentRingNoAnswer: their pops are withdrawn here.
        self.rung: dict[str, set[str]] = {}
        bus.subscribe("ivr.queued", self._on_ivr)
        bus.subscribe("*", self._on_call)

    async def _on_ivr(self, _topic: str, part: dict[str, Any]) -> None:
        if part.get("linkedid"):
            self.parts[part["linkedid"]] = part

    def _pop(self, call: dict[str, Any]) -> asyncio.Task[dict[str, Any]]:
        linkedid = call["linkedid"]
        task = self.pops.get(linkedid)
        if task is None:
            part = self.parts.pop(linkedid, None)
            task = asyncio.create_task(
                asyncio.to_thread(self.builder.build, linkedid, call.get("caller", ""), part)
            )
            self.pops[linkedid] = task
        return task

    async def _on_call(self, topic: str, call: dict[str, Any]) -> None:
        if not topic.startswith("call."):
            return
        linkedid = call["linkedid"]
        if topic == "call.offered":
            self._pop(call)
        elif topic == "call.ringing" and call.get("agent"):
            pop = await self._ready(call)
            if pop is not None and linkedid in self.answered:  # rang again after a transfer
                pop["notes"] = await asyncio.to_thread(self.builder.notes, linkedid)
            self.rung.setdefault(linkedid, set()).add(call["agent"])
            await self._send(call["agent"], "ringing", call, pop)
        elif topic == "call.ring_no_answer" and call.get("agent"):
            self.rung.get(linkedid, set()).discard(call["agent"])
            await self._send(call["agent"], "withdrawn", call, None)
        elif topic == "call.answered" and call.get("agent"):
            self.answered[linkedid] = call["agent"]
            for other in sorted(self.rung.pop(linkedid, set()) - {call["agent"]}):
                await self._send(other, "withdrawn", call, None)
            await self._send(call["agent"], "answered", call, await self._ready(call))
            try:  # the call is now this agent's: theirs to see and to disposition
                await asyncio.to_thread(answered_by, self.builder.sessions, linkedid, call["agent"])
            except Exception:
                log.exception("could not record who answered", extra={"linkedid": linkedid})
        elif topic == "call.transferred" and linkedid in self.answered:
            await self._send(self.answered[linkedid], "transferred", call, None)
        elif topic in ("call.ended", "call.abandoned"):
            told = {self.answered.pop(linkedid, None), *self.rung.pop(linkedid, set())}
            for agent in sorted(told - {None}):
                await self._send(str(agent), "ended", call, None)
            if topic == "call.ended":
                self.pops.pop(linkedid, None)
                self.parts.pop(linkedid, None)

    async def _ready(self, call: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return dict(await self._pop(call))
        except Exception:  # the agent still gets the call; the next ring tries again
            log.exception("screen pop could not be built", extra={"linkedid": call["linkedid"]})
            self.pops.pop(call["linkedid"], None)
            return None

    async def _send(
        self, agent: str, state: str, call: dict[str, Any], pop: dict[str, Any] | None
    ) -> None:
        await self.bus.publish(
            "pop", {"agent": agent, "state": state, "call": _call_facts(call), "pop": pop}
        )


def _call_facts(call: dict[str, Any]) -> dict[str, Any]:
    return {k: call.get(k) for k in ("linkedid", "caller", "queue", "state", "queued_at")}
