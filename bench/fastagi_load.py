"""FastAGI under load: per-command overhead at 100 sessions, and 1,000 sessions held at once.

Asterisk's side is played by bench/fastagi_caller.py in a separate process, over real
TCP sockets on 127.0.0.1: each session sends the ``agi_*`` header block and answers
every command line with ``200 result=0``. Two servers share this process's event loop:

A  our ``FastAgiServer``, whose handler sends K commands through ``AgiRequest.send``;
B  a bare ``asyncio.start_server`` that reads the header with ``readuntil(b"\\n\\n")``
   and sends the same K commands with ``writer.write`` + ``reader.readline()``.

Each handler times every command with ``time.perf_counter`` around the send, so the
latency is the server's own (a command's round trip while the other sessions run).
Rounds alternate A and B at the same concurrency; we take the median command of each
round and the median over rounds. Then 1,000 sessions are opened at once against A,
each held by ``WAIT FOR DIGIT``, which the caller answers only once all 1,000 have
received theirs; the handlers count how many run at the same time.

Where two CPUs are allowed, the servers run on one and the caller on the other, so
that neither waits for the other's CPU. Both processes first free a 1 MiB block (see
``settle_malloc``): in a fresh process every socket read mmapped its buffer, and the
ratio came out 1.8 or 2.7 depending on what had run before in the process.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.fastagi_caller import raise_open_files, settle_malloc
from ivr.transports.fastagi import AgiRequest, FastAgiServer

SESSIONS = 100
COMMANDS = 20  # K per session
COMMAND = "GET VARIABLE X"
ROUNDS = 15
HELD = 1000
OPEN_FILES = 4 * HELD  # sockets, with room for the loop's own descriptors
CALLER = Path(__file__).with_name("fastagi_caller.py")


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    completed: int = 0
    active: int = 0
    peak: int = 0

    def enter(self) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)

    def leave(self) -> None:
        self.active -= 1


class Servers:
    """A (ours) and B (bare asyncio), each with the stats of its current job."""

    def __init__(self) -> None:
        self.stats = {"A": Stats(), "B": Stats()}
        self.hold = False

    async def ours(self, request: AgiRequest) -> None:
        stats = self.stats["A"]
        stats.enter()
        try:
            if self.hold:
                await request.send("WAIT FOR DIGIT 5000")
            else:
                for _ in range(COMMANDS):
                    start = time.perf_counter()
                    await request.send(COMMAND)
                    stats.latencies.append(time.perf_counter() - start)
            stats.completed += 1
        finally:
            stats.leave()

    async def bare(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats = self.stats["B"]
        stats.enter()
        try:
            await reader.readuntil(b"\n\n")
            line = (COMMAND + "\n").encode()
            for _ in range(COMMANDS):
                start = time.perf_counter()
                writer.write(line)
                await reader.readline()
                stats.latencies.append(time.perf_counter() - start)
            stats.completed += 1
        finally:
            stats.leave()
            writer.close()


class Caller:
    """The load generator process: one job line in, one JSON line out."""

    def __init__(self, cpu: int | None) -> None:
        self.cpu = cpu

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CALLER),
            str(OPEN_FILES),
            *([] if self.cpu is None else [str(self.cpu)]),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdin and self.proc.stdout
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        ready = (await self.stdout.readline()).split()
        assert ready and ready[0] == b"ready", ready

    async def job(self, mode: str, port: int, sessions: int) -> dict[str, object]:
        self.stdin.write(f"{mode} {port} {sessions}\n".encode())
        await self.stdin.drain()
        return json.loads(await self.stdout.readline())

    async def stop(self) -> None:
        self.stdin.close()
        await self.proc.wait()


def listen_overflows() -> int | None:
    """The kernel's count of connections dropped for a full accept queue (TcpExt)."""
    try:
        lines = [x.split() for x in Path("/proc/net/netstat").read_text().splitlines()]
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names[0] == "TcpExt:" and "ListenOverflows" in names:
            return int(values[names.index("ListenOverflows")])
    return None


def check_job(name: str, stats: Stats, done: dict[str, object], sessions: int) -> None:
    assert not done["errors"], f"{name}: {done['errors']}"
    assert done["completed"] == sessions, f"{name}: caller completed {done['completed']}"
    assert stats.completed == sessions, f"{name}: server completed {stats.completed}"


async def main(caller_cpu: int | None) -> dict[str, object]:
    servers = Servers()
    ours = FastAgiServer(servers.ours, "127.0.0.1", 0, ["127.0.0.1"], command_timeout=60)
    await ours.start()
    bare = await asyncio.start_server(servers.bare, "127.0.0.1", 0)
    ports = {"A": ours.port, "B": bare.sockets[0].getsockname()[1]}
    caller = Caller(caller_cpu)
    await caller.start()
    medians: dict[str, list[float]] = {"A": [], "B": []}
    cpus: dict[str, list[float]] = {"A": [], "B": []}  # this process's CPU per command
    try:
        for r in range(ROUNDS):
            for name in "AB" if r % 2 == 0 else "BA":
                servers.stats[name] = stats = Stats()
                cpu = time.process_time()
                done = await caller.job("load", ports[name], SESSIONS)
                cpus[name].append((time.process_time() - cpu) / (SESSIONS * COMMANDS))
                check_job(name, stats, done, SESSIONS)
                assert done["commands"] == SESSIONS * COMMANDS, done
                assert len(stats.latencies) == SESSIONS * COMMANDS
                medians[name].append(statistics.median(stats.latencies))
        servers.hold = True
        servers.stats["A"] = held = Stats()
        overflows = listen_overflows()
        done = await caller.job("hold", ports["A"], HELD)
        after = listen_overflows()
        done["overflows"] = None if overflows is None or after is None else after - overflows
        check_job("held", held, done, HELD)
        assert done["waiting"] == HELD and held.peak == HELD, (done, held.peak)
    finally:
        await caller.stop()
        await ours.stop(drain=5)
        bare.close()
        await bare.wait_closed()
    return {"medians": medians, "cpus": cpus, "peak": held.peak, "held": done}


def run() -> None:
    raise_open_files(OPEN_FILES)
    settle_malloc()
    allowed = sorted(os.sched_getaffinity(0))
    pinned = len(allowed) >= 2
    if pinned:
        os.sched_setaffinity(0, {allowed[0]})
    try:
        found = asyncio.run(main(allowed[1] if pinned else None))
    finally:
        os.sched_setaffinity(0, allowed)
    medians, cpus, held = found["medians"], found["cpus"], found["held"]
    a, b = (statistics.median(medians[k]) * 1e6 for k in "AB")
    ca, cb = (statistics.median(cpus[k]) * 1e6 for k in "AB")
    ratios = [x / y for x, y in zip(medians["A"], medians["B"], strict=True)]
    met = "met" if a / b <= 1.5 else "NOT met"
    print(
        f"fastagi_load: {SESSIONS} sessions x {COMMANDS} commands, {ROUNDS} alternating rounds"
        + (f"; servers on CPU {allowed[0]}, caller on CPU {allowed[1]}" if pinned else "")
    )
    print(f"  A our FastAgiServer, AgiRequest.send   {a:6.0f} us/command (median latency)")
    print(f"  B bare asyncio, write + readline       {b:6.0f} us/command (median latency)")
    print(f"  ratio A/B                              {a / b:6.2f} (goal <= 1.5: {met})")
    print(f"    per-round ratios                     {min(ratios):.2f} to {max(ratios):.2f}")
    print(f"  server CPU per command A / B           {ca:.1f} / {cb:.1f} us = {ca / cb:.2f}")
    print(
        f"  held at once on A                      {found['peak']} sessions "
        f"(goal >= {HELD}: {'met' if found['peak'] >= HELD else 'NOT met'}); "
        f"all waiting after {held['all_waiting_after']:.2f} s, all done after "
        f"{held['seconds']:.2f} s"
    )
    if held["overflows"] is not None:
        print(
            f"    accept-queue overflows meanwhile     {held['overflows']} "
            "(each a SYN the caller re-sends after 1 s)"
        )
