"""``ivr simulate FLOW``: hear a flow without a phone, by hand or from a script.

The simulator drives the pure engine as a transport would (`start`, then `step` until the
flow waits for the caller or the call leaves it), answers `Lookup` actions through a
``resolve`` function, and shows what the caller hears as text: a recording as its catalog
text (``[name]`` when it has none, ``[asterisk:x]`` for Asterisk sounds), a value as it is
read (``digits 1 2 3``, ``number 42``, ``money 12.50 USD``, ``date 2026-11-23``,
``alpha A B C``).

Interactive mode (`interactive`) reads the caller's answers line by line: digits, ``*`` and
``#`` are keys; an empty line is silence; ``/hangup`` hangs up; anything else is speech, with
an optional confidence (``order status@0.6``). At a recording prompt the line is the
recording's file name (``recording.wav`` when empty).

Script mode (`run_script`) plays a YAML script and raises `ScriptMismatch`
(``file:line:column: expected ..., got ...``) at the first difference; a malformed script
raises `SourceError` (``file:line:column: message``)::

    flow: customer_service        # a flow name, or use `entry: "5551000"` instead
    caller: "+14155550100"        # caller ID, quoted (default +14155550100)
    at: 2026-11-23T10:00:00-05:00 # the clock, with its UTC offset (required: repeatable runs)
    data:                         # what lookups find, by kind and value (keys quoted)
      customer:
        "+14155550100": {name: Ana Lopez, tier: vip, account: "1234"}
      order:
        "12345": {status: shipped, eta: "2026-11-25"}
      http:                       # find: http, by the rendered url
        "https://crm.example/api?n=1": {score: 3}
      fail: [order]               # kinds whose lookups fail (to test fallbacks)
    steps:
      - hear: choose-language     # prompt name(s) played since the last input (text or list)
        press: "1"                # keys, quoted
      - hear: main-menu
        say: order status         # speech; optional `confidence: 0.6` (default 1.0)
      - hear: [order-number]
        press: "12345#"
      - silence: true             # no input (timeout)
      - record: message.wav       # answer a recording prompt (`record: true`: recording.wav)
      - hangup: true              # the caller hangs up here
      - hear: goodbye             # a step with only `hear` checks without answering
    end:                          # what must happen at the end (all keys optional)
      route: {queue: support, priority: 5}   # or {transfer: "1001"}, fallback, or hangup
      saved:                      # records the flow saved, each a subset of one record
        - {callback: {reason: after_hours}}
        - {answer: {question: csat, value: "5"}}
      vars: {order.status: shipped}          # dotted variable -> expected value

A lookup with no entry in ``data`` finds nothing (``not_found``). ``hear`` is checked against
the names of the recordings played since the previous answer, not their text. Steps that
answer after the call ended, or a flow still waiting when the steps run out, are mismatches.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO

from ivr.flows.actions import (
    Given,
    Hangup,
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
)
from ivr.flows.engine import start, step
from ivr.flows.nodes import KEYS
from ivr.flows.plan import DialPlan
from ivr.flows.source import Path_, Source, load_source
from ivr.prompts import load_catalog

DEFAULT_CALLER = "+14155550100"
KINDS = ("customer", "order", "account", "http")
SCRIPT_KEYS = ("flow", "entry", "caller", "at", "data", "steps", "end")
STEP_KEYS = ("hear", "press", "say", "confidence", "silence", "hangup", "record")
ANSWERS = ("press", "say", "silence", "hangup", "record")
END_KEYS = ("route", "saved", "vars")
SAVED = {"callback": SaveCallback, "answer": SaveAnswer}

Resolve = Callable[[Lookup], LookupResult]
Saved = SaveCallback | SaveAnswer


class ScriptMismatch(Exception):
    """The flow did not do what the script expected; `transcript` is what happened so far."""

    def __init__(self, message: str, transcript: list[str]) -> None:
        super().__init__(message)
        self.transcript = list(transcript)


def resolver_from(data: dict[str, Any]) -> Resolve:
    """Lookups answered from ``{kind: {value: found data}, "fail": [kinds]}``."""
    failing = {str(kind) for kind in data.get("fail") or ()}
    tables = {
        kind: {str(value): found for value, found in (table or {}).items()}
        for kind, table in data.items()
        if kind != "fail"
    }

    def resolve(lookup: Lookup) -> LookupResult:
        if lookup.find in failing:
            return LookupResult("error")
        found = tables.get(lookup.find, {}).get(
            lookup.url if lookup.find == "http" else lookup.value
        )
        return LookupResult("not_found") if found is None else LookupResult("found", dict(found))

    return resolve


def flow_name(plan: DialPlan, flow_or_entry: str) -> str:
    """The flow a name or an entry (e.g. a DID) leads to."""
    if flow_or_entry in plan.flows:
        return flow_or_entry
    found = plan.flow_for(flow_or_entry)
    if found is None:
        raise ValueError(f"no flow or entry {flow_or_entry!r} in the dial plan")
    return found[0]


class Simulator:
    """One simulated call: feed it the caller's answers, read what the caller hears."""

    def __init__(
        self,
        plan: DialPlan,
        flow: str,
        prompts_root: Path | None,
        resolve: Resolve,
        now: datetime,
        caller: str = DEFAULT_CALLER,
        entry: str | None = None,
    ) -> None:
        self.plan, self.prompts_root, self.resolve, self.now = plan, prompts_root, resolve, now
        name = flow_name(plan, flow)
        self.state = start(
            plan, name, now, caller={"number": caller}, call={"entry": entry or flow}
        )
        self.heard: list[str] = []  # recording names played since the last answer
        self.saved: list[Saved] = []
        self.waiting: Listen | Record | None = None
        self.ending: Route | Hangup | None = None  # None once done: the caller hung up
        self._texts: dict[str, dict[str, str]] = {}

    @property
    def done(self) -> bool:
        return self.state.done

    def advance(self, given: Result | None = None) -> list[str]:
        """Answer (None to begin) and run until the flow waits or ends; the lines heard."""
        self.heard, self.waiting, lines = [], None, []
        answer: Given | None = given
        while True:
            actions, self.state = step(self.plan, self.state, answer, self.now)
            for action in actions:
                if isinstance(action, Play | Listen | Record):
                    self.heard += [p.name for p in action.parts if isinstance(p, Recording)]
                    lines.append(self.text(action.parts, action.language))
                elif isinstance(action, SaveCallback | SaveAnswer):
                    self.saved.append(action)
                elif isinstance(action, Route | Hangup):
                    self.ending = action
            last = actions[-1] if actions else None
            if not isinstance(last, Lookup):
                self.waiting = last if isinstance(last, Listen | Record) else None
                return lines
            answer = self.resolve(last)

    def text(self, parts: tuple[Part, ...], language: str) -> str:
        if language not in self._texts:
            root = self.prompts_root
            self._texts[language] = load_catalog(root, language).texts if root else {}
        texts = self._texts[language]
        return " ".join(
            texts.get(p.name, f"[{p.name}]") if isinstance(p, Recording) else said(p) for p in parts
        )


def said(part: SayValue) -> str:
    """A value as it is read out, e.g. ``digits 1 2 3`` or ``money 12.50 USD``."""
    value = part.value
    if part.kind in ("digits", "alpha"):
        value = " ".join(c.upper() for c in value if not c.isspace())
    elif part.kind == "money":
        try:
            value = f"{Decimal(value):.2f} {part.currency}"
        except InvalidOperation:
            value = f"{value} {part.currency}"
    return f"{part.kind} {value}"


def route_line(ending: Route | Hangup | None) -> str:
    """``-> queue sales (priority 5)``, ``-> transfer 1001``, ``-> safe queue (fallback)``..."""
    if isinstance(ending, Route):
        if ending.kind == "queue":
            return f"-> queue {ending.target}" + (
                f" (priority {ending.priority})" if ending.priority else ""
            )
        if ending.kind == "transfer":
            return f"-> transfer {ending.target}"
        return "-> safe queue (fallback)"
    return "-> hangup" if isinstance(ending, Hangup) else "-> hangup (by the caller)"


def saved_line(record: Saved) -> str:
    kind = "callback" if isinstance(record, SaveCallback) else "answer"
    shown = ", ".join(f"{k}={v}" for k, v in asdict(record).items() if v is not None)
    return f"saved {kind}: {shown}"


def caller_line(given: Result, recording: bool = False) -> str:
    if recording and given.status == "input":
        return f"caller: records {given.value}"
    if given.status == "noinput":
        return "caller: (silence)"
    if given.status == "hangup":
        return "caller: (hangs up)"
    if given.mode == "speech":
        return f'caller: says "{given.value}" (confidence {given.confidence})'
    return f"caller: presses {given.value}"


def parse_answer(line: str, waiting: Listen | Record | None) -> Result:
    """What the caller typed: keys, silence (empty), ``/hangup``, or ``words[@confidence]``."""
    if line == "/hangup":
        return Result("hangup")
    if isinstance(waiting, Record):
        return Result("input", "dtmf", line or "recording.wav")
    if not line:
        return Result("noinput")
    if all(c in KEYS for c in line):
        return Result("input", "dtmf", line)
    words, at, confidence = line.rpartition("@")
    try:
        if at and 0 <= float(confidence) <= 1:
            return Result("input", "speech", words.strip(), float(confidence))
    except ValueError:
        pass
    return Result("input", "speech", line)


def interactive(
    plan: DialPlan,
    flow: str,
    prompts_root: Path | None,
    resolve: Resolve,
    now: datetime,
    caller: str = DEFAULT_CALLER,
    entry: str | None = None,
    input: TextIO | None = None,
    output: TextIO | None = None,
) -> int:
    """Play `flow` (a flow name or an entry) at the terminal; the end of input hangs up."""
    source, out = input or sys.stdin, output or sys.stdout
    call = Simulator(plan, flow, prompts_root, resolve, now, caller, entry)
    given: Result | None = None
    while True:
        for line in call.advance(given):
            print(f"IVR: {line}", file=out)
        if call.done:
            break
        out.write("recording> " if isinstance(call.waiting, Record) else "caller> ")
        out.flush()
        typed = source.readline()
        if not source.isatty():
            out.write(typed if typed.endswith("\n") else typed + "\n")
        given = parse_answer(typed.strip(), call.waiting) if typed else Result("hangup")
    print(route_line(call.ending), file=out)
    for record in call.saved:
        print(saved_line(record), file=out)
    return 0


# -- scripts


@dataclass(frozen=True)
class _Step:
    hear: tuple[str, ...]
    answer: Result | None
    record: bool  # answers a recording prompt


def run_script(plan: DialPlan, script: Path, prompts_root: Path | None = None) -> list[str]:
    """Play a script (see the module docstring); the transcript, or ScriptMismatch."""
    source = load_source(script)
    spec = source.data
    if not isinstance(spec, dict):
        raise source.error((), "a script is a mapping with flow, at and steps")
    _known(source, (), spec, SCRIPT_KEYS, "the script")
    flow, entry = _flow_of(plan, source)
    caller = spec.get("caller", DEFAULT_CALLER)
    if not isinstance(caller, str):
        raise source.error(("caller",), 'caller must be quoted text, e.g. caller: "+14155550100"')
    steps = _steps(source)
    end = _known(source, ("end",), spec.get("end"), END_KEYS, "end")
    call = Simulator(plan, flow, prompts_root, _data(source), _clock(source), caller, entry)
    transcript: list[str] = []

    def mismatch(path: Path_, message: str) -> ScriptMismatch:
        return ScriptMismatch(f"{source.at(path)}: {message}", transcript)

    transcript += [f"IVR: {line}" for line in call.advance()]
    for i, item in enumerate(steps):
        if item.answer is not None and call.done:
            raise mismatch(
                ("steps", i),
                f"expected the flow to wait for the caller, got {route_line(call.ending)}",
            )
        if any(name not in call.heard for name in item.hear):
            raise mismatch(
                ("steps", i), f"expected to hear {_names(item.hear)}, got {_heard(call)}"
            )
        if item.answer is None:
            continue
        recording = isinstance(call.waiting, Record)
        if item.answer.status == "input" and item.record != recording:
            asked = "recording the caller" if recording else "listening for keys or speech"
            wanted = "to record the caller" if item.record else "to listen for keys or speech"
            raise mismatch(("steps", i), f"expected the flow {wanted}, got it {asked}")
        transcript.append(caller_line(item.answer, item.record))
        transcript += [f"IVR: {line}" for line in call.advance(item.answer)]
    if not call.done:
        where: Path_ = ("steps", len(steps) - 1) if steps else ("end",) if end else ()
        raise mismatch(
            where,
            f"expected the call to end, got the flow waiting at {call.state.node} "
            f"after {_heard(call)}",
        )
    transcript.append(route_line(call.ending))
    transcript += [saved_line(record) for record in call.saved]
    _check_end(source, end, call, mismatch)
    return transcript


def _names(names: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(names) + "]"


def _heard(call: Simulator) -> str:
    return _names(call.heard) if call.heard else "nothing"


def _known(
    source: Source, path: Path_, value: Any, allowed: tuple[str, ...] | None, what: str
) -> dict[str, Any]:
    """`value` as a mapping (empty when absent) whose keys are all `allowed` (None: any)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise source.error(path, f"{what} must be a mapping")
    for key in value:
        if allowed is not None and key not in allowed:
            raise source.error(
                (*path, key),
                f"unknown key {key!r} in {what} (one of {', '.join(allowed)})",
                key=True,
            )
    return value


def _flow_of(plan: DialPlan, source: Source) -> tuple[str, str]:
    spec = source.data
    if ("flow" in spec) == ("entry" in spec):
        raise source.error((), "give either flow (a flow name) or entry (e.g. a DID)")
    key = "flow" if "flow" in spec else "entry"
    name = spec[key]
    if not isinstance(name, str):
        raise source.error((key,), f'{key} must be quoted text, e.g. {key}: "{name}"')
    if key == "flow" and name not in plan.flows:
        raise source.error((key,), f"unknown flow {name!r}")
    found = plan.flow_for(name) if key == "entry" else (name, None)
    if found is None:
        raise source.error((key,), f"unknown entry {name!r}")
    return found[0], name


def _clock(source: Source) -> datetime:
    if "at" not in source.data:
        raise source.error(
            (), "missing 'at': the clock of the call, e.g. at: 2026-11-23T10:00:00-05:00"
        )
    at = source.data["at"]
    if isinstance(at, str):
        with contextlib.suppress(ValueError):
            at = datetime.fromisoformat(at)
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise source.error(
            ("at",),
            "at must be a date and time with its UTC offset, e.g. 2026-11-23T10:00:00-05:00",
        )
    return at


def _data(source: Source) -> Resolve:
    data = _known(source, ("data",), source.data.get("data"), (*KINDS, "fail"), "data")
    for kind in KINDS:
        table = data.get(kind) or {}
        if not isinstance(table, dict):
            raise source.error(("data", kind), f"data.{kind} maps values to the data found")
        for value, found in table.items():
            if not isinstance(found, dict):
                raise source.error(("data", kind, value), "the data found must be a mapping")
    fail = data.get("fail") or []
    if not isinstance(fail, list) or any(kind not in KINDS for kind in fail):
        raise source.error(("data", "fail"), f"fail is a list of kinds ({', '.join(KINDS)})")
    return resolver_from(data)


def _steps(source: Source) -> list[_Step]:
    items = source.data.get("steps") or []
    if not isinstance(items, list):
        raise source.error(("steps",), "steps must be a list")
    return [_step(source, ("steps", i), item) for i, item in enumerate(items)]


def _step(source: Source, path: Path_, item: Any) -> _Step:
    if not isinstance(item, dict):
        raise source.error(path, 'a step is a mapping, e.g. {hear: main-menu, press: "1"}')
    _known(source, path, item, STEP_KEYS, "a step")
    hear = item.get("hear", [])
    hear = [hear] if isinstance(hear, str) else hear
    if not isinstance(hear, list) or not all(isinstance(h, str) for h in hear):
        raise source.error((*path, "hear"), "hear is a prompt name or a list of them")
    answers = [key for key in ANSWERS if key in item]
    if len(answers) > 1:
        raise source.error(
            (*path, answers[1]), f"a step answers once: {answers[0]} or {answers[1]}", key=True
        )
    if "confidence" in item and "say" not in item:
        raise source.error((*path, "confidence"), "confidence goes with say", key=True)
    if not answers and not hear:
        raise source.error(path, f"a step needs hear or an answer ({', '.join(ANSWERS)})")
    answer = _answer(source, path, answers[0], item[answers[0]], item) if answers else None
    return _Step(tuple(hear), answer, answers == ["record"])


def _answer(source: Source, path: Path_, key: str, value: Any, item: dict[str, Any]) -> Result:
    where = (*path, key)
    if key == "press":
        if not isinstance(value, str) or not value or any(c not in KEYS for c in value):
            raise source.error(where, f'press is quoted keys ({KEYS}), e.g. press: "1"')
        return Result("input", "dtmf", value)
    if key == "say":
        confidence = item.get("confidence", 1.0)
        if not isinstance(value, str) or not value.strip():
            raise source.error(where, "say is the words the caller says")
        if (
            isinstance(confidence, bool)
            or not isinstance(confidence, int | float)
            or not (0 <= confidence <= 1)
        ):
            raise source.error((*path, "confidence"), "confidence is a number from 0 to 1")
        return Result("input", "speech", value, float(confidence))
    if key == "record":
        if value is True:
            value = "recording.wav"
        if not isinstance(value, str) or not value:
            raise source.error(where, "record is the recording's file name, e.g. message.wav")
        return Result("input", "dtmf", value)
    if value is not True:
        raise source.error(where, f"write {key}: true")
    return Result("noinput") if key == "silence" else Result("hangup")


def _check_end(
    source: Source,
    end: dict[str, Any],
    call: Simulator,
    mismatch: Callable[[Path_, str], ScriptMismatch],
) -> None:
    if "route" in end:
        wanted, matches = _route(source, end["route"], call.ending)
        if not matches:
            raise mismatch(("end", "route"), f"expected {wanted}, got {route_line(call.ending)}")
    saved = end.get("saved") or []
    if not isinstance(saved, list):
        raise source.error(("end", "saved"), "saved is a list, e.g. - {callback: {reason: x}}")
    left = list(call.saved)
    for i, item in enumerate(saved):
        kind, want = _saved(source, ("end", "saved", i), item)
        found = next((r for r in left if _has(r, kind, want)), None)
        if found is None:
            shown = "; ".join(saved_line(r) for r in call.saved) or "nothing saved"
            wanted = ", ".join(f"{k}={v}" for k, v in want.items())
            raise mismatch(("end", "saved", i), f"expected saved {kind}: {wanted}, got {shown}")
        left.remove(found)
    for name, value in _known(source, ("end", "vars"), end.get("vars"), None, "vars").items():
        got = _var(call.state.vars, name)
        if got is None or str(got) != str(value):
            shown = "nothing" if got is None else got
            raise mismatch(("end", "vars", name), f"expected {name} = {value}, got {shown}")


def _route(source: Source, spec: Any, ending: Route | Hangup | None) -> tuple[str, bool]:
    """What the script expects, as a route line, and whether `ending` is that."""
    route = ending if isinstance(ending, Route) else Route("hangup")
    if spec in ("hangup", "fallback"):
        return route_line(Hangup() if spec == "hangup" else Route(spec)), route.kind == spec
    if isinstance(spec, dict) and set(spec) == {"transfer"}:
        to = str(spec["transfer"])
        return f"-> transfer {to}", route.kind == "transfer" and route.target == to
    if isinstance(spec, dict) and "queue" in spec and set(spec) <= {"queue", "priority"}:
        queue, priority = str(spec["queue"]), spec.get("priority")
        wanted = route_line(Route("queue", queue, priority or 0))
        same = route.kind == "queue" and route.target == queue
        return wanted, same and (priority is None or str(route.priority) == str(priority))
    raise source.error(
        ("end", "route"),
        'route is {queue: name, priority: n}, {transfer: "1001"}, fallback or hangup',
    )


def _saved(source: Source, path: Path_, item: Any) -> tuple[str, dict[str, Any]]:
    if not (isinstance(item, dict) and len(item) == 1 and next(iter(item)) in SAVED):
        raise source.error(path, "a saved record is {callback: {...}} or {answer: {...}}")
    kind, want = next(iter(item.items()))
    allowed = tuple(f.name for f in fields(SAVED[kind]))
    return kind, _known(source, (*path, kind), want, allowed, f"a saved {kind}")


def _has(record: Saved, kind: str, want: dict[str, Any]) -> bool:
    if not isinstance(record, SAVED[kind]):
        return False
    values = asdict(record)
    return all(str(values[k]) == str(v) for k, v in want.items())


def _var(vars: dict[str, Any], dotted: str) -> Any:
    value: Any = vars
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value
