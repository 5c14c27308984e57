"""Outbound calls on the real Asterisk 22: `Outbound` originates into ``[ivr-outbound]``
and each simulated callee of ``[ivr-callee]`` (extensions.conf) gives its result.

Call ids are unique per run, so tests may run in parallel with others; the dials of a
test run at once. Callees that connect run the flow on this test's own `ivr serve`
(IVR_AGI_SERVER set on the Originate), never on a service someone else runs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from cti.ami.bridge import AmiBridge
from cti.ami.outbound import REASONS, Dial, Outbound, OutboundSettings
from cti.bus import InProcessBus
from cti.store.db import make_engine, session_factory
from cti.store.models import Call, SurveyAnswer
from ivr.config import AmiSettings
from tests.conftest import Sandbox
from tests.support.service import ServiceProcess

CALLEES = OutboundSettings(channel="Local/{number}@ivr-callee")


def call_id() -> str:
    return "test-outbound-" + uuid.uuid4().hex[:12]


def dial(
    number: str, entry: str = "survey", ring: float = 10, amd: bool = True, **variables: str
) -> Dial:
    return Dial(call_id(), number, entry, variables, "+12025550100", ring, amd)


def on_sandbox(settings: AmiSettings, body: Callable[[Outbound], Awaitable[Any]]) -> Any:
    """Run `body` with an Outbound on a fresh AMI bridge to the sandbox."""

    async def run() -> Any:
        bridge = AmiBridge(settings, InProcessBus())
        dialer = Outbound(bridge, CALLEES)
        await bridge.start()
        try:
            async with asyncio.timeout(10):
                while bridge.resyncs == 0:  # logged in, and the first resync done
                    await asyncio.sleep(0.05)
            return await body(dialer)
        finally:
            await bridge.stop()

    return asyncio.run(run())


@pytest.mark.asterisk
def test_each_callee_that_does_not_connect_gives_its_result(asterisk: Sandbox) -> None:
    attempts = {
        "busy": dial("+12025550200"),
        "no_answer": dial("+12025550300", ring=2),
        "machine": dial("+12025550400"),
        "failed": dial("+12025550500"),  # congestion
        "no such number": dial("+12025550999"),
    }

    async def body(dialer: Outbound) -> tuple[dict[str, str], dict[str, float], float]:
        started = time.monotonic()
        took: dict[str, float] = {}

        async def one(name: str) -> str:
            result = await dialer.dial(attempts[name])
            took[name] = time.monotonic() - started
            return result

        results = await asyncio.gather(*(one(name) for name in attempts))
        async with asyncio.timeout(5):  # the machine is hung up on; the rest never connected
            await asyncio.gather(*(dialer.ended(a.call_id) for a in attempts.values()))
        ended = time.monotonic() - started
        assert dialer.calls == {} and dialer.actions == {}  # nothing left behind
        return dict(zip(attempts, results, strict=True)), took, ended

    results, took, ended = on_sandbox(asterisk.ami, body)
    assert results == {
        "busy": "busy",
        "no_answer": "no_answer",
        "machine": "machine",
        "failed": "failed",
        "no such number": "failed",
    }
    assert 1.5 < took["no_answer"] < 5  # rang its 2 s out
    assert took["busy"] < 2 and took["failed"] < 2  # known at once, not by a time-out
    assert took["machine"] < 8 and ended < 10  # AMD's verdict, then the hang-up


@pytest.mark.asterisk
def test_a_person_answers_the_survey_end_to_end(
    asterisk: Sandbox, ivr_service: ServiceProcess
) -> None:
    """+120255501CN presses C for csat and N for nps, and 1 (yes) for solved."""
    survey = dial("+12025550154", IVR_AGI_SERVER=ivr_service.agi_server, IVR_CAMPAIGN="t")

    async def body(dialer: Outbound) -> tuple[str, float, float]:
        started = time.monotonic()
        result = await dialer.dial(survey)
        answered = time.monotonic() - started
        async with asyncio.timeout(40):  # the flow hangs up after its thanks
            await dialer.ended(survey.call_id)
        return result, answered, time.monotonic() - started

    result, answered, ended = on_sandbox(asterisk.ami, body)
    assert result == "human" and answered < 6
    assert 8 < ended < 40, ended  # after three questions, not at once
    sessions = session_factory(make_engine(ivr_service.db_url))
    deadline = time.monotonic() + 10
    while True:  # the service writes its part when the call ends: allow it a moment
        with sessions() as db:
            call = db.execute(
                select(Call.linkedid, Call.entry, Call.flow).where(Call.id == survey.call_id)
            ).one_or_none()
            answers = dict(
                db.execute(
                    select(SurveyAnswer.question, SurveyAnswer.value).where(
                        SurveyAnswer.call_id == survey.call_id
                    )
                ).all()
            )
        if len(answers) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert answers == {"csat": "5", "nps": "4", "solved": "yes"}, ivr_service.log()
    assert call is not None and tuple(call) == (survey.call_id, "survey", "survey")


@pytest.mark.asterisk
def test_ended_waits_for_the_hangup_of_a_connected_call(
    asterisk: Sandbox, ivr_service: ServiceProcess
) -> None:
    """Without AMD the answer alone makes a "human"; the call lasts until hung up."""
    person = dial("+12025550111", amd=False, IVR_AGI_SERVER=ivr_service.agi_server)

    async def body(dialer: Outbound) -> tuple[str, bool, float]:
        result = await dialer.dial(person)
        ending = asyncio.create_task(dialer.ended(person.call_id))
        await asyncio.sleep(1)
        early = ending.done()
        assert dialer.ami.manager is not None
        await dialer.ami.send({"Action": "Hangup", "Channel": person.call_id})
        hung_up = time.monotonic()
        async with asyncio.timeout(5):
            await ending
        return result, early, time.monotonic() - hung_up

    result, early, after = on_sandbox(asterisk.ami, body)
    assert (result, early) == ("human", False)
    assert after < 2


def test_without_ami_a_dial_fails_and_leaves_nothing_behind() -> None:
    async def run() -> tuple[str, Outbound]:
        dialer = Outbound(AmiBridge(AmiSettings(), InProcessBus()))  # never started
        attempt = dial("+12025550111")
        result = await dialer.dial(attempt)
        async with asyncio.timeout(1):
            await dialer.ended(attempt.call_id)
        return result, dialer

    result, dialer = asyncio.run(run())
    assert result == "failed"
    assert (dialer.calls, dialer.actions) == ({}, {})


def test_reason_codes_and_unsafe_dials() -> None:
    # Asterisk's ast_control_frame_type values, as OriginateResponse reports them.
    assert {code: REASONS[code] for code in ("0", "1", "3", "4", "5", "8")} == {
        "0": "failed",
        "1": "no_answer",
        "3": "no_answer",
        "4": None,  # answered: AMD decides
        "5": "busy",
        "8": "failed",
    }
    with pytest.raises(ValueError):
        Dial("a,b", "+12025550111", "survey")
    with pytest.raises(ValueError):
        Dial(call_id(), "2025550111", "survey")
    with pytest.raises(ValueError):
        Dial(call_id(), "+12025550111", "survey", {"IVR_CONTACT": "1,IVR_ENTRY=x"})
