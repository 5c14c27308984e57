"""A synchronous AMI client for tests: panoramisk on an event loop in a background thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from cti.ami.originate import ami_session
from ivr.config import AmiSettings

Event = dict[str, str]


class AmiClient:
    def __init__(self, settings: AmiSettings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.events: list[Event] = []
        self.changed = threading.Condition()
        self._session = ami_session(settings, events="on")
        self.manager = self._run(self._session.__aenter__())
        self.manager.register_event("*", self._on_event)

    def _run(self, coro: Any, timeout: float = 40) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _on_event(self, _manager: Any, event: Any) -> None:
        with self.changed:
            self.events.append(dict(event))
            self.changed.notify_all()

    def action(
        self, action: dict[str, Any], timeout: float = 40, as_list: bool | None = None
    ) -> Any:
        """`as_list=False` for QueueAdd: panoramisk takes its reply for a list's start."""

        async def send() -> Any:
            return await self.manager.send_action(action, as_list=as_list)

        return self._run(send(), timeout)

    def wait_event(self, match: Callable[[Event], bool], timeout: float = 20) -> Event:
        """The first event (seen so far or arriving within `timeout`) for which `match` holds."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for event in self.events:
                    if match(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    names = sorted({e.get("Event", "?") for e in self.events})
                    raise AssertionError(f"no matching AMI event within {timeout}s; saw {names}")
                self.changed.wait(left)

    def close(self) -> None:
        self._run(self._session.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
