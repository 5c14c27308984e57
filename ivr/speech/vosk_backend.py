"""Menus in any language vosk has a model for (Kaldi, grammar-constrained).

A ``vosk.Model`` takes seconds and up to ~300 MB to load, so each model folder is
loaded once per process, on first use (or ``load()``), and shared by every recognizer:
a ``KaldiRecognizer`` holds only per-utterance decoding state and the menu's grammar.
Only models with a runtime graph (``graph/HCLr.fst`` + ``graph/Gr.fst``, as the small
vosk models have) honour a grammar; big models with a static ``HCLG.fst`` decode free
speech, and their text counts only when it equals a phrase.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import vosk

from ivr.speech.models import sample_rate
from ivr.speech.recognizer import (
    MODEL_RATE,
    TELEPHONE_RATE,
    Hypothesis,
    Resampler,
    SpeechError,
    VoiceGate,
    grammar_phrases,
    normalise,
    usable_phrases,
)

UNKNOWN = "[unk]"

vosk.SetLogLevel(-1)  # Kaldi: warnings only (-1), no per-utterance info lines

_models: dict[str, vosk.Model] = {}
_models_lock = threading.Lock()


def load_model(path: str) -> vosk.Model:
    """The process's one ``vosk.Model`` for this folder, loaded on first use.

    The lock is held while loading, so a second caller waits for the first load
    instead of starting its own (which would double the time and the memory).
    """
    key = str(Path(path).resolve())
    with _models_lock:
        model = _models.get(key)
        if model is None:
            try:
                model = vosk.Model(model_path=key)
            except Exception as exc:  # vosk raises a bare Exception on a bad folder
                raise SpeechError(f"vosk cannot load the model in {key}: {exc}") from exc
            _models[key] = model
        return model


SETTLE = bytes(TELEPHONE_RATE * 2 * 400 // 1000)  # 400 ms of silence, 8 kHz


def model_rate(path: str) -> int:
    """The sample rate the model was trained on (``conf/mfcc.conf``), 16000 if unstated."""
    return sample_rate(Path(path)) or MODEL_RATE


class VoskRecognizer:
    """One utterance: a KaldiRecognizer with the menu's phrases as its grammar."""

    def __init__(
        self, model: vosk.Model, rate: int, phrases: Sequence[str], grammar: list[str]
    ) -> None:
        self.phrases = set(phrases)
        # A model at telephone rate is fed as is; any other rate is 16 kHz (the usual).
        self._resampler = Resampler(TELEPHONE_RATE, rate) if rate != TELEPHONE_RATE else None
        self._kaldi = vosk.KaldiRecognizer(model, rate, json.dumps(grammar, ensure_ascii=False))
        self._kaldi.SetWords(True)  # per-word "conf" in results
        self._voice = VoiceGate()
        self._segments: list[dict[str, Any]] = []  # results vosk closed itself at a pause
        self._partial = ""
        self._result: Hypothesis | None = None

    def _feed(self, audio: bytes) -> None:
        if audio and self._kaldi.AcceptWaveform(audio):
            # Vosk's own endpointing closed a segment (a pause inside the utterance):
            # keep it, or FinalResult() would return only what came after the pause.
            self._segments.append(json.loads(self._kaldi.Result()))

    def accept(self, pcm: bytes) -> Hypothesis | None:
        if self._result is not None:
            return None
        speech = self._voice.feed(pcm)
        audio = self._resampler.process(pcm) if self._resampler else pcm
        if not audio:  # inside the resampler still
            return None
        self._feed(audio)
        if not speech:
            return None
        return self._partial_changed()

    def _partial_changed(self) -> Hypothesis | None:
        partial = json.loads(self._kaldi.PartialResult()).get("partial", "")
        heard = [s.get("text", "") for s in self._segments] + [partial]
        text = _words(" ".join(heard))
        if text == self._partial:
            return None
        self._partial = text
        return Hypothesis(text, 0.0, partial=True)

    def settle(self) -> Hypothesis | None:
        # Vosk decodes in chunks: a word shows in the partial only once enough audio
        # follows it (150-450 ms). Silence fed at once pushes it through now.
        if self._result is not None:
            return None
        self._feed(self._resampler.process(SETTLE) if self._resampler else SETTLE)
        return self._partial_changed()

    def final(self) -> Hypothesis:
        if self._result is not None:
            return self._result
        if self._resampler:
            self._feed(self._resampler.flush())
        self._segments.append(json.loads(self._kaldi.FinalResult()))
        words = [
            w
            for segment in self._segments
            for w in segment.get("result", [])
            if w.get("word", UNKNOWN) != UNKNOWN
        ]
        text = _words(" ".join(w["word"] for w in words))
        if text not in self.phrases or not self._voice.heard:
            # "[unk]" only, nothing, or a sequence of menu words that is not one phrase.
            self._result = Hypothesis("", 0.0)
        else:
            conf = sum(float(w.get("conf", 0.0)) for w in words) / len(words)
            self._result = Hypothesis(text, conf)
        return self._result

    def close(self) -> None:
        """Abandon the utterance; nothing is pooled here (the model is shared anyway)."""
        if self._result is None:
            self._result = Hypothesis("", 0.0)


def _words(text: str) -> str:
    """Recognised text normalised, "[unk]" tokens left out."""
    return normalise(" ".join(w for w in text.split() if w != UNKNOWN))


class VoskBackend:
    """Vosk models by language code; each loaded once per process, when first needed."""

    name = "vosk"

    def __init__(self, models: Mapping[str, str]) -> None:
        self.models = dict(models)

    def languages(self) -> set[str]:
        return set(self.models)

    def load(self) -> None:
        for path in self.models.values():
            load_model(path)

    def recognizer(self, phrases: Sequence[str], language: str) -> VoskRecognizer:
        path = self.models.get(language)
        if path is None:
            raise SpeechError(
                f"no vosk model for language {language!r}"
                f" (have: {', '.join(sorted(self.models)) or 'none'})"
            )
        model = load_model(path)
        wanted = grammar_phrases(phrases)
        known = {w for p in wanted for w in p.split() if model.vosk_model_find_word(w) >= 0}
        usable = usable_phrases(wanted, known, f"the {language!r} vosk model")
        grammar = list(usable)
        if model.vosk_model_find_word(UNKNOWN) >= 0:  # lets noise be heard as noise
            grammar.append(UNKNOWN)
        return VoskRecognizer(model, model_rate(path), usable, grammar)
