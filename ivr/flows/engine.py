"""The flow engine: a pure state machine, ``step(flow, state, input) -> (actions, state)``.

It does no I/O and knows no transport. A transport (FastAGI, process AGI, Twilio,
the simulator) performs the actions in order. When the last action is a `Collect`,
the transport calls `step` again with what the caller did; after a `Route` or a
`Hangup` the flow is over. `State` is plain data, so it can travel between HTTP
requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ivr.flows.plan import Flow, HangupNode, MenuNode, PlayNode, QueueNode, TransferNode

MAX_HOPS = 100  # nodes visited in one step before the flow is judged to loop


class FlowError(Exception):
    """The flow cannot go on (e.g. it loops without waiting for the caller)."""


@dataclass(frozen=True)
class State:
    node: str
    tries: int = 0
    language: str = "en"
    vars: dict[str, Any] = field(default_factory=dict)


# Actions the transport performs.
@dataclass(frozen=True)
class Play:
    prompt: str
    language: str


@dataclass(frozen=True)
class Collect:
    """Play `prompt` (interruptible by a key) and wait for up to `max_digits` keys."""

    prompt: str
    language: str
    max_digits: int
    timeout: float


@dataclass(frozen=True)
class Route:
    """Hand the call back to the switch: kind is queue, transfer or fallback."""

    kind: str
    target: str = ""
    priority: int = 0


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class Journey:
    """A step worth keeping in the call's journey."""

    kind: str
    node: str
    data: dict[str, Any] = field(default_factory=dict)


Action = Play | Collect | Route | Hangup | Journey


@dataclass(frozen=True)
class Digits:
    """What the caller keyed in answer to a `Collect`; empty when they keyed nothing."""

    value: str


def start(flow: Flow) -> State:
    return State(node=flow.start, language=flow.language)


def step(flow: Flow, state: State, given: Digits | None = None) -> tuple[list[Action], State]:
    actions: list[Action] = []
    if given is not None:
        state = _answer(flow, state, given, actions)
        if isinstance(actions[-1], Route):
            return actions, state
    for _ in range(MAX_HOPS):
        node = flow.nodes[state.node]
        if isinstance(node, MenuNode):
            prompt = node.prompt if state.tries == 0 or not node.retry_prompt else node.retry_prompt
            actions.append(Collect(prompt, state.language, 1, node.timeout))
            return actions, state
        if isinstance(node, PlayNode):
            actions.append(Play(node.prompt, state.language))
            state = replace(state, node=node.next, tries=0)
            continue
        if isinstance(node, QueueNode):
            actions.append(Journey("route", state.node, {"queue": node.queue}))
            actions.append(Route("queue", node.queue, node.priority))
        elif isinstance(node, TransferNode):
            actions.append(Journey("route", state.node, {"transfer": node.target}))
            actions.append(Route("transfer", node.target))
        elif isinstance(node, HangupNode):
            if node.prompt:
                actions.append(Play(node.prompt, state.language))
            actions.append(Journey("hangup", state.node))
            actions.append(Hangup())
        return actions, state
    raise FlowError(f"flow passed {MAX_HOPS} nodes without waiting for the caller at {state.node}")


def _answer(flow: Flow, state: State, given: Digits, actions: list[Action]) -> State:
    node = flow.nodes[state.node]
    if not isinstance(node, MenuNode):
        raise FlowError(f"input {given.value!r} arrived at {state.node}, which asked for none")
    target = node.options.get(given.value)
    if target is not None:
        actions.append(Journey("choice", state.node, {"key": given.value, "next": target}))
        return replace(state, node=target, tries=0)
    status = "noinput" if given.value == "" else "nomatch"
    tries = state.tries + 1
    actions.append(Journey(status, state.node, {"key": given.value, "try": tries}))
    if tries < node.max_tries:
        return replace(state, tries=tries)
    actions.append(Journey("failure", state.node, {"tries": tries}))
    if node.failure is None:
        actions.append(Route("fallback"))
        return replace(state, tries=0)
    return replace(state, node=node.failure, tries=0)
