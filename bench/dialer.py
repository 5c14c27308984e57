"""The dialer's own cost per attempt, and whether its calls-per-second cap holds, over a
campaign of 10,000 contacts with simulated answers (no Asterisk: the placer answers at
once, by the number's last digit: human, busy, no answer, machine or failed).

Two runs on SQLite and on PostgreSQL, side by side:
- overhead: the campaign capped at 100 calls/s and 200 calls at once, 2,000 attempts;
  the dialer process's CPU time per attempt (claims, do-not-call and window checks, the
  attempt and the outcome-log row committed before dialling, the result after), and
  the same attempts' wall time against the cap's 10 ms per call;
- cap: 20 calls/s for 15 s; the most call starts seen in any one-second window.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert

from bench.scratch import ScratchDatabase
from cti.ami.outbound import Dial
from cti.campaigns.dialer import Dialer
from cti.campaigns.spec import CampaignSpec, Result
from cti.store import campaigns as store
from cti.store.calls import CallLog
from cti.store.models import Contact

CONTACTS = 10_000
ATTEMPTS = 2_000
NOW = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # Monday 11:00 in New York
ANSWERS: dict[str, Result] = {"0": "busy", "1": "no_answer", "2": "machine", "3": "failed"}


class Simulated:
    """Answers at once; keeps when each call was placed."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    async def dial(self, dial: Dial) -> Result:
        self.starts.append(time.monotonic())
        await asyncio.sleep(0)
        return ANSWERS.get(dial.number[-1], "human")

    async def ended(self, call_id: str) -> None:
        return None

    async def live(self, call_id: str) -> bool:
        return False


class Database(ScratchDatabase):
    def __init__(self, kind: str, folder: str) -> None:
        super().__init__(kind, folder, "dialer")

    def campaign(self, cps: float, concurrent: int) -> int:
        spec = CampaignSpec(
            name=f"b{uuid.uuid4().hex[:8]}",
            kind="survey",
            calls_per_second=cps,
            max_concurrent=concurrent,
        )
        campaign_id = store.create(self.sessions, spec, "bench")
        rows: list[dict[str, Any]] = [
            {
                "campaign_id": campaign_id,
                "number": f"+1202{n:07d}",
                "reason": "",
                "source": "import",
                "status": "pending",
                "attempts": 0,
            }
            for n in range(CONTACTS)
        ]
        with self.sessions.begin() as db:
            db.execute(insert(Contact), rows)
        return campaign_id


async def dial_until(dialer: Dialer, placer: Simulated, attempts: int, seconds: float) -> None:
    began = time.monotonic()
    while len(placer.starts) < attempts and time.monotonic() - began < seconds:
        await dialer.round()
        await asyncio.sleep(0.01)  # the dialer's poll, short: rounds back to back
    await dialer.drain()


def overhead(kind: str, folder: str) -> tuple[float, float]:
    """(CPU ms per attempt, wall ms per attempt) at 100 calls/s."""
    db = Database(kind, folder)
    try:
        db.campaign(100, 200)
        placer = Simulated()
        dialer = Dialer(db.sessions, CallLog(db.sessions), placer, "bench", clock=lambda: NOW)
        cpu, wall = time.process_time(), time.monotonic()
        asyncio.run(dial_until(dialer, placer, ATTEMPTS, 120))
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        return cpu * 1000 / len(placer.starts), wall * 1000 / len(placer.starts)
    finally:
        db.drop()


def busiest_second(kind: str, folder: str, cps: float = 20, seconds: float = 15) -> int:
    db = Database(kind, folder)
    try:
        db.campaign(cps, 200)
        placer = Simulated()
        dialer = Dialer(db.sessions, CallLog(db.sessions), placer, "bench", clock=lambda: NOW)
        asyncio.run(dial_until(dialer, placer, CONTACTS, seconds))
        starts = placer.starts
        return max(sum(1 for s in starts[i:] if s < first + 1) for i, first in enumerate(starts))
    finally:
        db.drop()


def run(folder: str = "var/bench") -> None:
    os.makedirs(folder, exist_ok=True)
    print(f"dialer: a campaign of {CONTACTS} contacts, simulated answers")
    for kind in ("sqlite", "postgresql"):
        cpu, wall = overhead(kind, folder)
        most = busiest_second(kind, folder)
        print(f"  {kind}")
        print(f"    dialer CPU per attempt              {cpu:6.2f} ms")
        print(f"    wall per attempt at 100 calls/s     {wall:6.2f} ms (cap: 10 ms)")
        print(f"    ratio CPU / the cap's interval      {cpu / 10:6.2f}")
        print(f"    most starts in one second at 20/s   {most:6d} (cap held: {most <= 20})")


if __name__ == "__main__":
    run()
