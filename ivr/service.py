"""`ivr serve`: the FastAGI server, the AudioSocket listener and its recogniser
processes, the AMI bridge with the call tracker, agent states and screen pops, and
the web app (uvicorn in this event loop: live updates here, Flask pages in threads).

SIGINT or SIGTERM stops new calls at once and lets calls in progress finish
(up to ``agi.drain_timeout`` seconds) before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Collection
from typing import Any

import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cti.agents import AgentStates
from cti.ami.bridge import AmiBridge
from cti.ami.outbound import Outbound, OutboundSettings
from cti.bus import InProcessBus, make_bus
from cti.campaigns import sweeper
from cti.campaigns.dialer import Dialer
from cti.pop import PopBuilder, ScreenPops
from cti.recorder import Recorder
from cti.reports import intervals
from cti.store.calls import CallLog
from cti.store.db import current_revision, head_revision, make_engine, session_factory
from cti.store.directory import Directory
from cti.store.spool import Spool
from cti.tracker import CallTracker
from cti.web.app import create_app
from cti.web.live import LiveHub, web_app
from ivr.config import Settings
from ivr.flows.plan import DialPlanError
from ivr.flows.reload import LivePlan
from ivr.speech.models import resolve_model
from ivr.speech.workers import SpeechWorkers
from ivr.transports.agi_call import AgiCall, ParkedCalls
from ivr.transports.agi_speech import SpeechListener
from ivr.transports.audiosocket import AudioSocketServer
from ivr.transports.fastagi import AgiRequest, FastAgiServer

log = logging.getLogger("ivr.service")


class ServiceError(Exception):
    """The service cannot start; the message says why and what to do."""


def check_schema(engine: Engine) -> None:
    have, want = current_revision(engine), head_revision()
    if have != want:
        raise ServiceError(
            f"database schema is at {have or 'nothing'}, expected {want}: run `ivr db upgrade`"
        )


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database.url)
        check_schema(self.engine)
        self.sessions = session_factory(self.engine)
        self.plan = LivePlan(settings.paths.dialplans, settings.paths.prompts)
        self.calls = CallLog(self.sessions, Spool(settings.paths.spool), settings.cti.region)
        self.directory = Directory(self.sessions)
        self.parked = ParkedCalls()
        self.bus = make_bus(
            settings.bus.backend, settings.bus.redis_url, settings.bus.channel_prefix
        )
        agi = settings.agi
        self.agi = FastAgiServer(self._on_call, agi.host, agi.port, agi.allow, agi.command_timeout)
        speech = settings.speech
        self.audiosocket = AudioSocketServer(speech.host, speech.port, agi.allow)
        models = {
            language: str(resolve_model(value, speech.model_dir))
            for language, value in speech.models.items()
        }
        self.recognisers = SpeechWorkers(speech.engine, models, speech.workers)
        self.speech = SpeechListener(self.audiosocket, self.recognisers, settings.paths.prompts)
        # The process that holds the AMI connection follows calls and sends pops; with
        # the Redis bus, other processes (more FastAGI nodes) only publish to it.
        self.tracker = CallTracker(self.bus)
        self.agents = AgentStates(self.bus)
        self.ami: AmiBridge | None = None
        self.recorder: Recorder | None = None
        self.dialer: Dialer | None = None
        if settings.ami.enabled:
            self.ami = AmiBridge(settings.ami, self.bus, self.tracker, self.agents)
            cti = settings.cti
            pops = PopBuilder(self.sessions, cti.region, cti.history)
            ScreenPops(self.bus, pops, self._live_calls)
            self.recorder = Recorder(self.bus, self.calls, self._live_calls)
            if settings.dialer.enabled:
                agi_server = settings.dialer.agi_server  # '': ours, once it listens
                self.dialer = make_dialer(settings, self.ami, self.sessions, self.calls, agi_server)
        self.hub = LiveHub(self.bus, self.sessions, self.tracker, self.agents)
        app = create_app(
            self.sessions,
            settings.session_key(),
            self.health,
            settings.cti,
            settings.reports,
            self._ami_send if self.ami else None,
        )
        web = settings.web
        # Bound here, so a port in use fails `ivr serve` before anything starts.
        self.web_socket = socket.create_server((web.host, web.port))
        self.web = uvicorn.Server(
            uvicorn.Config(
                web_app(app, self.hub, web.threads),
                host=web.host,
                port=web.port,
                lifespan="off",
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=1,
            )
        )
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = asyncio.Event()

    def _live_calls(self) -> Collection[str]:
        """The Linkedids Asterisk carries now, as the tracker last heard (resync)."""
        return self.tracker.calls.keys()

    async def _on_call(self, request: AgiRequest) -> None:
        call = AgiCall(
            request,
            self.plan.plan,
            self.calls,
            self.directory.lookup,
            self.settings.agi.safe_queue,
            self.parked,
            self.speech,
            self.bus.publish,
        )
        await call.run()

    def _ami_send(self, fields: dict[str, str]) -> dict[str, Any]:
        """An AMI action from a web worker thread, run on the service's loop."""
        assert self.ami is not None and self.loop is not None
        return asyncio.run_coroutine_threadsafe(self.ami.send(fields), self.loop).result(15)

    async def _replay_spool(self) -> None:
        """Every second, hand the database what waited for it while it was away."""
        while True:
            await asyncio.sleep(1)
            if not (self.calls.spool and self.calls.spool.waiting):
                continue
            try:
                if done := await asyncio.to_thread(self.calls.replay):
                    log.info("spooled writes replayed", extra={"writes": done})
            except Exception:
                log.exception("spool replay failed")

    def health(self) -> dict[str, dict[str, Any]]:
        spooled = self.calls.spool.count if self.calls.spool else 0
        return {
            "fastagi": {"status": "ok", "calls": len(self.agi.calls)},
            "log": {"status": "degraded" if spooled else "ok", "spooled": spooled},
            "speech": self.recognisers.health(),
            "ami": self.ami.health() if self.ami else {"status": "disabled"},
            "bus": self.bus.health(),
            "tracker": {"status": "ok", "calls": len(self.tracker.calls)},
            "recorder": self.recorder.health() if self.recorder else {"status": "disabled"},
            "web": self.hub.health(),
        }

    def addresses(self) -> dict[str, str]:
        """Where each part listens; printed at start, the web app last."""
        found = {
            "fastagi": f"agi://{self.settings.agi.host}:{self.agi.port}/inbound",
            "audiosocket": self.audiosocket.address,
        }
        if self.ami:
            found["ami"] = f"{self.ami.address} (client)"
        host, port = self.web_socket.getsockname()[:2]
        found["web"] = f"http://{host}:{port}/"
        return found

    async def run(self) -> None:
        self.loop = loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        await self.bus.start()
        await self.agi.start()
        if self.dialer and not self.dialer.agi_server:  # the port is known now (0: any)
            self.dialer.agi_server = f"{self.settings.agi.host}:{self.agi.port}"
        await self.audiosocket.start()
        await self.recognisers.start()
        watcher = asyncio.create_task(self.plan.watch())
        replayer = asyncio.create_task(self._replay_spool())
        contacts = sweeper.Sweeper(self.sessions, self.settings.campaigns)
        sweeping = asyncio.create_task(sweeper.run(contacts, self.settings.campaigns.sweep_seconds))
        reports = self.settings.reports
        rollups = intervals.run(self.sessions, reports.thresholds(), reports.rollup_seconds)
        rolling_up = asyncio.create_task(rollups)
        if self.ami:
            await self.ami.start()
        dialing = asyncio.create_task(self.dialer.run()) if self.dialer else None
        # uvicorn's serve() would take over SIGINT/SIGTERM; _serve is the same without that.
        web = asyncio.create_task(self.web._serve([self.web_socket]))
        await self.recognisers.wait_ready()  # until then, menus that listen take keys
        for name, address in self.addresses().items():
            print(f"{name:8} {address}", flush=True)
        log.info("service ready", extra=self.addresses())
        await self.stopping.wait()
        log.info("stopping: refusing new calls, letting calls in progress finish")
        watcher.cancel()
        replayer.cancel()
        sweeping.cancel()
        rolling_up.cancel()
        if dialing and self.dialer:  # no new calls; the ones going on finish with the rest
            dialing.cancel()
            await asyncio.wait(
                [dialing, *self.dialer.tasks], timeout=self.settings.agi.drain_timeout
            )
        await self.agi.stop(self.settings.agi.drain_timeout)
        await self.audiosocket.stop()
        await self.recognisers.stop()
        if self.ami:
            await self.ami.stop()
        if self.recorder:
            await self.recorder.drain()
        self.hub.close()
        self.web.should_exit = True
        await web
        await self.bus.stop()
        self.engine.dispose()
        log.info("stopped")

    def stop(self) -> None:
        self.stopping.set()


def make_dialer(
    settings: Settings, ami: AmiBridge, sessions: sessionmaker[Session], calls: CallLog, agi: str
) -> Dialer:
    """The campaigns' dialer on this AMI connection (`ivr serve`, `ivr dialer`)."""
    dialer = settings.dialer
    outbound = Outbound(ami, OutboundSettings(dialer.channel, dialer.context))
    name, poll = dialer.dialer_name(), dialer.poll_seconds
    return Dialer(sessions, calls, outbound, name, poll_seconds=poll, agi_server=agi)


def run_dialer(settings: Settings) -> int:
    """`ivr dialer`: only the dialer, on an AMI connection of its own (more dialers for
    one campaign, or one away from the IVR); stops on SIGINT/SIGTERM, letting its calls
    under way end."""
    if not settings.ami.enabled:
        print("ivr dialer: AMI is disabled in the configuration", file=sys.stderr)
        return 2
    engine = make_engine(settings.database.url)
    try:
        check_schema(engine)
    except ServiceError as exc:
        print(f"ivr dialer: {exc}", file=sys.stderr)
        return 2
    sessions = session_factory(engine)
    calls = CallLog(sessions, Spool(settings.paths.spool), settings.cti.region)

    async def run() -> None:
        ami = AmiBridge(settings.ami, InProcessBus())
        dialer = make_dialer(settings, ami, sessions, calls, settings.dialer.agi_server)
        stopping = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stopping.set)
        await ami.start()
        dialing = asyncio.create_task(dialer.run())
        log.info("dialer ready", extra={"dialer": dialer.name})
        await stopping.wait()
        dialing.cancel()
        await asyncio.wait([dialing, *dialer.tasks], timeout=settings.agi.drain_timeout)
        await ami.stop()
        await asyncio.to_thread(calls.flush)

    asyncio.run(run())
    engine.dispose()
    return 0


def serve(settings: Settings) -> int:
    try:
        service = Service(settings)
    except (ServiceError, DialPlanError) as exc:
        print(f"ivr serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"ivr serve: cannot listen: {exc}", file=sys.stderr)
        return 1
    asyncio.run(service.run())
    return 0
