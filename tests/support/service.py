"""Runs the real `ivr serve` process for a test, on free ports and its own SQLite database."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from cti.store.db import make_engine, session_factory
from cti.store.models import Call

REPO = Path(__file__).resolve().parents[2]
IVR = str(Path(sys.executable).with_name("ivr"))


def own_plans(workdir: Path, **files: str) -> tuple[Path, dict[str, str]]:
    """A copy of the shipped dial plans plus `files` (name -> YAML), and the environment for
    a service that runs them without AMI."""
    plans = workdir / "dialplans"
    shutil.copytree(REPO / "dialplans", plans)
    for name, text in files.items():
        (plans / name).write_text(text)
    return plans, {"IVR_AMI__ENABLED": "false", "IVR_PATHS__DIALPLANS": str(plans)}


class ServiceProcess:
    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.db_url = f"sqlite:///{workdir / 'ivr.sqlite3'}"
        self.env = {
            **os.environ,
            "IVR_DATABASE__URL": self.db_url,
            "IVR_AGI__PORT": "0",
            "IVR_WEB__PORT": "0",
            "IVR_SPEECH__PORT": "0",
            "IVR_PATHS__DIALPLANS": str(REPO / "dialplans"),
            "IVR_PATHS__PROMPTS": str(REPO / "prompts"),
            **env,
        }
        self.log_path = workdir / "serve.log"
        self.addresses: dict[str, str] = {}
        self.proc: subprocess.Popen[str] | None = None

    def ivr(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [IVR, *args],
            cwd=self.workdir,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self) -> ServiceProcess:
        upgraded = self.ivr("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        self.proc = subprocess.Popen(
            [IVR, "serve"],
            cwd=self.workdir,
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=self.log_path.open("w"),
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(x) for x in self.proc.stdout], daemon=True
        ).start()
        deadline = time.monotonic() + 30
        while "web" not in self.addresses:  # printed last
            try:
                name, address = lines.get(timeout=max(0.1, deadline - time.monotonic())).split(
                    None, 1
                )
            except queue.Empty:
                raise AssertionError(f"ivr serve did not start:\n{self.log()}") from None
            self.addresses[name] = address.strip()
        return self

    @property
    def agi_server(self) -> str:
        """host:port of our FastAGI listener, as Asterisk's IVR_AGI_SERVER wants it."""
        return self.addresses["fastagi"].removeprefix("agi://").split("/")[0]

    @property
    def web_url(self) -> str:
        return self.addresses["web"]

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def wait_for_call(self, done: Callable[[Call], bool], timeout: float = 30) -> Call:
        """The one call this service stored, once `done(call)` holds."""
        return self.wait_for_calls(1, done, timeout)[0]

    def wait_for_calls(
        self, count: int, done: Callable[[Call], bool], timeout: float = 30
    ) -> list[Call]:
        """The `count` calls this service's IVR stored, once `done` holds for each. (With
        AMI on, the log also gets a row for every call the sandbox carries: other tests'.)"""
        sessions = session_factory(make_engine(self.db_url))
        deadline = time.monotonic() + timeout
        ours = select(Call).where(Call.entry.is_not(None)).options(selectinload(Call.journey))
        while True:
            with sessions() as db:
                calls = db.scalars(ours).all()
            if len(calls) == count and all(done(c) for c in calls):
                return list(calls)
            if time.monotonic() > deadline:
                raise AssertionError(f"calls stored: {calls!r}\nservice log:\n{self.log()}")
            time.sleep(0.2)
