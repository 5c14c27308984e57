"""The Asterisk sandbox runs our shipped configs, on loopback only."""

from __future__ import annotations

import filecmp
import subprocess

from tests.conftest import SANDBOX, Sandbox
from tests.support.service import REPO


def test_it_is_asterisk_22_and_reports_status(asterisk: Sandbox) -> None:
    assert "Asterisk 22." in asterisk.cli("core show version")
    status = subprocess.run([SANDBOX, "status"], capture_output=True, text=True)
    assert status.returncode == 0 and status.stdout.startswith("running")


def test_it_loads_the_configs_docker_ships(asterisk: Sandbox) -> None:
    shipped = REPO / "docker" / "asterisk" / "etc" / "asterisk"
    names = sorted(p.name for p in shipped.iterdir())
    _match, mismatch, errors = filecmp.cmpfiles(
        shipped, asterisk.root / "etc" / "asterisk", names, shallow=False
    )
    assert (mismatch, errors) == ([], [])
    assert "ivr-route" in asterisk.cli("dialplan show ivr-route")
    assert "sales" in asterisk.cli("queue show sales")


def test_every_service_port_is_on_loopback(asterisk: Sandbox) -> None:
    pid = asterisk.pid
    listening = subprocess.run(["ss", "-H", "-ltnp"], capture_output=True, text=True).stdout
    ours = [line.split()[3] for line in listening.splitlines() if f"pid={pid}," in line]
    assert "127.0.0.1:5038" in ours
    assert all(addr.startswith(("127.", "[::1]")) for addr in ours), ours
