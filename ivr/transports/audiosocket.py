"""AudioSocket: the caller's audio from Asterisk, for speech recognition.

FastAGI carries no audio, so a menu that listens for words runs
``EXEC AudioSocket <uuid>,<host>:<port>`` from its AGI session. Asterisk then opens a
TCP connection here and sends frames: one byte of kind, two bytes of big-endian
length, the payload. The first frame names the stream (its uuid); audio is signed
linear 16-bit, 8 kHz, mono; a key pressed arrives as a DTMF frame. Audio we send back
on the same socket is played to the caller. When we close the socket, Asterisk's
AudioSocket application returns and the AGI session goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import uuid
from dataclasses import dataclass

log = logging.getLogger("ivr.audiosocket")

HANGUP, UUID, DTMF, AUDIO, ERROR = 0x00, 0x01, 0x03, 0x10, 0xFF
FRAME_BYTES = 320  # 20 ms of 8 kHz 16-bit audio
FRAME_SECONDS = 0.02
LEAD_SECONDS = 0.06  # how far ahead of real time we send prompt audio
SILENCE = bytes(FRAME_BYTES)
HELLO_TIMEOUT = 5.0  # seconds for Asterisk to name the stream once connected


@dataclass(frozen=True)
class Frame:
    kind: int
    payload: bytes


def encode(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BH", kind, len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> Frame | None:
    """The next frame, or None when the peer closed the connection (or cut a frame short)."""
    try:
        kind, length = struct.unpack(">BH", await reader.readexactly(3))
        return Frame(kind, await reader.readexactly(length) if length else b"")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


class AudioStream:
    """One call's AudioSocket connection, once Asterisk has named it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.closed = asyncio.Event()

    async def speak(self, pcm: bytes, barge: asyncio.Event, played: asyncio.Event) -> None:
        """Send `pcm` at the pace it plays (a little ahead), then silence until the stream
        closes: Asterisk's AudioSocket gives up after 2 s without a frame from us. The
        prompt stops at once when `barge` is set (the caller started speaking); `played`
        is set when the prompt has played out or stopped."""
        loop = asyncio.get_running_loop()
        frames = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]
        ends = loop.time() + len(frames) * FRAME_SECONDS  # when the prompt has played out
        next_at = loop.time() - LEAD_SECONDS
        sent = 0
        while not self.closed.is_set():
            prompting = sent < len(frames) and not barge.is_set()
            if not prompting and (barge.is_set() or loop.time() >= ends):
                played.set()
            if next_at > loop.time():
                # Sleep until the next frame is due; a barge-in during the prompt wakes us.
                await _stopped(barge if prompting else self.closed, next_at - loop.time())
                continue
            chunk = frames[sent].ljust(FRAME_BYTES, b"\0") if prompting else SILENCE
            try:
                self.writer.write(encode(AUDIO, chunk))
                await self.writer.drain()
            except ConnectionError:
                return
            sent += 1
            next_at += FRAME_SECONDS

    def close(self) -> None:
        """Hand the call back to the AGI session."""
        if not self.closed.is_set():
            self.closed.set()
            self.writer.close()


class AudioSocketServer:
    """Accepts Asterisk's AudioSocket connections and hands each to the listen that
    announced its uuid with `expect`; connections nobody expects are closed."""

    def __init__(self, host: str, port: int, allow: list[str]) -> None:
        self.host = host
        self.port = port
        self.allow = set(allow)
        self.waiting: dict[uuid.UUID, asyncio.Future[AudioStream]] = {}
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def address(self) -> str:
        """host:port as AudioSocket() wants it."""
        return f"{self.host}:{self.port}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def expect(self, stream_id: uuid.UUID) -> asyncio.Future[AudioStream]:
        future: asyncio.Future[AudioStream] = asyncio.get_running_loop().create_future()
        self.waiting[stream_id] = future
        return future

    def forget(self, stream_id: uuid.UUID) -> None:
        self.waiting.pop(stream_id, None)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if peer is None or peer[0] not in self.allow:
            log.warning("audiosocket peer refused", extra={"peer": str(peer)})
            writer.close()
            return
        try:
            hello = await asyncio.wait_for(read_frame(reader), HELLO_TIMEOUT)
        except TimeoutError:
            hello = None
        stream_id = uuid.UUID(bytes=hello.payload) if _is_hello(hello) else None
        future = self.waiting.pop(stream_id, None) if stream_id else None
        if future is None or future.done():
            log.warning("audiosocket stream nobody expects", extra={"stream": str(stream_id)})
            writer.close()
            return
        stream = AudioStream(reader, writer)
        future.set_result(stream)
        await stream.closed.wait()


async def _stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds`; whether `stop` was set."""
    if seconds > 0 and not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


def _is_hello(frame: Frame | None) -> bool:
    return frame is not None and frame.kind == UUID and len(frame.payload) == 16
