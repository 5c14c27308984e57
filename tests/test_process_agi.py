"""Process AGI: Asterisk runs ivr-agi (pyst2, stdin/stdout) inside the sandbox for each call."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from cti.store.calls import CallLog
from cti.store.db import make_engine, session_factory, upgrade
from cti.store.models import Call
from cti.store.spool import Spool
from tests.conftest import Sandbox


@contextmanager
def call_over_process_agi(
    asterisk: Sandbox, place_call: Any, name: str, config: dict[str, Any]
) -> Iterator[None]:
    """A caller pressing 2 at the front desk (DID 5551001), ivr-agi reading `config` (the
    shipped plans added) from a file inside the root while the call lasts."""
    path = asterisk.root / f"{name}.yaml"
    plans = {"dialplans": "/opt/ivr/src/dialplans", "prompts": "/opt/ivr/src/prompts"}
    path.write_text(yaml.safe_dump(config | {"paths": plans | config.get("paths", {})}))
    try:
        place_call(
            "5551001",
            press="2",
            hold=4,
            context="ivr-inbound-local",
            extra={"IVR_AGI_CONFIG": f"/{name}.yaml"},
        )
        yield
    finally:
        path.unlink()


@pytest.mark.postgres
def test_a_shipped_flow_over_process_agi(asterisk: Sandbox, postgres_url: str, place_call) -> None:
    engine = make_engine(postgres_url)
    upgrade(engine)
    name = f"tmp/ivr-agi-{uuid.uuid4().hex}"  # inside the root, where ivr-agi runs
    try:
        with call_over_process_agi(asterisk, place_call, name, {"database": {"url": postgres_url}}):
            call = wait_for_call(session_factory(engine))
    finally:
        engine.dispose()
    assert (call.entry, call.flow, call.ivr_end, call.route) == (
        "5551001",
        "front_desk",
        "routed",
        "queue:support",
    )
    assert [(e.kind, e.node) for e in call.journey] == [("match", "welcome"), ("route", "support")]
    assert call.linkedid and call.flow_version


@pytest.mark.postgres
def test_with_the_database_away_process_agi_spools_the_call_for_the_service(
    asterisk: Sandbox, postgres_url: str, place_call
) -> None:
    """ivr-agi (a process per call) finds the database away: its write waits in the
    spool, which another process (the service) replays into the database once back."""
    engine = make_engine(postgres_url)
    upgrade(engine)
    name = f"tmp/ivr-agi-{uuid.uuid4().hex}"
    spool = asterisk.root / name / "spool"
    dead = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"
    config = {"database": {"url": dead}, "paths": {"spool": f"/{name}/spool"}}
    try:
        with call_over_process_agi(asterisk, place_call, name, config):
            deadline = time.monotonic() + 30
            while not Spool(spool).waiting and time.monotonic() < deadline:
                time.sleep(0.2)
        log = CallLog(session_factory(engine), Spool(spool))
        assert log.replay() == 1
        call = wait_for_call(log.sessions)
    finally:
        shutil.rmtree(asterisk.root / name, ignore_errors=True)
        engine.dispose()
    assert (call.entry, call.ivr_end, call.route) == ("5551001", "routed", "queue:support")
    assert [(e.kind, e.node) for e in call.journey] == [("match", "welcome"), ("route", "support")]


def wait_for_call(sessions) -> Call:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with sessions() as db:
            call = db.scalars(select(Call).options(selectinload(Call.journey))).first()
        if call is not None and call.ivr_end is not None:
            return call
        time.sleep(0.2)
    raise AssertionError("ivr-agi stored no finished call")
