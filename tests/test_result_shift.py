"""panoramisk's result shift, on the real Asterisk.

When the caller hangs up during a command, Asterisk sends that command's result and
then a ``HANGUP`` line. panoramisk 1.4 reads that line as the *next* command's result,
so every later result is one behind. Our AgiRequest skips the notice and notes it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from panoramisk.fast_agi import Request

from ivr.transports.fastagi import AgiRequest, CallerHungUp, read_headers


class Recorder:
    """A FastAGI server in a thread that runs one scenario per call and keeps the results."""

    def __init__(self, scenario) -> None:  # type: ignore[no-untyped-def]
        self.scenario = scenario
        self.results: list[Any] = []
        self.done = threading.Event()
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._run, args=(started,), daemon=True).start()
        started.wait(5)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        headers = await read_headers(reader)
        try:
            self.results = await self.scenario(headers, reader, writer)
        finally:
            writer.close()
            self.done.set()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


async def with_panoramisk(headers, reader, writer) -> list[Any]:  # type: ignore[no-untyped-def]
    agi = Request(app=None, headers=headers, reader=reader, writer=writer)
    await agi.send_command("ANSWER")
    played = await agi.send_command('STREAM FILE basic-pbx-ivr-main ""')
    did = await agi.send_command("GET VARIABLE IVR_DID")
    late = await agi.send_command("GET VARIABLE IVR_DID")
    return [played, did, late]


async def with_ours(headers, reader, writer) -> list[Any]:  # type: ignore[no-untyped-def]
    agi = AgiRequest(headers, reader, writer, command_timeout=20)
    await agi.send("ANSWER")
    played = await agi.send('STREAM FILE basic-pbx-ivr-main ""')
    did = await agi.send("GET VARIABLE IVR_DID")
    try:
        await agi.send('STREAM FILE beep ""')
        after = "played"
    except CallerHungUp as exc:
        after = str(exc)
    return [played.result, did.data, agi.hangup_notified, after]


@pytest.fixture
def recorder(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    server = Recorder(request.param)
    yield server
    server.stop()


@pytest.mark.parametrize("recorder", [with_panoramisk], indirect=True)
def test_panoramisk_reads_the_hangup_notice_as_the_next_result(
    asterisk, recorder: Recorder, place_call
) -> None:
    place_call("5551001", hold=1, wait=0, agi_server=f"127.0.0.1:{recorder.port}")
    assert recorder.done.wait(30)
    played, did, late = recorder.results
    assert played.get("result", ("",))[0] == "-1" or played.get("error")
    assert did == {"error": "AGIResultHangup", "msg": "User hungup during execution"}
    assert late["result"] == ("1", "5551001")  # the previous command's answer, one behind


@pytest.mark.parametrize("recorder", [with_ours], indirect=True)
def test_our_request_keeps_results_in_step(asterisk, recorder: Recorder, place_call) -> None:
    place_call("5551001", hold=1, wait=0, agi_server=f"127.0.0.1:{recorder.port}")
    assert recorder.done.wait(30)
    played, did, notified, after = recorder.results
    assert played == "-1"
    assert did == "5551001"  # its own answer, not the HANGUP notice
    assert notified is True
    assert after == "dead channel"  # Asterisk refuses playback on the dead channel (511)
