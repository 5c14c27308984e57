"""Customers from a CSV file (`ivr customers import`), all or nothing.

The file has a header row naming its columns: `name` (required), and optionally
`account`, `tier`, `language`, `balance`, `currency`, `phones` (several separated
by `;`). A row's `account`, `balance` and `currency` become the customer's one
account (a non-zero balance needs an account). Every row is checked first; one bad
row and nothing is imported, and each problem is reported as `FILE:LINE: field:
message` (the header is line 1). A clean file goes in as one transaction, its phone
numbers in E.164 like the matcher's.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO

import phonenumbers
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from cti.store.models import Account, Customer, CustomerPhone

COLUMNS = ("account", "name", "tier", "language", "balance", "currency", "phones")
# Limits of the columns in cti/store/models.py.
MAX_LENGTH = {"account": 32, "name": 128, "tier": 16, "language": 8}
MAX_BALANCE = Decimal("9999999999.99")  # Numeric(12, 2)
CENT = Decimal("0.01")
CURRENCY = re.compile(r"[A-Z]{3}")
# A file with up to LOOKUP_CHUNK * LOOKUP_QUERIES accounts asks the database about them in
# that many IN (...) queries; a bigger one reads every stored account number once instead.
# (Against a freshly imported 100k-row table, 200 IN queries were seen to take minutes on
# PostgreSQL; one read of all the accounts takes seconds.)
LOOKUP_CHUNK = 500
LOOKUP_QUERIES = 4


class CustomerFileError(Exception):
    """The file cannot be read at all: missing, unreadable, or not UTF-8 text."""


@dataclass(frozen=True)
class RowError:
    path: Path
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.message}"


@dataclass
class ImportReport:
    """What an import did: the errors (then nothing was imported) or the counts."""

    path: Path
    errors: list[RowError] = field(default_factory=list)
    customers: int = 0
    phones: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class _Row:
    line: int
    account: str | None
    name: str
    tier: str
    language: str | None
    balance: Decimal
    currency: str
    phones: list[str]


def e164_of(number: phonenumbers.PhoneNumber) -> str:
    """What cti.matching.normalise_number makes of a number it can parse, without parsing
    it a second time (parsing is most of an import's time)."""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_region(region: str) -> str:
    region = region.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown region {region!r}; use a two-letter code such as US or GB")
    return region


def import_customers(
    sessions: sessionmaker[Session], path: Path | str, region: str = "US"
) -> ImportReport:
    """Check every row of `path`, then import them all in one transaction, or none.

    Raises CustomerFileError when the file cannot be read, ValueError for a bad region."""
    path = Path(path)
    region = check_region(region)
    report = ImportReport(path)
    rows = _read(path, region, report)
    with sessions.begin() as db:
        _check_existing_accounts(db, rows, report)
        if report.errors:  # nothing was written; the transaction ends empty
            report.errors.sort(key=lambda e: e.line)
            return report
        if not rows:  # (an insert with no rows would add one of defaults)
            return report
        ids = db.scalars(
            insert(Customer).returning(Customer.id, sort_by_parameter_order=True),
            [{"name": row.name, "tier": row.tier, "language": row.language} for row in rows],
        ).all()
        # A row's account, balance and currency are the customer's one account.
        accounts = [
            {
                "number": row.account,
                "customer_id": customer_id,
                "balance": row.balance,
                "currency": row.currency,
            }
            for customer_id, row in zip(ids, rows, strict=True)
            if row.account is not None
        ]
        if accounts:
            db.execute(insert(Account), accounts)
        phones = [
            {"customer_id": customer_id, "e164": e164}
            for customer_id, row in zip(ids, rows, strict=True)
            for e164 in row.phones
        ]
        if phones:
            db.execute(insert(CustomerPhone), phones)
    report.customers, report.phones = len(rows), len(phones)
    return report


def _read(path: Path, region: str, report: ImportReport) -> list[_Row]:
    """The rows read; the problems go to `report` (and then nothing is imported)."""
    rows: list[_Row] = []
    first_line: dict[str, int] = {}
    for line, columns, values in csv_file(path, COLUMNS, "name", report.errors, CustomerFileError):
        row = _row(line, columns, values, region, path, report)
        if row is None:  # too many fields: its values mean nothing
            continue
        if row.account is not None:
            if row.account in first_line:
                message = f"{row.account!r} is also on line {first_line[row.account]}"
                report.errors.append(RowError(path, line, "account", message))
            else:
                first_line[row.account] = line
        rows.append(row)
    return rows


def csv_file(
    path: Path,
    allowed: Sequence[str],
    required: str,
    errors: list[RowError],
    failure: type[CustomerFileError],
) -> Iterator[tuple[int, list[str], list[str]]]:
    """(first line, the header's column names, fields) of each record of a UTF-8 CSV
    file, once its header passed `header_columns`; none when it did not (the problems
    in `errors`). A file that cannot be read raises `failure`."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            records = csv_records(handle, path, errors)
            header = next(records, None)
            if header is None:
                errors.append(RowError(path, 1, "header", "the file is empty"))
                return
            columns = header_columns(*header, allowed, required, path, errors)
            if columns is None:
                return
            for line, values in records:
                yield line, columns, values
    except UnicodeDecodeError as exc:
        raise failure(f"{path}: not UTF-8 text; save it as CSV UTF-8") from exc
    except OSError as exc:
        raise failure(f"cannot read {path}: {exc.strerror or exc}") from exc


def csv_records(
    handle: TextIO, path: Path, errors: list[RowError]
) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of each non-blank CSV record; a quoted field may span lines."""
    reader = csv.reader(handle)
    line = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            errors.append(RowError(path, reader.line_num, "csv", str(exc)))
            return
        if any(value.strip() for value in values):
            yield line, values
        line = reader.line_num + 1


def row_fields(
    line: int,
    columns: list[str],
    values: list[str],
    max_length: dict[str, int],
    path: Path,
    errors: list[RowError],
) -> dict[str, str] | None:
    """A record's values by column, stripped; None when it has more fields than the
    header (its values mean nothing). Over-long values go to `errors`."""
    if len(values) > len(columns):
        message = f"{len(values)} fields, but the header has {len(columns)}"
        errors.append(RowError(path, line, "row", message))
        return None
    given = dict(zip(columns, (value.strip() for value in values), strict=False))
    for name, limit in max_length.items():
        if len(given.get(name, "")) > limit:
            errors.append(RowError(path, line, name, f"longer than {limit} characters"))
    return given


def header_columns(
    line: int,
    header: list[str],
    allowed: Sequence[str],
    required: str,
    path: Path,
    errors: list[RowError],
) -> list[str] | None:
    """A CSV header's column names (lower case), or None with its problems in `errors`:
    unknown or repeated columns, or the `required` one missing."""
    columns = [name.strip().lower() for name in header]
    problems = []
    if unknown := [name for name in columns if name not in allowed]:
        names = ", ".join(repr(name) for name in unknown)
        problems.append(f"unknown column(s) {names}; the columns are {', '.join(allowed)}")
    if repeated := sorted({name for name in columns if columns.count(name) > 1}):
        problems.append(f"column(s) given twice: {', '.join(repeated)}")
    if required not in columns:
        problems.append(f"no '{required}' column")
    errors.extend(RowError(path, line, "header", message) for message in problems)
    return None if problems else columns


def _row(
    line: int,
    columns: list[str],
    values: list[str],
    region: str,
    path: Path,
    report: ImportReport,
) -> _Row | None:
    def error(name: str, message: str) -> None:
        report.errors.append(RowError(path, line, name, message))

    given = row_fields(line, columns, values, MAX_LENGTH, path, report.errors)
    if given is None:
        return None
    if not given.get("name"):
        error("name", "is empty")
    balance = Decimal("0")
    if raw := given.get("balance"):
        try:
            balance = Decimal(raw)
        except InvalidOperation:
            error("balance", f"not a number: {raw!r}")
        else:
            if not balance.is_finite():
                error("balance", f"not a number: {raw!r}")
            elif abs(balance) > MAX_BALANCE:
                error("balance", f"larger than {MAX_BALANCE}: {raw!r}")
            elif balance != balance.quantize(CENT):
                error("balance", f"more than 2 decimal places: {raw!r}")
            elif balance and not given.get("account"):
                # A balance is an account's; without one it would be lost.
                error("balance", f"no account to hold it: {raw!r}")
    currency = given.get("currency", "").upper() or "USD"
    if not CURRENCY.fullmatch(currency):
        error("currency", f"not a 3-letter code: {given['currency']!r}")
    phones: list[str] = []
    for raw in given.get("phones", "").split(";"):
        if not (raw := raw.strip()):
            continue
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_possible_number(number):
            error("phones", f"not a possible phone number in {region}: {raw!r}")
        elif (e164 := e164_of(number)) not in phones:
            phones.append(e164)
    return _Row(
        line=line,
        account=given.get("account") or None,
        name=given.get("name", ""),
        tier=given.get("tier") or "standard",
        language=given.get("language") or None,
        balance=balance,
        currency=currency,
        phones=phones,
    )


def _check_existing_accounts(db: Session, rows: list[_Row], report: ImportReport) -> None:
    lines: dict[str, int] = {}
    for row in rows:
        if row.account is not None:
            lines.setdefault(row.account, row.line)
    accounts = list(lines)
    stored = select(Account.number)
    if len(accounts) > LOOKUP_CHUNK * LOOKUP_QUERIES:
        queries = [stored]
    else:
        queries = [
            stored.where(Account.number.in_(accounts[start : start + LOOKUP_CHUNK]))
            for start in range(0, len(accounts), LOOKUP_CHUNK)
        ]
    for query in queries:
        for account in db.scalars(query.execution_options(yield_per=10_000)):
            if account in lines:
                message = f"{account!r} is in the database already"
                report.errors.append(RowError(report.path, lines[account], "account", message))
