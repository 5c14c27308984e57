"""The speech-recognition interface every backend implements, and the pieces they share.

Telephone audio is signed 16-bit little-endian mono PCM at 8 kHz. pocketsphinx's model
and most vosk models were trained on 16 kHz audio, so a recognizer upsamples what it is
fed (an 8 kHz vosk model gets it as is); it recognises only the phrases of the menu it
was made for (a grammar), which is what makes small models fast and accurate enough
for an IVR.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import soxr

from ivr.speech.endpoint import Endpointer
from ivr.speech.models import MODEL_MARKERS

TELEPHONE_RATE = 8000
MODEL_RATE = 16000
ENGINES = ("auto", "vosk", "pocketsphinx")

log = logging.getLogger("ivr.speech")
_PUNCTUATION = re.compile(r"[^\w\s']|_")


class SpeechError(Exception):
    """A recognizer cannot be made or run; the message is for the operator, one line."""


@dataclass(frozen=True)
class Hypothesis:
    """What was heard: a phrase of the grammar (normalised), or "" when none was."""

    text: str
    confidence: float
    partial: bool = False


class Recognizer(Protocol):
    """One utterance: fed audio as it arrives, asked for the result once at the end."""

    def accept(self, pcm: bytes) -> Hypothesis | None:
        """Decode 8 kHz PCM; a partial Hypothesis when the partial text changed."""
        ...

    def final(self) -> Hypothesis:
        """End the utterance; the result with confidence 0..1 (idempotent)."""
        ...

    def settle(self) -> Hypothesis | None:
        """The caller paused: push what the decoder still holds back through it now, and
        return the partial if it changed (so a whole phrase can end the utterance)."""
        ...

    def close(self) -> None:
        """Abandon the utterance without a result (hang-up), freeing what it holds."""
        ...


class Backend(Protocol):
    """An engine with its models; makes one Recognizer per utterance."""

    name: str

    def languages(self) -> set[str]:
        """Language codes this backend has a model for."""
        ...

    def recognizer(self, phrases: Sequence[str], language: str) -> Recognizer:
        """A recognizer for one utterance limited to ``phrases``; SpeechError if it can't."""
        ...

    def load(self) -> None:
        """Load every model now, so that the first call does not wait for it."""
        ...


def normalise(text: str) -> str:
    """Lower case, punctuation (but apostrophes) dropped, single spaces: how phrases compare."""
    text = text.replace("\u2019", "'").lower()
    return " ".join(_PUNCTUATION.sub(" ", text).split())


def usable_phrases(wanted: list[str], known: Collection[str], model: str) -> list[str]:
    """The phrases every word of which `model` knows; the others are logged and dropped
    (a word outside the vocabulary can never be heard). SpeechError if none is left."""
    if not wanted:
        raise SpeechError("a speech menu needs at least one phrase")
    usable = [p for p in wanted if all(w in known for w in p.split())]
    dropped = [p for p in wanted if p not in usable]
    missing = sorted({w for p in dropped for w in p.split() if w not in known})
    if dropped:
        log.warning(
            "%s: dropped phrases %s: words it does not know: %s",
            model,
            ", ".join(repr(p) for p in dropped),
            ", ".join(missing),
        )
    if not usable:
        raise SpeechError(
            f"{model} knows none of the menu's phrases (unknown words: {', '.join(missing)})"
        )
    return usable


def grammar_phrases(phrases: Iterable[str]) -> list[str]:
    """The phrases normalised, empty ones and repeats dropped, first-seen order kept."""
    return list(dict.fromkeys(p for p in map(normalise, phrases) if p))


class Resampler:
    """8 kHz to 16 kHz across chunk boundaries: one soxr stream per utterance.

    Resampling each 20 ms chunk on its own would restart the filter at every boundary
    (a click every 20 ms that the acoustic model hears as noise). soxr's VHQ stream has
    the least delay of its band-limited qualities (42 ms, against 74 ms for HQ) but
    releases audio in blocks of ~95 ms, so ``flush`` must be called at the end of the
    utterance or its last ~100 ms would never reach the decoder. (The QQ quality has no
    blocks, but its images above 4 kHz cost pocketsphinx most of its digits.)
    """

    def __init__(
        self, in_rate: int = TELEPHONE_RATE, out_rate: int = MODEL_RATE, quality: str = "VHQ"
    ) -> None:
        self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)
        self._odd = b""  # a trailing half sample from the last chunk

    def process(self, pcm: bytes) -> bytes:
        """Resample the next chunk; may return b"" while soxr fills its buffer."""
        data = self._odd + pcm
        whole = len(data) - len(data) % 2
        self._odd = data[whole:]
        if not whole:
            return b""
        samples = np.frombuffer(data[:whole], dtype="<i2")
        return self._stream.resample_chunk(samples).astype("<i2").tobytes()

    def flush(self) -> bytes:
        """The audio still inside the filter; call once, at the end of the utterance."""
        out = self._stream.resample_chunk(np.zeros(0, dtype="<i2"), last=True)
        return out.astype("<i2").tobytes()


class VoiceGate:
    """Whether an utterance holds any speech at all, by the endpointer's VAD.

    Grammar decoding forces the audio onto the menu: on digital silence pocketsphinx
    answers "eight" (19 times in 20), and on -50 dBFS noise "two" or "eight" one time in
    five, with high confidence. A recognizer whose audio never had ``start_ms`` of
    speech answers nothing instead, and shows no partials before speech starts.
    """

    def __init__(self) -> None:
        never = 1 << 62  # only the start of speech matters here
        self._endpointer = Endpointer(no_input_ms=never, max_speech_ms=never)

    @property
    def heard(self) -> bool:
        return self._endpointer.speech_started

    def feed(self, pcm: bytes) -> bool:
        """Classify 8 kHz PCM (until speech is heard); whether speech has been heard."""
        if not self._endpointer.speech_started:
            self._endpointer.feed(pcm)
        return self._endpointer.speech_started


def upsample(pcm8k: bytes) -> bytes:
    """A whole 8 kHz buffer at 16 kHz (for one-off use; streams use a Resampler)."""
    stream = Resampler()
    return stream.process(pcm8k) + stream.flush()


def check_vosk_model(path: str | os.PathLike[str]) -> Path:
    """The folder, if it is a vosk model; else SpeechError naming the path and the problem."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise SpeechError(f"vosk model folder {folder} does not exist")
    if not folder.is_dir():
        raise SpeechError(f"vosk model {folder} is not a folder")
    missing = [name for name in MODEL_MARKERS if not (folder / name).is_file()]
    if missing:
        raise SpeechError(
            f"{folder} is not a vosk model: {' and '.join(missing)} missing"
            " (point the setting at the folder that holds am/ and conf/)"
        )
    return folder


class CombinedBackend:
    """Vosk for the languages it has a model for, pocketsphinx's built-in English otherwise.

    So an install that only configured a Korean model still has English menus.
    """

    def __init__(self, primary: Backend, fallback: Backend) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = f"{primary.name}+{fallback.name}"

    def languages(self) -> set[str]:
        return self.primary.languages() | self.fallback.languages()

    def recognizer(self, phrases: Sequence[str], language: str) -> Recognizer:
        if language in self.primary.languages():
            return self.primary.recognizer(phrases, language)
        if language in self.fallback.languages():
            return self.fallback.recognizer(phrases, language)
        raise SpeechError(
            f"no speech model for language {language!r}"
            f" (have: {', '.join(sorted(self.languages()))})"
        )

    def load(self) -> None:
        self.primary.load()
        self.fallback.load()


def make_backend(engine: str, models: Mapping[str, str]) -> Backend:
    """The backend the settings ask for; SpeechError for an unknown engine or bad model.

    ``models`` maps a language code to a vosk model folder. "auto" means vosk when any
    model is configured, else pocketsphinx. Model folders are checked here (cheap), but
    loaded only on first use or ``load()`` (slow: seconds and hundreds of MB).
    """
    from ivr.speech.sphinx_backend import SphinxBackend

    if engine not in ENGINES:
        raise SpeechError(f"unknown speech engine {engine!r} (use one of: {', '.join(ENGINES)})")
    if engine == "pocketsphinx" or (engine == "auto" and not models):
        return SphinxBackend()
    if not models:
        raise SpeechError("speech engine 'vosk' needs at least one model (language: folder)")
    from ivr.speech.vosk_backend import VoskBackend

    checked = {language: str(check_vosk_model(path)) for language, path in models.items()}
    vosk = VoskBackend(checked)
    if "en" in checked:
        return vosk
    return CombinedBackend(vosk, SphinxBackend())
