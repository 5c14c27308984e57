"""How a call ended, from the facts both sides record about it.

The IVR side knows how its part ended (contained, routed, the caller hung up, our code
failed) and what the caller asked for (a callback, a finished survey); the AMI side
knows when the call joined a queue, was answered, abandoned or transferred, and when
it ended. Facts only ever grow (a time once known stays; flags only turn on), so the
outcome, a pure function of the facts, is the same whatever order they arrive in.
This is the rule the outcome log applies; docs/kpis.md defines each outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Outcome = Literal[
    "contained",
    "answered",
    "abandoned_queue",
    "abandoned_ivr",
    "callback_requested",
    "survey_completed",
    "transferred",
    "failed",
]
IvrEnd = Literal["contained", "routed", "abandoned_ivr", "failed"]


@dataclass(frozen=True)
class CallFacts:
    kind: Literal["inbound", "callback", "survey"] = "inbound"
    started_at: datetime | None = None
    ivr_end: IvrEnd | None = None  # how the last IVR part ended
    route: str | None = None  # where the IVR sent it: queue:<name>, transfer:<to>, hangup
    callback_requested: bool = False
    survey_completed: bool = False
    queue_entered_at: datetime | None = None
    answered_at: datetime | None = None
    abandoned: bool = False  # hung up while queued (QueueCallerAbandon)
    transferred: bool = False  # an agent transferred it (Blind/AttendedTransfer): a KPI fact
    agent_done_at: datetime | None = None  # the (last) agent's part ended (AgentComplete)
    ended_at: datetime | None = None
    hold_seconds: float | None = None  # the caller on hold, in all (Hold/Unhold)
    disposed_at: datetime | None = None  # the (last) agent saved a disposition


def outcome(facts: CallFacts) -> Outcome | None:
    """The call's outcome; None while it goes on."""
    if facts.ended_at is None:
        return None
    if facts.kind == "survey":
        return "survey_completed" if facts.survey_completed else _unfinished(facts)
    if facts.answered_at is not None:  # an agent's transfer afterwards is a fact, not the end
        return "answered"
    if facts.callback_requested:
        return "callback_requested"
    if facts.queue_entered_at is not None:
        return "abandoned_queue"
    if facts.route is not None and facts.route.startswith("transfer:"):
        return "transferred"
    return _unfinished(facts)


def _unfinished(facts: CallFacts) -> Outcome:
    """A call that never reached an agent or a queue: where did it stop?"""
    if facts.ivr_end == "contained":
        return "contained"
    if facts.ivr_end == "abandoned_ivr":
        return "abandoned_ivr"
    return "failed"


@dataclass(frozen=True)
class Durations:
    """Seconds; None where the call never had that stretch."""

    ivr: float | None  # start to the end of the IVR (or to the queue, or to the end)
    wait: float | None  # in the queue: joined to answered, or to the end if never answered
    talk: float | None  # answered to the agent's part ending (or to the end), less hold
    wrapup: float | None  # the agent's part ending to their disposition


def durations(facts: CallFacts, ivr_ended_at: datetime | None) -> Durations:
    def between(start: datetime | None, *ends: datetime | None) -> float | None:
        end = next((e for e in ends if e is not None), None)
        if start is None or end is None:
            return None
        return max(0.0, (end - start).total_seconds())

    talk = between(facts.answered_at, facts.agent_done_at, facts.ended_at)
    return Durations(
        ivr=between(facts.started_at, ivr_ended_at, facts.queue_entered_at, facts.ended_at),
        wait=between(facts.queue_entered_at, facts.answered_at, facts.ended_at),
        talk=None if talk is None else max(0.0, talk - (facts.hold_seconds or 0.0)),
        wrapup=between(facts.agent_done_at, facts.disposed_at) if facts.answered_at else None,
    )
