"""`ivr validate`: one broken plan per error class, each reported at its exact file:line:column."""

from __future__ import annotations

import subprocess
from pathlib import Path
from textwrap import dedent

import pytest

from ivr.flows.validate import check
from tests.support.service import IVR, REPO

HEAD = "flows:\n  f:\n    start: m\n    nodes:\n"


def problems_of(tmp_path: Path, text: str, prompts: Path | None = None) -> list[str]:
    (tmp_path / "p.yaml").write_text(dedent(text))
    _plan, problems = check(tmp_path, prompts)
    return [str(p).replace(str(tmp_path) + "/", "") for p in problems]


CASES = {
    "invalid YAML": (HEAD + "      m: {type: queue, queue: [\n", "p.yaml:6:1: not valid YAML"),
    "duplicate key": (
        HEAD + "      m: {type: queue, queue: a}\n      m: {type: hangup}\n",
        "p.yaml:6:7: duplicate key 'm'",
    ),
    "unknown node type": (
        HEAD + "      m: {type: dance}\n",
        "p.yaml:5:17: unknown node type 'dance'",
    ),
    "unknown field": (
        HEAD + "      m: {type: queue, queue: a, colour: red}\n",
        "p.yaml:5:34: unknown field 'colour'",
    ),
    "missing field": (HEAD + "      m: {type: queue}\n", "p.yaml:5:10: missing field 'queue'"),
    "goto to a missing node": (
        HEAD + "      m: {type: play, prompt: p, next: nowhere}\n",
        "p.yaml:5:40: goto to unknown node 'nowhere'",
    ),
    "colliding keys": (
        HEAD + "      m:\n        type: menu\n        prompt: p\n        options:\n"
        "          - {key: '1', goto: q}\n          - {key: '1', goto: q}\n"
        "      q: {type: queue, queue: a}\n",
        "p.yaml:10:19: key '1' is already used by option 1",
    ),
    "colliding phrases": (
        HEAD + "      m:\n        type: menu\n        prompt: p\n        options:\n"
        "          - {say: [Billing], goto: q}\n          - {say: [support, billing ], goto: q}\n"
        "      q: {type: queue, queue: a}\n",
        "p.yaml:10:29: phrase 'billing' is already used by option 1",
    ),
    "loop with no way out": (
        HEAD + "      m:\n        type: menu\n        prompt: p\n        failure: m\n"
        "        options: [{key: '1', goto: m}]\n",
        "p.yaml:5:7: node 'm' is in a loop with no way out",
    ),
    "loop without waiting": (
        HEAD + "      m: {type: play, prompt: p, next: n}\n      n: {type: goto, goto: m}\n",
        "p.yaml:5:7: loops forever without waiting for the caller: m -> n -> m",
    ),
    "unknown subflow": (
        HEAD + "      m: {type: subflow, flow: ghost, next: q}\n      q: {type: queue, queue: a}\n",
        "p.yaml:5:32: unknown flow 'ghost'",
    ),
    "unknown hours": (
        HEAD + "      m: {type: branch, cases: [{when: {open: office}, goto: q}], else: q}\n"
        "      q: {type: queue, queue: a}\n",
        "p.yaml:5:40: unknown hours 'office'",
    ),
    "bad time zone": (
        "hours:\n  office:\n    timezone: Mars/Olympus\n    weekly: {mon: ['08:00-18:00']}\n",
        "p.yaml:3:15: Value error, unknown time zone 'Mars/Olympus'",
    ),
    "bad hours": (
        "hours:\n  office:\n    timezone: UTC\n    weekly: {mon: ['08:00-18:00', '25:00-26:00']}\n",
        "p.yaml:4:35: Value error, bad clock time '25:00'",
    ),
    "overlapping hours": (
        "hours:\n  office:\n    timezone: UTC\n    weekly: {mon: ['08:00-12:00', '11:00-13:00']}\n",
        "p.yaml:4:19: Value error, '08:00-12:00' overlaps '11:00-13:00'",
    ),
    "unknown entry flow": ("entries: {'5551000': ghost}\n", "p.yaml:1:22: unknown flow 'ghost'"),
}


@pytest.mark.parametrize("case", CASES)
def test_each_error_class_at_its_exact_position(tmp_path: Path, case: str) -> None:
    text, expected = CASES[case]
    found = problems_of(tmp_path, text)
    assert any(p.startswith(expected) for p in found), found


def test_unreachable_nodes_are_warnings(tmp_path: Path) -> None:
    found = problems_of(tmp_path, HEAD + "      m: {type: hangup}\n      spare: {type: hangup}\n")
    assert found == ["p.yaml:6:7: warning: node 'spare' is unreachable from start 'm'"]


def test_missing_prompts_name_the_language(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    (prompts / "en").mkdir(parents=True)
    (prompts / "zh").mkdir()
    (prompts / "en" / "catalog.yaml").write_text("hello: Hello\n")
    (prompts / "zh" / "catalog.yaml").write_text("hello: 你好\n")
    text = HEAD.replace("start: m", "start: l") + (
        "      l: {type: language, language: zh, next: m}\n"
        "      m: {type: play, prompt: [hello, missing], next: q}\n"
        "      q: {type: queue, queue: a}\n"
    )
    found = problems_of(tmp_path, text, prompts)
    assert found == [
        "p.yaml:6:39: prompt 'missing' has no recording or catalog text in prompts/en/",
        "p.yaml:6:39: prompt 'missing' has no recording or catalog text in prompts/zh/",
    ]


def test_yes_and_no_stay_words(tmp_path: Path) -> None:
    found = problems_of(
        tmp_path,
        HEAD + "      m: {type: menu, prompt: p, options: "
        "[{say: [yes, no, on, off], goto: q}]}\n      q: {type: queue, queue: a}\n",
    )
    assert found == []


def test_the_cli_exits_non_zero_and_prints_warnings_after_errors(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        HEAD + "      m: {type: play, prompt: asterisk:beep, next: nowhere}\n"
        "      spare: {type: hangup}\n"
    )
    done = subprocess.run(
        [IVR, "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        env={"PATH": "", "IVR_PATHS__PROMPTS": str(tmp_path)},
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 1
    assert lines[0].endswith("p.yaml:5:52: goto to unknown node 'nowhere'")
    assert lines[1].endswith("p.yaml:6:7: warning: node 'spare' is unreachable from start 'm'")
    assert "1 errors, 1 warnings" in done.stderr


def test_the_shipped_plans_pass(tmp_path: Path) -> None:
    done = subprocess.run(
        [IVR, "validate"], cwd=REPO, capture_output=True, text=True, env={"PATH": ""}
    )
    assert done.returncode == 0, done.stdout
    assert "0 errors" in done.stderr


def test_special_hours_take_unquoted_dates(tmp_path: Path) -> None:
    text = (
        "hours:\n  office:\n    timezone: UTC\n    weekly: {mon: ['08:00-18:00']}\n"
        "    special:\n      2026-12-31: ['08:00-12:00']\n"
    )
    assert problems_of(tmp_path, text) == []


def test_phrases_collide_as_the_matcher_hears_them(tmp_path: Path) -> None:
    text = HEAD + (
        "      m: {type: menu, prompt: p, options: [{say: [order-status], goto: q},"
        " {say: [Order Status!], goto: q}]}\n      q: {type: queue, queue: a}\n"
    )
    assert any(
        "phrase 'Order Status!' is already used by option 1" in p
        for p in problems_of(tmp_path, text)
    )


def test_an_escape_needs_a_key_or_phrases(tmp_path: Path) -> None:
    text = HEAD.replace("start: m\n", "start: m\n    escape: {key: null, say: [], goto: m}\n")
    found = problems_of(tmp_path, text + "      m: {type: hangup}\n")
    assert found == ["p.yaml:4:13: Value error, the escape needs a key, phrases (say), or both"]


def test_a_broken_catalog_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    (prompts / "en").mkdir(parents=True)
    (prompts / "en" / "catalog.yaml").write_text("hello: Hello\nhello: again\n")
    found = problems_of(tmp_path, HEAD + "      m: {type: hangup, prompt: hello}\n", prompts)
    assert found == ["prompts/en/catalog.yaml:2:1: duplicate prompt 'hello' (first on line 1)"]
