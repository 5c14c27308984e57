"""Recogniser processes: the service streams caller audio to them and gets results back.

Decoding is CPU work, so it runs in separate processes: it uses every core, never
stalls the event loop that carries the calls, and a recogniser that crashes or is
killed takes no call down with it: its open listens get an error (the menu falls back
to keys) and the process is started again. Each process loads each model once and
shares it among all the utterances it decodes.

Messages over the pipe are tuples. To a worker: ("open", sid, phrases, language),
("audio", sid, pcm), ("finish", sid), ("close", sid). From a worker: ("ready", name),
("fatal", message), and per utterance ("started", sid), ("final", sid, text,
confidence, latency_ms) or ("error", sid, message).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import queue
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from ivr.speech.endpoint import Endpointer
from ivr.speech.recognizer import (
    Backend,
    Hypothesis,
    SpeechError,
    grammar_phrases,
    make_backend,
)

log = logging.getLogger("ivr.speech")

SETTLE_AFTER_MS = 100  # of silence after speech before the recogniser is settled
RESTART_DELAY = 1.0  # seconds before a dead recogniser is started again
READY_TIMEOUT = 120.0  # seconds a new recogniser may take to load its models


class Utterance:
    """One listen inside a worker: recogniser and endpointer fed the same audio."""

    def __init__(self, backend: Backend, phrases: Sequence[str], language: str) -> None:
        self.recognizer = backend.recognizer(phrases, language)
        # No input is the service's call: it counts from the end of the prompt.
        self.endpointer = Endpointer(no_input_ms=10**9)
        self.complete = False  # the latest partial is a whole phrase: end sooner
        self.phrases = set(grammar_phrases(phrases))
        self.started = False
        self.settled = False  # this pause was settled already
        self.settled_at_ms: int | None = None  # audio position of the last settling
        self.settle_ms = 0.0  # wall time spent settling (the benchmark counts it)
        self.decode_ms = 0.0  # wall time of the final decode
        self.spoke_at: float | None = None  # when audio with speech last arrived

    def feed(self, pcm: bytes) -> list[tuple[Any, ...]]:
        """Events this audio causes: ("started",) once, ("final", ...) at the end."""
        events: list[tuple[Any, ...]] = []
        self._heard(self.recognizer.accept(pcm))
        endpointer = self.endpointer
        if endpointer.silence_ms == 0:
            self.settled = False
        elif (
            self.started
            and not self.complete
            and not self.settled
            and endpointer.silence_ms >= SETTLE_AFTER_MS
        ):
            # A pause: make the decoder show what it has, before a short pause could end
            # a whole phrase.
            self.settled, self.settled_at_ms = True, endpointer.position_ms
            began = time.monotonic()
            self._heard(self.recognizer.settle())
            self.settle_ms += (time.monotonic() - began) * 1000
        spoke = endpointer.last_speech_ms
        found = endpointer.feed(pcm, complete=self.complete)
        if endpointer.last_speech_ms != spoke:
            self.spoke_at = time.monotonic()
        for event in found:
            if event == "speech_started" and not self.started:
                self.started = True
                events.append(("started",))
            elif event == "speech_ended":
                events.append(self.final())
        return events

    def _heard(self, partial: Hypothesis | None) -> None:
        """Whether what was heard so far is a whole phrase that nothing longer starts with:
        then a short pause ends it ("order" waits on in a menu that has "order status")."""
        if partial is not None:
            text = partial.text
            self.complete = text in self.phrases and not any(
                p.startswith(text + " ") for p in self.phrases
            )

    def final(self) -> tuple[Any, ...]:
        began = time.monotonic()
        heard = self.recognizer.final()
        self.decode_ms = (time.monotonic() - began) * 1000
        # From the end of speech: audio arrives as it is spoken, so the time since the
        # last speech arrived (the pause waited for, then the decode).
        latency = round((time.monotonic() - self.spoke_at) * 1000) if self.spoke_at else 0
        return ("final", heard.text, heard.confidence, latency)


def serve(conn: Connection, engine: str, models: dict[str, str]) -> None:
    """A worker process's loop (the target of the spawned process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service stops us by closing the pipe
    try:
        backend = make_backend(engine, models)
        backend.load()  # each model now, not on a call
    except Exception as exc:  # any failure to load must reach the service as one line
        conn.send(("fatal", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", backend.name))
    utterances: dict[str, Utterance] = {}
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        kind, sid = message[0], message[1]
        if kind == "open":
            try:
                utterances[sid] = Utterance(backend, message[2], message[3])
            except SpeechError as exc:
                conn.send(("error", sid, str(exc)))
        elif kind == "audio" and sid in utterances:
            for event in utterances[sid].feed(message[2]):
                conn.send((event[0], sid, *event[1:]))
                if event[0] == "final":
                    utterances.pop(sid).recognizer.close()
        elif kind == "finish" and sid in utterances:
            utterance = utterances.pop(sid)
            event = utterance.final()
            utterance.recognizer.close()
            conn.send((event[0], sid, *event[1:]))
        elif kind == "close" and sid in utterances:
            utterances.pop(sid).recognizer.close()


@dataclass
class Listening:
    """The service's side of one utterance: events from the worker arrive on `events`."""

    sid: str
    worker: Worker
    events: asyncio.Queue[tuple[Any, ...]] = field(default_factory=asyncio.Queue)

    def audio(self, pcm: bytes) -> None:
        self.worker.send(("audio", self.sid, pcm))

    def finish(self) -> None:
        """Ask for the result now (the caller's time is up)."""
        self.worker.send(("finish", self.sid))

    def close(self) -> None:
        self.worker.send(("close", self.sid))
        self.worker.listening.pop(self.sid, None)


class Worker:
    """One recogniser process, its pipe, and a thread that writes to it so a busy
    worker never blocks the event loop."""

    def __init__(self, pool: SpeechWorkers, number: int) -> None:
        self.pool = pool
        self.number = number
        self.listening: dict[str, Listening] = {}
        self.ready = asyncio.Event()
        self.outbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        context = multiprocessing.get_context("spawn")  # no fork of a threaded service
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=serve,
            args=(child, pool.engine, pool.models),
            name=f"ivr-speech-{number}",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.alive = True
        asyncio.get_running_loop().add_reader(self.conn.fileno(), self._readable)
        threading.Thread(target=self._write, name=f"ivr-speech-out-{number}", daemon=True).start()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def send(self, message: tuple[Any, ...]) -> None:
        if self.alive:
            self.outbox.put(message)

    def _write(self) -> None:
        while (message := self.outbox.get()) is not None:
            try:
                self.conn.send(message)
            except OSError:
                return

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                self._received(self.conn.recv())
        except (EOFError, OSError):
            self._died()

    def _received(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            log.info(
                "recogniser ready",
                extra={"worker": self.number, "backend": message[1], "pid": self.pid},
            )
            self.ready.set()
        elif kind == "fatal":
            log.error("recogniser cannot start", extra={"worker": self.number, "why": message[1]})
            self.pool.broken = message[1]
        elif (listening := self.listening.get(message[1])) is not None:
            listening.events.put_nowait((kind, *message[2:]))

    def _died(self) -> None:
        if not self.alive:
            return
        self.alive = False
        asyncio.get_running_loop().remove_reader(self.conn.fileno())
        self.outbox.put(None)
        self.conn.close()
        for listening in self.listening.values():
            listening.events.put_nowait(("error", "recogniser process ended"))
        self.listening.clear()
        self.pool.replace(self)  # no join here: it would block the calls' event loop

    def stop(self) -> None:
        self.alive = False
        with contextlib.suppress(RuntimeError, ValueError, OSError):  # loop or pipe gone
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
        self.outbox.put(None)
        self.conn.close()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()


class SpeechWorkers:
    """A fixed number of recogniser processes; each listen goes to the least busy one."""

    def __init__(self, engine: str, models: dict[str, str], count: int) -> None:
        self.engine = engine
        self.models = models
        self.count = count
        self.workers: list[Worker] = []
        self.broken: str | None = None  # why recognisers cannot start, if they cannot
        self.stopping = False

    async def start(self) -> None:
        self.workers = [Worker(self, n) for n in range(self.count)]

    def health(self) -> dict[str, Any]:
        ready = sum(1 for w in self.workers if w.alive and w.ready.is_set())
        status = "failed" if self.broken else "ok" if ready == self.count else "starting"
        return {"status": status, "ready": ready, "workers": self.count} | (
            {"error": self.broken} if self.broken else {}
        )

    def open(self, sid: str, phrases: Sequence[str], language: str) -> Listening:
        """Start an utterance; raises SpeechError when no recogniser can take it."""
        if self.broken:
            raise SpeechError(f"recognisers cannot start: {self.broken}")
        ready = [w for w in self.workers if w.alive and w.ready.is_set()]
        if not ready:
            raise SpeechError("no recogniser is ready")
        worker = min(ready, key=lambda w: len(w.listening))
        listening = Listening(sid, worker)
        worker.listening[sid] = listening
        worker.send(("open", sid, list(phrases), language))
        return listening

    def replace(self, dead: Worker) -> None:
        """Start a new process in a dead one's place, after a pause; not when recognisers
        cannot start at all (a bad model): that would only repeat the failure."""
        if self.stopping or self.broken:
            return

        def restart() -> None:
            dead.process.join(0)  # reaped by now, as a rule; never waited for
            log.warning(
                "recogniser process ended; starting another",
                extra={"worker": dead.number, "exitcode": dead.process.exitcode},
            )
            if not self.stopping and dead in self.workers:
                self.workers[self.workers.index(dead)] = Worker(self, dead.number)

        asyncio.get_running_loop().call_later(RESTART_DELAY, restart)

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until every recogniser has loaded its models (or cannot); calls meanwhile get
        keys-only menus."""
        try:
            async with asyncio.timeout(timeout):
                while not all(w.ready.is_set() for w in self.workers) and not self.broken:
                    await asyncio.sleep(0.05)
        except TimeoutError:
            log.warning("recognisers still loading; menus take keys until they are ready")

    async def stop(self) -> None:
        self.stopping = True
        for worker in self.workers:
            await asyncio.to_thread(worker.stop)
