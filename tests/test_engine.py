"""The pure flow engine: every node type and every menu outcome. No sockets, no fakes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from textwrap import dedent, indent

import pytest

from ivr.flows.actions import (
    Hangup,
    Journey,
    Listen,
    Lookup,
    LookupResult,
    Play,
    Record,
    Recording,
    Result,
    Route,
    SaveAnswer,
    SaveCallback,
    SayValue,
    State,
)
from ivr.flows.engine import FlowError, start, step
from ivr.flows.plan import DialPlan
from ivr.flows.validate import load_plan

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # a Monday, 10:00 in New York


def plan_of(tmp_path: Path, flows: str, extra: str = "") -> DialPlan:
    (tmp_path / "plan.yaml").write_text(dedent(extra) + "flows:\n" + indent(dedent(flows), "  "))
    return load_plan(tmp_path)


def run(plan: DialPlan, *inputs, flow: str = "f", now: datetime = NOW, caller: str = ""):
    """Start the flow and feed it `inputs`; returns every action and the last state."""
    state = start(plan, flow, now, caller={"number": caller})
    actions, state = step(plan, state, None, now)
    seen = list(actions)
    for given in inputs:
        actions, state = step(plan, state, given, now)
        seen += actions
    return seen, state


def dtmf(keys: str) -> Result:
    return Result("input", "dtmf", keys)


def speech(words: str, confidence: float = 0.9) -> Result:
    return Result("input", "speech", words, confidence)


def journeys(actions) -> list[tuple[str, str]]:
    return [(a.kind, a.node) for a in actions if isinstance(a, Journey)]


def last(actions, kind):
    return [a for a in actions if isinstance(a, kind)][-1]


MENU = """
  f:
    start: menu
    escape: {goto: agent}
    nodes:
      menu:
        type: menu
        prompt: main
        noinput_prompts: [noinput-1, noinput-2]
        nomatch_prompts: [nomatch-1, nomatch-2]
        max_tries: 3
        speech:
          reject: 0.4
          accept: 0.75
          confirm_prompt: did-you-say
          dtmf_after: 2
          dtmf_prompt: keys-only
        options:
          - {key: "1", say: [billing, my bill], prompt: opt-billing, goto: billing}
          - {key: "2", say: [support], goto: support}
        failure: sorry
      billing: {type: queue, queue: billing, priority: 2}
      support: {type: queue, queue: support}
      agent: {type: queue, queue: main}
      sorry: {type: hangup, prompt: sorry}
"""


@pytest.fixture
def menu(tmp_path: Path) -> DialPlan:
    return plan_of(tmp_path, MENU)


def test_menu_asks_with_keys_and_phrases_including_the_agent_escape(menu: DialPlan) -> None:
    actions, state = run(menu)
    listen = actions[-1]
    assert listen == Listen(
        (Recording("main"),),
        "en",
        max_digits=1,
        timeout=5.0,
        phrases=("billing", "my bill", "support", "agent", "representative", "operator"),
        barge_in=True,
    )
    assert state.asked == ("main",)


@pytest.mark.parametrize(
    "given", [dtmf("1"), speech("billing", 0.9), speech("I want my bill", 0.8)]
)
def test_match_by_key_or_speech_routes(menu: DialPlan, given: Result) -> None:
    actions, state = run(menu, given)
    assert last(actions, Route) == Route(
        "queue", "billing", 2, {"announce_position": False, "announce_wait": False}
    )
    assert journeys(actions) == [("match", "menu"), ("route", "billing")]
    match = next(a for a in actions if isinstance(a, Journey))
    assert match.data["mode"] == given.mode and match.data["prompt"] == ["main"]
    assert match.data.get("utterance") == (given.value if given.mode == "speech" else None)
    assert match.data["confidence"] == given.confidence and match.data["goto"] == "billing"
    assert state.done


def test_agent_escape_by_key_and_by_word(menu: DialPlan) -> None:
    assert last(run(menu, dtmf("0"))[0], Route).target == "main"
    assert last(run(menu, speech("operator"))[0], Route).target == "main"


def test_noinput_escalates_its_own_prompts_then_fails(menu: DialPlan) -> None:
    actions, _ = run(menu, Result("noinput"), Result("noinput"), Result("noinput"))
    asked = [a.parts[0].name for a in actions if isinstance(a, Listen)]
    assert asked == ["main", "noinput-1", "noinput-2"]
    assert ("failure", "menu") in journeys(actions)
    assert isinstance(actions[-1], Hangup)  # the failure node: sorry
    assert last(actions, Play).parts == (Recording("sorry"),)


def test_nomatch_and_noinput_are_counted_apart(menu: DialPlan) -> None:
    actions, state = run(menu, dtmf("7"), Result("noinput"), dtmf("8"))
    asked = [a.parts[0].name for a in actions if isinstance(a, Listen)]
    assert asked == ["main", "nomatch-1", "noinput-1", "nomatch-2"]
    assert (state.nomatch, state.noinput) == (2, 1)
    assert not state.done


def test_failure_without_a_target_goes_to_the_safe_queue(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
      f:
        start: m
        nodes:
          m: {type: menu, prompt: p, max_tries: 1, options: [{key: "1", goto: q}]}
          q: {type: queue, queue: sales}
    """,
    )
    actions, state = run(plan, dtmf("5"))
    assert actions[-1] == Route("fallback") and state.done


def test_confirm_band_asks_and_yes_takes_the_option(menu: DialPlan) -> None:
    actions, state = run(menu, speech("billing", 0.6))
    confirm = actions[-1]
    assert confirm.parts == (Recording("did-you-say"), Recording("opt-billing"))
    assert "yes" in confirm.phrases and state.confirming == 0
    actions, state = step(menu, state, speech("yes"), NOW)
    assert journeys(actions)[0] == ("confirmed", "menu")
    assert last(actions, Route).target == "billing"


def test_confirm_no_counts_as_a_nomatch(menu: DialPlan) -> None:
    actions, state = run(menu, speech("billing", 0.6), dtmf("2"))
    assert ("rejected", "menu") in journeys(actions)
    assert state.nomatch == 1 and state.confirming is None
    assert actions[-1].parts == (Recording("nomatch-1"),)


def test_low_confidence_is_a_nomatch(menu: DialPlan) -> None:
    actions, state = run(menu, speech("billing", 0.2))
    assert journeys(actions) == [("nomatch", "menu")] and state.nomatch == 1


@pytest.mark.parametrize(
    ("confidence", "band", "result"),
    [(0.9, "accept", "match"), (0.6, "confirm", "confirm"), (0.2, "reject", "nomatch")],
)
def test_spoken_answers_record_utterance_confidence_band_and_latency(
    menu: DialPlan, confidence: float, band: str, result: str
) -> None:
    heard = Result("input", "speech", "my bill", confidence, latency_ms=180)
    actions, _ = run(menu, heard)
    event = next(a for a in actions if isinstance(a, Journey) and a.kind == result)
    assert event.data["utterance"] == "my bill" and event.data["confidence"] == confidence
    assert event.data["band"] == band and event.data["latency_ms"] == 180


def test_speech_failures_switch_the_menu_to_keys_only(menu: DialPlan) -> None:
    actions, state = run(menu, speech("pizza"), speech("weather"))
    final = actions[-1]
    assert final.phrases == () and final.parts == (Recording("keys-only"),)
    assert state.speech_failures == 2


def test_recogniser_error_falls_back_to_keys_at_once(menu: DialPlan) -> None:
    actions, state = run(menu, Result("error", "speech", "model missing"))
    assert journeys(actions) == [("speech_error", "menu")]
    assert actions[-1].phrases == () and actions[-1].parts == (Recording("keys-only"),)
    assert state.nomatch == 0


def test_barge_in_setting_reaches_the_transport(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
      f:
        start: m
        nodes:
          m: {type: menu, prompt: p, barge_in: false, options: [{key: "1", goto: q}]}
          q: {type: queue, queue: sales}
    """,
    )
    assert run(plan)[0][-1].barge_in is False


FLOW_OF_EVERYTHING = """
  f:
    start: who
    nodes:
      who:
        type: lookup
        find: customer
        by: caller_id
        found: tier
        not_found: hours
      tier:
        type: branch
        cases:
          - when: {var: customer.tier, in: [vip, gold]}
            goto: vip
        else: hours
      vip: {type: set, vars: {priority_note: "vip ${customer.name}"}, next: hours}
      hours:
        type: branch
        cases:
          - when: {closed: office}
            goto: closed
        else: lang
      closed:
        type: callback
        reason: after_hours
        eta_minutes: 720
        prompt: [cb, {say: number, value: "${callback.eta_minutes}"}]
        next: bye
      lang: {type: language, language: zh, next: order}
      order:
        type: collect
        prompt: enter-order
        var: order_number
        min_length: 4
        max_length: 6
        pattern: "[1-9][0-9]*"
        max_tries: 2
        next: find
        failure: agent
      find:
        type: lookup
        find: order
        value: "${order_number}"
        found: say
        not_found: agent
        fallback: sorry
      say: {type: play, prompt: [status, {say: digits, value: "${order.number}"}], next: more}
      more: {type: subflow, flow: g, next: agent}
      agent: {type: transfer, to: "1001"}
      sorry: {type: goto, goto: bye}
      bye: {type: hangup, prompt: goodbye}
  g:
    start: rate
    nodes:
      rate: {type: survey, question: csat, kind: scale5, prompt: csat, next: back}
      back: {type: return}
"""
HOURS = """
hours:
  office:
    timezone: America/New_York
    weekly: {mon: ["08:00-18:00"], tue: ["08:00-18:00"], wed: ["08:00-18:00"],
             thu: ["08:00-18:00"], fri: ["08:00-18:00"]}
    holidays: {country: US}
"""


@pytest.fixture
def everything(tmp_path: Path) -> DialPlan:
    return plan_of(tmp_path, FLOW_OF_EVERYTHING, HOURS)


def test_every_node_type_on_one_path(everything: DialPlan) -> None:
    actions, state = run(everything, caller="(415) 555-0100")
    assert actions[-1] == Lookup("customer", "+14155550100", None, 3.0)  # caller ID as E.164
    vip = LookupResult("found", {"name": "Ana", "tier": "vip"})
    actions, state = step(everything, state, vip, NOW)
    assert state.vars["priority_note"] == "vip Ana" and state.language == "zh"
    assert actions[-1].parts == (Recording("enter-order"),) and actions[-1].max_digits == 6
    actions, state = step(everything, state, dtmf("0123#"), NOW)  # pattern: no leading 0
    assert journeys(actions) == [("invalid", "order")]
    actions, state = step(everything, state, dtmf("4321#"), NOW)
    assert state.vars["order_number"] == "4321"
    assert actions[-1] == Lookup("order", "4321", None, 3.0)
    actions, state = step(everything, state, LookupResult("found", {"number": "4321"}), NOW)
    play = next(a for a in actions if isinstance(a, Play))
    assert play == Play((Recording("status"), SayValue("digits", "4321")), "zh")
    assert state.flow == "g" and state.stack == (("f", "agent"),)  # inside the subflow
    actions, state = step(everything, state, dtmf("5"), NOW)
    assert SaveAnswer("csat", "scale5", "5") in actions
    assert actions[-1] == Route("transfer", "1001") and state.flow == "f"
    assert [k for k, _ in journeys(actions)] == ["answer", "return", "route"]


def test_after_hours_records_a_callback_and_says_the_eta(everything: DialPlan) -> None:
    saturday = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    actions, _state = run(
        everything, LookupResult("not_found"), now=saturday, caller="+14155550100"
    )
    assert SaveCallback("+14155550100", "after_hours", None, 720) in actions
    assert Play((Recording("cb"), SayValue("number", "720")), "en") in actions
    assert isinstance(actions[-1], Hangup)


@pytest.mark.parametrize(
    ("instant", "open_"),
    [
        (datetime(2026, 3, 9, 12, 30, tzinfo=UTC), True),  # Mon 08:30 EDT, day after spring forward
        (datetime(2026, 3, 9, 11, 30, tzinfo=UTC), False),  # Mon 07:30 EDT
        (datetime(2026, 11, 2, 13, 30, tzinfo=UTC), True),  # Mon 08:30 EST, day after fall back
        (datetime(2026, 11, 2, 12, 30, tzinfo=UTC), False),  # Mon 07:30 EST
        (datetime(2026, 11, 26, 16, 0, tzinfo=UTC), False),  # Thanksgiving, 11:00: a holiday
        (datetime(2026, 11, 27, 16, 0, tzinfo=UTC), True),  # the Friday after
    ],
)
def test_business_hours_across_dst_and_holidays(
    everything: DialPlan, instant: datetime, open_: bool
) -> None:
    actions, _ = run(everything, LookupResult("not_found"), now=instant)
    went = [a.data["goto"] for a in actions if isinstance(a, Journey) and a.node == "hours"]
    assert went == ["lang" if open_ else "closed"]


def test_lookup_failure_takes_the_fallback(everything: DialPlan) -> None:
    _, state = run(everything, LookupResult("not_found"), dtmf("4321"))
    actions, state = step(everything, state, LookupResult("error"), NOW)
    assert [k for k, _ in journeys(actions)] == ["lookup", "hangup"]
    assert journeys(actions)[1] == ("hangup", "bye")


def test_collect_failure_goes_to_its_failure_node(everything: DialPlan) -> None:
    actions, _ = run(everything, LookupResult("not_found"), dtmf("1"), Result("noinput"))
    assert isinstance(actions[-1], Listen)  # one invalid, one silence: counted apart
    actions, _ = run(everything, LookupResult("not_found"), dtmf("1"), dtmf("22"))
    assert ("failure", "order") in journeys(actions)
    assert actions[-1] == Route("transfer", "1001")


@pytest.mark.parametrize(
    ("kind", "answers", "saved"),
    [
        ("scale5", ["9", "4"], "4"),
        ("nps", ["11#", "10#"], "10"),
        ("yesno", ["maybe", "no"], "no"),
        ("yesno", ["1"], "yes"),
        ("recording", ["recordings/x.wav"], "recordings/x.wav"),
    ],
)
def test_survey_questions(tmp_path: Path, kind: str, answers: list[str], saved: str) -> None:
    plan = plan_of(
        tmp_path,
        f"""
      f:
        start: q
        nodes:
          q: {{type: survey, question: q1, kind: {kind}, prompt: ask, invalid_prompt: bad,
              next: bye}}
          bye: {{type: hangup}}
    """,
    )
    first, _ = run(plan)
    assert isinstance(first[-1], Record if kind == "recording" else Listen)
    mode = "speech" if not answers[0][0].isdigit() and kind == "yesno" else "dtmf"
    actions, _ = run(plan, *[Result("input", mode, a) for a in answers])
    assert SaveAnswer("q1", kind, saved) in actions
    if len(answers) > 1:
        retry = [a for a in actions if isinstance(a, Listen | Record)][1]
        assert retry.parts == (Recording("bad"), Recording("ask"))


def test_survey_skips_after_max_tries(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
      f:
        start: q
        nodes:
          q: {type: survey, question: q1, kind: scale5, prompt: ask, next: bye}
          bye: {type: hangup}
    """,
    )
    actions, state = run(plan, Result("noinput"), dtmf("7"))
    assert [k for k, _ in journeys(actions)] == ["noinput", "invalid", "skipped", "hangup"]
    assert not any(isinstance(a, SaveAnswer) for a in actions) and state.done


@pytest.mark.parametrize(
    "inputs", [[], [LookupResult("not_found")], [LookupResult("not_found"), dtmf("4321")]]
)
def test_a_hangup_at_any_waiting_node_ends_the_call_there(
    everything: DialPlan, inputs: list
) -> None:
    _, state = run(everything, *inputs)
    node = state.node
    actions, state = step(everything, state, Result("hangup"), NOW)
    assert actions == [Journey("hangup", node, {"by": "caller", "ms": 0})]
    assert state.done
    with pytest.raises(FlowError, match="already left"):
        step(everything, state, dtmf("1"), NOW)


def test_state_survives_json(everything: DialPlan) -> None:
    _, state = run(everything, LookupResult("found", {"tier": "vip", "name": "Ana"}))
    again = State.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state
    assert step(everything, again, dtmf("4321"), NOW) == step(everything, state, dtmf("4321"), NOW)


def test_a_loop_without_input_is_an_error_not_a_hang(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text(
        dedent("""
        flows:
          f:
            start: a
            nodes:
              a: {type: play, prompt: x, next: b}
              b: {type: play, prompt: y, next: a}
    """)
    )
    from ivr.flows.validate import check

    plan, problems = check(tmp_path, None)
    assert plan is None and "loops forever" in str(problems)
    plan = DialPlan({}, {"f": _flow(tmp_path)}, {})  # run it anyway, unchecked
    with pytest.raises(FlowError, match="without waiting"):
        run(plan)


def _flow(folder: Path):
    from ivr.flows.plan import PlanFile
    from ivr.flows.source import load_source

    return PlanFile.model_validate(load_source(folder / "plan.yaml").data).flows["f"]


def test_templates_keep_zero_and_false() -> None:
    from ivr.flows.engine import render

    vars = {"a": {"n": 0, "f": False}}
    assert render("${a.n}/${a.f}/${a.missing}", vars) == "0/False/"


REQUESTS = """
  f:
    start: offer
    nodes:
      offer:
        type: menu
        prompt: offer
        options:
          - {key: "1", goto: yes_please}
          - {key: "9", goto: stop}
      yes_please: {type: survey_opt_in, prompt: [thanks, {say: digits, value: "${caller.e164}"}],
                   next: agent}
      stop: {type: do_not_call, next: bye}
      agent: {type: queue, queue: support}
      bye: {type: hangup, prompt: goodbye}
"""


def test_survey_opt_in_notes_it_before_its_prompt_and_goes_on(tmp_path: Path) -> None:
    """Noted first: the transport writes steps in order, so a caller who hangs up
    during the prompt has still opted in."""
    plan = plan_of(tmp_path, REQUESTS)
    _, state = run(plan, caller="(415) 555-0100")
    actions, state = step(plan, state, dtmf("1"), NOW)
    assert [k for k, _ in journeys(actions)] == ["match", "survey_opt_in", "route"]
    assert actions[1:4] == [
        Journey("survey_opt_in", "yes_please", {}),
        Play((Recording("thanks"), SayValue("digits", "+14155550100")), "en"),
        Journey("route", "agent", {"queue": "support", "priority": 0}),
    ]
    assert actions[-1] == Route(
        "queue", "support", 0, {"announce_position": False, "announce_wait": False}
    )
    assert state.done


def test_do_not_call_without_a_prompt_plays_nothing_and_goes_on(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, REQUESTS)
    actions, state = run(plan, dtmf("9"))
    assert [k for k, _ in journeys(actions)] == ["match", "do_not_call", "hangup"]
    assert [a.parts for a in actions if isinstance(a, Play)] == [(Recording("goodbye"),)]
    assert isinstance(actions[-1], Hangup) and state.done


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ("{type: do_not_call, prompt: bye}", "p.yaml:5:10: missing field 'next'"),
        ("{type: survey_opt_in, next: nowhere}", "p.yaml:5:38: goto to unknown node 'nowhere'"),
        ("{type: do_not_call, next: m, colour: red}", "p.yaml:5:39: unknown field 'colour'"),
        ("{type: survey_opt_in, prompt: 'a b', next: m}", "p.yaml:5:40: String should match"),
    ],
)
def test_request_nodes_are_validated_like_the_others(
    tmp_path: Path, node: str, expected: str
) -> None:
    from ivr.flows.validate import check

    (tmp_path / "p.yaml").write_text(f"flows:\n  f:\n    start: m\n    nodes:\n      m: {node}\n")
    _plan, problems = check(tmp_path, None)
    found = [str(p).replace(str(tmp_path) + "/", "") for p in problems]
    assert any(p.startswith(expected) for p in found), found


def test_request_nodes_in_a_loop_without_waiting_are_an_error(tmp_path: Path) -> None:
    from ivr.flows.validate import check

    (tmp_path / "p.yaml").write_text(
        "flows:\n  f:\n    start: a\n    nodes:\n"
        "      a: {type: survey_opt_in, next: b}\n      b: {type: do_not_call, next: a}\n"
    )
    plan, problems = check(tmp_path, None)
    assert plan is None
    assert "loops forever without waiting for the caller: a -> b -> a" in str(problems)
