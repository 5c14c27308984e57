"""Test calls: originate a simulated caller into one of our DIDs through AMI.

The Local channel's ;2 half enters ``ivr-inbound`` at the DID and reaches our
IVR; its ;1 half runs the ``ivr-caller`` context (see extensions.conf) once the
IVR answers: it presses keys, speaks (plays recorded sounds), or stays silent.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from typing import Any

from panoramisk import Manager

from ivr.config import AmiSettings


def simulated_call_action(
    did: str,
    press: str = "",
    say: str = "",
    hold: float = 30,
    wait: float = 1,
    caller_id: str = "+14155550100",
    agi_server: str | None = None,
    context: str = "ivr-inbound",
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Originate for one simulated caller into `context` at `did`.

    `agi_server` overrides IVR_AGI_SERVER; `extra` sets more channel variables.
    """
    if not did.isdigit():
        raise ValueError(f"DID must be digits, not {did!r}")
    if any(c not in "0123456789*#w," for c in press):
        raise ValueError(f"keys must be 0-9, *, #, w (half a second) or , (two seconds): {press!r}")
    press = press.replace(",", "wwww")
    script = "dtmf" if press else "play" if say else "silent"
    variables = {
        "CALLER_DTMF": press,
        "CALLER_PROMPT": say,
        "CALLER_HOLD": hold,
        "CALLER_WAIT": wait,
    }
    if agi_server:
        variables["IVR_AGI_SERVER"] = agi_server
    variables.update(extra or {})
    return {
        "Action": "Originate",
        "ActionID": "testcall-" + uuid.uuid4().hex,
        "Channel": f"Local/{did}@{context}/n",
        "Context": "ivr-caller",
        "Exten": script,
        "Priority": "1",
        "CallerID": f'"Test caller" <{caller_id}>',
        "Timeout": "30000",
        "Async": "true",
        "Variable": [f"{k}={v}" for k, v in variables.items() if v != ""],
    }


class AmiError(Exception):
    """AMI refused a login or an action."""

    pass


@asynccontextmanager
async def ami_session(settings: AmiSettings, events: str = "off", timeout: float = 10):
    """A logged-in panoramisk Manager for a short job (a CLI command, a test)."""
    where = f"AMI at {settings.host}:{settings.port}"
    manager = Manager(
        loop=asyncio.get_running_loop(),
        host=settings.host,
        port=settings.port,
        username=settings.username,
        secret=settings.secret.get_secret_value(),
        events=events,
    )
    try:
        async with asyncio.timeout(timeout):
            await manager.connect()
            while manager.authenticated_future is None:  # set by panoramisk once connected
                await asyncio.sleep(0.01)
            response = await manager.authenticated_future
    except (OSError, TimeoutError) as exc:
        manager.close()
        raise AmiError(f"cannot reach {where}: {exc or 'no answer'}") from None
    if not response.success:
        manager.close()
        raise AmiError(f"{where} refused user {settings.username!r}: {response.get('Message')}")
    try:
        yield manager
    finally:
        manager.close()


async def place_test_call(settings: AmiSettings, action: dict[str, Any]) -> str:
    """Originate `action` and wait until the IVR answers; returns AMI's word on it.

    With ``Async: true`` Asterisk answers twice: the action's response at once, and an
    OriginateResponse event when the call is answered or fails (panoramisk collects both).
    """
    async with ami_session(settings, events="call") as manager:
        async with asyncio.timeout(int(action["Timeout"]) / 1000 + 10):
            messages = await manager.send_action(action)
    final = messages[-1] if isinstance(messages, list) else messages
    if final.get("Response") in ("Error", "Failure"):
        reason = final.get("Message") or f"reason {final.get('Reason')}"
        raise AmiError(f"Originate failed: {reason}")
    return "answered" if isinstance(messages, list) else final.get("Message", "")
