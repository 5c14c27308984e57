"""The shipped customer_service flow on real calls through Asterisk 22 (keys only).

The flow's business hours are replaced by a calendar that is always open, or
always closed, so each path is repeatable whatever the clock says.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cti.store.models import Call
from tests.support.service import REPO, ServiceProcess, own_plans

ALWAYS = "\n".join(
    f"      {d}: ['00:00-24:00']" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
)
CALENDARS = {
    "open": f"hours:\n  support:\n    timezone: UTC\n    weekly:\n{ALWAYS}\n",
    "closed": "hours:\n  support:\n    timezone: UTC\n    weekly: {}\n",
}
VIP, KNOWN, STRANGER = "+14155550100", "+14155550123", "+14155550199"


def service_with(tmp_path: Path, asterisk, calendar: str) -> ServiceProcess:
    shipped = (REPO / "dialplans" / "customer_service.yaml").read_text()
    changed = re.sub(r"(?ms)^hours:.*?(?=^flows:)", CALENDARS[calendar], shipped)
    _plans, env = own_plans(tmp_path, **{"customer_service.yaml": changed})
    service = ServiceProcess(tmp_path, env).start()
    assert service.ivr("db", "demo").returncode == 0
    return service


@pytest.fixture
def open_line(asterisk, tmp_path: Path) -> Iterator[ServiceProcess]:
    service = service_with(tmp_path, asterisk, "open")
    yield service
    assert service.stop() == 0


@pytest.fixture
def closed_line(asterisk, tmp_path: Path) -> Iterator[ServiceProcess]:
    service = service_with(tmp_path, asterisk, "closed")
    yield service
    assert service.stop() == 0


def call(
    service: ServiceProcess,
    place_call: Callable,
    keys: str,
    caller: str = STRANGER,
    hold: float = 20,
) -> Call:
    """A caller who presses `keys` (w = half a second) and stays `hold` seconds at most."""
    place_call("5551000", press=keys, hold=hold, caller_id=caller, agi_server=service.agi_server)
    return service.wait_for_call(lambda c: c.ivr_end is not None, timeout=hold + 20)


def path_of(found: Call) -> list[tuple[str, str | None]]:
    return [(e.kind, e.node) for e in found.journey]


GAP = "wwwwww"  # three seconds: the IVR has moved on to the next prompt


@pytest.mark.parametrize(
    ("keys", "route", "language"),
    [
        (f"1{GAP}3", "queue:support", "english"),
        (f"2{GAP}3", "queue:support", "chinese"),
        (f"1{GAP}4", "queue:complaints", "english"),
        (f"1{GAP}0", "queue:main", "english"),  # the agent escape
    ],
)
def test_language_then_a_main_menu_queue(
    open_line: ServiceProcess, place_call, keys: str, route: str, language: str
) -> None:
    found = call(open_line, place_call, keys)
    assert (found.ivr_end, found.route) == ("routed", route)
    nodes = [node for _, node in path_of(found)]
    assert nodes[:4] == ["identify", "open_check", "language", language]
    assert found.journey[2].data["value"] == keys[0]


def test_vip_support_goes_to_the_vip_queue(open_line: ServiceProcess, place_call) -> None:
    found = call(open_line, place_call, f"1{GAP}3", caller=VIP)
    assert found.route == "queue:vip"
    assert found.journey[0].data["result"] == "found"


def test_order_status_is_read_back(open_line: ServiceProcess, place_call) -> None:
    found = call(open_line, place_call, f"1{GAP}1{GAP}123456#", caller=KNOWN, hold=14)
    steps = path_of(found)
    assert ("valid", "order_number") in steps and ("lookup", "find_order") in steps
    assert ("play", "order_shipped") in steps  # the status, then the date, read out
    assert found.journey[steps.index(("lookup", "find_order"))].data["result"] == "found"
    assert next(e for e in found.journey if e.kind == "valid").data["value"] == "123456"


def test_balance_is_read_back(open_line: ServiceProcess, place_call) -> None:
    found = call(open_line, place_call, f"1{GAP}2{GAP}87654323", caller=KNOWN, hold=14)
    steps = path_of(found)
    assert ("lookup", "find_account") in steps and ("play", "balance") in steps


def test_invalid_then_silence_reaches_the_failure_destination(
    open_line: ServiceProcess, place_call
) -> None:
    found = call(open_line, place_call, f"1{GAP}9", hold=60)
    kinds = [kind for kind, node in path_of(found) if node == "main_menu"]
    assert kinds == ["nomatch", "noinput", "noinput", "noinput", "failure"]  # counted apart
    assert found.route == "queue:main"


def test_after_hours_offers_a_callback(closed_line: ServiceProcess, place_call) -> None:
    found = call(closed_line, place_call, "1", hold=15)
    steps = path_of(found)
    assert steps[:4] == [
        ("lookup", "identify"),
        ("branch", "open_check"),
        ("match", "after_hours"),
        ("callback", "after_hours_callback"),
    ]
    assert found.journey[3].data["reason"] == "after_hours"
    assert (found.ivr_end, found.route) == ("contained", "hangup")


def test_hangup_mid_collect(open_line: ServiceProcess, place_call) -> None:
    found = call(open_line, place_call, f"1{GAP}1{GAP}12", hold=1)
    assert found.ivr_end == "abandoned_ivr"
    assert path_of(found)[-1] == ("hangup", "order_number")
