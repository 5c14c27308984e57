"""The outcome rule: one outcome per ended call, whatever order its facts arrived in."""

from __future__ import annotations

import itertools
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from functools import reduce

import pytest

from cti.outcomes import CallFacts, durations, outcome

T0 = datetime(2026, 11, 23, 23, 59, 50, tzinfo=UTC)  # calls run over midnight


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (
            CallFacts(started_at=at(0), ivr_end="contained", route="hangup", ended_at=at(40)),
            "contained",
        ),
        (CallFacts(started_at=at(0), ivr_end="abandoned_ivr", ended_at=at(9)), "abandoned_ivr"),
        (CallFacts(started_at=at(0), ivr_end="failed", ended_at=at(3)), "failed"),
        (CallFacts(started_at=at(0), ended_at=at(3)), "failed"),  # nothing known but its end
        (
            CallFacts(
                started_at=at(0),
                ivr_end="routed",
                route="queue:support",
                queue_entered_at=at(20),
                answered_at=at(35),
                ended_at=at(300),
            ),
            "answered",
        ),
        (  # our IVR failed, the safe queue answered: the caller was served
            CallFacts(
                started_at=at(0),
                ivr_end="failed",
                route="queue:main",
                queue_entered_at=at(2),
                answered_at=at(10),
                ended_at=at(60),
            ),
            "answered",
        ),
        (
            CallFacts(
                started_at=at(0),
                ivr_end="routed",
                route="queue:support",
                queue_entered_at=at(20),
                abandoned=True,
                ended_at=at(95),
            ),
            "abandoned_queue",
        ),
        (  # an agent's transfer does not undo the answer
            CallFacts(
                started_at=at(0),
                queue_entered_at=at(5),
                answered_at=at(9),
                transferred=True,
                ended_at=at(200),
            ),
            "answered",
        ),
        (
            CallFacts(
                started_at=at(0), ivr_end="routed", route="transfer:+14155550199", ended_at=at(30)
            ),
            "transferred",
        ),
        (
            CallFacts(
                started_at=at(0), ivr_end="contained", callback_requested=True, ended_at=at(50)
            ),
            "callback_requested",
        ),
        (  # asked for a callback in the queue's overflow, then an agent got it after all
            CallFacts(
                started_at=at(0),
                callback_requested=True,
                queue_entered_at=at(10),
                answered_at=at(70),
                ended_at=at(90),
            ),
            "answered",
        ),
        (CallFacts(kind="survey", survey_completed=True, ended_at=at(60)), "survey_completed"),
        (  # a survey nobody answered to the end
            CallFacts(kind="survey", ivr_end="abandoned_ivr", ended_at=at(12)),
            "abandoned_ivr",
        ),
        (CallFacts(started_at=at(0), queue_entered_at=at(5)), None),  # still waiting
    ],
)
def test_each_call_gets_one_outcome(facts: CallFacts, expected: str | None) -> None:
    assert outcome(facts) == expected


def merge(a: CallFacts, b: CallFacts) -> CallFacts:
    """How the log combines facts: a value once known stays, flags only turn on."""
    return replace(
        a,
        **{
            f.name: getattr(a, f.name) or getattr(b, f.name)
            for f in fields(CallFacts)
            if f.name != "kind"
        },
    )


def test_facts_in_any_order_give_the_same_outcome() -> None:
    """Each fact of an answered call arrives as its own event, in every possible order."""
    pieces = [
        CallFacts(started_at=at(0)),
        CallFacts(ivr_end="routed", route="queue:support"),
        CallFacts(queue_entered_at=at(20)),
        CallFacts(answered_at=at(31)),
        CallFacts(agent_done_at=at(250)),
        CallFacts(ended_at=at(251)),
    ]
    seen = {outcome(reduce(merge, order)) for order in itertools.permutations(pieces)}
    assert seen == {"answered"}


def test_durations_of_an_answered_call() -> None:
    facts = CallFacts(
        started_at=at(0),
        queue_entered_at=at(21.5),
        answered_at=at(40),
        agent_done_at=at(160),
        ended_at=at(161),
    )
    found = durations(facts, ivr_ended_at=at(21))
    assert (found.ivr, found.wait, found.talk) == (21.0, 18.5, 120.0)


def test_durations_of_a_queue_abandon_and_an_ivr_only_call() -> None:
    gave_up = CallFacts(started_at=at(0), queue_entered_at=at(10), abandoned=True, ended_at=at(70))
    found = durations(gave_up, ivr_ended_at=None)
    assert (found.ivr, found.wait, found.talk) == (10.0, 60.0, None)
    contained = CallFacts(started_at=at(0), ivr_end="contained", ended_at=at(42))
    found = durations(contained, ivr_ended_at=None)
    assert (found.ivr, found.wait, found.talk) == (42.0, None, None)
