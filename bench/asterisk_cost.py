"""CPU per call on the real Asterisk 22 sandbox: our IVR against the same menu in dialplan.

Simulated callers are originated through AMI into DID 5551001 (the shipped
``front_desk`` menu), one every INTERVAL seconds, CALLS to a batch; each presses 1
(sales queue) WAIT seconds after the answer and stays HOLD seconds in the queue:

IVR     context ``ivr-inbound``: Asterisk runs the flow over FastAGI against a real
        ``ivr serve`` process; cost = Asterisk's CPU + the service's CPU.
native  context ``bench-native-menu``: the same menu in dialplan (``Background``,
        ``WaitExten``); cost = Asterisk's CPU.
idle    no calls, for as long as the two batches of the round took on average: the
        CPU both processes burn anyway, subtracted from the batches as a rate.

CPU is utime + stime from ``/proc/<pid>/stat``, read once AMI has reported the hang-up
of both halves of every call of the batch; each callee half must have hung up in the
queue (``ivr-route``, ``queue``). Rounds alternate the order of the two kinds; we take
the medians.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from cti.ami.originate import ami_session, simulated_call_action
from ivr.config import AmiSettings
from tests.support.service import REPO, ServiceProcess

SANDBOX = REPO / "docker" / "asterisk" / "sandbox"
DID = "5551001"
KEY = "1"
CALLS = 40
INTERVAL = 0.1  # seconds between two calls of a batch
WAIT = 1  # seconds before the caller presses KEY
HOLD = 3  # seconds in the queue
ROUNDS = 3
WARM_UP = 2  # IVR calls before the rounds (the service's first call; the sounds)
IVR_CONTEXT = "ivr-inbound"
NATIVE = "bench-native-menu"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of stat(5)


def sandbox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SANDBOX, *args], capture_output=True, text=True, timeout=600)


def asterisk_ready() -> tuple[int, AmiSettings] | str:
    """The sandbox's Asterisk pid and AMI settings, or why it cannot run."""
    check = sandbox("check")
    if check.returncode != 0:
        return f"this machine cannot host the Asterisk sandbox: {check.stdout.strip()}"
    started = sandbox("start")
    if started.returncode != 0:
        return f"the sandbox did not start: {started.stderr.strip()[-300:]}"
    status = re.match(r"running \(pid (\d+)\)", sandbox("status").stdout)
    if not status:
        return "sandbox status did not say it runs"
    secret = Path(sandbox("secret-file").stdout.strip()).read_text().strip()
    return int(status[1]), AmiSettings(secret=SecretStr(secret))


def start_service(workdir: Path) -> ServiceProcess:
    """`ivr serve` on free ports with its own SQLite database, AMI off: the IVR alone."""
    return ServiceProcess(workdir, {"IVR_AMI__ENABLED": "false"}).start()


class Calls:
    """What AMI says about channels: who hung up where, and every channel created."""

    def __init__(self, manager: Any) -> None:
        self.ours: set[str] = set()  # Linkedid of our calls
        self.hangups: dict[str, list[dict[str, str]]] = {}  # by Linkedid
        self.created: list[str] = []  # Linkedid of every new channel, ours or not
        manager.register_event("Hangup", self._hangup)
        manager.register_event("Newchannel", self._created)

    def _hangup(self, _manager: Any, event: Any) -> None:
        self.hangups.setdefault(event.get("Linkedid", ""), []).append(dict(event))

    def _created(self, _manager: Any, event: Any) -> None:
        self.created.append(event.get("Linkedid", ""))


async def batch(
    manager: Any, calls: Calls, context: str, agi_server: str | None, count: int
) -> None:
    """`count` simulated callers into `context`; returns once all have hung up."""
    answers = []
    for i in range(count):
        action = simulated_call_action(
            DID,
            press=KEY,
            hold=HOLD,
            wait=WAIT,
            caller_id=f"+1415555{8000 + i}",
            agi_server=agi_server,
            context=context,
        )
        answers.append(manager.send_action(action))
        await asyncio.sleep(INTERVAL)
    ours: set[str] = set()
    for messages in await asyncio.gather(*answers):
        final = messages[-1] if isinstance(messages, list) else messages
        assert final.get("Response") == "Success", dict(final)
        ours.add(final["Uniqueid"])  # of the ;1 half: the Linkedid of both halves
    await asyncio.sleep(WAIT + HOLD)
    async with asyncio.timeout(30):
        while any(len(calls.hangups.get(call, ())) < 2 for call in ours):
            await asyncio.sleep(0.1)
    for call in ours:
        callee = next(e for e in calls.hangups.pop(call) if e["Channel"].endswith(";2"))
        where = (callee["Context"], callee["Exten"])
        assert where == ("ivr-route", "queue"), f"{context}: a caller hung up in {where}"
    calls.ours |= ours


class Meter:
    """CPU seconds of some processes over a stretch of wall time."""

    def __init__(self, *pids: int) -> None:
        self.pids = pids

    def __enter__(self) -> Meter:
        self.start = [cpu_seconds(p) for p in self.pids], time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        cpu, wall = [cpu_seconds(p) for p in self.pids], time.perf_counter()
        self.cpu = [b - a for a, b in zip(self.start[0], cpu, strict=True)]
        self.wall = wall - self.start[1]


async def measure(
    asterisk: int, ami: AmiSettings, service: ServiceProcess
) -> dict[str, list[float]]:
    """Per round: CPU seconds per call of each kind (idle subtracted), and more."""
    assert service.proc is not None
    both = (asterisk, service.proc.pid)
    kinds = {
        "ivr": (IVR_CONTEXT, service.agi_server),
        "native": (NATIVE, None),
    }
    found: dict[str, list[float]] = {}
    async with ami_session(ami, events="call") as manager:
        calls = Calls(manager)
        await batch(manager, calls, *kinds["ivr"], WARM_UP)
        first = len(calls.created)
        for r in range(ROUNDS):
            seen: dict[str, Meter] = {}
            for kind in ("ivr", "native") if r % 2 == 0 else ("native", "ivr"):
                with Meter(*both) as seen[kind]:
                    await batch(manager, calls, *kinds[kind], CALLS)
            with Meter(*both) as idle:
                await asyncio.sleep((seen["ivr"].wall + seen["native"].wall) / 2)
            rate = [c / idle.wall for c in idle.cpu]  # CPU seconds a second, each process
            net = {
                k: [c - x * m.wall for c, x in zip(m.cpu, rate, strict=True)]
                for k, m in seen.items()
            }
            for name, value in (
                ("ivr", sum(net["ivr"]) / CALLS),
                ("ivr_asterisk", net["ivr"][0] / CALLS),
                ("ivr_service", net["ivr"][1] / CALLS),
                ("native", net["native"][0] / CALLS),
                ("idle_asterisk", rate[0]),
                ("idle_service", rate[1]),
                ("wall_ivr", seen["ivr"].wall),
                ("wall_native", seen["native"].wall),
            ):
                found.setdefault(name, []).append(value)
        # Someone else's calls on the same sandbox would count as Asterisk's CPU.
        found["others"] = [sum(1 for x in calls.created[first:] if x not in calls.ours)]
    return found


def run() -> None:
    ready = asterisk_ready()
    if isinstance(ready, str):
        print(f"asterisk_cost: skipped, {ready}")
        return
    asterisk, ami = ready
    with tempfile.TemporaryDirectory(prefix="bench-asterisk-") as tmp:
        service = start_service(Path(tmp))
        try:
            found = asyncio.run(measure(asterisk, ami, service))
        finally:
            code = service.stop()
        assert code == 0, f"ivr serve exited with {code}:\n{service.log()}"
    med = {k: statistics.median(v) for k, v in found.items()}
    ivr, native = med["ivr"] * 1000, med["native"] * 1000
    print(
        f"asterisk_cost: {CALLS} calls a batch, one every {INTERVAL} s, each pressing {KEY} "
        f"after {WAIT} s and staying {HOLD} s in the queue; {ROUNDS} alternating rounds"
    )
    print(f"  IVR (Asterisk + ivr serve)   {ivr:6.1f} ms CPU per call")
    print(f"    Asterisk                   {med['ivr_asterisk'] * 1000:6.1f} ms")
    print(f"    ivr serve                  {med['ivr_service'] * 1000:6.1f} ms")
    print(f"  native dialplan (Asterisk)   {native:6.1f} ms CPU per call")
    print(
        f"  ratio IVR/native             {ivr / native:6.2f} "
        f"(goal <= 1.5: {'met' if ivr / native <= 1.5 else 'NOT met'})"
    )
    print(f"    per-round ratios             {ratio_range(found)}")
    print(
        f"  idle, subtracted             Asterisk {med['idle_asterisk'] * 1000:.1f}, "
        f"ivr serve {med['idle_service'] * 1000:.1f} ms CPU a second; batches "
        f"{med['wall_ivr']:.1f} s (IVR), {med['wall_native']:.1f} s (native)"
    )
    others = sum(found["others"])
    print(
        f"  other calls' channels        {others:.0f} during the rounds"
        + ("  WARNING: their CPU counts as Asterisk's" if others else "")
    )


def ratio_range(found: dict[str, list[float]]) -> str:
    ratios = [i / n for i, n in zip(found["ivr"], found["native"], strict=True)]
    return f"{min(ratios):.2f} to {max(ratios):.2f}"
