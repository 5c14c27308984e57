"""The dialer: takes due contacts of the active campaigns and calls them through
Asterisk, within each campaign's calling windows, do-not-call lists and caps.

Each round, per campaign, it claims as many due contacts as the campaign has room for
(`max_concurrent` less the calls under way, every dialer's). For each: a number on a
do-not-call list is logged as blocked and never dialled; one whose calling window is
closed waits for the next one; the others are dialled at the moments the claim gave
them, at most `calls_per_second` for the campaign whichever dialer places them.
The attempt is committed with its call id before the call is placed, and the call's
first facts (outbound, kind, campaign) go to the outcome log then too, so that the
log's row and the attempt both exist whatever happens next. A dialer that restarts
resolves the calls it placed and never saw end instead of dialling them again.

The clock is injectable: tests move the calling windows' time by hand.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from cti.ami.outbound import Dial
from cti.campaigns.schedule import in_window, next_window, zones_for
from cti.campaigns.spec import CampaignSpec, Result
from cti.store import campaigns as store
from cti.store.calls import CallLog
from cti.store.models import Call, Campaign, utcnow

log = logging.getLogger("cti.dialer")
LIVE_CHECK_SECONDS = 2.0  # how often a restarted dialer asks whether its old calls still go on
ADOPT_EVERY = timedelta(minutes=10)  # how often a dialer looks for what a stopped one left


class Placer(Protocol):
    """What places calls: Asterisk over AMI (cti/ami/outbound.py), or a simulation."""

    async def dial(self, dial: Dial) -> Result:
        """The attempt's result, as soon as it is known (the call may go on)."""
        ...

    async def ended(self, call_id: str) -> None:
        """Returns once the call is gone."""
        ...

    async def live(self, call_id: str) -> bool:
        """Whether Asterisk still carries the call."""
        ...


class Dialer:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        calls: CallLog,
        placer: Placer,
        name: str,
        clock: Callable[[], datetime] = utcnow,
        poll_seconds: float = 1.0,
        agi_server: str = "",
    ) -> None:
        """`agi_server`: the FastAGI service answered calls run their flow on (host:port);
        '' for the one Asterisk's IVR_AGI_SERVER global names."""
        self.sessions = sessions
        self.calls = calls
        self.placer = placer
        self.name = name
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.agi_server = agi_server
        self.tasks: set[asyncio.Task[None]] = set()
        self.pacing: dict[str, asyncio.Lock] = {}  # by campaign
        self.last_start: dict[str, float] = {}  # monotonic, by campaign

    async def run(self) -> None:
        """Resolve what a previous run left, then dial until cancelled, taking over what
        a dialer that stopped for good left (`adopt`) now and then."""
        await self.recover()
        adopt_at = utcnow()
        while True:
            try:
                if utcnow() >= adopt_at:
                    adopt_at = utcnow() + ADOPT_EVERY
                    await self.adopt()
                await self.round()
            except Exception:
                log.exception("dialer round failed", extra={"dialer": self.name})
            await asyncio.sleep(self.poll_seconds)

    async def round(self) -> int:
        """One pass over the active campaigns; how many calls it set going."""
        placed = 0
        for campaign, spec in await asyncio.to_thread(self._campaigns):
            claimed = await asyncio.to_thread(
                store.claim,
                self.sessions,
                campaign.id,
                self.name,
                self.clock(),
                spec.max_concurrent,
                spec.calls_per_second,
            )
            if claimed:
                placed += await self._place(campaign, spec, claimed)
        return placed

    def _campaigns(self) -> list[tuple[Campaign, CampaignSpec]]:
        with self.sessions() as db:
            return store.active(db)

    async def drain(self) -> None:
        """Until every call this dialer placed has ended."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def _place(
        self, campaign: Campaign, spec: CampaignSpec, claimed: list[store.Claimed]
    ) -> int:
        """Check the claimed contacts against the do-not-call lists and their calling
        windows, commit the attempts and the log's first facts of the ones to call, and
        set their calls going (paced in `_follow`)."""
        now = self.clock()
        dialling = await asyncio.to_thread(self._callable, campaign, spec, claimed, now)
        if not dialling:
            return 0
        attempts = await asyncio.to_thread(
            store.start_attempts, self.sessions, campaign.id, self.name, dialling, now
        )
        written = [
            self.calls.submit(CallLog.facts_write(call_id, _facts(campaign, contact, now)))
            for contact, call_id in dialling
        ]
        for failed in await asyncio.gather(
            *(asyncio.wrap_future(done) for done in written), return_exceptions=True
        ):
            if isinstance(failed, Exception):  # the call goes out all the same
                log.error("outbound call not logged", extra={"error": str(failed)})
        for (contact, call_id), attempt in zip(dialling, attempts, strict=True):
            dial = Dial(
                call_id,
                contact.number,
                spec.entry,
                {"IVR_CAMPAIGN": campaign.name, "IVR_CONTACT": str(contact.contact_id)}
                | ({"IVR_AGI_SERVER": self.agi_server} if self.agi_server else {}),
                ring_seconds=spec.ring_seconds,
                amd=spec.amd and not spec.agent_queue,
                machine_action=spec.machine_action,
                agent_queue=spec.agent_queue,
            )
            task = asyncio.create_task(self._follow(attempt, dial, spec, contact.start_at))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return len(dialling)

    def _callable(
        self, campaign: Campaign, spec: CampaignSpec, claimed: list[store.Claimed], now: datetime
    ) -> list[tuple[store.Claimed, str]]:
        """The claimed contacts to call now, each with its call id. The others: blocked
        (on a do-not-call list: logged, never dialled) or given back to wait for their
        calling window."""
        with self.sessions() as db:
            blocked = store.dnc_reasons(db, campaign.id, [c.number for c in claimed])
        dialling = []
        for contact in claimed:
            if contact.number in blocked:
                reason = blocked[contact.number]
                store.block(self.sessions, contact, campaign.id, self.name, reason, now)
                continue
            zones = zones_for(contact.number, contact.timezone, spec)
            if not in_window(spec, zones, now):
                store.release(self.sessions, contact.contact_id, next_window(spec, zones, now))
                continue
            dialling.append((contact, f"out-{uuid.uuid4().hex}"))
        return dialling

    async def _pace(self, spec: CampaignSpec, start_at: datetime | None) -> None:
        """Not before the moment the claim gave the call (the campaign's pace across
        dialers), nor sooner than 1/calls_per_second after this dialer's last start
        itself: a late wake-up never bunches starts together."""
        async with self.pacing.setdefault(spec.name, asyncio.Lock()):
            gap = 1 / spec.calls_per_second
            wait = self.last_start.get(spec.name, -gap) + gap - time.monotonic()
            if start_at is not None:
                wait = max(wait, (start_at - utcnow()).total_seconds())
            if wait > 0:
                await asyncio.sleep(wait)
            self.last_start[spec.name] = time.monotonic()

    async def _follow(
        self, attempt: int, dial: Dial, spec: CampaignSpec, start_at: datetime | None
    ) -> None:
        await self._pace(spec, start_at)
        try:
            result = await self.placer.dial(dial)
        except Exception:
            log.exception("dial failed", extra={"call_id": dial.call_id})
            result = "failed"
        await asyncio.to_thread(
            store.finish_attempt, self.sessions, attempt, result, spec, self.clock()
        )
        await self.placer.ended(dial.call_id)
        await asyncio.to_thread(store.call_ended, self.sessions, attempt, utcnow())

    async def recover(self) -> None:
        """The calls a previous run of this dialer placed and never saw end: once
        Asterisk no longer has them, ended, and (those without a result) judged from
        the outcome log (the IVR ran: a person answered); never dialled again as the
        same attempt."""
        self._follow_all(await asyncio.to_thread(self._left_open))

    async def adopt(self) -> None:
        """What a dialer that stopped over STALE ago and never came back left: its
        contacts claimed and never dialled wait again; its calls are resolved here."""
        left = await asyncio.to_thread(self._adopted)
        if left:
            log.warning("calls of a stopped dialer taken over", extra={"calls": len(left)})
        self._follow_all(left)

    def _follow_all(self, left: list[tuple[int, str, CampaignSpec]]) -> None:
        for attempt, call_id, spec in left:
            task = asyncio.create_task(self._resolve(attempt, call_id, spec))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _left_open(self) -> list[tuple[int, str, CampaignSpec]]:
        """Contacts claimed and never dialled go back; the calls placed and never seen
        to end, with their campaigns' settings."""
        store.unclaim_undialled(self.sessions, self.name)
        return self._with_specs(store.open_attempts(self.sessions, self.name))

    def _adopted(self) -> list[tuple[int, str, CampaignSpec]]:
        return self._with_specs(store.adopt_stale(self.sessions, self.name, utcnow()))

    def _with_specs(self, rows: list[tuple[int, str, int]]) -> list[tuple[int, str, CampaignSpec]]:
        found = []
        with self.sessions() as db:
            for attempt, call_id, campaign_id in rows:
                campaign = db.get(Campaign, campaign_id)
                if campaign is not None:
                    found.append((attempt, call_id, CampaignSpec.model_validate(campaign.spec)))
        return found

    async def _resolve(self, attempt: int, call_id: str, spec: CampaignSpec) -> None:
        while call_id and await self.placer.live(call_id):
            await asyncio.sleep(LIVE_CHECK_SECONDS)
        result, detail = await asyncio.to_thread(self._judged, call_id)
        await asyncio.to_thread(
            store.finish_attempt, self.sessions, attempt, result, spec, self.clock(), detail
        )
        await asyncio.to_thread(store.call_ended, self.sessions, attempt, utcnow())
        log.info("attempt resolved after a restart", extra={"call_id": call_id, "result": result})

    def _judged(self, call_id: str) -> tuple[Result, str]:
        with self.sessions() as db:
            call = db.get(Call, call_id) if call_id else None
        if call is not None and (call.ivr_end is not None or call.answered_at is not None):
            return "human", "after a dialer restart: the call reached the IVR"
        return "failed", "after a dialer restart: no sign the call was answered"


def _facts(campaign: Campaign, contact: store.Claimed, now: datetime) -> dict[str, object]:
    """The call's first facts in the outcome log, written before it is placed so that
    they come first (a row's kind and direction keep their first value)."""
    facts = {
        "direction": "outbound",
        "kind": campaign.kind,
        "campaign": campaign.name,
        "caller_number": contact.number,
        "customer_id": contact.customer_id,
        "callback_id": contact.callback_id,
        "origin_call_id": contact.origin_call_id,
        "started_at": now,
    }
    return {name: value for name, value in facts.items() if value is not None}
