"""The pure flow engine: no sockets, no fakes."""

from __future__ import annotations

import pytest

from ivr.flows.engine import (
    Collect,
    Digits,
    FlowError,
    Hangup,
    Journey,
    Play,
    Route,
    start,
    step,
)
from ivr.flows.plan import Flow


def flow(**nodes: dict) -> Flow:
    return Flow.model_validate({"start": next(iter(nodes)), "nodes": nodes})


MENU = flow(
    menu={
        "type": "menu",
        "prompt": "main",
        "retry_prompt": "again",
        "max_tries": 2,
        "options": {"1": "sales", "9": "bye"},
    },
    sales={"type": "queue", "queue": "sales", "priority": 3},
    bye={"type": "hangup", "prompt": "goodbye"},
)


def test_menu_asks_then_routes_on_a_matching_key() -> None:
    actions, state = step(MENU, start(MENU))
    assert actions == [Collect("main", "en", 1, 5.0)]
    actions, state = step(MENU, state, Digits("1"))
    assert actions == [
        Journey("choice", "menu", {"key": "1", "next": "sales"}),
        Journey("route", "sales", {"queue": "sales"}),
        Route("queue", "sales", 3),
    ]


def test_retry_uses_the_retry_prompt_then_falls_back_after_max_tries() -> None:
    _, state = step(MENU, start(MENU))
    actions, state = step(MENU, state, Digits("7"))
    assert actions == [
        Journey("nomatch", "menu", {"key": "7", "try": 1}),
        Collect("again", "en", 1, 5.0),
    ]
    actions, state = step(MENU, state, Digits(""))
    assert actions == [
        Journey("noinput", "menu", {"key": "", "try": 2}),
        Journey("failure", "menu", {"tries": 2}),
        Route("fallback"),
    ]


def test_hangup_node_says_goodbye() -> None:
    _, state = step(MENU, start(MENU))
    actions, _ = step(MENU, state, Digits("9"))
    assert actions[-3:] == [Play("goodbye", "en"), Journey("hangup", "bye"), Hangup()]


def test_a_loop_without_input_is_an_error_not_a_hang() -> None:
    looping = flow(
        a={"type": "play", "prompt": "x", "next": "b"},
        b={"type": "play", "prompt": "y", "next": "a"},
    )
    with pytest.raises(FlowError, match="without waiting"):
        step(looping, start(looping))


def test_state_is_plain_data() -> None:
    _, state = step(MENU, start(MENU))
    assert state == type(state)(node="menu", tries=0, language="en", vars={})
