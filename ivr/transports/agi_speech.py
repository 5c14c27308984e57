"""Listening for words on a live AGI call: AudioSocket audio into a recogniser process.

The AGI session runs ``EXEC AudioSocket <uuid>,<host:port>``, which holds the call
until we close the socket. Meanwhile we stream the prompt to the caller over that
socket, stop it the moment speech starts (barge-in), pass the caller's audio to a
recogniser, and take a key pressed instead. Anything that goes wrong comes back as
``Result("error", ...)``: the engine then falls back to keys with the keys-only
prompt, so the caller never waits in silence.
"""

from __future__ import annotations

import asyncio
import uuid
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path

from ivr.flows.actions import Listen, Recording, Result
from ivr.prompts import STOCK_PREFIX
from ivr.speech.recognizer import SpeechError
from ivr.speech.workers import Listening, SpeechWorkers
from ivr.transports.audiosocket import (
    AUDIO,
    DTMF,
    ERROR,
    HANGUP,
    AudioSocketServer,
    AudioStream,
    read_frame,
)
from ivr.transports.fastagi import AgiRequest, CallerHungUp, alive

CONNECT_TIMEOUT = 5.0  # seconds for Asterisk to open the AudioSocket connection
MAX_SPEECH = 10.0  # seconds of talking before we take what was heard
GAP_SECONDS = 0.1  # no frame from Asterisk this long: fed to the recogniser as silence
GAP_SILENCE = bytes(int(8000 * 2 * GAP_SECONDS))
FINAL_WAIT = 2.0  # seconds for the recogniser's result after we asked for it


class SpeechListener:
    def __init__(self, server: AudioSocketServer, workers: SpeechWorkers, prompts: Path) -> None:
        self.server = server
        self.workers = workers
        self.prompts = prompts
        self.audio: dict[Path, tuple[float, bytes]] = {}  # prompt file -> (mtime, pcm)

    def prompt_audio(self, action: Listen) -> bytes | None:
        """The prompt as 8 kHz PCM when every part is one of our recordings; else None,
        and the prompt is played through AGI before listening."""
        pcm = b""
        for part in action.parts:
            if not isinstance(part, Recording) or part.name.startswith(STOCK_PREFIX):
                return None
            path = self.prompts / action.language / f"{part.name}.wav"
            try:
                mtime = path.stat().st_mtime
                if self.audio.get(path, (None,))[0] != mtime:
                    self.audio[path] = (mtime, read_pcm(path))
            except (OSError, wave.Error, ValueError):
                return None
            pcm += self.audio[path][1]
        return pcm

    async def listen(
        self,
        request: AgiRequest,
        action: Listen,
        play: Callable[[], Awaitable[str]],
    ) -> Result:
        """Listen for one of `action.phrases` or a key. `play` plays the prompt over AGI
        (and returns the key that interrupted it) when it cannot be streamed."""
        pcm = self.prompt_audio(action)
        if pcm is None:
            key = await play()
            if key:
                return Result("input", "dtmf", key)
            pcm = b""
        sid = uuid.uuid4()
        try:
            listening = self.workers.open(str(sid), action.phrases, action.language)
        except SpeechError as exc:
            return Result("error", "speech", str(exc))
        connected = self.server.expect(sid)
        command = f"EXEC AudioSocket {sid},{self.server.address}"
        running = asyncio.create_task(request.send(command, timeout=action.timeout + 120))
        try:
            done, _ = await asyncio.wait(
                {connected, running}, timeout=CONNECT_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
            if connected not in done:
                if running.done() and not await alive(request):
                    raise CallerHungUp("hung up before listening")
                return Result("error", "speech", "AudioSocket did not connect")
            stream = connected.result()
            try:
                return await self._converse(stream, listening, pcm, action)
            finally:
                stream.close()
        finally:
            self.server.forget(sid)
            listening.close()
            try:
                await running  # AudioSocket returns once the socket is closed
            except CallerHungUp:
                raise
            except Exception:
                if not await alive(request):
                    raise CallerHungUp("hung up while listening") from None

    async def _converse(
        self, stream: AudioStream, listening: Listening, pcm: bytes, action: Listen
    ) -> Result:
        """Prompt, caller audio and recogniser events until a result. Time limits: the
        menu's timeout once the prompt ends with nobody talking (no input); MAX_SPEECH
        of talking, then we ask for the result; FINAL_WAIT for it, else an error."""
        barge, played = asyncio.Event(), asyncio.Event()
        speaking = asyncio.create_task(stream.speak(pcm, barge, played))
        pumping = asyncio.create_task(_pump(stream, listening))
        prompt_over = asyncio.create_task(played.wait())
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        finishing = False
        try:
            while True:
                if deadline is None and played.is_set() and not barge.is_set():
                    deadline = loop.time() + action.timeout
                waiting = asyncio.create_task(listening.events.get())
                tasks = {waiting, pumping} | (set() if prompt_over.done() else {prompt_over})
                timeout = None if deadline is None else max(0.0, deadline - loop.time())
                done, _ = await asyncio.wait(
                    tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if waiting not in done:
                    waiting.cancel()
                if pumping in done:
                    key = pumping.result()
                    if key is None:
                        raise CallerHungUp("hung up while listening")
                    return Result("input", "dtmf", key)
                if waiting in done:
                    event = waiting.result()
                    if event[0] == "started" and not barge.is_set():
                        barge.set()
                        deadline = loop.time() + MAX_SPEECH
                    elif event[0] == "final":
                        text, confidence, latency = event[1:]
                        return Result("input", "speech", text, confidence, latency)
                    elif event[0] == "error":
                        return Result("error", "speech", event[1])
                elif not done:  # a time limit
                    if not barge.is_set():
                        return Result("noinput", "speech")
                    if finishing:
                        return Result("error", "speech", "the recogniser gave no result")
                    listening.finish()
                    finishing, deadline = True, loop.time() + FINAL_WAIT
        finally:
            for task in (speaking, pumping, prompt_over):
                task.cancel()


async def _pump(stream: AudioStream, listening: Listening) -> str | None:
    """Caller audio to the recogniser until a key (returned) or the end of the stream (None).

    A channel sends no frames while nobody talks on it (a Local channel in Wait(), a
    phone with silence suppression), so a gap counts as silence: without it, the
    endpointer's clock would stop and the caller's words would never end."""
    pending = asyncio.create_task(read_frame(stream.reader))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=GAP_SECONDS)
            if not done:
                listening.audio(GAP_SILENCE)
                continue
            frame = pending.result()
            if frame is None or frame.kind in (HANGUP, ERROR):
                return None
            if frame.kind == AUDIO:
                listening.audio(frame.payload)
            elif frame.kind == DTMF and frame.payload:
                return frame.payload[:1].decode("ascii", "replace")
            pending = asyncio.create_task(read_frame(stream.reader))
    finally:
        pending.cancel()


def read_pcm(path: Path) -> bytes:
    """8 kHz 16-bit mono PCM of a WAV prompt (what `ivr prompts build` writes)."""
    with wave.open(str(path)) as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (8000, 1, 2):
            raise ValueError(f"{path}: not 8 kHz 16-bit mono")
        return wav.readframes(wav.getnframes())
