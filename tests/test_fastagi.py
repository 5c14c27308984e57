"""FastAGI robustness where panoramisk 1.4 falls short, on the real service and Asterisk."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path

import pytest

from ivr.flows.actions import SayValue
from ivr.transports.agi_call import say_commands
from ivr.transports.fastagi import AgiRequest, read_headers
from tests.support.ami import AmiClient
from tests.support.service import ServiceProcess


def feed(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=1024)
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"agi_network_script: inbound\nagi_arg_1: 5551000\n\n", {"agi_arg_1": "5551000"}),
        (b"agi_network_script: inbound\nagi_arg_1: 55", None),  # truncated, then end-of-file
        (b"", None),
        (b"GET / HTTP/1.1\nHost: x\n\n", None),  # not AGI at all
        (b"agi_x: " + b"y" * 5000 + b"\n\n", None),  # over the limit
    ],
)
def test_header_block_is_parsed_or_refused(data: bytes, expected: dict | None) -> None:
    async def parse() -> dict[str, str] | None:
        return await read_headers(feed(data))

    headers = asyncio.run(parse())
    if expected is None:
        assert headers is None
    else:
        assert headers is not None and expected.items() <= headers.items()


def test_hangup_notice_does_not_shift_the_next_result() -> None:
    """``HANGUP`` arrives after the result of the command the caller hung up in."""

    async def scenario() -> tuple[str, bool]:
        reader = feed(b"200 result=-1\nHANGUP\n200 result=1 (x)\n")
        writer = _Sink()
        request = AgiRequest({}, reader, writer, command_timeout=1)  # type: ignore[arg-type]
        first = await request.send("STREAM FILE a")
        second = await request.send("GET VARIABLE b")
        return first.result + "," + second.result, request.hangup_notified

    assert asyncio.run(scenario()) == ("-1,1", True)


class _Sink:
    """The write half of a stream that Asterisk would read; collects what we sent."""

    def __init__(self) -> None:
        self.sent = b""

    def write(self, data: bytes) -> None:
        self.sent += data

    async def drain(self) -> None:
        return None


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def test_truncated_header_neither_spins_nor_blocks_the_next_call(
    ivr_service: ServiceProcess, place_call
) -> None:
    host, port = ivr_service.agi_server.split(":")
    for junk in (b"agi_network_script: inbound\nagi_arg", b"\x00\xff garbage"):
        with socket.create_connection((host, int(port))) as conn:
            conn.sendall(junk)
    assert ivr_service.proc is not None
    before = cpu_seconds(ivr_service.proc.pid)
    time.sleep(2)
    assert cpu_seconds(ivr_service.proc.pid) - before < 0.5  # panoramisk's loop would eat 2 s
    place_call("5551001", press="1", hold=3, agi_server=ivr_service.agi_server)
    assert ivr_service.wait_for_call(lambda c: c.ivr_end is not None).route == "queue:sales"


def test_peers_off_the_allow_list_are_refused(
    asterisk, tmp_path: Path, place_call, ami: AmiClient
) -> None:
    env = {"IVR_AMI__ENABLED": "false", "IVR_AGI__ALLOW": "192.0.2.1"}
    service = ServiceProcess(tmp_path, env).start()
    try:
        place_call(
            "5551001", hold=2, wait=0, caller_id="+14155550111", agi_server=service.agi_server
        )
        joined = ami.wait_event(
            lambda e: e.get("Event") == "QueueCallerJoin" and e.get("CallerIDNum") == "+14155550111"
        )
        assert joined["Queue"] == "main"  # the dialplan's safe route, not our menu
    finally:
        assert service.stop() == 0
    assert "FastAGI peer refused" in service.log()


def test_sigterm_refuses_new_calls_and_lets_the_call_in_progress_finish(
    ivr_service: ServiceProcess, place_call
) -> None:
    place_call("5551001", press="3", wait=3, hold=3, agi_server=ivr_service.agi_server)
    assert ivr_service.proc is not None
    ivr_service.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    host, port = ivr_service.agi_server.split(":")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=2).close()
    assert ivr_service.proc.wait(30) == 0
    call = ivr_service.wait_for_call(lambda c: c.ivr_end is not None, timeout=1)
    assert call.route == "queue:billing"


@pytest.mark.parametrize(
    ("kind", "value", "commands"),
    [
        ("digits", "0123#", ['SAY DIGITS 0123# "1"']),
        ("digits", "12a", []),
        ("number", "42", ['SAY NUMBER 42 "1"']),
        (
            "money",
            "42.50",
            ['SAY NUMBER 42 "1"', 'STREAM FILE digits/dollars "1"', 'SAY NUMBER 50 "1"'],
        ),
        ("money", "7", ['SAY NUMBER 7 "1"', 'STREAM FILE digits/dollars "1"']),
        ("date", "2026-11-25", ['SAY DATE 1795608000 "1"']),
        ("date", "soon", []),
        ("alpha", "AB12", ['SAY ALPHA AB12 "1"']),
    ],
)
def test_values_are_read_out_with_the_right_commands(kind: str, value: str, commands: list) -> None:
    assert say_commands(SayValue(kind, value), "1") == commands


def test_a_command_asterisk_never_answers_times_out_and_closes_the_session() -> None:
    from ivr.transports.fastagi import AgiError, FastAgiServer

    async def scenario() -> tuple[str, float, bytes]:
        outcome: list[str] = []

        async def handler(request: AgiRequest) -> None:
            try:
                await request.send("WAIT FOR DIGIT 1000")
            except AgiError as exc:
                outcome.append(str(exc))

        server = FastAgiServer(handler, "127.0.0.1", 0, ["127.0.0.1"], command_timeout=0.5)
        await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"agi_network_script: inbound\nagi_arg_1: 5551001\n\n")
        started = asyncio.get_running_loop().time()
        command = await reader.readline()  # ...and never answer it
        rest = await asyncio.wait_for(reader.read(), 5)  # the server closes the session
        took = asyncio.get_running_loop().time() - started
        writer.close()
        await server.stop(drain=1)
        return outcome[0] if outcome else "no error", took, command + rest

    outcome, took, seen = asyncio.run(scenario())
    assert outcome == "WAIT timed out"
    assert 0.5 <= took < 1.5
    assert seen == b"WAIT FOR DIGIT 1000\n"
