"""Outbound calls for campaigns: one AMI Originate per attempt, and its result.

The dialer decides whom to call; `Outbound.dial` places one call and returns what came
of it as soon as that is known, `Outbound.ended` waits until the call is gone (to cap
concurrent calls). The answered channel runs ``[ivr-outbound]`` (extensions.conf):
answering-machine detection, a ``UserEvent(IvrOutbound)`` with its verdict, then the
flow over FastAGI. Events are matched to attempts by ActionID (OriginateResponse) and by
the call id, which the Originate sets as ChannelId: the channel's Uniqueid and Linkedid,
the UserEvent's CallId and the call's key in the outcome log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from cti.ami.bridge import AmiBridge, AmiError
from cti.campaigns.spec import Result as Outcome

log = logging.getLogger("cti.outbound")


# OriginateResponse Reason -> result. Asterisk 12+ computes Reason from how the dial
# ended (pbx_dial_reason in main/pbx.c); the values are ast_control_frame_type codes.
REASONS: dict[str, Outcome | None] = {
    "0": "failed",  # no cause that says more: no such number, channel unavailable, unallocated
    "1": "no_answer",  # AST_CONTROL_HANGUP: hung up before answering (Asterisk 12+ sends it
    #                    only when a caller channel hangs up, and an Originate has none)
    "3": "no_answer",  # AST_CONTROL_RINGING: rang out (cause 19), or answered elsewhere (26)
    "4": None,  # AST_CONTROL_ANSWER: answered; AMD's UserEvent says human or machine
    "5": "busy",  # AST_CONTROL_BUSY: cause 17, user busy
    "8": "failed",  # AST_CONTROL_CONGESTION: congestion (34, 42), call rejected (21),
    #                 network or destination out of order (38, 27), temporary failure (41)
}
# AMDSTATUS -> result. NOTSURE counts as a person: better to talk to a machine now and
# then than to hang up on people. HANGUP: answered, gone before a word: try again later.
AMD_RESULTS: dict[str, Outcome] = {
    "HUMAN": "human",
    "NOTSURE": "human",
    "MACHINE": "machine",
    "HANGUP": "no_answer",
}
# Agent-first callbacks: how the dial to the customer ended (DIALSTATUS), once an agent
# took the call. CANCEL: the agent hung up first.
DIAL_RESULTS: dict[str, Outcome] = {
    "ANSWER": "human",
    "BUSY": "busy",
    "NOANSWER": "no_answer",
    "CANCEL": "failed",
    "CONGESTION": "failed",
    "CHANUNAVAIL": "failed",
}
AGENT_WAIT_SECONDS = 120.0  # agent-first: how long the call waits in the queue for an agent
AMD_SECONDS = 5.0  # amd.conf total_analysis_time
MARGIN_SECONDS = 10.0  # for Asterisk and AMI beyond the ring and AMD time
CHECK_SECONDS = 30.0  # `ended` asks Asterisk whether a call lives this often (a lost Hangup)
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
SAFE = re.compile(r"[^,;\r\n]*")  # AMI splits Variable values on commas; Local uses ';'
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Dial:
    """One attempt. `call_id` becomes the channel's Uniqueid and Linkedid (unique, and at
    most 64 characters, the outcome log's key). `entry`: the dial-plan entry the answered
    call runs; `variables`: more channel variables (IVR_CAMPAIGN, IVR_CONTACT, ...)."""

    call_id: str
    number: str
    entry: str
    variables: dict[str, str] = field(default_factory=dict)
    caller_id: str = ""
    ring_seconds: float = 30.0
    amd: bool = True  # answering-machine detection before the flow
    machine_action: Literal["hangup", "continue"] = "hangup"  # continue: run the flow anyway
    agent_queue: str = ""  # agent-first: an agent of this queue first, then the customer

    def __post_init__(self) -> None:
        if not (self.call_id and len(self.call_id) <= 64 and SAFE.fullmatch(self.call_id)):
            raise ValueError(f"call id must be 1-64 characters without , or ;: {self.call_id!r}")
        if not E164.fullmatch(self.number):
            raise ValueError(f"number must be E.164 (+<country><number>): {self.number!r}")
        if not NAME.fullmatch(self.entry):
            raise ValueError(f"entry must be a dial-plan entry name: {self.entry!r}")
        for name, value in self.variables.items():
            if not (NAME.fullmatch(name) and SAFE.fullmatch(value)):
                raise ValueError(f"unsafe channel variable {name}={value!r}")
        if self.agent_queue and not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", self.agent_queue):
            raise ValueError(f"agent queue must be a queue name: {self.agent_queue!r}")
        if not SAFE.fullmatch(self.caller_id) or self.ring_seconds <= 0:
            raise ValueError("caller id must be plain and ring_seconds positive")


@dataclass
class OutboundSettings:
    channel: str = "PJSIP/{number}@trunk"  # the dial string; {number} is the E.164 number
    context: str = "ivr-outbound"


@dataclass
class _Attempt:
    dial: Dial
    action_id: str
    result: asyncio.Future[Outcome]
    gone: asyncio.Future[None]
    answered: bool = False
    dialing: bool = True  # dial() still waits for the result

    def settle(self, outcome: Outcome) -> None:
        if not self.result.done():
            self.result.set_result(outcome)

    def end(self) -> None:
        if not self.gone.done():
            self.gone.set_result(None)


class Outbound:
    """Places calls through `ami` and follows them by its events (it adds itself to the
    bridge's handlers). Safe for many calls at once; every wait is bounded."""

    def __init__(self, ami: AmiBridge, settings: OutboundSettings | None = None) -> None:
        self.ami = ami
        self.settings = settings or OutboundSettings()
        self.calls: dict[str, _Attempt] = {}  # call id -> dialing, or connected until gone
        self.actions: dict[str, str] = {}  # Originate ActionID -> call id
        self.cleanup: set[asyncio.Task[Any]] = set()
        ami.handlers.append(self)

    async def dial(self, dial: Dial) -> Outcome:
        """Place the call; its result once known. Never raises for a call that fails, nor
        when AMI is down: those are "failed". After ring_seconds + AMD time + a margin
        without a result, the call is hung up and "failed"."""
        if dial.call_id in self.calls:
            raise ValueError(f"call {dial.call_id} is already in progress")
        loop = asyncio.get_running_loop()
        action_id = f"outbound-{uuid.uuid4().hex}"
        attempt = _Attempt(dial, action_id, loop.create_future(), loop.create_future())
        self.calls[dial.call_id] = attempt
        self.actions[action_id] = dial.call_id
        extra = {"call_id": dial.call_id, "entry": dial.entry}
        try:
            try:
                reply = await self.ami.send(self._originate(dial, action_id))
                if reply.get("Event") == "OriginateResponse":  # it overtook the ack
                    await self.handle(reply)
            except (AmiError, TimeoutError, OSError) as exc:
                log.warning("Originate refused", extra={**extra, "reason": str(exc)})
                attempt.settle("failed")
            limit = dial.ring_seconds + MARGIN_SECONDS
            limit += AGENT_WAIT_SECONDS if dial.agent_queue else AMD_SECONDS if dial.amd else 0
            try:
                async with asyncio.timeout(limit):
                    outcome = await asyncio.shield(attempt.result)
            except TimeoutError:
                log.error("no result for an outbound call; hanging up", extra=extra)
                attempt.settle("failed")
                outcome = "failed"
                self._hang_up(dial.call_id)
            log.info("outbound call " + outcome, extra=extra)
            return outcome
        except asyncio.CancelledError:
            self._hang_up(dial.call_id)
            attempt.settle("failed")
            raise
        finally:
            attempt.dialing = False
            self.actions.pop(action_id, None)
            attempt.settle("failed")  # no-op once settled; covers an unexpected error
            if attempt.result.result() not in ("human", "machine"):
                attempt.end()  # never connected (or given up on): nothing to wait for
            if attempt.gone.done():
                self.calls.pop(dial.call_id, None)

    async def ended(self, call_id: str) -> None:
        """Return once the call is gone: at once if it never connected or is unknown."""
        attempt = self.calls.get(call_id)
        if attempt is None:
            return
        while not attempt.gone.done():
            try:
                async with asyncio.timeout(CHECK_SECONDS):
                    await asyncio.shield(attempt.gone)
            except TimeoutError:
                if not await self.live(call_id):  # its Hangup event was lost
                    self._gone(attempt)

    async def handle(self, fields: dict[str, Any]) -> None:
        """AMI events (the bridge calls this for each)."""
        event = fields.get("Event")
        if event == "OriginateResponse":
            call_id = self.actions.get(fields.get("ActionID", ""))
            attempt = self.calls.get(call_id) if call_id else None
            if attempt is None:
                return
            if fields.get("Response") == "Success":  # agent-first: an agent took it
                attempt.answered = True
                if not attempt.dial.amd and not attempt.dial.agent_queue:
                    attempt.settle("human")
            elif attempt.dial.agent_queue:  # no agent took it: nothing the customer did
                attempt.settle("failed")
            else:
                attempt.settle(REASONS.get(fields.get("Reason", "")) or "failed")
        elif event == "UserEvent" and fields.get("UserEvent") == "IvrOutbound":
            attempt = self.calls.get(fields.get("CallId", ""))
            if attempt is not None:
                attempt.answered = True
                status = fields.get("Status", "")
                attempt.settle(AMD_RESULTS.get(status) or DIAL_RESULTS.get(status, "failed"))
        elif event == "Hangup":
            attempt = self.calls.get(fields.get("Uniqueid", ""))
            if attempt is not None:
                if attempt.answered:  # gone before AMD's verdict reached us
                    attempt.settle(AMD_RESULTS["HANGUP"])
                # not answered: the OriginateResponse that follows gives the reason
                self._gone(attempt)

    def _gone(self, attempt: _Attempt) -> None:
        attempt.end()
        if not attempt.dialing:
            self.calls.pop(attempt.dial.call_id, None)

    def _originate(self, dial: Dial, action_id: str) -> dict[str, Any]:
        customer = self.settings.channel.format(number=dial.number)
        variables = {
            "IVR_ENTRY": dial.entry,
            "IVR_AMD": "1" if dial.amd else "0",
            "IVR_MACHINE_ACTION": dial.machine_action,
            **dial.variables,
        }
        channel, context, timeout = customer, self.settings.context, dial.ring_seconds
        if dial.agent_queue:  # the queue's agent first: extensions.conf [ivr-agent-first]
            channel = f"Local/{dial.agent_queue}@ivr-agent-first/n"
            context, timeout = "ivr-callback-customer", AGENT_WAIT_SECONDS
            variables |= {
                "IVR_DIAL": customer,
                "IVR_RING": str(int(dial.ring_seconds)),
                "IVR_AGENT_WAIT": str(int(AGENT_WAIT_SECONDS)),
            }
        action = {
            "Action": "Originate",
            "ActionID": action_id,
            "Channel": channel,
            "Context": context,
            "Exten": "s",
            "Priority": "1",
            "Timeout": str(int(timeout * 1000)),
            "Async": "true",
            "ChannelId": dial.call_id,
            "Variable": [f"{name}={value}" for name, value in variables.items()],
        }
        if dial.caller_id:
            action["CallerID"] = dial.caller_id
        return action

    async def live(self, call_id: str) -> bool:
        """Whether Asterisk still has the call's channel (AMI takes a Uniqueid for a
        channel name). When it cannot tell (AMI down), assume it does."""
        try:
            await self.ami.send({"Action": "Getvar", "Channel": call_id, "Variable": "UNIQUEID"})
        except AmiError as exc:
            return "no such channel" not in str(exc).lower()
        except TimeoutError:
            return True
        return True

    def _hang_up(self, call_id: str) -> None:
        """Hang the call up in the background (it may be ringing or connected)."""

        async def hang_up() -> None:
            # Already gone, or AMI down: nothing more to do from here.
            with contextlib.suppress(AmiError, TimeoutError):
                await self.ami.send({"Action": "Hangup", "Channel": call_id})

        task = asyncio.create_task(hang_up())
        self.cleanup.add(task)
        task.add_done_callback(self.cleanup.discard)
