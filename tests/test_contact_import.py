"""A campaign's contacts and the do-not-call list from CSV, all or nothing, on SQLite and
the real PostgreSQL."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cti.campaigns.spec import CampaignSpec
from cti.store.campaigns import CampaignNotFound, add_dnc, create
from cti.store.contact_import import (
    EXPORT_CHUNK,
    ContactFileError,
    Skipped,
    export_chunks,
    export_contacts,
    import_contacts,
    import_dnc,
    parse_number,
)
from cti.store.models import Contact, DoNotCall

GOOD = """\
number,name,timezone,reason
+1 415 555 0100,Rosa Diaz,,
(212) 555-0142,Chen Jie,America/Chicago,late order
+44 20 7946 0123,,Europe/London,
"""


def write(tmp_path: Path, text: str, name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def campaign(sessions: sessionmaker[Session], name: str = "csat") -> int:
    return create(sessions, CampaignSpec(name=name, kind="survey"), "ops")


def contacts(sessions: sessionmaker[Session], campaign_id: int) -> list[tuple[object, ...]]:
    with sessions() as db:
        query = (
            select(
                Contact.number,
                Contact.name,
                Contact.timezone,
                Contact.reason,
                Contact.source,
                Contact.status,
                Contact.attempts,
            )
            .where(Contact.campaign_id == campaign_id)
            .order_by(Contact.id)
        )
        return [tuple(row) for row in db.execute(query)]


def contact_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as db:
        return db.scalar(select(func.count()).select_from(Contact)) or 0


def test_a_clean_file_goes_in_with_numbers_in_e164(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    csat = campaign(sessions)
    report = import_contacts(sessions, "csat", write(tmp_path, GOOD))
    assert report.ok and report.added == 3 and report.skipped == []
    assert contacts(sessions, csat) == [
        ("+14155550100", "Rosa Diaz", None, "", "import", "pending", 0),
        ("+12125550142", "Chen Jie", "America/Chicago", "late order", "import", "pending", 0),
        ("+442079460123", None, "Europe/London", "", "import", "pending", 0),
    ]


def test_numbers_are_read_in_the_region() -> None:
    assert parse_number("020 7946 0123", "GB") == "+442079460123"
    assert parse_number("(415) 555-0100", "US") == "+14155550100"
    with pytest.raises(ValueError, match=re.escape("phone number in GB: '(415) 555-0100'")):
        parse_number("(415) 555-0100", "GB")


def test_every_bad_row_is_named_by_line_and_nothing_is_imported(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    campaign(sessions)
    text = (
        "number,name,timezone,reason\n"
        "+1 415 555 0100,Good Row,,\n"  # 2
        "not a number,Ana,,\n"  # 3
        "12345,Bo,,\n"  # 4: parses, but no one has it
        "+1 212 555 0142,Cy,Mars/Olympus,\n"  # 5
        f"+1 212 555 0143,{'x' * 129},,{'y' * 257}\n"  # 6
        ",Di,,\n"  # 7
        "+1 212 555 0144,Ed,,,extra\n"  # 8
        "4155550100,Fay,,\n"  # 9: line 2's number, written differently
        '+1 212 555 0145,"Gus\nson",america/new_york,\n'  # 10-11: one record
        "+1 212 555 0146,Hal,,\n"  # 12
    )
    path = write(tmp_path, text)
    report = import_contacts(sessions, "csat", path)
    assert not report.ok and report.added == 0
    assert [str(error) for error in report.errors] == [
        f"{path}:3: number: not a phone number: 'not a number'",
        f"{path}:4: number: not a valid phone number in US: '12345'",
        f"{path}:5: timezone: unknown time zone 'Mars/Olympus'; use an IANA name such as"
        " America/Chicago",
        f"{path}:6: name: longer than 128 characters",
        f"{path}:6: reason: longer than 256 characters",
        f"{path}:7: number: is empty",
        f"{path}:8: row: 5 fields, but the header has 4",
        f"{path}:9: number: +14155550100 is also on line 2",
        f"{path}:10: timezone: unknown time zone 'america/new_york'; use an IANA name such as"
        " America/Chicago",
    ]
    assert contact_count(sessions) == 0


def test_do_not_call_numbers_are_skipped_and_reported_and_the_rest_go_in(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    csat = campaign(sessions)
    other = campaign(sessions, "renewals")
    assert add_dnc(sessions, "+14155550100", note="asked on 2026-11-02")  # every campaign's
    assert add_dnc(sessions, "+12125550142", csat)  # this campaign's
    assert add_dnc(sessions, "+442079460123", other)  # another campaign's: no matter here
    report = import_contacts(sessions, "csat", write(tmp_path, GOOD))
    assert report.ok and report.added == 1
    assert report.skipped == [
        Skipped(2, "+14155550100", "do-not-call (global)"),
        Skipped(3, "+12125550142", "do-not-call (campaign)"),
    ]
    assert str(report.skipped[0]) == "line 2: +14155550100: do-not-call (global)"
    assert [row[0] for row in contacts(sessions, csat)] == ["+442079460123"]


def test_a_number_the_campaign_has_for_the_same_reason_is_refused(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    csat = campaign(sessions)
    assert import_contacts(sessions, "csat", write(tmp_path, GOOD)).added == 3
    again = (
        "number,reason\n"
        "+1 415 555 0100,\n"  # has it, reason ""
        "+1 212 555 0142,late order\n"  # has it for this reason
        "+1 212 555 0142,\n"  # the file's own duplicate, whatever the reason
        "+44 20 7946 0123,billing\n"  # has it, but for another reason
    )
    path = write(tmp_path, again, "again.csv")
    report = import_contacts(sessions, "csat", path)
    assert [str(error) for error in report.errors] == [
        f"{path}:2: number: +14155550100 is in campaign 'csat' already",
        f"{path}:3: number: +12125550142 is in campaign 'csat' already for reason 'late order'",
        f"{path}:4: number: +12125550142 is also on line 3",
    ]
    assert len(contacts(sessions, csat)) == 3
    fine = write(tmp_path, "number,reason\n+44 20 7946 0123,billing\n", "fine.csv")
    assert import_contacts(sessions, "csat", fine).added == 1
    assert len(contacts(sessions, csat)) == 4


def test_the_header_must_name_known_columns_and_the_number(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    campaign(sessions)
    path = write(tmp_path, "Name,phone,name\nAna,+14155550100,A\n")
    assert [str(e) for e in import_contacts(sessions, "csat", path).errors] == [
        f"{path}:1: header: unknown column(s) 'phone'; the columns are number, name, timezone,"
        " reason",
        f"{path}:1: header: column(s) given twice: name",
        f"{path}:1: header: no 'number' column",
    ]
    empty = write(tmp_path, "\n\n", "empty.csv")
    assert [str(e) for e in import_contacts(sessions, "csat", empty).errors] == [
        f"{empty}:1: header: the file is empty"
    ]
    header_only = import_contacts(sessions, "csat", write(tmp_path, "number\n", "h.csv"))
    assert header_only.ok and header_only.added == 0
    assert contact_count(sessions) == 0


def test_an_unknown_campaign_an_unreadable_file_or_a_bad_region_raise(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    campaign(sessions)
    good = write(tmp_path, GOOD)
    with pytest.raises(CampaignNotFound, match="no campaign named 'nope'"):
        import_contacts(sessions, "nope", good)
    with pytest.raises(ContactFileError, match=r"cannot read .*missing\.csv: No such file"):
        import_contacts(sessions, "csat", tmp_path / "missing.csv")
    (tmp_path / "latin1.csv").write_bytes(b"number,name\n4155550100,Jos\xe9\n")
    with pytest.raises(ContactFileError, match="not UTF-8 text"):
        import_contacts(sessions, "csat", tmp_path / "latin1.csv")
    with pytest.raises(ValueError, match="unknown region 'XX'"):
        import_contacts(sessions, "csat", good, "XX")
    assert contact_count(sessions) == 0


def test_a_large_file_and_its_repeat_are_checked_against_the_campaign(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """More numbers than the IN (...) queries take: the campaign's are read in one go."""
    csat = campaign(sessions)
    rows = 2_500
    numbers = [f"+1415{200 + i % 800}{i % 10000:04d}" for i in range(rows)]
    assert add_dnc(sessions, numbers[-1])
    path = write(tmp_path, "number\n" + "\n".join(numbers) + "\n")
    report = import_contacts(sessions, "csat", path)
    assert report.ok and report.added == rows - 1
    assert report.skipped == [Skipped(rows + 1, numbers[-1], "do-not-call (global)")]
    again = import_contacts(sessions, "csat", path)
    assert len(again.errors) == rows - 1 and again.added == 0
    assert str(again.errors[0]) == f"{path}:2: number: {numbers[0]} is in campaign 'csat' already"
    assert len(contacts(sessions, csat)) == rows - 1

    # Exported in whole rows a chunk, never the whole file at once.
    with sessions() as db:
        chunks = list(export_chunks(db, csat))
        out = io.StringIO()
        assert export_contacts(db, csat, out) == (rows - 1, rows - 1)
    assert len(chunks) > 1 and all(chunk.endswith("\r\n") for chunk in chunks)
    assert max(len(chunk) for chunk in chunks) < EXPORT_CHUNK + 200
    assert "".join(chunks) == out.getvalue()
    assert len(out.getvalue().splitlines()) == 1 + rows - 1


def dnc_rows(sessions: sessionmaker[Session]) -> list[tuple[object, ...]]:
    with sessions() as db:
        query = select(
            DoNotCall.number, DoNotCall.campaign_id, DoNotCall.source, DoNotCall.note
        ).order_by(DoNotCall.id)
        return [tuple(row) for row in db.execute(query)]


def test_do_not_call_numbers_go_on_the_global_or_a_campaigns_list(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    csat = campaign(sessions)
    path = write(tmp_path, "number,note\n+1 415 555 0100,asked\n(212) 555-0142,\n", "dnc.csv")
    report = import_dnc(sessions, path)
    assert report.ok and report.added == 2 and report.skipped == []
    again = import_dnc(sessions, path, "csat")  # another list: they go on it too
    assert again.ok and again.added == 2
    more = write(tmp_path, "number\n2125550142\n4155550177\n", "more.csv")
    third = import_dnc(sessions, more)
    assert third.added == 1
    assert third.skipped == [Skipped(2, "+12125550142", "on the list already")]
    assert dnc_rows(sessions) == [
        ("+14155550100", None, "import", "asked"),
        ("+12125550142", None, "import", ""),
        ("+14155550100", csat, "import", "asked"),
        ("+12125550142", csat, "import", ""),
        ("+14155550177", None, "import", ""),
    ]


def test_a_bad_do_not_call_file_adds_nothing(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    campaign(sessions)
    text = (
        "number,note\n"
        "+1 415 555 0100,fine\n"
        "555,\n"
        f"+1 212 555 0142,{'n' * 257}\n"
        "(415) 555-0100,again\n"
        "+1 212 555 0143,,\n"
    )
    path = write(tmp_path, text, "dnc.csv")
    report = import_dnc(sessions, path, "csat")
    assert [str(error) for error in report.errors] == [
        f"{path}:3: number: not a valid phone number in US: '555'",
        f"{path}:4: note: longer than 256 characters",
        f"{path}:5: number: +14155550100 is also on line 2",
        f"{path}:6: row: 3 fields, but the header has 2",
    ]
    assert dnc_rows(sessions) == []
    wrong = write(tmp_path, "number,name\n4155550100,Ana\n", "wrong.csv")
    assert [str(e) for e in import_dnc(sessions, wrong).errors] == [
        f"{wrong}:1: header: unknown column(s) 'name'; the columns are number, note"
    ]
    with pytest.raises(CampaignNotFound):
        import_dnc(sessions, path, "nope")
