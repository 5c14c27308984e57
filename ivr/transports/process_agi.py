"""Process AGI: Asterisk starts ``ivr-agi`` for each call and talks over stdin/stdout.

For sites that run AGI scripts on the Asterisk host instead of a network service.
It uses pyst2's `AGI` class for the channel and runs the same engine, flows and
call runner as FastAGI. Each call is a new process that loads the dial plan, so
FastAGI (one long-running service, hot reload, no start-up cost per call) is the
better choice wherever the service can run beside Asterisk.

Dialplan: ``AGI(ivr-agi,<entry or DID>,${CHANNEL(linkedid)},<config file>)``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from asterisk.agi import AGI, AGIAppError, AGIHangup, AGIUnknownError

from cti.store.calls import CallLog
from cti.store.db import make_engine, session_factory
from cti.store.directory import Directory
from cti.store.spool import Spool
from ivr.config import ConfigError, load_settings
from ivr.flows.validate import load_plan
from ivr.logs import setup_logging
from ivr.transports.agi_call import AgiCall
from ivr.transports.fastagi import AgiError, AgiResult, CallerHungUp


class Pyst2Request:
    """The command channel AgiCall drives, over pyst2's stdin/stdout AGI."""

    def __init__(self, agi: AGI, command_timeout: float) -> None:
        self.agi = agi
        self.headers = agi.env
        self.command_timeout = command_timeout

    @property
    def hangup_notified(self) -> bool:
        return self.agi._got_sighup  # pyst2 records Asterisk's SIGHUP there

    async def send(self, command: str, timeout: float | None = None) -> AgiResult:
        try:
            async with asyncio.timeout(timeout or self.command_timeout):
                return await asyncio.to_thread(self._execute, command)
        except TimeoutError:
            raise AgiError(f"{command.split()[0]} timed out") from None

    def _execute(self, command: str) -> AgiResult:
        try:
            result = self.agi.execute(command)
        except AGIHangup as exc:
            raise CallerHungUp(str(exc)) from None
        except AGIAppError:
            return AgiResult(200, "-1", "", command)  # failed, or hung up: the caller asks alive()
        except AGIUnknownError as exc:
            if exc.args and exc.args[0] == 511:
                raise CallerHungUp("dead channel") from None
            raise AgiError(f"{command.split()[0]} failed: {exc}") from None
        except OSError:
            raise CallerHungUp("pipe closed") from None
        value, data = result.get("result", ("", ""))
        return AgiResult(200, value, data, command)


def main() -> int:
    """The ``ivr-agi`` script: arguments are the entry, the Linkedid and, optionally, the
    config file."""
    config = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        print(f"ivr-agi: config error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log.level, settings.log.format, settings.secret_values())
    agi = AGI(stderr=_Quiet())
    engine = make_engine(settings.database.url)
    sessions = session_factory(engine)
    plan = load_plan(Path(settings.paths.dialplans), Path(settings.paths.prompts))
    request = Pyst2Request(agi, settings.agi.command_timeout)
    # The service replays what this spools.
    calls = CallLog(sessions, Spool(settings.paths.spool), settings.cti.region)
    call = AgiCall(
        request,
        plan,
        calls,
        Directory(sessions).lookup,  # type: ignore[arg-type]
        settings.agi.safe_queue,
    )
    asyncio.run(call.run())
    engine.dispose()
    return 0


class _Quiet:
    """pyst2 narrates every line it reads and writes on stderr; our logs say what matters."""

    def write(self, _text: str) -> None:
        pass

    def flush(self) -> None:
        pass
