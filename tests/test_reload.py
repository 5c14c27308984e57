"""Hot reload: a change is checked first, swapped atomically; a bad change keeps the old plan."""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ivr.flows.actions import Result
from ivr.flows.engine import start, step
from ivr.flows.reload import LivePlan
from tests.support.service import ServiceProcess, own_plans

GOOD = """
flows:
  f:
    start: m
    nodes:
      m: {type: menu, prompt: asterisk:beep, options: [{key: "1", goto: q}]}
      q: {type: queue, queue: QUEUE}
"""


def write(folder: Path, text: str) -> None:
    path = folder / "plan.yaml"
    path.write_text(text)
    stamp = time.time_ns() + 10**9  # a later mtime even on coarse file systems
    os.utime(path, ns=(stamp, stamp))


def test_a_bad_change_is_refused_and_a_good_one_swapped_in(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, GOOD.replace("QUEUE", "sales"))
    live = LivePlan(tmp_path, tmp_path)
    first = live.plan
    assert live.reload_if_changed() is None  # nothing changed

    write(tmp_path, GOOD.replace("QUEUE", "sales").replace("goto: q", "goto: nowhere"))
    with caplog.at_level(logging.ERROR, logger="ivr.dialplans"):
        problems = live.reload_if_changed()
    assert problems and "goto to unknown node 'nowhere'" in str(problems[0])
    assert live.plan is first  # the previous version stays live
    assert "dial plan change refused" in caplog.text

    write(tmp_path, GOOD.replace("QUEUE", "billing"))
    assert live.reload_if_changed() == []
    assert live.plan is not first
    assert live.plan.versions["f"] != first.versions["f"]

    # A call that started on the first version finishes on it.
    now = datetime(2026, 11, 23, 15, tzinfo=UTC)
    state = start(first, "f", now)
    _, state = step(first, state, None, now)
    actions, _ = step(first, state, Result("input", "dtmf", "1"), now)
    assert actions[-1].target == "sales"


def test_the_running_service_reloads_and_refuses(asterisk, tmp_path: Path, place_call) -> None:
    plans, env = own_plans(tmp_path)
    service = ServiceProcess(tmp_path, env).start()
    try:
        front = plans / "front_desk.yaml"
        front.write_text(
            front.read_text().replace('{key: "2", goto: support}', '{key: "2", goto: billing}')
        )
        wait_for(lambda: "dial plan reloaded" in service.log())
        (plans / "broken.yaml").write_text("flows: {x: {start: a, nodes: {a: {type: dance}}}}\n")
        wait_for(lambda: "dial plan change refused" in service.log())
        place_call("5551001", press="2", hold=3, agi_server=service.agi_server)
        call = service.wait_for_call(lambda c: c.ivr_end is not None)
        assert call.route == "queue:billing"  # the reloaded version, still live
        assert "broken.yaml:1:41" in service.log()  # the refusal says where
    finally:
        assert service.stop() == 0


def wait_for(condition, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
