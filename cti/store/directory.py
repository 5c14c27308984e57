"""Answers the IVR's look-ups: customers by number or account, orders, accounts, HTTP data dips.

Synchronous (SQLAlchemy, urllib); async callers run it in a worker thread. Results
are plain JSON-able dicts, because they become flow variables.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.matching import customers_with_number
from cti.store.models import Account, Customer, Order
from ivr.flows.actions import Lookup, LookupResult

log = logging.getLogger("cti.directory")

HTTP_MAX_BYTES = 64 * 1024


def customer_record(customer: Customer, matches: int = 1) -> dict[str, Any]:
    """A customer as flows see it; `account`, `balance` and `currency` are those of their
    first account (empty when they have none)."""
    first = customer.accounts[0] if customer.accounts else None
    return {
        "id": customer.id,
        "name": customer.name,
        "tier": customer.tier,
        "account": first.number if first else "",
        "language": customer.language or "",
        "balance": str(first.balance) if first else "",
        "currency": first.currency if first else "",
        "matches": matches,
    }


def account_record(account: Account) -> dict[str, Any]:
    return {
        "number": account.number,
        "balance": str(account.balance),
        "currency": account.currency,
        "status": account.status,
        "customer_id": account.customer_id,
    }


class Directory:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def lookup(self, request: Lookup) -> LookupResult:
        try:
            found = self._http(request) if request.find == "http" else self._db(request)
        except Exception as exc:
            log.warning("look-up failed", extra={"find": request.find, "error": str(exc)})
            return LookupResult("error")
        return LookupResult("found", found) if found is not None else LookupResult("not_found")

    def _db(self, request: Lookup) -> dict[str, Any] | None:
        value = request.value.strip()
        if not value:
            return None
        with self.sessions() as db:
            if request.find == "order":
                order = db.scalar(select(Order).where(Order.number == value))
                if order is None:
                    return None
                return {
                    "number": order.number,
                    "status": order.status,
                    "eta": order.eta.isoformat() if order.eta else "",
                    "customer_id": order.customer_id,
                }
            if request.find == "customer" and value.startswith("+"):
                customers = customers_with_number(db, value)
                return customer_record(customers[0], len(customers)) if customers else None
            account = db.scalar(select(Account).where(Account.number == value))
            if account is None:
                return None
            if request.find == "account":
                return account_record(account)
            return customer_record(account.customer)

    @staticmethod
    def _http(request: Lookup) -> dict[str, Any] | None:
        url = request.url or ""
        if not url.startswith(("http://", "https://")):
            raise ValueError("only http and https URLs")
        try:
            with urllib.request.urlopen(url, timeout=request.timeout) as response:
                body = response.read(HTTP_MAX_BYTES + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        if len(body) > HTTP_MAX_BYTES:
            raise ValueError("response too large")
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data
