"""Runs one call's flow over AGI: engine actions become AGI commands.

Routing is handed back to the Asterisk dialplan: we set ``IVR_ROUTE`` (queue,
transfer or hangup) and its arguments, then end the AGI session, and the
``ivr-route`` context carries the call out. If our code fails, the call is routed
to the safe queue; if even that fails, the dialplan's own fallback takes it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from time import monotonic as time_now
from typing import TYPE_CHECKING, Any

from cti.store.calls import CallLog, IvrPart
from cti.store.models import utcnow
from ivr.flows.actions import (
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
from ivr.flows.engine import resume, start, step
from ivr.flows.nodes import KEYS
from ivr.flows.plan import DialPlan
from ivr.prompts import PROMPT_NAME, STOCK_PREFIX
from ivr.transports.fastagi import AgiError, AgiRequest, CallerHungUp, alive

if TYPE_CHECKING:  # process AGI runs without the speech packages
    from ivr.transports.agi_speech import SpeechListener

log = logging.getLogger("ivr.call")

ROUTE_VALUE = re.compile(r"[A-Za-z0-9_+.-]*")


def sound_path(prompt: str, language: str) -> str:
    """Our prompts live under sounds/ivr/<lang>/; ``asterisk:name`` is a stock sound."""
    name = prompt.removeprefix(STOCK_PREFIX)
    if not PROMPT_NAME.fullmatch(name) or not PROMPT_NAME.fullmatch(language):
        raise AgiError(f"unsafe prompt name {prompt!r}")
    return name if prompt.startswith(STOCK_PREFIX) else f"ivr/{language}/{name}"


def entry_of(headers: dict[str, str]) -> str:
    """``agi://host/inbound,<DID>`` selects by DID; ``agi://host/<entry>`` by name.

    Process AGI (``AGI(ivr-agi,<entry>,...)``) names the entry in its first argument.
    """
    script = headers.get("agi_network_script", "").strip("/")
    if script in ("inbound", ""):
        return headers.get("agi_arg_1") or headers.get("agi_extension", "")
    return script


def say_commands(part: SayValue, escape: str) -> list[str]:
    """AGI commands that read a value out; none when it cannot be read as its kind."""
    value = part.value.strip()
    if part.kind == "digits" and value and all(c in KEYS for c in value):
        return [f'SAY DIGITS {value} "{escape}"']
    if part.kind == "alpha" and value.isalnum():
        return [f'SAY ALPHA {value} "{escape}"']
    if part.kind in ("number", "money"):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            return []
        if part.kind == "number":
            return [f'SAY NUMBER {int(amount)} "{escape}"']
        units, cents = divmod(int(abs(amount) * 100), 100)
        said = [f'SAY NUMBER {units} "{escape}"']
        if part.currency == "USD":
            said.append(f'STREAM FILE digits/dollars "{escape}"')
        return said + ([f'SAY NUMBER {cents} "{escape}"'] if cents else [])
    if part.kind == "date":
        try:
            day = date.fromisoformat(value)
        except ValueError:
            return []
        noon = int(datetime.combine(day, time(12), UTC).timestamp())
        return [f'SAY DATE {noon} "{escape}"']
    return []


class ParkedCalls:
    """Calls handed to a queue with an overflow: the plan and state to resume them with."""

    def __init__(self, keep_seconds: float = 4 * 3600) -> None:
        self.keep_seconds = keep_seconds
        self.calls: dict[str, tuple[DialPlan, State, float]] = {}

    def park(self, call_id: str, plan: DialPlan, state: State) -> None:
        now = time_now()
        self.calls = {k: v for k, v in self.calls.items() if now - v[2] < self.keep_seconds}
        self.calls[call_id] = (plan, state, now)

    def take(self, call_id: str) -> tuple[DialPlan, State] | None:
        found = self.calls.pop(call_id, None)
        return (found[0], found[1]) if found else None


class AgiCall:
    """One AGI session: a new call (``inbound``, an entry name, process AGI), or a call the
    dialplan hands back (``resume,<call id>,overflow``). `parked` is None for process AGI,
    whose calls live in one process each and cannot come back."""

    def __init__(
        self,
        request: AgiRequest,
        plan: DialPlan,
        calls: CallLog,
        lookup: Callable[[Lookup], LookupResult],
        safe_queue: str,
        parked: ParkedCalls | None = None,
        speech: SpeechListener | None = None,
        publish: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        self.request = request
        self.plan = plan  # the call keeps the plan it started with
        self.calls = calls
        self.lookup = lookup
        self.safe_queue = safe_queue
        self.parked = parked
        self.speech = speech
        self.publish = publish  # the event bus, where the screen pop learns the journey
        self.id = uuid.uuid4().hex
        self.part = IvrPart(self.id)
        self.state: State | None = None
        self.extra = {"call_id": self.id}

    async def run(self) -> None:
        resuming = self.request.headers.get("agi_network_script", "").strip("/") == "resume"
        try:
            outcome, route = await (self._resume() if resuming else self._start())
            if outcome == "contained" and any(e["kind"] == "answer" for e in self.part.events):
                self.part.fields["survey_completed"] = True  # its flow ran to the end
            await self._save(outcome, route, ended=outcome == "contained")
        except CallerHungUp as exc:
            log.info("caller hung up", extra={**self.extra, "how": str(exc)})
            self._caller_left(str(exc))
            await self._save("abandoned_ivr", None, ended=True)
        except Exception as exc:
            log.exception("call failed; routing to the safe queue", extra=self.extra)
            node = getattr(exc, "node", None) or (self.state.node if self.state else None)
            self.part.note("error", node, {"reason": type(exc).__name__, "detail": str(exc)})
            await self._save("failed", await self._fail_safe(), ended=False)

    async def _start(self) -> tuple[str, str | None]:
        headers = self.request.headers
        entry = entry_of(headers)
        found = self.plan.flow_for(entry)
        caller = headers.get("agi_callerid", "")
        self.part.fields = {
            "started_at": utcnow(),
            "channel": headers.get("agi_channel"),
            "entry": entry,
            "did": headers.get("agi_arg_1") or headers.get("agi_extension"),
            "caller_number": caller,
            "flow": found[0] if found else None,
            "flow_version": self.plan.versions.get(found[0]) if found else None,
        }
        await self.request.send("ANSWER")
        # The call is keyed by its Linkedid, as Asterisk's side of the log keys it. Our
        # dialplan passes it as the second argument; ask for it otherwise.
        linkedid = (
            headers.get("agi_arg_2")
            or (await self.request.send("GET VARIABLE CHANNEL(linkedid)")).data
        )
        if linkedid:
            self.id = self.part.call_id = linkedid
            self.extra = {"call_id": self.id}
        self.part.fields["linkedid"] = linkedid or None
        log.info("call started", extra={**self.extra, "entry": entry})
        await self.request.send(f"SET VARIABLE IVR_CALL_ID {self.id}")
        if found is None:
            self.part.note("error", None, {"reason": f"no flow for entry {entry!r}"})
            return await self._route(Route("fallback"))
        self.state = start(
            self.plan,
            found[0],
            self._now(),
            caller={"number": caller},
            call={"entry": entry, "id": self.id},
        )
        return await self._run_flow(*step(self.plan, self.state, None, self._now()))

    async def _resume(self) -> tuple[str, str | None]:
        headers = self.request.headers
        self.id = headers.get("agi_arg_1", "")
        self.part = IvrPart(self.id)
        self.extra = {"call_id": self.id}
        parked = self.parked.take(self.id) if self.parked else None
        log.info("call back from its queue", extra={**self.extra, "why": headers.get("agi_arg_2")})
        if parked is None:
            self.part.note("error", None, {"reason": "no parked call to resume"})
            return await self._route(Route("fallback"))
        self.plan, self.state = parked
        return await self._run_flow(
            *resume(self.plan, self.state, headers.get("agi_arg_2", ""), self._now())
        )

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    async def _run_flow(self, actions: list[Any], state: State) -> tuple[str, str | None]:
        """Carry out one step's actions, answer what waits, and step again until the call leaves."""
        while True:
            self.state, given = state, None
            for action in actions:
                if isinstance(action, Journey):
                    self.part.note(action.kind, action.node, action.data)
                elif isinstance(action, Play):
                    await self._play(action.parts, action.language, "")
                elif isinstance(action, Listen):
                    given = await self._listen(action)
                elif isinstance(action, Record):
                    given = await self._record(action)
                elif isinstance(action, Lookup):
                    given = await asyncio.to_thread(self.lookup, action)
                elif isinstance(action, SaveCallback):
                    self.part.fields["callback_requested"] = True  # campaigns dial it
                elif isinstance(action, SaveAnswer):
                    pass  # the engine's journey event carries it; surveys store it
                elif isinstance(action, Route):
                    if self.parked is not None and action.options.get("overflow"):
                        self.parked.park(self.id, self.plan, state)
                    return await self._route(action)
                elif isinstance(action, Hangup):
                    await self.request.send("HANGUP")
                    return "contained", "hangup"
            if given is None:
                raise AgiError(f"flow stopped at {state.node} without a route")
            actions, state = step(self.plan, state, given, self._now())

    def _caller_left(self, how: str) -> None:
        """Let the engine record where the caller left, then note how."""
        if self.state is not None and not self.state.done:
            actions, self.state = step(self.plan, self.state, Result("hangup"), self._now())
            for action in actions:
                if isinstance(action, Journey):
                    self.part.note(action.kind, action.node, {**action.data, "how": how})

    async def _play(self, parts: tuple[Part, ...], language: str, escape: str) -> str:
        """Play parts in order; the key that interrupted them, or ''."""
        for part in parts:
            if isinstance(part, Recording):
                commands = [f'STREAM FILE {sound_path(part.name, language)} "{escape}"']
            else:
                commands = say_commands(part, escape)
                if not commands:
                    log.warning("value cannot be read out", extra={**self.extra, "kind": part.kind})
            for command in commands:
                result = await self.request.send(command)
                await self._check(result.value, command.split()[0])
                if result.value > 0:
                    return chr(result.value)
        return ""

    async def _listen(self, action: Listen) -> Result:
        escape = KEYS if action.barge_in else ""
        if action.phrases:
            if self.speech is None:  # process AGI: no AudioSocket listener
                return Result("error", "speech", "speech recognition needs the FastAGI service")
            heard = await self.speech.listen(
                self.request, action, lambda: self._play(action.parts, action.language, escape)
            )
            if heard.mode == "speech" or heard.status != "input":
                return heard
            digits = heard.value  # a key instead of words: more keys may follow
        else:
            digits = await self._play(action.parts, action.language, escape)
        wait = action.timeout
        while len(digits) < action.max_digits and not (
            action.terminator and digits.endswith(action.terminator)
        ):
            result = await self.request.send(
                f"WAIT FOR DIGIT {int(wait * 1000)}", timeout=wait + 10
            )
            await self._check(result.value, "WAIT FOR DIGIT")
            if result.value == 0:
                break
            digits += chr(result.value)
            wait = action.inter_digit_timeout
        return Result("input", "dtmf", digits) if digits else Result("noinput")

    async def _record(self, action: Record) -> Result:
        await self._play(action.parts, action.language, "")
        path = f"ivr-recordings/{self.id}-{uuid.uuid4().hex[:8]}"
        result = await self.request.send(
            f"RECORD FILE {path} wav # {action.max_seconds * 1000} BEEP s=3",
            timeout=action.max_seconds + 15,
        )
        await self._check(result.value, "RECORD FILE")
        return Result("input", "dtmf", f"{path}.wav")

    async def _check(self, value: int, command: str) -> None:
        if value < 0:
            if not await alive(self.request):
                raise CallerHungUp(f"{command} ended by hangup")
            raise AgiError(f"{command} failed")

    async def _route(self, route: Route) -> tuple[str, str]:
        if route.kind == "fallback":
            route = Route("queue", self.safe_queue)
        variables = {"IVR_ROUTE": route.kind}
        if route.kind == "queue":
            # Set every time: a value from an earlier queue must not linger on the channel.
            back = self.parked is not None and "overflow" in route.options
            variables |= {
                "IVR_QUEUE": route.target,
                "IVR_PRIORITY": str(route.priority),
                "IVR_QUEUE_TIMEOUT": str(route.options.get("max_wait", "")),
                "IVR_OVERFLOW": "1" if back else "",  # come back to us when the wait runs out
            }
        elif route.kind == "transfer":
            variables["IVR_TRANSFER"] = route.target
        # One MSet instead of a SET VARIABLE each: every AGI command costs Asterisk and us
        # a round trip. MSet splits on commas and strips quotes, so values must be plain.
        if not all(ROUTE_VALUE.fullmatch(value) for value in variables.values()):
            raise AgiError(f"route value unsafe for MSet: {variables}")
        pairs = ",".join(f"{name}={value}" for name, value in variables.items())
        if route.kind == "queue" and self.publish is not None:
            await self.publish("ivr.queued", self._queued())  # before the queue, and its pop
        await self._check((await self.request.send(f'EXEC MSet "{pairs}"')).value, "EXEC MSet")
        return "routed", f"{route.kind}:{route.target}"

    def _queued(self) -> dict[str, Any]:
        """What the agent's screen pop shows of the IVR part, as JSON-able data."""
        fields = self.part.fields
        started = fields.get("started_at")
        return {
            "call_id": self.id,
            "linkedid": fields.get("linkedid"),
            "caller": fields.get("caller_number"),
            "flow": fields.get("flow"),
            "entry": fields.get("entry"),
            "language": self.state.language if self.state else None,
            "started_at": started.isoformat() if started else None,
            "ended_at": utcnow().isoformat(),
            "events": [
                {"kind": e["kind"], "node": e["node"], "data": e["data"]} for e in self.part.events
            ],
        }

    async def _fail_safe(self) -> str | None:
        """Route to the safe queue if the channel still answers; else the dialplan's fallback."""
        try:
            async with asyncio.timeout(5):
                return (await self._route(Route("fallback")))[1]
        except Exception:
            log.warning(
                "could not set the safe route; dialplan fallback takes the call", extra=self.extra
            )
            return None

    async def _save(self, ivr_end: str, route: str | None, ended: bool) -> None:
        """Write this IVR part in a worker thread; a database fault is logged and never
        breaks the call."""
        try:
            await asyncio.to_thread(self.calls.save, self.part, ivr_end, route, ended)
        except Exception:
            log.exception("could not record the call", extra=self.extra)
