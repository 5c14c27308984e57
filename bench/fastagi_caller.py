"""Asterisk's side of FastAGI, for bench/fastagi_load.py: run in its own process.

Reads jobs from stdin, one a line, and prints one JSON line for each:

``load PORT N``  N sessions at once; each sends the header block, answers every
                 command line with ``200 result=0`` until the server closes.
``hold PORT N``  the same, but ``WAIT FOR DIGIT`` is answered only once all N
                 sessions have received theirs, that is, are being served at once.

Arguments: the open-files limit to raise to, and optionally a CPU to run on. It prints
``ready`` first, once both are set.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time

HEADER = (
    b"agi_network: yes\n"
    b"agi_network_script: inbound\n"
    b"agi_request: agi://127.0.0.1/inbound\n"
    b"agi_channel: Local/x\n"
    b"agi_arg_1: 5551001\n"
    b"\n"
)
ANSWER = b"200 result=0\n"
JOB_TIMEOUT = 60


def raise_open_files(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (at most the hard limit); the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def settle_malloc() -> None:
    """Free one 1 MiB block, so that glibc raises its mmap threshold past 256 KiB.

    asyncio reads a socket with ``recv(256 KiB)``. Until glibc has freed a block that
    big, each such buffer is mmapped and unmapped again: page faults on every read,
    which doubled the cost of a command in a fresh process (and not in one that had
    run anything sizeable before). ``ivr serve`` was past this point in asterisk_cost
    (about 8 page faults a call, all told).
    """
    block = bytearray(1 << 20)
    del block


class Job:
    def __init__(self, sessions: int) -> None:
        self.sessions = sessions
        self.waiting = 0
        self.all_waiting = asyncio.Event()
        self.all_waiting_at = 0.0
        self.commands = 0
        self.completed = 0


async def session(port: int, job: Job, hold: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HEADER)
    while line := await reader.readline():
        if hold and line.startswith(b"WAIT FOR DIGIT"):
            job.waiting += 1
            if job.waiting == job.sessions:
                job.all_waiting_at = time.perf_counter()
                job.all_waiting.set()
            await job.all_waiting.wait()
        writer.write(ANSWER)
        job.commands += 1
    writer.close()
    job.completed += 1


async def run_job(port: int, sessions: int, hold: bool) -> dict[str, object]:
    job = Job(sessions)
    start = time.perf_counter()
    errors: list[str] = []
    try:
        async with asyncio.timeout(JOB_TIMEOUT):
            results = await asyncio.gather(
                *(session(port, job, hold) for _ in range(sessions)), return_exceptions=True
            )
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
    except TimeoutError:
        errors = [f"timed out after {JOB_TIMEOUT} s"]
    return {
        "sessions": sessions,
        "completed": job.completed,
        "commands": job.commands,
        "waiting": job.waiting,
        "all_waiting_after": job.all_waiting_at - start if job.all_waiting_at else None,
        "seconds": time.perf_counter() - start,
        "errors": errors[:5],
    }


async def main() -> None:
    loop = asyncio.get_running_loop()
    if len(sys.argv) > 2:
        os.sched_setaffinity(0, {int(sys.argv[2])})
    settle_malloc()
    print("ready", raise_open_files(int(sys.argv[1]) if len(sys.argv) > 1 else 4096), flush=True)
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        mode, port, sessions = line.split()
        result = await run_job(int(port), int(sessions), hold=mode == "hold")
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
