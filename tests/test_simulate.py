"""`ivr simulate`: scripts and the interactive mode, on real plans written to tmp_path."""

from __future__ import annotations

import io
import subprocess
from datetime import datetime
from pathlib import Path
from textwrap import dedent
from zoneinfo import ZoneInfo

import pytest
import yaml

from ivr.flows.actions import Lookup, LookupResult, Result, SayValue
from ivr.flows.plan import DialPlan
from ivr.flows.simulate import (
    ScriptMismatch,
    flow_name,
    interactive,
    parse_answer,
    resolver_from,
    run_script,
    said,
)
from ivr.flows.source import SourceError
from ivr.flows.validate import load_plan
from tests.support.service import IVR, REPO

PLAN = """\
entries:
  "5551000": service
hours:
  office: {timezone: America/New_York, weekly: {mon: ["08:00-18:00"]}}
flows:
  service:
    start: hours
    nodes:
      hours:
        type: branch
        cases: [{when: {closed: office}, goto: after_hours}]
        else: menu
      after_hours: {type: callback, reason: after_hours, prompt: closed, next: bye}
      bye: {type: hangup, prompt: goodbye}
      menu:
        type: menu
        prompt: main-menu
        options:
          - {key: "1", say: [sales], prompt: sales-option, goto: sales}
          - {key: "2", say: [order status], goto: ask_order}
        speech: {reject: 0.4, accept: 0.75, confirm_prompt: did-you-say}
      sales: {type: queue, queue: sales, priority: 3}
      ask_order:
        type: collect
        prompt: order-number
        var: order_number
        min_length: 5
        max_length: 5
        next: find_order
      find_order:
        type: lookup
        find: order
        value: "${order_number}"
        found: status
        not_found: unknown
      status:
        type: branch
        cases: [{when: {var: order.status, eq: shipped}, goto: shipped}]
        else: support
      shipped:
        type: play
        prompt: [order-shipped, {say: date, value: "${order.eta}"}]
        next: survey
      survey: {type: survey, question: csat, kind: scale5, prompt: rate-us, next: bye}
      unknown: {type: play, prompt: order-not-found, next: support}
      support: {type: queue, queue: support, priority: 5}
"""

OPEN = "2026-11-23T10:00:00-05:00"  # a Monday morning
CLOSED = "2026-11-23T20:00:00-05:00"

# Lines 1-8 of every script below; the steps start on line 9.
HEAD = f"""\
flow: service
at: {OPEN}
data:
  order:
    "12345": {{status: shipped, eta: "2026-11-25"}}
    "22222": {{status: processing}}
  customer: {{}}
steps:
"""


@pytest.fixture
def plan(tmp_path: Path) -> DialPlan:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "service.yaml").write_text(PLAN)
    return load_plan(tmp_path / "plans")


def script(tmp_path: Path, text: str, head: str = HEAD) -> Path:
    path = tmp_path / "script.yaml"
    path.write_text(head + dedent(text))
    return path


def mismatch(plan: DialPlan, path: Path) -> str:
    with pytest.raises(ScriptMismatch) as caught:
        run_script(plan, path)
    return str(caught.value)


def test_a_script_through_menu_collect_lookup_branch_and_survey(
    plan: DialPlan, tmp_path: Path
) -> None:
    path = script(
        tmp_path,
        """\
        - hear: main-menu
          press: "2"
        - hear: [order-number]
          press: "12345"
        - hear: [order-shipped, rate-us]
          press: "5"
        - hear: goodbye
        end:
          route: hangup
          saved:
            - {answer: {question: csat, value: 5}}
          vars: {order.status: shipped, order_number: "12345"}
        """,
    )
    assert run_script(plan, path) == [
        "IVR: [main-menu]",
        "caller: presses 2",
        "IVR: [order-number]",
        "caller: presses 12345",
        "IVR: [order-shipped] date 2026-11-25",
        "IVR: [rate-us]",
        "caller: presses 5",
        "IVR: [goodbye]",
        "-> hangup",
        "saved answer: question=csat, kind=scale5, value=5",
    ]


@pytest.mark.parametrize(
    ("order", "fail", "heard"),
    [
        ("99999", "[]", "- hear: order-not-found\n"),  # no data: not found
        ("22222", "[]", ""),  # found, but not shipped: the branch's else
        ("12345", "[order]", "- hear: order-not-found\n"),  # the lookup fails: not_found
    ],
)
def test_lookup_not_found_or_not_shipped_goes_to_support(
    plan: DialPlan, tmp_path: Path, order: str, fail: str, heard: str
) -> None:
    head = HEAD.replace("  customer: {}\n", f"  fail: {fail}\n")
    steps = f'- press: "2"\n- press: "{order}"\n{heard}end: {{route: {{queue: support}}}}\n'
    assert run_script(plan, script(tmp_path, steps, head))[-1] == "-> queue support (priority 5)"


def test_an_entry_selects_the_flow(plan: DialPlan, tmp_path: Path) -> None:
    head = HEAD.replace("flow: service", 'entry: "5551000"')
    path = script(tmp_path, '- press: "1"\nend: {route: {queue: sales}}\n', head)
    assert run_script(plan, path)[-1] == "-> queue sales (priority 3)"


def test_a_hear_mismatch_points_at_the_step(plan: DialPlan, tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """\
        - hear: main-menu
          press: "2"
        - hear: [order-number, main-menu]
          press: "12345"
        """,
    )
    assert mismatch(plan, path) == (
        f"{path}:11:3: expected to hear [order-number, main-menu], got [order-number]"
    )


def test_a_route_mismatch_points_at_end_route(plan: DialPlan, tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """\
        - press: "2"
        - press: "99999"
        end:
          route: {queue: support, priority: 3}
        """,
    )
    assert mismatch(plan, path) == (
        f"{path}:12:10: expected -> queue support (priority 3), got -> queue support (priority 5)"
    )


def test_steps_left_after_the_call_ended(plan: DialPlan, tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """\
        - press: "1"
        - hear: main-menu
          press: "2"
        """,
    )
    assert mismatch(plan, path) == (
        f"{path}:10:3: expected the flow to wait for the caller, got -> queue sales (priority 3)"
    )


def test_steps_run_out_while_the_flow_waits(plan: DialPlan, tmp_path: Path) -> None:
    path = script(tmp_path, '- press: "2"\n- press: "123"\nend: {route: hangup}\n')
    assert mismatch(plan, path) == (
        f"{path}:10:3: expected the call to end, got the flow waiting at ask_order "
        "after [order-number]"
    )


def test_an_unknown_key_in_a_step_is_an_error_at_the_key(plan: DialPlan, tmp_path: Path) -> None:
    path = script(tmp_path, '- hear: main-menu\n  prss: "1"\n')
    with pytest.raises(SourceError) as caught:
        run_script(plan, path)
    assert str(caught.value).startswith(f"{path}:10:3: unknown key 'prss' in a step")


def test_the_clock_decides_business_hours(plan: DialPlan, tmp_path: Path) -> None:
    closed = script(
        tmp_path,
        """\
        - hear: [closed, goodbye]
        end:
          route: hangup
          saved: [{callback: {reason: after_hours, number: "+14155550100"}}]
        """,
        HEAD.replace(OPEN, CLOSED),
    )
    assert run_script(plan, closed)[-2:] == [
        "-> hangup",
        "saved callback: number=+14155550100, reason=after_hours, eta_minutes=60",
    ]
    opened = script(tmp_path, "- hear: [closed]\n")
    assert mismatch(plan, opened) == f"{opened}:9:3: expected to hear [closed], got [main-menu]"


def test_speech_confidence_decides_between_confirming_and_taking(
    plan: DialPlan, tmp_path: Path
) -> None:
    path = script(
        tmp_path,
        """\
        - say: I want sales
          confidence: 0.3
        - hear: main-menu
          say: sales
          confidence: 0.6
        - hear: [did-you-say, sales-option]
          say: "yes"
        end: {route: {queue: sales, priority: 3}}
        """,
    )
    assert run_script(plan, path)[:6] == [
        "IVR: [main-menu]",
        'caller: says "I want sales" (confidence 0.3)',
        "IVR: [main-menu]",
        'caller: says "sales" (confidence 0.6)',
        "IVR: [did-you-say] [sales-option]",
        'caller: says "yes" (confidence 1.0)',
    ]
    taken = script(tmp_path, "- say: sales\nend: {route: {queue: sales}}\n")
    assert run_script(plan, taken)[-1] == "-> queue sales (priority 3)"


def test_a_recording_step_answers_a_record_prompt(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "vm.yaml").write_text(
        "flows:\n  vm:\n    start: msg\n    nodes:\n"
        "      msg: {type: survey, question: voicemail, kind: recording, prompt: beep, next: t}\n"
        '      t: {type: transfer, to: "1001"}\n'
    )
    plan = load_plan(tmp_path / "plans")
    head = f"flow: vm\nat: {OPEN}\nsteps:\n"
    path = script(
        tmp_path, "- hear: beep\n  record: msg.wav\nend: {route: {transfer: 1001}}\n", head
    )
    assert run_script(plan, path)[1:] == [
        "caller: records msg.wav",
        "-> transfer 1001",
        "saved answer: question=voicemail, kind=recording, value=msg.wav",
    ]
    pressed = script(tmp_path, '- press: "1"\n', head)
    assert mismatch(plan, pressed) == (
        f"{pressed}:4:3: expected the flow to listen for keys or speech, "
        "got it recording the caller"
    )


def test_interactive_shows_catalog_text_and_the_route(plan: DialPlan, tmp_path: Path) -> None:
    (tmp_path / "prompts" / "en").mkdir(parents=True)
    (tmp_path / "prompts" / "en" / "catalog.yaml").write_text(
        "main-menu: For sales press 1, for an order press 2.\n"
        "order-shipped: Your order has shipped; it arrives on\n"
    )
    looked_up: list[Lookup] = []

    def resolve(lookup: Lookup) -> LookupResult:
        looked_up.append(lookup)
        return LookupResult("found", {"status": "shipped", "eta": "2026-11-25"})

    now = datetime(2026, 11, 23, 10, tzinfo=ZoneInfo("America/New_York"))
    out = io.StringIO()
    typed = io.StringIO("\norder status@0.9\n12345\n5\n")
    code = interactive(plan, "5551000", tmp_path / "prompts", resolve, now, input=typed, output=out)
    assert code == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "IVR: For sales press 1, for an order press 2."
    assert "IVR: Your order has shipped; it arrives on date 2026-11-25" in lines
    assert lines[-2:] == ["-> hangup", "saved answer: question=csat, kind=scale5, value=5"]
    assert looked_up == [Lookup("order", "12345")]


def test_interactive_hangup_and_end_of_input(plan: DialPlan, tmp_path: Path) -> None:
    now = datetime(2026, 11, 23, 10, tzinfo=ZoneInfo("America/New_York"))
    for typed in ("/hangup\n", ""):
        out = io.StringIO()
        interactive(
            plan, "service", None, resolver_from({}), now, input=io.StringIO(typed), output=out
        )
        assert out.getvalue().splitlines()[-1] == "-> hangup (by the caller)"


@pytest.mark.parametrize(
    ("kind", "value", "shown"),
    [
        ("digits", "123", "digits 1 2 3"),
        ("number", "42", "number 42"),
        ("money", "12.5", "money 12.50 USD"),
        ("date", "2026-11-23", "date 2026-11-23"),
        ("alpha", "abc", "alpha A B C"),
    ],
)
def test_values_show_as_read(kind: str, value: str, shown: str) -> None:
    assert said(SayValue(kind, value)) == shown


@pytest.mark.parametrize(
    ("line", "result"),
    [
        ("12#", Result("input", "dtmf", "12#")),
        ("", Result("noinput")),
        ("/hangup", Result("hangup")),
        ("billing please", Result("input", "speech", "billing please")),
        ("billing@0.6", Result("input", "speech", "billing", 0.6)),
    ],
)
def test_typed_answers(line: str, result: Result) -> None:
    assert parse_answer(line, None) == result


def test_resolver_from_data() -> None:
    resolve = resolver_from({"customer": {"+1415": {"tier": "vip"}}, "fail": ["order"]})
    assert resolve(Lookup("customer", "+1415")) == LookupResult("found", {"tier": "vip"})
    assert resolve(Lookup("customer", "+1999")) == LookupResult("not_found")
    assert resolve(Lookup("order", "1")) == LookupResult("error")


def test_the_shipped_scripts_pass_and_cover_every_shipped_flow() -> None:
    scripts = sorted((REPO / "dialplans" / "tests").glob("*.yaml"))
    done = subprocess.run(
        [IVR, "simulate", "--script", *map(str, scripts)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": ""},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("\nok ") + done.stdout.startswith("ok ") == len(scripts)
    plan = load_plan(REPO / "dialplans")
    covered = {flow_name(plan, _script_flow(s)) for s in scripts}
    assert covered == set(plan.flows)


def _script_flow(script: Path) -> str:
    data = yaml.safe_load(script.read_text())
    return data.get("flow") or data["entry"]
