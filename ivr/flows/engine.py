"""The flow engine: ``step(plan, state, given, now) -> (actions, state)``. Pure.

It does no I/O and knows no transport. A transport performs the actions in
order; when the last one waits (`Listen`, `Record`, `Lookup`) it calls `step`
again with the answer. After a `Route` or `Hangup` the call has left the flow.
The current time comes in as `now`, for business hours and the time each step took.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from typing import Any

from ivr.flows.actions import (
    Action,
    Given,
    Hangup,
    Journey,
    Listen,
    Lookup,
    LookupResult,
    Part,
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
from ivr.flows.hours import is_open
from ivr.flows.nodes import (
    BranchNode,
    CallbackNode,
    CollectNode,
    Condition,
    GotoNode,
    HangupNode,
    LanguageNode,
    LookupNode,
    MenuNode,
    MenuOption,
    PlayNode,
    QueueNode,
    RequestNode,
    ReturnNode,
    Say,
    SetNode,
    SubflowNode,
    SurveyNode,
    TransferNode,
    normal_phrase,
)
from ivr.flows.plan import DialPlan, Flow
from ivr.numbers import normalise_number

MAX_HOPS = 200  # nodes passed in one step before the flow is judged to loop
YES = ("yes", "yeah", "yep", "correct", "right", "that's right")
NO = ("no", "nope", "wrong", "not right")
TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)\}")


class FlowError(Exception):
    """The flow cannot go on at `node`; the transport sends the call to the safe queue."""

    def __init__(self, message: str, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


def start(plan: DialPlan, flow: str, now: datetime, **vars: Any) -> State:
    """A call entering `flow`. `vars` seed variables, e.g. caller={"number": "+1415..."}."""
    definition = plan.flows[flow]
    seeded = dict(vars)
    caller = dict(seeded.get("caller", {}))
    caller["e164"] = normalise_number(str(caller.get("number", "")), definition.region)
    seeded["caller"] = caller
    return State(
        flow=flow,
        node=definition.start,
        language=definition.language,
        vars=seeded,
        entered_at=now.timestamp(),
    )


def step(
    plan: DialPlan, state: State, given: Given | None, now: datetime
) -> tuple[list[Action], State]:
    if state.done:
        raise FlowError("the call has already left the flow")
    run = _Run(plan, now)
    if given is not None:
        state, waiting = run.answer(state, given)
        if waiting or state.done:
            return run.actions, state
    return run.advance(state)


def resume(plan: DialPlan, state: State, why: str, now: datetime) -> tuple[list[Action], State]:
    """A call the switch hands back: ``overflow`` when it waited `max_wait` in its queue."""
    node = plan.flows[state.flow].nodes[state.node]
    if why != "overflow" or not isinstance(node, QueueNode) or node.overflow is None:
        raise FlowError(f"cannot resume {state.node} for {why!r}", state.node)
    run = _Run(plan, now)
    run.journey("overflow", state, queue=node.queue, max_wait=node.max_wait)
    state, _ = run.goto(replace(state, done=False), node.overflow)
    return run.advance(state)


def render(template: str, vars: dict[str, Any]) -> str:
    return TEMPLATE.sub(lambda m: "" if (v := _get(vars, m[1])) is None else str(v), template)


def _get(vars: dict[str, Any], dotted: str) -> Any:
    value: Any = vars
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _set(vars: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    head, _, rest = dotted.partition(".")
    copy = dict(vars)
    copy[head] = _set(dict(copy.get(head) or {}), rest, value) if rest else value
    return copy


def _names(prompt: list[str | Say]) -> tuple[str, ...]:
    return tuple(p if isinstance(p, str) else f"say:{p.say}" for p in prompt)


def _luhn(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


class _Run:
    """One step's work: the actions gathered so far, for one plan at one instant."""

    def __init__(self, plan: DialPlan, now: datetime) -> None:
        self.plan = plan
        self.now = now
        self.actions: list[Action] = []

    # -- helpers
    def flow(self, state: State) -> Flow:
        return self.plan.flows[state.flow]

    def parts(self, prompt: list[str | Say], state: State) -> tuple[Part, ...]:
        return tuple(
            Recording(p)
            if isinstance(p, str)
            else SayValue(p.say, render(p.value, state.vars), p.currency)
            for p in prompt
        )

    def journey(self, kind: str, state: State, **data: Any) -> None:
        self.actions.append(Journey(kind, state.node, data))

    def took(self, state: State) -> int:
        return max(0, round((self.now.timestamp() - state.entered_at) * 1000))

    def goto(self, state: State, target: str) -> tuple[State, bool]:
        return replace(
            state,
            node=target,
            noinput=0,
            nomatch=0,
            speech_failures=0,
            confirming=None,
            entered_at=self.now.timestamp(),
        ), False

    def end(self, state: State, action: Route | Hangup) -> tuple[State, bool]:
        self.actions.append(action)
        return replace(state, done=True), False

    def heard(self, given: Result, state: State, result: str, **more: Any) -> None:
        """The journey of one answer: what was asked, what came back, the result, the time."""
        said = (
            {"utterance": given.value, **self.band(state, given)} if given.mode == "speech" else {}
        )
        if given.latency_ms is not None:
            said["latency_ms"] = given.latency_ms
        self.journey(
            result,
            state,
            prompt=list(state.asked),
            mode=given.mode,
            value=given.value,
            **said,
            confidence=given.confidence,
            ms=self.took(state),
            **more,
        )

    def band(self, state: State, given: Result) -> dict[str, str]:
        """Where a spoken answer's confidence falls in its menu's bands."""
        menu = self.flow(state).nodes.get(state.node)
        speech = getattr(menu, "speech", None)
        if speech is None:
            return {}
        if given.confidence < speech.reject:
            return {"band": "reject"}
        return {"band": "confirm" if given.confidence < speech.accept else "accept"}

    def ask(self, state: State, action: Listen | Record, prompt: list) -> tuple[State, bool]:
        """Emit a waiting action; the state remembers what was asked, for the journey."""
        self.actions.append(action)
        return replace(state, asked=_names(prompt)), True

    def advance(self, state: State) -> tuple[list[Action], State]:
        """Enter nodes until one waits for the caller or the call leaves the flow."""
        for _ in range(MAX_HOPS):
            state, waiting = self.enter(state)
            if waiting or state.done:
                return self.actions, state
        raise FlowError(
            f"flow passed {MAX_HOPS} nodes without waiting for the caller at {state.node}",
            state.node,
        )

    # -- entering a node
    def enter(self, state: State) -> tuple[State, bool]:
        node = self.flow(state).nodes[state.node]
        match node:
            case MenuNode():
                return self.ask_menu(state, node, node.prompt)
            case CollectNode():
                return self.ask_collect(state, node, node.prompt)
            case SurveyNode():
                return self.ask_survey(state, node, node.prompt)
            case PlayNode():
                self.actions.append(Play(self.parts(node.prompt, state), state.language))
                self.journey("play", state, prompt=list(_names(node.prompt)))
                return self.goto(state, node.next)
            case LookupNode():
                value = (
                    state.vars["caller"]["e164"]
                    if node.by == "caller_id"
                    else render(node.value or "", state.vars)
                )
                url = render(node.url, state.vars) if node.url else None
                self.actions.append(Lookup(node.find, value, url, node.timeout))
                return state, True
            case BranchNode():
                for i, case in enumerate(node.cases):
                    if self.holds(case.when, state):
                        self.journey("branch", state, case=i + 1, goto=case.goto)
                        return self.goto(state, case.goto)
                self.journey("branch", state, case="else", goto=node.else_)
                return self.goto(state, node.else_)
            case SetNode():
                vars = state.vars
                for name, template in node.vars.items():
                    vars = _set(vars, name, render(template, state.vars))
                self.journey("set", state, vars=dict(node.vars))
                return self.goto(replace(state, vars=vars), node.next)
            case LanguageNode():
                self.journey("language", state, language=node.language)
                return self.goto(replace(state, language=node.language), node.next)
            case QueueNode():
                options = node.model_dump(exclude={"type", "queue", "priority"}, exclude_none=True)
                self.journey("route", state, queue=node.queue, priority=node.priority)
                return self.end(state, Route("queue", node.queue, node.priority, options))
            case TransferNode():
                self.journey("route", state, transfer=node.to)
                return self.end(state, Route("transfer", node.to))
            case CallbackNode():
                number = render(node.number, state.vars)
                preferred = render(node.preferred, state.vars) if node.preferred else None
                self.actions.append(SaveCallback(number, node.reason, preferred, node.eta_minutes))
                state = replace(
                    state,
                    vars=_set(
                        state.vars,
                        "callback",
                        {"number": number, "eta_minutes": node.eta_minutes, "reason": node.reason},
                    ),
                )
                # Noted before the prompt: a caller who hangs up during it still asked.
                self.journey(
                    "callback",
                    state,
                    number=number,
                    reason=node.reason,
                    preferred=preferred,
                    eta_minutes=node.eta_minutes,
                )
                self.actions.append(Play(self.parts(node.prompt, state), state.language))
                return self.goto(state, node.next)
            case RequestNode():
                # Noted before the prompt: a caller who hangs up during it still asked.
                self.journey(node.type, state)
                if node.prompt:
                    self.actions.append(Play(self.parts(node.prompt, state), state.language))
                return self.goto(state, node.next)
            case SubflowNode():
                self.journey("subflow", state, flow=node.flow)
                inner = self.plan.flows[node.flow]
                state = replace(
                    state, flow=node.flow, stack=(*state.stack, (state.flow, node.next))
                )
                return self.goto(state, inner.start)
            case ReturnNode():
                if not state.stack:
                    raise FlowError(f"return at {state.node} outside a subflow", state.node)
                (flow, after), stack = state.stack[-1], state.stack[:-1]
                self.journey("return", state, to=f"{flow}.{after}")
                return self.goto(replace(state, flow=flow, stack=stack), after)
            case GotoNode():
                return self.goto(state, node.goto)
            case HangupNode():
                if node.prompt:
                    self.actions.append(Play(self.parts(node.prompt, state), state.language))
                self.journey("hangup", state, by="flow")
                return self.end(state, Hangup())
        raise FlowError(f"node {state.node} has an unknown type", state.node)  # pragma: no cover

    def holds(self, cond: Condition, state: State) -> bool:
        if cond.all is not None:
            return all(self.holds(c, state) for c in cond.all)
        if cond.any is not None:
            return any(self.holds(c, state) for c in cond.any)
        if cond.open or cond.closed:
            opened = is_open(self.plan.hours[cond.open or cond.closed or ""], self.now)
            return opened if cond.open else not opened
        value = _get(state.vars, cond.var or "")
        if cond.exists is not None:
            return (value not in (None, "")) == cond.exists
        if cond.matches is not None:
            return value is not None and re.fullmatch(cond.matches, str(value)) is not None
        if cond.in_ is not None:
            return str(value) in {str(v) for v in cond.in_}
        if cond.ne is not None:
            return str(value) != str(cond.ne)
        return str(value) == str(cond.eq)

    # -- asking
    def options(self, state: State, menu: MenuNode) -> list[MenuOption]:
        escape = self.flow(state).escape
        if escape is None or not menu.escape:
            return menu.options
        return [*menu.options, MenuOption(key=escape.key, say=escape.say, goto=escape.goto)]

    def speech_on(self, state: State, menu: MenuNode) -> bool:
        return menu.speech is not None and state.speech_failures < menu.speech.dtmf_after

    def ask_menu(self, state: State, menu: MenuNode, prompt: list) -> tuple[State, bool]:
        phrases = tuple(p for o in self.options(state, menu) for p in o.say)
        return self.ask(
            state,
            Listen(
                self.parts(prompt, state),
                state.language,
                max_digits=1,
                timeout=menu.timeout,
                phrases=phrases if self.speech_on(state, menu) else (),
                barge_in=menu.barge_in,
            ),
            prompt,
        )

    def ask_collect(self, state: State, node: CollectNode, prompt: list) -> tuple[State, bool]:
        return self.ask(
            state,
            Listen(
                self.parts(prompt, state),
                state.language,
                max_digits=node.max_length,
                terminator=node.terminator,
                timeout=node.timeout,
                inter_digit_timeout=node.inter_digit_timeout,
            ),
            prompt,
        )

    def ask_survey(self, state: State, node: SurveyNode, prompt: list) -> tuple[State, bool]:
        parts = self.parts(prompt, state)
        if node.kind == "recording":
            return self.ask(state, Record(parts, state.language, node.max_seconds), prompt)
        if node.kind == "nps":
            listen = Listen(
                parts, state.language, max_digits=2, terminator="#", inter_digit_timeout=2.0
            )
        else:
            listen = Listen(parts, state.language, phrases=YES + NO if node.kind == "yesno" else ())
        return self.ask(state, listen, prompt)

    # -- answers
    def answer(self, state: State, given: Given) -> tuple[State, bool]:
        node = self.flow(state).nodes[state.node]
        if isinstance(given, Result) and given.status == "hangup":
            self.journey("hangup", state, by="caller", ms=self.took(state))
            return replace(state, done=True), False
        match node:
            case MenuNode() if isinstance(given, Result):
                return self.answer_menu(state, node, given)
            case CollectNode() if isinstance(given, Result):
                return self.answer_collect(state, node, given)
            case SurveyNode() if isinstance(given, Result):
                return self.answer_survey(state, node, given)
            case LookupNode() if isinstance(given, LookupResult):
                data = {"find": node.find, "result": given.status, "ms": self.took(state)}
                if node.by == "value" and node.find != "http":  # what the caller gave: the pop
                    data["value"] = render(node.value or "", state.vars)  # matches on it
                self.journey("lookup", state, **data)
                if given.status == "found":
                    state = replace(state, vars=_set(state.vars, node.variable, given.data))
                    return self.goto(state, node.found)
                if given.status == "error" and node.fallback:
                    return self.goto(state, node.fallback)
                return self.goto(state, node.not_found)
        raise FlowError(
            f"{type(given).__name__} arrived at {state.node}, which did not ask", state.node
        )

    def answer_menu(self, state: State, menu: MenuNode, given: Result) -> tuple[State, bool]:
        options = self.options(state, menu)
        if state.confirming is not None:
            option = options[state.confirming]
            said = normal_phrase(given.value)
            if given.status == "input" and (given.value == "1" or said in YES):
                escape = _escape_mark(menu, state.confirming)
                self.heard(given, state, "confirmed", goto=option.goto, **escape)
                return self.goto(state, option.goto)
            self.heard(given, state, "rejected")
            return self.retry_menu(replace(state, confirming=None), menu, "nomatch", speech=True)
        if given.status == "error":
            assert menu.speech is not None
            self.journey("speech_error", state, reason=given.value)
            state = replace(state, speech_failures=menu.speech.dtmf_after)
            return self.ask_menu(state, menu, menu.speech.dtmf_prompt or menu.prompt)
        if given.status == "noinput":
            self.heard(given, state, "noinput")
            return self.retry_menu(state, menu, "noinput", speech=False)
        index = self.match(options, given)
        speech = menu.speech
        if index is None or (
            given.mode == "speech" and speech and given.confidence < speech.reject
        ):
            self.heard(given, state, "nomatch")
            return self.retry_menu(state, menu, "nomatch", speech=given.mode == "speech")
        option = options[index]
        if (
            given.mode == "speech"
            and speech
            and speech.confirm_prompt
            and (given.confidence < speech.accept)
        ):
            self.heard(given, state, "confirm", option=index + 1)
            state = replace(state, confirming=index)
            prompt = list(speech.confirm_prompt) + ([option.prompt] if option.prompt else [])
            return self.ask(
                state,
                Listen(
                    self.parts(prompt, state),
                    state.language,
                    timeout=menu.timeout,
                    phrases=YES + NO,
                ),
                prompt,
            )
        self.heard(given, state, "match", goto=option.goto, **_escape_mark(menu, index))
        return self.goto(state, option.goto)

    @staticmethod
    def match(options: list[MenuOption], given: Result) -> int | None:
        if given.mode == "dtmf":
            return next((i for i, o in enumerate(options) if o.key == given.value), None)
        said = normal_phrase(given.value)
        for i, option in enumerate(options):
            if any(normal_phrase(p) == said for p in option.say):
                return i
        for i, option in enumerate(options):  # "I want billing please" still means billing
            if any(re.search(rf"\b{re.escape(normal_phrase(p))}\b", said) for p in option.say):
                return i
        return None

    def retry_menu(
        self, state: State, menu: MenuNode, why: str, speech: bool
    ) -> tuple[State, bool]:
        count = (state.noinput if why == "noinput" else state.nomatch) + 1
        state = replace(
            state, **{why: count}, speech_failures=state.speech_failures + (1 if speech else 0)
        )
        if count >= menu.max_tries:
            return self.fail(state, menu.failure, tries=count, why=why)
        escalation = menu.noinput_prompts if why == "noinput" else menu.nomatch_prompts
        prompt = escalation[min(count, len(escalation)) - 1] if escalation else menu.prompt
        if menu.speech and menu.speech.dtmf_prompt and not self.speech_on(state, menu):
            prompt = menu.speech.dtmf_prompt
        return self.ask_menu(state, menu, prompt)

    def fail(self, state: State, target: str | None, **data: Any) -> tuple[State, bool]:
        self.journey("failure", state, **data)
        if target is None:
            return self.end(state, Route("fallback"))
        return self.goto(state, target)

    def answer_collect(self, state: State, node: CollectNode, given: Result) -> tuple[State, bool]:
        if given.status != "input":
            self.heard(given, state, "noinput")
            state = replace(state, noinput=state.noinput + 1)
            if state.noinput >= node.max_tries:
                return self.fail(state, node.failure, tries=state.noinput, why="noinput")
            return self.ask_collect(state, node, node.noinput_prompt or node.prompt)
        value = given.value.rstrip(node.terminator or "")
        if self.valid_entry(node, value):
            self.heard(given, state, "valid", var=node.var)
            return self.goto(replace(state, vars=_set(state.vars, node.var, value)), node.next)
        self.heard(given, state, "invalid")
        state = replace(state, nomatch=state.nomatch + 1)
        if state.nomatch >= node.max_tries:
            return self.fail(state, node.failure, tries=state.nomatch, why="invalid")
        return self.ask_collect(state, node, (node.invalid_prompt or []) + node.prompt)

    @staticmethod
    def valid_entry(node: CollectNode, value: str) -> bool:
        if not (value.isdigit() and node.min_length <= len(value) <= node.max_length):
            return False
        if node.pattern and not re.fullmatch(node.pattern, value):
            return False
        return not (node.checksum == "luhn" and not _luhn(value))

    def answer_survey(self, state: State, node: SurveyNode, given: Result) -> tuple[State, bool]:
        value = self.survey_value(node, given)
        if value is not None:
            self.actions.append(SaveAnswer(node.question, node.kind, value))
            self.heard(
                given, state, "answer", question=node.question, scale=node.kind, answer=value
            )
            return self.goto(state, node.next)
        self.heard(given, state, "invalid" if given.status == "input" else "noinput")
        state = replace(state, nomatch=state.nomatch + 1)
        if state.nomatch >= node.max_tries:
            self.journey("skipped", state, question=node.question)
            return self.goto(state, node.next)
        return self.ask_survey(state, node, (node.invalid_prompt or []) + node.prompt)

    @staticmethod
    def survey_value(node: SurveyNode, given: Result) -> str | None:
        if given.status != "input" or not given.value:
            return None
        value = given.value.rstrip("#")
        if node.kind == "recording":
            return value
        if node.kind == "yesno":
            said = normal_phrase(value)
            return (
                "yes"
                if value == "1" or said in YES
                else "no"
                if value == "2" or said in NO
                else None
            )
        top = 5 if node.kind == "scale5" else 10
        low = 1 if node.kind == "scale5" else 0
        return value if value.isdigit() and low <= int(value) <= top else None


def _escape_mark(menu: MenuNode, index: int) -> dict[str, bool]:
    """Journey data marking the flow's agent escape (appended after the menu's options)."""
    return {"escape": True} if index >= len(menu.options) else {}
