"""Two service processes sharing events through the real Redis: a FastAGI node runs the
caller's IVR, the CTI node (AMI, tracker, pops, agent pages) pops the call at the agent
with what the caller did on the other node.

Each node has its own database, so the journey in the pop can only have come over
Redis. The agent is a simulated phone in the ``desktop-redis`` queue, which no other
test uses; a channel prefix of its own keeps this test's events apart.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import redis

from cti.matching import add_phone
from cti.store.db import make_engine, session_factory
from cti.store.models import Account, Customer
from cti.store.users import add_user
from tests.conftest import Sandbox, unavailable
from tests.support.ami import AmiClient
from tests.support.service import ServiceProcess, own_plans
from tests.support.web import WebUser
from tests.test_desktop import desk_plan

pytestmark = pytest.mark.asterisk

QUEUE = "desktop-redis"
PASSWORD = "a long enough password"
REDIS_URL = "redis://127.0.0.1:6379/0"


def test_a_call_on_one_node_pops_at_the_agent_of_another(
    asterisk: Sandbox, ami: AmiClient, tmp_path: Path, place_call
) -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {REDIS_URL} is not available: {exc}")
    tag = uuid.uuid4().hex[:8]
    _, plans = own_plans(tmp_path, **{"desk.yaml": desk_plan(QUEUE)})
    shared = plans | {
        "IVR_BUS__BACKEND": "redis",
        "IVR_BUS__REDIS_URL": REDIS_URL,
        "IVR_BUS__CHANNEL_PREFIX": f"test-{tag}.",
    }
    (tmp_path / "cti").mkdir()
    (tmp_path / "agi").mkdir()
    secret = asterisk.ami.secret.get_secret_value()
    cti = ServiceProcess(
        tmp_path / "cti", shared | {"IVR_AMI__ENABLED": "true", "IVR_AMI__SECRET": secret}
    ).start()
    agi = ServiceProcess(tmp_path / "agi", shared).start()  # no AMI: it only runs the IVR
    interface = f"Local/redis{tag}@ivr-agent/n"
    account = "7" + str(int(tag, 16) % 10**7).zfill(7)
    for node in (cti, agi):  # the IVR looks the account up on its node, the pop on its own
        sessions = session_factory(make_engine(node.db_url))
        with sessions.begin() as db:
            ana = Customer(name="Ana Lopez", accounts=[Account(number=account, balance=Decimal(5))])
            add_phone(ana, "+14155550100", "US")
            db.add(ana)
    add_user(session_factory(make_engine(cti.db_url)), "maria", PASSWORD, "agent", interface)
    try:
        agent = WebUser(cti.web_url, "maria", PASSWORD)
        agent.listen()
        added = ami.action(
            {"Action": "QueueAdd", "Queue": QUEUE, "Interface": interface}, as_list=False
        )
        assert added.get("Response") == "Success", dict(added)
        state = agent.next_event("agent", lambda state: bool(state["queues"]))
        assert [q["queue"] for q in state["queues"]] == [QUEUE]

        place_call("5553001", press=account, wait=2, hold=20, agi_server=agi.agi_server)
        ringing = agent.next_event("pop")
        assert ringing["state"] == "ringing" and ringing["call"]["queue"] == QUEUE
        pop = ringing["pop"]
        assert pop["match"] == "account"
        assert [c["name"] for c in pop["customers"]] == ["Ana Lopez"]
        assert pop["journey"]["flow"] == "desk_account"  # from the other node, over Redis
        lookup = next(s for s in pop["journey"]["steps"] if s["kind"] == "lookup")
        assert (lookup["value"], lookup["result"]) == (account, "found")
        assert agent.next_event("pop")["state"] == "answered"
    finally:
        ami.action({"Action": "QueueRemove", "Queue": QUEUE, "Interface": interface}, as_list=False)
        assert agi.stop() == 0, agi.log()
        assert cti.stop() == 0, cti.log()
