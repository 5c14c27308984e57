"""Look-ups the IVR makes: the database (SQLite and PostgreSQL) and an HTTP data dip."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cti.store.db import make_engine, session_factory, upgrade
from cti.store.demo import seed
from cti.store.directory import Directory
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
    account = directory.lookup(Lookup("account", "12345674"))
    assert account.data["balance"] == "1250.00" and account.data["currency"] == "USD"
    assert directory.lookup(Lookup("customer", "+14155559999")) == LookupResult("not_found")
    assert directory.lookup(Lookup("account", "")) == LookupResult("not_found")


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
