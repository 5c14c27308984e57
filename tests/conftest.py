"""Fixtures on the real parts: the Asterisk 22 sandbox, AMI, PostgreSQL, `ivr serve`.

Where this machine cannot provide one of them, its tests are skipped with the
reason; under CI=true they fail instead, because CI must run them.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from cti.ami.originate import simulated_call_action
from cti.store.db import make_engine, session_factory, upgrade
from ivr.config import AmiSettings
from tests.support.ami import AmiClient
from tests.support.service import REPO, ServiceProcess

SANDBOX = REPO / "docker" / "asterisk" / "sandbox"
POSTGRES_URL = os.environ.get(
    "IVR_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that restart Asterisk would cut every other test's calls: they run only in
    a run that asks for them (`make test` runs them after the rest)."""
    if "restart" in (config.option.markexpr or ""):
        return
    kept = [item for item in items if item.get_closest_marker("restart") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run this test, but {why}", pytrace=False)
    pytest.skip(why)


@dataclass
class Sandbox:
    ami: AmiSettings
    pid: str
    root: Path

    def cli(self, command: str) -> str:
        done = subprocess.run([SANDBOX, "cli", command], capture_output=True, text=True, check=True)
        return done.stdout


@pytest.fixture(scope="session")
def asterisk() -> Sandbox:
    """The running Asterisk sandbox (started if needed; `make test` stops it afterwards)."""
    check = subprocess.run([SANDBOX, "check"], capture_output=True, text=True)
    if check.returncode != 0:
        unavailable(f"this machine cannot host the Asterisk sandbox: {check.stdout.strip()}")
    started = subprocess.run([SANDBOX, "start"], capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    secret_file = subprocess.run([SANDBOX, "secret-file"], capture_output=True, text=True).stdout
    secret = Path(secret_file.strip()).read_text().strip()
    status = re.match(r"running \(pid (\d+)\), root (\S+)", _sandbox("status"))
    assert status, "sandbox status did not say it runs"
    return Sandbox(AmiSettings(secret=SecretStr(secret)), status[1], Path(status[2]))


def _sandbox(*args: str) -> str:
    return subprocess.run([SANDBOX, *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def ami(asterisk: Sandbox) -> Iterator[AmiClient]:
    client = AmiClient(asterisk.ami)
    yield client
    client.close()


@pytest.fixture
def place_call(ami: AmiClient) -> Callable[..., dict[str, Any]]:
    """Place a simulated caller into a DID; returns once the IVR answered (or raises)."""

    def place(did: str, **caller: Any) -> dict[str, Any]:
        action = simulated_call_action(did, **caller)
        responses = ami.action(action)
        final = responses[-1] if isinstance(responses, list) else responses
        assert final.get("Response") == "Success", dict(final)
        return dict(final)

    return place


@pytest.fixture
def ivr_service(asterisk: Sandbox, tmp_path: Path) -> Iterator[ServiceProcess]:
    """`ivr serve` on free ports with its own database, talking to the sandbox's AMI."""
    service = ServiceProcess(
        tmp_path, {"IVR_AMI__SECRET": asterisk.ami.secret.get_secret_value()}
    ).start()
    yield service
    code = service.stop()
    assert code == 0, f"ivr serve exited with {code}:\n{service.log()}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the real PostgreSQL, dropped afterwards."""
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:
        admin.dispose()
        unavailable(f"PostgreSQL at {POSTGRES_URL} is not available: {type(exc).__name__}")
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    """A session factory on `db_url`, its schema at the latest migration."""
    engine = make_engine(db_url)
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh schema on the real PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
    else:
        yield request.getfixturevalue("postgres_url")
