"""`ivr serve` as a process: addresses, logs, and secrets kept out of them."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Sandbox
from tests.support.service import ServiceProcess


def test_debug_logs_of_a_full_call_never_show_a_secret(
    asterisk: Sandbox, tmp_path: Path, place_call
) -> None:
    secrets = {
        "IVR_AMI__SECRET": asterisk.ami.secret.get_secret_value(),
        "IVR_WEB__SECRET_KEY": "web-session-key-0123456789",
        "IVR_TWILIO__AUTH_TOKEN": "twilio-token-0123456789",
    }
    service = ServiceProcess(tmp_path, {**secrets, "IVR_LOG__LEVEL": "debug"}).start()
    try:
        place_call("5551000", press="1", hold=2, agi_server=service.agi_server)
        service.wait_for_call(lambda c: c.ivr_end is not None)
    finally:
        assert service.stop() == 0
    log = service.log()
    assert "AMI logged_in" in log and "call started" in log  # the log did cover the call
    for name, value in secrets.items():
        assert value not in log, name
    assert set(service.addresses) == {"fastagi", "audiosocket", "web", "ami"}
    assert service.addresses["web"].startswith("http://127.0.0.1:")
