"""FastAGI server on panoramisk, with the gaps of panoramisk 1.4 closed.

panoramisk's `Request` carries the commands; this module adds what it lacks:
a bounded, timed header read that stops at end-of-file, a timeout on every
command, the ``HANGUP`` notification line kept from shifting command results,
a peer allow-list, and a drain of calls in progress on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from panoramisk.fast_agi import Request

log = logging.getLogger("ivr.fastagi")

HEADER_TIMEOUT = 5.0
HEADER_LIMIT = 16 * 1024
WATCH_INTERVAL = 0.25  # seconds between checks of the commands in flight
LISTEN_BACKLOG = 1024  # a burst of calls must not overflow the listen queue (asyncio's is 100)


class AgiError(Exception):
    """An AGI command failed or the session broke."""


class CallerHungUp(AgiError):
    """The channel is gone: HANGUP notice, 511 dead channel, or the socket closed."""


@dataclass(frozen=True)
class AgiResult:
    code: int
    result: str
    data: str
    line: str

    @property
    def value(self) -> int:
        try:
            return int(self.result)
        except ValueError:
            return 0


class AgiRequest(Request):
    """One FastAGI session's command channel."""

    def __init__(
        self,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        command_timeout: float,
    ) -> None:
        super().__init__(app=None, headers=headers, reader=reader, writer=writer)
        self.command_timeout = command_timeout
        self.hangup_notified = False
        # When the command in flight times out (event-loop time). The server's watchdog
        # closes the session past it: cheaper than a timer per command.
        self.deadline: float | None = None
        self.timed_out = False

    async def send(self, command: str, timeout: float | None = None) -> AgiResult:
        """Send one command and return its final result (after any ``100 Trying``)."""
        self.deadline = asyncio.get_running_loop().time() + (timeout or self.command_timeout)
        try:
            self.writer.write((command + "\n").encode(self.encoding))
            await self.writer.drain()
            return await self._result(command)
        except (ConnectionError, asyncio.IncompleteReadError):
            raise self._gone(command) from None
        finally:
            self.deadline = None

    def _gone(self, command: str) -> AgiError:
        if self.timed_out:
            return AgiError(f"{command.split()[0]} timed out")
        return CallerHungUp("socket closed")

    def expire(self) -> None:
        """Called by the watchdog when the command in flight has run out of time."""
        self.timed_out = True
        self.writer.close()

    async def _result(self, command: str) -> AgiResult:
        while True:
            raw = await self.reader.readline()
            if not raw:
                raise self._gone(command)
            line = raw.decode(self.encoding, "replace").rstrip("\r\n")
            if line == "HANGUP":
                # Asynchronous notice; the command's own result line still follows.
                self.hangup_notified = True
                continue
            code = int(line[:3]) if line[:3].isdigit() else 0
            if code == 100:
                continue
            if code == 511:
                raise CallerHungUp("dead channel")
            if code == 520:
                await self._skip_usage()
                raise AgiError(f"usage error for {command.split()[0]}")
            if code != 200:
                raise AgiError(f"{command.split()[0]} failed: {line}")
            value, data = self._fields(line)
            return AgiResult(code, value, data, line)

    @staticmethod
    def _fields(line: str) -> tuple[str, str]:
        """``200 result=49 (timeout)`` -> ("49", "timeout")."""
        rest = line[4:]
        if not rest.startswith("result="):
            return "", ""
        value, _, tail = rest[len("result=") :].partition(" ")
        data = tail[tail.find("(") + 1 : tail.rfind(")")] if "(" in tail else tail
        return value, data

    async def _skip_usage(self) -> None:
        while True:
            raw = await self.reader.readline()
            if not raw or raw.startswith(b"520 End"):
                return


async def alive(request: AgiRequest) -> bool:
    """After an ambiguous -1 result: is the channel still up?

    Asterisk reports a hangup *after* the result of the command the caller hung up in
    (a HANGUP line over FastAGI, SIGHUP for process AGI), so ask once more; a dead
    channel answers 511, which the request raises as CallerHungUp.
    """
    if request.hangup_notified:
        return False
    try:
        await request.send("CHANNEL STATUS", timeout=5)
    except CallerHungUp:
        return False
    return not request.hangup_notified


Handler = Callable[[AgiRequest], Awaitable[None]]


class FastAgiServer:
    """Accepts FastAGI connections and runs `handler` for each call."""

    def __init__(
        self, handler: Handler, host: str, port: int, allow: list[str], command_timeout: float
    ) -> None:
        self.handler = handler
        self.host, self.port = host, port
        self.allow = set(allow)
        self.command_timeout = command_timeout
        self.server: asyncio.Server | None = None
        self.calls: set[asyncio.Task[None]] = set()
        self.requests: set[AgiRequest] = set()
        self.watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(
            self._accept, self.host, self.port, limit=HEADER_LIMIT, backlog=LISTEN_BACKLOG
        )
        self.port = self.server.sockets[0].getsockname()[1]
        self.watchdog = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        """Every AGI command has a timeout: expire the sessions whose command ran over."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            now = loop.time()
            for request in [r for r in self.requests if r.deadline and r.deadline < now]:
                log.warning(
                    "AGI command timed out; session closed",
                    extra={"channel": request.headers.get("agi_channel")},
                )
                request.expire()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.calls.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self.calls.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = (writer.get_extra_info("peername") or ("?",))[0]
        if peer not in self.allow:
            log.warning("FastAGI peer refused: not on the allow-list", extra={"peer": peer})
            return
        headers = await read_headers(reader)
        if headers is None:
            log.warning("FastAGI session dropped: no valid header", extra={"peer": peer})
            return
        request = AgiRequest(headers, reader, writer, self.command_timeout)
        self.requests.add(request)
        try:
            await self.handler(request)
        finally:
            self.requests.discard(request)

    async def stop(self, drain: float) -> None:
        """Refuse new calls, let calls in progress finish for up to `drain` seconds."""
        if self.server is None:
            return
        self.server.close()
        if self.calls:
            log.info("waiting for calls in progress", extra={"calls": len(self.calls)})
            _done, pending = await asyncio.wait(set(self.calls), timeout=drain)
            for task in pending:
                task.cancel()
        if self.watchdog is not None:
            self.watchdog.cancel()
        await self.server.wait_closed()


async def read_headers(reader: asyncio.StreamReader) -> dict[str, str] | None:
    """Read the ``agi_*`` header block; None if it is truncated, oversized or slow."""
    try:
        async with asyncio.timeout(HEADER_TIMEOUT):
            block = await reader.readuntil(b"\n\n")
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    headers = {}
    for line in block.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(": ")
        if sep and name.startswith("agi_"):
            headers[name] = value
    return headers if "agi_network_script" in headers or "agi_request" in headers else None
