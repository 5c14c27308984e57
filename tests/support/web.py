"""The web app from a test without a browser: log in through the form, read /events."""

from __future__ import annotations

import http.cookiejar
import json
import queue
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any


class WebUser:
    """A logged-in session (cookie and CSRF token held) and its live event stream."""

    def __init__(self, base: str, username: str, password: str) -> None:
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        page = self.opener.open(base + "login", timeout=10).read().decode()
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
        assert token, "no csrf_token on /login"
        form = {"csrf_token": token[1], "username": username, "password": password}
        done = self.opener.open(base + "login", urllib.parse.urlencode(form).encode(), timeout=10)
        assert not done.url.endswith("/login"), f"{username} could not log in"
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()

    @property
    def session_cookie(self) -> str:
        return next(c.value for c in self.cookies if c.name == "session" and c.value)

    def listen(self) -> None:
        """Read /events in a thread; each event lands in `self.events` as (kind, data)."""
        response = self.opener.open(self.base + "events", timeout=60)
        assert response.headers["Content-Type"] == "text/event-stream"

        def read() -> None:
            kind = ""
            for raw in response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    self.events.put((kind, json.loads(line.removeprefix("data: "))))

        threading.Thread(target=read, daemon=True).start()

    def next_event(
        self, kind: str, match: Callable[[dict[str, Any]], bool] = lambda _: True
    ) -> dict[str, Any]:
        """The next event of this kind that `match`es; the ones before it are dropped."""
        while True:
            got, data = self.events.get(timeout=30)
            if got == kind and match(data):
                return data
