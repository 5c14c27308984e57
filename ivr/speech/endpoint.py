"""End-of-speech detection: stop the prompt when the caller speaks, answer when they stop.

The voice activity decision is pocketsphinx 5's ``Vad``, a port of WebRTC's VAD (a
per-frame Gaussian model of speech and noise in six frequency bands that adapts to the
line's noise). We chose it over an energy detector with an adaptive noise floor after
measuring both on Asterisk's ten 8 kHz digit recordings with white noise added at -50,
-40 and -30 dBFS: to reject the noise (no false speech frames), the energy detector
missed 35%, 47% and 62% of the frames inside the recordings, losing quiet onsets and
endings, which are what endpointing is about; the VAD in its STRICT mode missed 27%,
30% and 32% (20% without noise: the recordings' own quiet edges) with at most 5 false
speech frames in 420. The looser modes catch more speech but call all of the -30 dBFS
noise speech, and hold "speech" up to 140 ms after a word ends, eating the latency budget.

Two quirks of the VAD are handled here: on a noisy line its first 80-100 ms of
decisions are "speech" (its noise model has not adapted yet), so they are ignored
(``warmup_ms``); and a single frame can flip on a click, so speech only starts after
``start_ms`` of speech frames in a row.

The endpoint rule: after at least ``min_speech_ms`` of speech, the utterance ends at
``trailing_ms`` of non-speech; when the caller of ``feed`` says the latest partial
result is already a whole phrase (``complete=True``) only ``complete_trailing_ms`` is
needed: the answer is there, and the long wait is only for callers who pause inside a
phrase (a menu where one phrase begins another, "billing" and "billing address", may
then end early on the shorter one). A shorter burst
followed by silence (a cough, a click) is forgotten; ``no_input_ms`` without speech ends
the listen as no input and ``max_speech_ms`` of speech ends it regardless.
"""

from __future__ import annotations

from enum import StrEnum

import pocketsphinx

RATE = 8000
FRAME_MS = 10


class Event(StrEnum):
    """What ``Endpointer.feed`` reports; compares equal to its string value."""

    SPEECH_STARTED = "speech_started"
    SPEECH_ENDED = "speech_ended"
    NO_INPUT = "no_input"


class Endpointer:
    """Fed the same 8 kHz PCM as the recognizer; says when speech starts and ends."""

    def __init__(
        self,
        *,
        trailing_ms: int = 700,
        complete_trailing_ms: int = 150,
        min_speech_ms: int = 120,
        start_ms: int = 60,
        no_input_ms: int = 5000,
        max_speech_ms: int = 10000,
        warmup_ms: int = 100,
        mode: int = pocketsphinx.Vad.STRICT,
    ) -> None:
        self.trailing_ms = trailing_ms
        self.complete_trailing_ms = complete_trailing_ms
        self.min_speech_ms = min_speech_ms
        self.start_ms = start_ms
        self.no_input_ms = no_input_ms
        self.max_speech_ms = max_speech_ms
        self.warmup_ms = warmup_ms
        self._vad = pocketsphinx.Vad(mode, RATE, FRAME_MS / 1000)
        self._frame = self._vad.frame_bytes
        self._pending = b""
        self.position_ms = 0  # audio classified so far
        self.speech_started = False  # reported once (barge-in)
        self.speech_ended = False
        self.no_input = False
        self.started_at_ms: int | None = None  # where the speech that started began
        self.ended_at_ms: int | None = None  # when the end was declared
        self.last_speech_ms: int | None = None  # end of the last speech frame
        self.reason: str | None = None  # "speech", "max_speech" or "no_input"
        self.silence_ms = 0  # non-speech since the last speech frame
        self.speech_ms = 0  # speech in the current utterance
        self._run_ms = 0  # speech frames in a row
        self._active = False  # inside an utterance (speech seen, end not yet)
        self._utterance_at = 0

    @property
    def done(self) -> bool:
        """The listen is over: speech ended, or no input."""
        return self.speech_ended or self.no_input

    def feed(self, pcm: bytes, complete: bool = False) -> list[Event]:
        """Classify this audio; the events it caused, in order (usually none)."""
        events: list[Event] = []
        if self.done:
            return events
        data = self._pending + pcm
        whole = len(data) - len(data) % self._frame
        self._pending = data[whole:]
        for offset in range(0, whole, self._frame):
            frame = data[offset : offset + self._frame]
            event = self._step(self._vad.is_speech(frame), complete)
            if event is not None:
                events.append(event)
                if self.done:
                    break
        return events

    def _step(self, heard: bool, complete: bool) -> Event | None:
        self.position_ms += FRAME_MS
        speech = heard and self.position_ms > self.warmup_ms
        if speech:
            self._run_ms += FRAME_MS
            self.silence_ms = 0
            self.last_speech_ms = self.position_ms
        else:
            self._run_ms = 0
            self.silence_ms += FRAME_MS
        if not self._active:
            if self._run_ms >= self.start_ms:
                self._active = True
                self.speech_ms = self._run_ms
                self._utterance_at = self.position_ms - self._run_ms
                if not self.speech_started:
                    self.speech_started = True
                    self.started_at_ms = self._utterance_at
                    return Event.SPEECH_STARTED
            elif self.position_ms >= self.no_input_ms:
                self.no_input = True
                self.reason = "no_input"
                self.ended_at_ms = self.position_ms
                return Event.NO_INPUT
            return None
        if speech:
            self.speech_ms += FRAME_MS
        if self.position_ms - self._utterance_at >= self.max_speech_ms:
            return self._end("max_speech")
        trailing = self.complete_trailing_ms if complete else self.trailing_ms
        if self.speech_ms >= self.min_speech_ms and self.silence_ms >= trailing:
            return self._end("speech")
        if self.speech_ms < self.min_speech_ms and self.silence_ms >= self.trailing_ms:
            self._active = False  # a click or a cough: keep listening
            self.speech_ms = 0
        return None

    def _end(self, reason: str) -> Event:
        self.speech_ended = True
        self.reason = reason
        self.ended_at_ms = self.position_ms
        return Event.SPEECH_ENDED
