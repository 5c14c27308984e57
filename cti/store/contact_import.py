"""A campaign's contacts and the do-not-call list from CSV files, all or nothing; and a
campaign's contacts and attempts out as CSV (`ivr campaign import|export`, `ivr dnc`).

A contacts file has a header row naming its columns: `number` (required), and optionally
`name`, `timezone` (IANA, e.g. America/Chicago; else the number's zone at dial time) and
`reason`. A do-not-call file has `number` and optionally `note`. Numbers without a
`+country` code are read in the region and stored in E.164. Every row is checked first;
one bad row and nothing is imported, each problem reported as `FILE:LINE: field:
message` (the header is line 1), like `ivr customers import`. A number on the
do-not-call list is no error: it is left out and named in the report's `skipped`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from sqlalchemy import ColumnElement, Select, insert, or_, select
from sqlalchemy.orm import Session, sessionmaker

from cti.store.campaigns import find
from cti.store.customer_import import (
    LOOKUP_CHUNK,
    LOOKUP_QUERIES,
    CustomerFileError,
    RowError,
    check_region,
    csv_file,
    e164_of,
    row_fields,
)
from cti.store.models import Attempt, Contact, DoNotCall

CONTACT_COLUMNS = ("number", "name", "timezone", "reason")
DNC_COLUMNS = ("number", "note")
# Limits of the columns in cti/store/models.py.
MAX_LENGTH = {"name": 128, "timezone": 64, "reason": 256, "note": 256}
EXPORT_COLUMNS = (
    "number",
    "name",
    "timezone",
    "reason",
    "source",
    "status",
    "attempts",
    "last_result",
    "next_attempt_at",
    "call_id",
    "started_at",
    "ended_at",
    "result",
    "detail",
)


class ContactFileError(CustomerFileError):
    """The file cannot be read at all: missing, unreadable, or not UTF-8 text."""


@dataclass(frozen=True)
class Skipped:
    """A row left out without being an error (the number must not be called)."""

    line: int
    number: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.number}: {self.reason}"


@dataclass
class ContactReport:
    """What an import of contacts or do-not-call numbers did: the errors (then nothing
    was imported), or how many rows went in and which were skipped."""

    path: Path
    errors: list[RowError] = field(default_factory=list)
    added: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class _Row:
    line: int
    number: str  # E.164
    values: dict[str, str]  # the other columns, stripped; "" where not given


def parse_number(raw: str, region: str) -> str:
    """`raw` in E.164, read in `region` when it has no +country code; ValueError when it
    is no number, or one that cannot be dialled (`phonenumbers.is_valid_number`)."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ValueError(f"not a phone number: {raw!r}") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"not a valid phone number in {region}: {raw!r}")
    return e164_of(number)


def import_contacts(
    sessions: sessionmaker[Session], campaign_name: str, path: Path | str, region: str = "US"
) -> ContactReport:
    """Check every row of `path`, then add them all to the campaign in one transaction,
    or none. Do-not-call numbers (global or the campaign's) are skipped, not errors.

    Raises CampaignNotFound, ContactFileError when the file cannot be read, ValueError
    for a bad region."""
    path, region = Path(path), check_region(region)
    campaign_id = _campaign_id(sessions, campaign_name)
    report = ContactReport(path)
    rows = _read(path, CONTACT_COLUMNS, region, report)
    with sessions.begin() as db:
        blocked = _do_not_call(db, campaign_id, [row.number for row in rows])
        kept = []
        for row in rows:
            if row.number in blocked:
                report.skipped.append(Skipped(row.line, row.number, blocked[row.number]))
            else:
                kept.append(row)
        _check_existing_contacts(db, campaign_id, campaign_name, kept, report)
        if report.errors:  # nothing was written; the transaction ends empty
            report.errors.sort(key=lambda e: e.line)
            return report
        if kept:
            db.execute(insert(Contact), [_contact(campaign_id, row) for row in kept])
    report.added = len(kept)
    return report


def import_dnc(
    sessions: sessionmaker[Session],
    path: Path | str,
    campaign_name: str | None = None,
    region: str = "US",
) -> ContactReport:
    """Put every number of `path` on the do-not-call list (every campaign's, or the named
    campaign's) in one transaction, or none; numbers on that list already are skipped.

    Raises CampaignNotFound, ContactFileError when the file cannot be read, ValueError
    for a bad region."""
    path, region = Path(path), check_region(region)
    campaign_id = None if campaign_name is None else _campaign_id(sessions, campaign_name)
    report = ContactReport(path)
    rows = _read(path, DNC_COLUMNS, region, report)
    with sessions.begin() as db:
        own_list = (
            DoNotCall.campaign_id.is_(None)
            if campaign_id is None
            else DoNotCall.campaign_id == campaign_id
        )
        query = select(DoNotCall.number).where(own_list)
        numbers = [row.number for row in rows]
        listed = {number for (number,) in _matching(db, query, DoNotCall.number, numbers)}
        kept = []
        for row in rows:
            if row.number in listed:
                report.skipped.append(Skipped(row.line, row.number, "on the list already"))
            else:
                kept.append(row)
        if report.errors:
            report.errors.sort(key=lambda e: e.line)
            return report
        if kept:
            db.execute(
                insert(DoNotCall),
                [
                    {
                        "number": row.number,
                        "campaign_id": campaign_id,
                        "source": "import",
                        "note": row.values.get("note", ""),
                    }
                    for row in kept
                ],
            )
    report.added = len(kept)
    return report


def _campaign_id(sessions: sessionmaker[Session], name: str) -> int:
    with sessions() as db:
        campaign, _spec = find(db, name)
        return campaign.id


def _contact(campaign_id: int, row: _Row) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "number": row.number,
        "name": row.values.get("name") or None,
        "timezone": row.values.get("timezone") or None,
        "reason": row.values.get("reason", ""),
        "source": "import",
    }


def _read(path: Path, columns: Sequence[str], region: str, report: ContactReport) -> list[_Row]:
    """The good rows; the problems go to `report` (and then nothing is imported)."""
    rows: list[_Row] = []
    first_line: dict[str, int] = {}
    zones: dict[str, bool] = {}
    for line, names, values in csv_file(path, columns, "number", report.errors, ContactFileError):
        row = _row(line, names, values, region, zones, path, report)
        if row is None:
            continue
        if row.number in first_line:
            message = f"{row.number} is also on line {first_line[row.number]}"
            report.errors.append(RowError(path, line, "number", message))
            continue
        first_line[row.number] = line
        rows.append(row)
    return rows


def _row(
    line: int,
    names: list[str],
    values: list[str],
    region: str,
    zones: dict[str, bool],
    path: Path,
    report: ContactReport,
) -> _Row | None:
    """The row, or None when it has an error (each one goes to `report`)."""
    errors = len(report.errors)

    def error(name: str, message: str) -> None:
        report.errors.append(RowError(path, line, name, message))

    given = row_fields(line, names, values, MAX_LENGTH, path, report.errors)
    if given is None:
        return None
    number = ""
    if not (raw := given.pop("number", "")):
        error("number", "is empty")
    else:
        try:
            number = parse_number(raw, region)
        except ValueError as exc:
            error("number", str(exc))
    zone = given.get("timezone", "")
    if zone and len(zone) <= MAX_LENGTH["timezone"] and not _known_zone(zone, zones):
        error("timezone", f"unknown time zone {zone!r}; use an IANA name such as America/Chicago")
    return _Row(line, number, given) if len(report.errors) == errors else None


def _known_zone(key: str, known: dict[str, bool]) -> bool:
    if key not in known:
        try:
            ZoneInfo(key)
            known[key] = True
        except (ZoneInfoNotFoundError, ValueError):
            known[key] = False
    return known[key]


def _matching(
    db: Session, query: Select[Any], column: ColumnElement[str], numbers: Sequence[str]
) -> Iterable[Any]:
    """The rows of `query` whose first value is one of `numbers`: a few IN (...) queries
    for a small file, one read of all `query` finds for a big one (as customer_import)."""
    numbers = list(dict.fromkeys(numbers))
    if not numbers:
        return []
    if len(numbers) > LOOKUP_CHUNK * LOOKUP_QUERIES:
        wanted = set(numbers)
        return [found for found in db.execute(query) if found[0] in wanted]
    return [
        found
        for start in range(0, len(numbers), LOOKUP_CHUNK)
        for found in db.execute(query.where(column.in_(numbers[start : start + LOOKUP_CHUNK])))
    ]


def _do_not_call(db: Session, campaign_id: int, numbers: list[str]) -> dict[str, str]:
    """Number -> why it must not be called, for the numbers on the global list or the
    campaign's (worded as `campaigns.dnc_reason`)."""
    query = select(DoNotCall.number, DoNotCall.campaign_id).where(
        or_(DoNotCall.campaign_id.is_(None), DoNotCall.campaign_id == campaign_id)
    )
    lists: dict[str, set[int | None]] = {}
    for number, on_list in _matching(db, query, DoNotCall.number, numbers):
        lists.setdefault(number, set()).add(on_list)
    return {
        number: "do-not-call (global)" if None in found else "do-not-call (campaign)"
        for number, found in lists.items()
    }


def _check_existing_contacts(
    db: Session, campaign_id: int, campaign_name: str, rows: list[_Row], report: ContactReport
) -> None:
    """A number the campaign has already for the same reason is an error: it is one
    contact (the table's unique key)."""
    query = select(Contact.number, Contact.reason).where(Contact.campaign_id == campaign_id)
    numbers = [row.number for row in rows]
    stored = {(number, reason) for number, reason in _matching(db, query, Contact.number, numbers)}
    for row in rows:
        reason = row.values.get("reason", "")
        if (row.number, reason) in stored:
            why = f" for reason {reason!r}" if reason else ""
            message = f"{row.number} is in campaign {campaign_name!r} already{why}"
            report.errors.append(RowError(report.path, row.line, "number", message))


EXPORT_CHUNK = 64 * 1024  # characters of CSV a chunk of the export holds, about


def export_contacts(db: Session, campaign_id: int, out: TextIO) -> tuple[int, int]:
    """Write the campaign's export (`export_chunks`) to `out`. Returns (contacts, rows)."""
    chunks = export_chunks(db, campaign_id)
    while True:
        try:
            out.write(next(chunks))
        except StopIteration as done:
            return done.value


def export_chunks(db: Session, campaign_id: int) -> Generator[str, None, tuple[int, int]]:
    """The campaign's contacts as CSV (EXPORT_COLUMNS), in chunks of about EXPORT_CHUNK
    characters so that a big campaign never sits whole in memory: one row per attempt,
    a contact without attempts once; times in UTC, ISO 8601. Returns (contacts, rows)."""
    query = (
        select(
            Contact.id,
            *(getattr(Contact, name) for name in EXPORT_COLUMNS[:9]),
            Attempt.call_id,
            Attempt.started_at,
            Attempt.ended_at,
            Attempt.result,
            Attempt.detail,
        )
        .outerjoin(Attempt, Attempt.contact_id == Contact.id)
        .where(Contact.campaign_id == campaign_id)
        .order_by(Contact.id, Attempt.started_at, Attempt.id)
        .execution_options(yield_per=10_000)
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    last, contacts, rows = None, 0, 0
    for contact_id, *values in db.execute(query):
        contacts += contact_id != last  # ordered by contact: each one's rows in a run
        last = contact_id
        writer.writerow([_cell(value) for value in values])
        rows += 1
        if buffer.tell() >= EXPORT_CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
    return contacts, rows


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return value
