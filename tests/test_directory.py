"""Look-ups the IVR makes: the database (SQLite and PostgreSQL) and an HTTP data dip."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from cti.matching import add_phone
from cti.store.db import make_engine, session_factory, upgrade
from cti.store.demo import seed
from cti.store.directory import Directory
from cti.store.models import Account, Customer
from ivr.flows.actions import Lookup, LookupResult


@pytest.fixture
def directory(db_url: str) -> Iterator[Directory]:
    engine = make_engine(db_url)
    upgrade(engine)
    sessions = session_factory(engine)
    seed(sessions, "a long demo password")
    yield Directory(sessions)
    engine.dispose()


def test_customers_by_any_of_their_numbers_or_account(directory: Directory) -> None:
    by_phone = directory.lookup(Lookup("customer", "+14155550124"))
    assert by_phone.status == "found" and by_phone.data["name"] == "Li Wei"
    assert by_phone.data["matches"] == 1
    vip = directory.lookup(Lookup("customer", "+14155550100"))
    assert (vip.data["tier"], vip.data["account"]) == ("vip", "12345674")
    assert (vip.data["balance"], vip.data["currency"]) == ("1250.00", "USD")  # her first account
    account = directory.lookup(Lookup("account", "12345674"))
    assert account.data == {
        "number": "12345674",
        "balance": "1250.00",
        "currency": "USD",
        "status": "open",
        "customer_id": vip.data["id"],
    }
    by_account = directory.lookup(Lookup("customer", "87654323"))  # the account's owner
    assert by_account.status == "found" and by_account.data["name"] == "Li Wei"
    assert by_account.data["account"] == "87654323"
    assert directory.lookup(Lookup("customer", "+14155559999")) == LookupResult("not_found")
    assert directory.lookup(Lookup("customer", "99999997")) == LookupResult("not_found")
    assert directory.lookup(Lookup("account", "99999997")) == LookupResult("not_found")
    assert directory.lookup(Lookup("account", "")) == LookupResult("not_found")


def test_a_customer_with_several_accounts_or_none(directory: Directory) -> None:
    with directory.sessions.begin() as db:
        li = db.scalars(select(Customer).where(Customer.name == "Li Wei")).one()
        li.accounts.append(Account(number="55501000", balance=Decimal("-3.10"), currency="EUR"))
        nobody = Customer(name="Kim Office")
        add_phone(nobody, "+1 415 555 0177", "US")
        db.add(nobody)
    second = directory.lookup(Lookup("account", "55501000"))
    assert (second.data["balance"], second.data["currency"]) == ("-3.10", "EUR")
    assert second.data["customer_id"] == li.id
    # Either account finds Li; her record shows the first of them.
    for number in ("87654323", "55501000"):
        owner = directory.lookup(Lookup("customer", number)).data
        assert (owner["name"], owner["account"], owner["balance"]) == (
            "Li Wei",
            "87654323",
            "42.50",
        )
    kim = directory.lookup(Lookup("customer", "+14155550177")).data
    assert (kim["name"], kim["account"], kim["balance"], kim["currency"]) == (
        "Kim Office",
        "",
        "",
        "",
    )


def test_orders(directory: Directory) -> None:
    found = directory.lookup(Lookup("order", "123456"))
    assert found.data == {
        "number": "123456",
        "status": "shipped",
        "eta": "2026-11-25",
        "customer_id": found.data["customer_id"],
    }
    assert directory.lookup(Lookup("order", "999999")).status == "not_found"


class _Api(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(2)
        status, body = {
            "/score?n=1": (200, json.dumps({"score": 3})),
            "/list": (200, "[1, 2]"),
            "/broken": (500, "oops"),
        }.get(self.path, (404, ""))
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/score?n=1", "found"),
        ("/nothing", "not_found"),
        ("/broken", "error"),
        ("/list", "error"),
        ("/slow", "error"),
    ],
)
def test_http_data_dip(api: str, path: str, status: str) -> None:
    directory = Directory(sessions=None)  # type: ignore[arg-type]  # HTTP needs no database
    result = directory.lookup(Lookup("http", "", url=api + path, timeout=0.5))
    assert result.status == status
    if status == "found":
        assert result.data == {"score": 3}
