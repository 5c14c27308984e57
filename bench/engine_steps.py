"""Engine steps per second on the shipped inbound flow, against the design target.

Two realistic calls through ``customer_service`` (dialplans/customer_service.yaml),
driven through the pure engine over and over: order status by keys, and billing by
speech with one no-match before the caller presses 0 for an agent. We time the
``step`` calls (``start``, once a call, apart). The target is 10x a mid-size
centre's 50 concurrent IVR calls at 2 steps a second each: 1000 steps/s on one
core. In the same alternating rounds we time what a Twilio webhook adds per step to
carry the state: ``State.to_dict`` + ``json.dumps`` + ``json.loads`` + ``State.from_dict``."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from ivr.flows.actions import Given, LookupResult, Result, State
from ivr.flows.engine import start, step
from ivr.flows.plan import DialPlan
from ivr.flows.validate import load_plan

CALLS = 600  # of each path, per round
ROUNDS = 5
TARGET = 500 * 2  # 500 concurrent calls, 2 engine steps per second each
FLOW = "customer_service"
NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # a Monday, 10:00 in New York: open
CALLER = {"number": "+14155550123"}


def dtmf(keys: str) -> Result:
    return Result("input", "dtmf", keys)


def speech(words: str, confidence: float = 0.9) -> Result:
    return Result("input", "speech", words, confidence)


ORDER_STATUS: list[Given | None] = [
    None,  # identify: look up the caller
    LookupResult("not_found"),
    dtmf("1"),  # English
    dtmf("1"),  # order status
    dtmf("123456#"),
    LookupResult("found", {"number": "123456", "status": "shipped", "eta": "2026-11-25"}),
    dtmf("9"),  # nothing else: goodbye
]
BILLING_BY_SPEECH: list[Given | None] = [
    None,
    LookupResult("found", {"name": "Ann Lee", "tier": "gold"}),
    speech("english"),
    speech("pizza"),  # no match: asked again
    speech("billing"),
    dtmf("12345674"),  # account number with its Luhn check digit
    LookupResult("found", {"balance": "42.50"}),
    dtmf("0"),  # the agent escape: general queue
]
PATHS = (ORDER_STATUS, BILLING_BY_SPEECH)


def call(plan: DialPlan, entered: State, path: list[Given | None]) -> list[State]:
    """One call from `entered` along `path`: the state after each step."""
    state = entered
    states = []
    for given in path:
        _, state = step(plan, state, given, NOW)
        states.append(state)
    return states


def round_trip(state: State) -> State:
    return State.from_dict(json.loads(json.dumps(state.to_dict())))


def timed_starts(plan: DialPlan) -> float:
    begin = time.perf_counter()
    for _ in range(CALLS * len(PATHS)):
        start(plan, FLOW, NOW, caller=CALLER)
    return time.perf_counter() - begin


def timed_steps(plan: DialPlan, entered: State) -> float:
    begin = time.perf_counter()
    for _ in range(CALLS):
        for path in PATHS:
            call(plan, entered, path)
    return time.perf_counter() - begin


def timed_round_trips(states: list[State]) -> float:
    begin = time.perf_counter()
    for _ in range(CALLS):
        for state in states:
            round_trip(state)
    return time.perf_counter() - begin


def main() -> tuple[int, dict[str, float]]:
    plan = load_plan(Path(__file__).parent.parent / "dialplans")
    entered = start(plan, FLOW, NOW, caller=CALLER)  # frozen: every call can begin from it
    calls = [call(plan, entered, path) for path in PATHS]
    ends = [(states[-1].node, states[-1].done) for states in calls]
    assert ends == [("goodbye", True), ("general_queue", True)], ends
    states = [s for states in calls for s in states]
    assert all(round_trip(s) == s for s in states), "the state does not survive JSON"
    steps = len(states) * CALLS * ROUNDS  # the round trips carry the same states
    totals = {"start": 0.0, "steps": 0.0, "state": 0.0}
    for _ in range(ROUNDS):
        totals["steps"] += timed_steps(plan, entered)
        totals["state"] += timed_round_trips(states)
        totals["start"] += timed_starts(plan)
    return steps, totals


def run() -> None:
    steps, totals = main()
    rate = steps / totals["steps"]
    step_us = totals["steps"] / steps * 1e6
    state_us = totals["state"] / steps * 1e6
    start_us = totals["start"] / (CALLS * len(PATHS) * ROUNDS) * 1e6
    print(f"engine_steps: {steps} steps of {FLOW} (2 call paths), {ROUNDS} alternating rounds")
    print(f"  start (caller ID to E.164)       {start_us:.1f} us/call")
    print(f"  engine step                      {step_us:.1f} us/step")
    print(f"  State JSON round trip            {state_us:.1f} us/step")
    print(f"  engine                           {rate:.0f} steps/s")
    print(f"  target (500 calls x 2 steps/s)   {TARGET} steps/s")
    print(f"  headroom = measured / target     {rate / TARGET:.1f}")
    print(f"  ratio state round trip / step    {totals['state'] / totals['steps']:.2f}")
