"""AGI command round trips: our wrapped AgiRequest against panoramisk's bare Request.

Both talk over the same loopback TCP connection to a responder that answers every
command line with ``200 result=0``, alternating in rounds so that machine noise
hits both alike. The ratio is the cost of the per-command timeout and the HANGUP
handling that we add.
"""

from __future__ import annotations

import asyncio
import time

from panoramisk.fast_agi import Request

from ivr.transports.fastagi import AgiRequest

COMMANDS = 2000
ROUNDS = 5


async def responder(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.readline():
        writer.write(b"200 result=0\n")
        await writer.drain()


async def timed(send, count: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for _ in range(count):
        await send("GET VARIABLE X")
    return time.perf_counter() - start


async def main() -> dict[str, float]:
    server = await asyncio.start_server(responder, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ours = AgiRequest({}, reader, writer, command_timeout=5)
    theirs = Request(app=None, headers={}, reader=reader, writer=writer)
    totals = {"ours": 0.0, "panoramisk": 0.0}
    for _ in range(ROUNDS):
        totals["panoramisk"] += await timed(theirs.send_command, COMMANDS)
        totals["ours"] += await timed(ours.send, COMMANDS)
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return totals


def run() -> None:
    totals = asyncio.run(main())
    per = {k: v / (COMMANDS * ROUNDS) * 1e6 for k, v in totals.items()}
    print(f"agi_commands: {COMMANDS * ROUNDS} commands each over loopback")
    print(f"  panoramisk Request.send_command  {per['panoramisk']:.1f} us/command")
    print(f"  our AgiRequest.send              {per['ours']:.1f} us/command")
    print(f"  ratio ours/panoramisk            {totals['ours'] / totals['panoramisk']:.2f}")
