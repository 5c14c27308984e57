"""English menus with pocketsphinx 5 and its bundled US-English model: no download needed.

Sharing: a pocketsphinx ``Decoder`` decodes one utterance at a time (``start_utt`` ..
``end_utt`` on internal state), so concurrent calls cannot share one. What is shared is
what is expensive: the 130,000-word CMU dictionary is loaded once per process into a
*lexicon* decoder that is only used to look words up; the decoders that do the work are
made with an empty dictionary (15 ms and ~5.5 MB each instead of 170 ms and ~29 MB) and
are given just the words of each menu. They live in a pool: a recognizer borrows one
for its utterance and ``final()`` gives it back, so a process makes only as many as it
has utterances at once, and a new menu costs only a JSGF grammar (~0.1 ms).

The model is 16 kHz wideband; telephone audio is upsampled, which leaves 4-8 kHz empty.
Its default cepstral-mean start (``40,3,-1``) is for wideband speech, and with it the
first second of every utterance is decoded against the wrong channel; each utterance
therefore starts from ``TELEPHONE_CMN`` (measured, see there) and adapts from there.
Starting every utterance from the same point also keeps results independent of which
pooled decoder, and which earlier caller, an utterance gets.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import pocketsphinx

from ivr.speech.recognizer import (
    Hypothesis,
    Resampler,
    SpeechError,
    VoiceGate,
    grammar_phrases,
    usable_phrases,
)

LANGUAGE = "en"
SEARCH = "menu"
MAX_IDLE = 32  # decoders kept for reuse; more are made when more utterances run at once
# Cepstral mean of 8 kHz telephone speech upsampled (soxr VHQ) to 16 kHz: pocketsphinx's
# own live estimate after decoding Asterisk's 38 conf-*.wav prompts (185 s, voice
# "Allison"; none of them is used by the tests or the benchmark).
TELEPHONE_CMN = "44.44,30.65,-26.05,35.97,-17.35,0.38,6.45,-18.33,19.87,-14.11,-6.14,5.43,-14.41"


def _model_dir() -> str:
    return os.path.join(pocketsphinx.get_model_path(), "en-us")


def _new_decoder(dictionary: str) -> pocketsphinx.Decoder:
    """A grammar decoder for 16 kHz audio, quiet (FATAL: no per-utterance log lines)."""
    return pocketsphinx.Decoder(
        hmm=os.path.join(_model_dir(), "en-us"),
        dict=dictionary,
        lm=None,
        samprate=16000,
        loglevel="FATAL",
    )


class _Shared:
    """Per-process state: the lexicon and the pool of idle decoders."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._lexicon: pocketsphinx.Decoder | None = None
        self.idle: list[pocketsphinx.Decoder] = []
        self.made = 0

    def lexicon(self) -> pocketsphinx.Decoder:
        """The decoder that holds the full dictionary; call with ``lock`` held."""
        if self._lexicon is None:
            self._lexicon = _new_decoder(os.path.join(_model_dir(), "cmudict-en-us.dict"))
        return self._lexicon

    def pronunciations(self, words: set[str]) -> dict[str, list[str]]:
        """Each known word's pronunciations (main one first); unknown words are left out."""
        found: dict[str, list[str]] = {}
        with self.lock:
            lexicon = self.lexicon()
            for word in words:
                phones = lexicon.lookup_word(word)
                variants: list[str] = []
                while phones:
                    variants.append(phones)
                    phones = lexicon.lookup_word(f"{word}({len(variants) + 1})")
                if variants:
                    found[word] = variants
        return found

    def borrow(self) -> pocketsphinx.Decoder:
        with self.lock:
            if self.idle:
                return self.idle.pop()
            self.made += 1
        return _new_decoder(os.devnull)

    def give_back(self, decoder: pocketsphinx.Decoder) -> None:
        with self.lock:
            if len(self.idle) < MAX_IDLE:
                self.idle.append(decoder)


_shared = _Shared()


def jsgf(phrases: Sequence[str]) -> str:
    """A JSGF grammar whose one public rule is any one of the phrases."""
    return "#JSGF V1.0;\ngrammar menu;\npublic <phrase> = " + " | ".join(phrases) + ";\n"


class SphinxRecognizer:
    """One utterance on a pooled decoder; see the module docstring for the sharing."""

    def __init__(self, phrases: Sequence[str], pronunciations: dict[str, list[str]]) -> None:
        self.phrases = set(phrases)
        self._resampler = Resampler()
        self._voice = VoiceGate()
        self._partial = ""
        self._result: Hypothesis | None = None
        self._decoder: pocketsphinx.Decoder | None = _shared.borrow()
        decoder = self._decoder
        try:
            for word, variants in pronunciations.items():
                if decoder.lookup_word(word) is None:
                    for n, phones in enumerate(variants, 1):
                        decoder.add_word(word if n == 1 else f"{word}({n})", phones, False)
            decoder.add_jsgf_string(SEARCH, jsgf(phrases))
            decoder.activate_search(SEARCH)
            decoder.set_cmn(TELEPHONE_CMN)
            decoder.start_utt()
        except (RuntimeError, ValueError) as exc:
            self._decoder = None  # half set up: not returned to the pool
            raise SpeechError(f"pocketsphinx cannot use this menu's grammar: {exc}") from exc

    def accept(self, pcm: bytes) -> Hypothesis | None:
        if self._decoder is None:
            return None
        speech = self._voice.feed(pcm)
        audio = self._resampler.process(pcm)
        if not audio:
            return None
        self._decoder.process_raw(audio)
        if not speech:
            return None
        hyp = self._decoder.hyp()
        text = hyp.hypstr if hyp is not None else ""
        if text == self._partial:
            return None
        self._partial = text
        return Hypothesis(text, 0.0, partial=True)

    def final(self) -> Hypothesis:
        if self._result is not None:
            return self._result
        decoder, self._decoder = self._decoder, None
        if decoder is None:  # never started (see __init__), or closed
            self._result = Hypothesis("", 0.0)
            return self._result
        try:
            tail = self._resampler.flush()
            if tail:
                decoder.process_raw(tail)
            decoder.end_utt()
            self._result = self._read(decoder)
        except RuntimeError as exc:  # the decoder is in an unknown state: not reused
            raise SpeechError(f"pocketsphinx failed to finish the utterance: {exc}") from exc
        _shared.give_back(decoder)
        return self._result

    def settle(self) -> Hypothesis | None:
        return None  # its partial already shows a word as soon as the word ends

    def close(self) -> None:
        """Abandon the utterance (the caller hung up): the decoder goes back to the pool."""
        decoder, self._decoder = self._decoder, None
        if decoder is not None:
            try:
                decoder.end_utt()
            except RuntimeError:
                return
            _shared.give_back(decoder)

    def _read(self, decoder: pocketsphinx.Decoder) -> Hypothesis:
        """The phrase and its confidence: the lowest posterior of its words.

        With ``bestpath`` on (the default) pocketsphinx computes word posteriors on the
        lattice of the utterance: the probability that this word, at this place, is what
        was said, given the grammar. Filler segments (<sil>, noise) are left out; they
        split their probability among equivalent silence paths, which is why the
        utterance-level ``hyp().prob`` rarely exceeds 0.5 even for a clear answer.
        """
        hyp = decoder.hyp()
        text = hyp.hypstr if hyp is not None else ""
        if text not in self.phrases or not self._voice.heard:
            return Hypothesis("", 0.0)
        words = set(text.split())
        probs = [
            min(1.0, max(0.0, seg.prob)) for seg in decoder.seg() if seg.word.split("(")[0] in words
        ]
        return Hypothesis(text, min(probs) if probs else 0.0)


class SphinxBackend:
    """pocketsphinx with its bundled US-English model: English only."""

    name = "pocketsphinx"

    def languages(self) -> set[str]:
        return {LANGUAGE}

    def load(self) -> None:
        with _shared.lock:
            _shared.lexicon()

    def recognizer(self, phrases: Sequence[str], language: str) -> SphinxRecognizer:
        if language != LANGUAGE:
            raise SpeechError(
                f"pocketsphinx has only an English model, not {language!r}:"
                f" configure a vosk model for {language!r}"
            )
        wanted = grammar_phrases(phrases)
        known = _shared.pronunciations({w for p in wanted for w in p.split()})
        usable = usable_phrases(wanted, known, "pocketsphinx")
        return SphinxRecognizer(usable, {w: known[w] for p in usable for w in p.split()})
