"""Runs one call's flow over AGI: engine actions become AGI commands.

Routing is handed back to the Asterisk dialplan: we SET VARIABLE ``IVR_ROUTE``
(queue, transfer or hangup) and its arguments, then end the AGI session, and the
``ivr-route`` context carries the call out. If our code fails, the call is routed
to the safe queue; if even that fails, the dialplan's own fallback takes it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from cti.store.calls import CallLog
from ivr.flows.engine import Collect, Digits, Hangup, Journey, Play, Route, State, start, step
from ivr.flows.plan import DialPlan, Flow
from ivr.transports.fastagi import AgiError, AgiRequest, CallerHungUp

log = logging.getLogger("ivr.call")

PROMPT_NAME = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
STOCK_PREFIX = "asterisk:"


def sound_path(prompt: str, language: str) -> str:
    """Our prompts live under sounds/ivr/<lang>/; ``asterisk:name`` is a stock sound."""
    name = prompt.removeprefix(STOCK_PREFIX)
    if not PROMPT_NAME.match(name) or not PROMPT_NAME.match(language):
        raise AgiError(f"unsafe prompt name {prompt!r}")
    return name if prompt.startswith(STOCK_PREFIX) else f"ivr/{language}/{name}"


def entry_of(headers: dict[str, str]) -> str:
    """``agi://host/inbound,<DID>`` selects by DID; ``agi://host/<entry>`` by name."""
    script = headers.get("agi_network_script", "").strip("/")
    if script == "inbound":
        return headers.get("agi_arg_1") or headers.get("agi_extension", "")
    return script


class AgiCall:
    def __init__(self, request: AgiRequest, plan: DialPlan, calls: CallLog, safe_queue: str):
        self.request = request
        self.plan = plan
        self.calls = calls
        self.safe_queue = safe_queue
        self.id = uuid.uuid4().hex
        self.node: str | None = None
        self.extra = {"call_id": self.id}

    async def run(self) -> None:
        headers = self.request.headers
        entry = entry_of(headers)
        found = self.plan.flow_for(entry)
        await self._store(
            self.calls.start,
            self.id,
            channel=headers.get("agi_channel"),
            entry=entry,
            did=headers.get("agi_arg_1") or headers.get("agi_extension"),
            caller_number=headers.get("agi_callerid"),
            flow=found[0] if found else None,
        )
        log.info("call started", extra={**self.extra, "entry": entry})
        try:
            await self.request.send("ANSWER")
            await self.request.send(f"SET VARIABLE IVR_CALL_ID {self.id}")
            linkedid = await self.request.send("GET VARIABLE CHANNEL(linkedid)")
            await self._store(self.calls.start, self.id, linkedid=linkedid.data or None)
            if found is None:
                await self._journey("error", None, {"reason": f"no flow for entry {entry!r}"})
                outcome, route = await self._route(Route("fallback"))
            else:
                outcome, route = await self._run_flow(start(found[1]), found[1])
            await self._store(self.calls.finish, self.id, outcome, route, False)
        except CallerHungUp as exc:
            log.info("caller hung up", extra={**self.extra, "node": self.node, "how": str(exc)})
            await self._journey("hangup", self.node, {"by": "caller", "how": str(exc)})
            await self._store(self.calls.finish, self.id, "abandoned_ivr", None, True)
        except Exception as exc:
            log.exception("call failed; routing to the safe queue", extra=self.extra)
            await self._journey("error", self.node, {"reason": type(exc).__name__})
            await self._fail_safe()

    async def _run_flow(self, state: State, flow: Flow) -> tuple[str, str | None]:
        given: Digits | None = None
        while True:
            actions, state = step(flow, state, given)
            self.node, given = state.node, None
            for action in actions:
                if isinstance(action, Journey):
                    await self._journey(action.kind, action.node, action.data)
                elif isinstance(action, Play):
                    await self._play(action)
                elif isinstance(action, Collect):
                    given = await self._collect(action)
                elif isinstance(action, Route):
                    return await self._route(action)
                elif isinstance(action, Hangup):
                    await self.request.send("HANGUP")
                    return "contained", "hangup"
            if given is None:
                raise AgiError(f"flow stopped at {state.node} without a route")

    async def _play(self, action: Play) -> None:
        path = sound_path(action.prompt, action.language)
        result = await self.request.send(f'STREAM FILE {path} ""')
        await self._check(result.value, "STREAM FILE")

    async def _collect(self, action: Collect) -> Digits:
        path = sound_path(action.prompt, action.language)
        ms = int(action.timeout * 1000)
        result = await self.request.send(
            f"GET DATA {path} {ms} {action.max_digits}", timeout=action.timeout + 60
        )
        await self._check(result.value, "GET DATA")
        return Digits(result.result)

    async def _check(self, value: int, command: str) -> None:
        if value < 0:
            if not await self.request.alive():
                raise CallerHungUp(f"{command} ended by hangup")
            raise AgiError(f"{command} failed")

    async def _route(self, route: Route) -> tuple[str, str]:
        if route.kind == "fallback":
            route = Route("queue", self.safe_queue)
        variables = {"IVR_ROUTE": route.kind}
        if route.kind == "queue":
            variables |= {"IVR_QUEUE": route.target, "IVR_PRIORITY": str(route.priority)}
        elif route.kind == "transfer":
            variables["IVR_TRANSFER"] = route.target
        for name, value in variables.items():
            await self.request.send(f'SET VARIABLE {name} "{value}"')
        return "routed", f"{route.kind}:{route.target}"

    async def _fail_safe(self) -> None:
        """Route to the safe queue if the channel still answers; else the dialplan's fallback."""
        try:
            async with asyncio.timeout(5):
                _outcome, route = await self._route(Route("fallback"))
            await self._store(self.calls.finish, self.id, "failed", route, False)
        except Exception:
            log.warning(
                "could not set the safe route; dialplan fallback takes the call", extra=self.extra
            )
            await self._store(self.calls.finish, self.id, "failed", None, False)

    async def _journey(self, kind: str, node: str | None, data: dict[str, Any]) -> None:
        await self._store(self.calls.journey, self.id, kind, node, data)

    async def _store(self, write: Callable[..., None], *args: Any, **fields: Any) -> None:
        """Write in a worker thread; a database fault is logged and never breaks the call."""
        try:
            await asyncio.to_thread(write, *args, **fields)
        except Exception:
            log.exception("could not record the call", extra=self.extra)
