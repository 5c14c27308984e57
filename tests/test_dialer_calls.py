"""The campaigns' dialer on the real Asterisk 22: simulated callees of ``[ivr-callee]``
answer and press survey digits, are busy, do not answer, or are machines; answered
calls run the flow on this test's own `ivr serve` (its own dialer off).

The dialer runs in the test's event loop, with a clock the test sets: the calling
windows and retry delays are judged on it, while the calls themselves take real time.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cti.ami.bridge import AmiBridge
from cti.ami.outbound import Outbound, OutboundSettings
from cti.bus import InProcessBus
from cti.campaigns.dialer import Dialer
from cti.campaigns.spec import CampaignSpec
from cti.reports.kpis import Period, Thresholds, kpis
from cti.store import campaigns as store
from cti.store.calls import CallLog
from cti.store.db import make_engine, session_factory
from cti.store.models import Attempt, Call, Contact, SurveyAnswer
from tests.conftest import Sandbox
from tests.support.service import IVR, ServiceProcess

CALLEES = OutboundSettings(channel="Local/{number}@ivr-callee")
MONDAY_NOON = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # New York, where +1202 is
# Retry at once: a call a killed dialer never placed is tried again in the same test.
RETRY_NOW = {"machine": 0, "busy": 0, "no_answer": 0, "failed": 0}
# The dialer processes judge windows on the real clock: open all week.
ALWAYS = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def service(asterisk: Sandbox, tmp_path: Path) -> Iterator[ServiceProcess]:
    """`ivr serve` for the answered calls' flows; its own dialer off (the test's dials)."""
    env = {"IVR_AMI__SECRET": asterisk.ami.secret.get_secret_value(), "IVR_DIALER__ENABLED": "0"}
    service = ServiceProcess(tmp_path, env).start()
    yield service
    assert service.stop() == 0, service.log()


def sessions_of(service: ServiceProcess) -> sessionmaker[Session]:
    return session_factory(make_engine(service.db_url))


def with_dialer(
    asterisk: Sandbox,
    service: ServiceProcess,
    clock: Clock,
    body: Callable[[Dialer], Awaitable[Any]],
) -> Any:
    """Run `body` with a dialer on a fresh AMI connection to the sandbox."""
    sessions = sessions_of(service)

    async def run() -> Any:
        bridge = AmiBridge(asterisk.ami, InProcessBus())
        outbound = Outbound(bridge, CALLEES)
        name = f"test-{uuid.uuid4().hex[:8]}"
        dialer = Dialer(
            sessions, CallLog(sessions), outbound, name, clock, agi_server=service.agi_server
        )
        await bridge.start()
        try:
            async with asyncio.timeout(10):
                while bridge.resyncs == 0:
                    await asyncio.sleep(0.05)
            return await body(dialer)
        finally:
            await bridge.stop()

    return asyncio.run(run())


def campaign(sessions: sessionmaker[Session], numbers: list[str], **spec: Any) -> int:
    settings = CampaignSpec(name=f"c{uuid.uuid4().hex[:8]}", kind="survey", **spec)
    campaign_id = store.create(sessions, settings, "test")
    with sessions.begin() as db:
        for number in numbers:
            store.add_contact(db, campaign_id, number, "import")
    return campaign_id


def contacts(sessions: sessionmaker[Session]) -> dict[str, Contact]:
    with sessions() as db:
        return {c.number: c for c in db.scalars(select(Contact)).all()}


def attempts(sessions: sessionmaker[Session]) -> list[tuple[str, str | None, str | None]]:
    """(number, result, call id) of every attempt, in order."""
    with sessions() as db:
        rows = db.execute(
            select(Contact.number, Attempt.result, Attempt.call_id)
            .join(Contact, Contact.id == Attempt.contact_id)
            .order_by(Attempt.id)
        ).all()
    return [tuple(row) for row in rows]


@pytest.mark.asterisk
def test_a_survey_campaign_of_ten_completes_with_the_answers_in_the_kpis(
    asterisk: Sandbox, service: ServiceProcess
) -> None:
    """Ten people (+120255501CN press C for csat, N for nps, 1 for solved) called at
    once; each answers the shipped survey flow, and CSAT and NPS count their answers."""
    pressed = [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4), (5, 9), (4, 8), (3, 7), (2, 6), (1, 5)]
    numbers = [f"+120255501{c}{n}" for c, n in pressed]
    sessions = sessions_of(service)
    campaign(sessions, numbers, max_concurrent=10, calls_per_second=5)

    async def body(dialer: Dialer) -> int:
        placed = await dialer.round()
        async with asyncio.timeout(90):
            await dialer.drain()
        return placed

    assert with_dialer(asterisk, service, Clock(MONDAY_NOON), body) == 10
    deadline = time.monotonic() + 15
    while True:  # each call's survey answers are written when its IVR part ends
        with sessions() as db:
            answers = db.execute(
                select(Call.caller_number, SurveyAnswer.question, SurveyAnswer.value).join(
                    Call, Call.id == SurveyAnswer.call_id
                )
            ).all()
        if len(answers) == 30 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    by_number = {number: {} for number in numbers}
    for number, question, value in answers:
        by_number[number][question] = value
    assert by_number == {
        f"+120255501{c}{n}": {"csat": str(c), "nps": str(n), "solved": "yes"} for c, n in pressed
    }, service.log()
    assert {c.status for c in contacts(sessions).values()} == {"done"}
    with sessions() as db:
        calls = db.scalars(select(Call).where(Call.caller_number.in_(numbers))).all()
        assert {(c.kind, c.direction, c.outcome) for c in calls} == {
            ("survey", "outbound", "survey_completed")
        }
        period = Period(MONDAY_NOON - timedelta(days=1), datetime.now(UTC) + timedelta(days=1))
        (figures,) = kpis(db, period, Thresholds(), ZoneInfo("America/New_York"))
    # CSAT: 4s and 5s of the 10 csat answers; NPS: promoters (9, 10) less detractors (0-6)
    # of the 10 nps answers: 9 only is a promoter; 0-6 are seven detractors.
    assert (figures.csat_answers, figures.csat) == (10, 0.4)
    assert (figures.nps_answers, figures.nps) == (10, (1 - 7) * 10)


@pytest.mark.asterisk
def test_retries_follow_each_result_and_a_do_not_call_number_is_never_dialled(
    asterisk: Sandbox, service: ServiceProcess
) -> None:
    busy, silent, machine, congested, listed = (
        "+12025550200",
        "+12025550300",
        "+12025550400",
        "+12025550500",
        "+12025550154",  # a person, who would answer, but is on the do-not-call list
    )
    sessions = sessions_of(service)
    campaign_id = campaign(
        sessions,
        [busy, silent, machine, congested, listed],
        max_attempts=2,
        ring_seconds=5,
        calls_per_second=10,
        retry_minutes={"busy": 5, "no_answer": 30, "machine": 60, "failed": 15},
    )
    assert store.add_dnc(sessions, listed, campaign_id, note="asked us not to call")
    clock = Clock(MONDAY_NOON)

    async def round_at(dialer: Dialer, minutes: int) -> int:
        clock.now = MONDAY_NOON + timedelta(minutes=minutes)
        placed = await dialer.round()
        async with asyncio.timeout(40):
            await dialer.drain()
        return placed

    async def body(dialer: Dialer) -> list[int]:
        return [await round_at(dialer, m) for m in (0, 1, 5, 15, 30, 60, 120)]

    placed = with_dialer(asterisk, service, clock, body)
    # 0: four calls; 5: busy again; 15: congested again; 30: the silent one; 60: the
    # machine; each then has had its two attempts and nothing is left at 120.
    assert placed == [4, 0, 1, 1, 1, 1, 0]
    seen = [(number, result) for number, result, _ in attempts(sessions)]
    assert seen[0] == (listed, "blocked")
    assert sorted(seen[1:5]) == sorted(
        [(busy, "busy"), (silent, "no_answer"), (machine, "machine"), (congested, "failed")]
    )
    assert seen[5:] == [
        (busy, "busy"),
        (congested, "failed"),
        (silent, "no_answer"),
        (machine, "machine"),
    ]
    final = contacts(sessions)
    assert {n: (c.status, c.attempts) for n, c in final.items()} == {
        busy: ("exhausted", 2),
        silent: ("exhausted", 2),
        machine: ("exhausted", 2),
        congested: ("exhausted", 2),
        listed: ("blocked", 0),
    }
    with sessions() as db:  # the listed number never reached Asterisk
        assert db.scalar(select(func.count()).where(Call.caller_number == listed)) == 0
        blocked = db.scalars(select(Attempt).where(Attempt.result == "blocked")).one()
    assert (blocked.call_id, blocked.detail) == (None, "do-not-call (campaign)")


@pytest.mark.asterisk
def test_a_contact_outside_its_calling_window_waits_for_it(
    asterisk: Sandbox, service: ServiceProcess
) -> None:
    """At noon in New York it is 02:00 in Tokyo: the Tokyo contact waits until 09:00
    there while the New York one is called."""
    sessions = sessions_of(service)
    tokyo, new_york = "+12025550200", "+12025550500"  # busy, congested: quick
    campaign_id = campaign(sessions, [new_york], max_attempts=1)
    with sessions.begin() as db:
        store.add_contact(db, campaign_id, tokyo, "import", reason="x", timezone="Asia/Tokyo")
    clock = Clock(MONDAY_NOON)

    async def body(dialer: Dialer) -> list[int]:
        placed = []
        for now in (MONDAY_NOON, MONDAY_NOON + timedelta(hours=5), MONDAY_NOON.replace(hour=23)):
            clock.now = now
            placed.append(await dialer.round())
            async with asyncio.timeout(30):
                await dialer.drain()
        return placed

    placed = with_dialer(asterisk, service, clock, body)
    waiting = contacts(sessions)[tokyo]
    # Tuesday 08:00 Tokyo at 23:00 UTC on Monday is still before the window.
    assert placed == [1, 0, 0]
    assert waiting.status == "pending" and waiting.attempts == 0
    opens = datetime(2026, 11, 24, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert waiting.next_attempt_at.replace(tzinfo=UTC) == opens.astimezone(UTC)
    with sessions() as db:
        assert (
            store.progress(
                db,
                campaign_id,
                CampaignSpec.model_validate({"name": "x", "kind": "survey"}),
                MONDAY_NOON,
            ).outside_window
            == 1
        )

    async def later(dialer: Dialer) -> int:
        clock.now = opens.astimezone(UTC)
        placed = await dialer.round()
        await dialer.drain()
        return placed

    assert with_dialer(asterisk, service, clock, later) == 1
    assert [(n, r) for n, r, _ in attempts(sessions)] == [(new_york, "failed"), (tokyo, "busy")]


def dialer_process(service: ServiceProcess, name: str) -> subprocess.Popen[bytes]:
    """`ivr dialer` on the service's database and the sandbox, its calls' flows on the
    service."""
    env = {
        **service.env,
        "IVR_DIALER__NAME": name,
        "IVR_DIALER__CHANNEL": CALLEES.channel,
        "IVR_DIALER__AGI_SERVER": service.agi_server,
        "IVR_DIALER__POLL_SECONDS": "0.2",
    }
    log = (service.workdir / f"{name}.log").open("a")
    return subprocess.Popen([IVR, "dialer"], cwd=service.workdir, env=env, stderr=log)


def wait_until(done: Callable[[], bool], timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {why}")
        time.sleep(0.3)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0


@pytest.mark.asterisk
def test_a_dialer_killed_mid_campaign_and_restarted_dials_nobody_twice(
    asterisk: Sandbox, service: ServiceProcess
) -> None:
    """Killed (SIGKILL) with calls under way; restarted under the same name, it follows
    the calls it had placed to their end instead of dialling those people again."""
    numbers = [f"+120255501{c}{n}" for c, n in ((1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (5, 0))]
    sessions = sessions_of(service)
    campaign(
        sessions,
        numbers,
        max_concurrent=6,
        calls_per_second=2,
        retry_minutes=RETRY_NOW,
        windows=ALWAYS,
    )
    first = dialer_process(service, "restarted")
    log = service.workdir / "restarted.log"

    def answered() -> int:  # calls a person took, now in the survey
        return log.read_text().count("outbound call human") if log.exists() else 0

    try:
        wait_until(lambda: answered() >= 2, 30, "two people answered")
    finally:
        first.kill()
        first.wait()
    second = dialer_process(service, "restarted")
    try:
        wait_until(
            lambda: {c.status for c in contacts(sessions).values()} == {"done"},
            120,
            "everyone was reached",
        )
    finally:
        stop(second)
    with sessions() as db:
        reached = db.execute(
            select(Call.caller_number, func.count())
            .where(Call.caller_number.in_(numbers), Call.ivr_end.is_not(None))
            .group_by(Call.caller_number)
        ).all()
    assert dict(reached) == dict.fromkeys(numbers, 1), service.log()
    with sessions() as db:  # the calls under way at the kill were followed, not redialled
        followed = db.scalar(
            select(func.count()).where(Attempt.detail.like("%the call reached the IVR"))
        )
    assert followed >= 2


@pytest.mark.asterisk
@pytest.mark.postgres
def test_two_dialers_share_a_campaign_on_postgresql_without_a_double_dial(
    asterisk: Sandbox, postgres_url: str, tmp_path: Path
) -> None:
    """Two `ivr dialer` processes on one campaign: each contact dialled once, by one
    of them, and the campaign's max_concurrent held over both."""
    env = {
        "IVR_AMI__SECRET": asterisk.ami.secret.get_secret_value(),
        "IVR_DIALER__ENABLED": "0",
        "IVR_DATABASE__URL": postgres_url,
    }
    service = ServiceProcess(tmp_path, env).start()
    numbers = [f"+1202555{n:04d}" for n in range(701, 731)]  # no such number: quick
    try:
        sessions = session_factory(make_engine(postgres_url))
        campaign(
            sessions,
            numbers,
            max_attempts=1,
            max_concurrent=5,
            calls_per_second=20,
            windows=ALWAYS,
        )
        dialers = [dialer_process(service, name) for name in ("one", "two")]
        try:
            wait_until(
                lambda: {c.status for c in contacts(sessions).values()} == {"exhausted"},
                60,
                "every contact had its one attempt",
            )
        finally:
            for dialer in dialers:
                stop(dialer)
        with sessions() as db:
            per_contact = db.execute(
                select(Attempt.contact_id, func.count()).group_by(Attempt.contact_id)
            ).all()
            by_dialer = dict(
                db.execute(select(Attempt.dialer, func.count()).group_by(Attempt.dialer)).all()
            )
            calls = db.execute(select(Attempt.started_at, Attempt.ended_at)).all()
    finally:
        assert service.stop() == 0
    assert len(per_contact) == 30 and {count for _, count in per_contact} == {1}
    assert set(by_dialer) == {"one", "two"} and sum(by_dialer.values()) == 30
    # max_concurrent is the campaign's, not each dialer's: never more than 5 at once.
    moments = sorted([(start, 1) for start, _ in calls] + [(end, -1) for _, end in calls])
    assert max(itertools.accumulate(step for _, step in moments)) <= 5
