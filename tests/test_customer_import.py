"""`ivr customers import`: CSV customers, all or nothing, on SQLite and the real PostgreSQL."""

from __future__ import annotations

import re
import subprocess
from decimal import Decimal
from pathlib import Path

import phonenumbers
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from cti.store import customer_import
from cti.store.customer_import import CustomerFileError, e164_of, import_customers
from cti.store.models import Account, Customer, CustomerPhone
from ivr.numbers import normalise_number
from tests.support.service import IVR

GOOD = """\
name,account,tier,language,balance,currency,phones
Rosa Diaz,70000001,vip,en,1250.50,usd,+1 415 555 0100;(415) 555-0101
Chen Jie,70000002,,zh,,,
Sam Office,70000003,gold,,-3.10,EUR,4155550177
Kim Office,,,,0,,4155550177
"""


def write(tmp_path: Path, text: str, name: str = "customers.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def customer_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as db:
        return db.scalar(select(func.count()).select_from(Customer)) or 0


def test_a_good_file_imports_every_row_with_phones_in_e164(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    report = import_customers(sessions, write(tmp_path, GOOD), "US")
    assert report.ok and (report.customers, report.phones) == (4, 4)
    with sessions() as db:
        query = (
            select(Customer)
            .options(selectinload(Customer.phones), selectinload(Customer.accounts))
            .order_by(Customer.id)
        )
        rows = [
            (
                c.name,
                c.tier,
                c.language,
                [(a.number, a.balance, a.currency, a.status) for a in c.accounts],
                sorted(p.e164 for p in c.phones),
            )
            for c in db.scalars(query)
        ]
    assert rows == [
        (
            "Rosa Diaz",
            "vip",
            "en",
            [("70000001", Decimal("1250.50"), "USD", "open")],
            ["+14155550100", "+14155550101"],
        ),
        ("Chen Jie", "standard", "zh", [("70000002", Decimal("0"), "USD", "open")], []),
        (
            "Sam Office",
            "gold",
            None,
            [("70000003", Decimal("-3.10"), "EUR", "open")],
            ["+14155550177"],
        ),
        ("Kim Office", "standard", None, [], ["+14155550177"]),  # no account: a zero balance
    ]


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("+1 415 555 0100", "US"),
        ("(415) 555-0101", "US"),
        ("5550100", "US"),
        ("020 7946 0018", "GB"),
    ],
)
def test_numbers_are_stored_as_the_matcher_normalises_them(raw: str, region: str) -> None:
    assert e164_of(phonenumbers.parse(raw, region)) == normalise_number(raw, region)


def test_numbers_are_read_in_the_region_and_repeats_stored_once(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write(tmp_path, "name,phones\nAmelia Jones,020 7946 0018; +44 20 7946 0018\n")
    report = import_customers(sessions, path, "gb")
    assert report.ok and (report.customers, report.phones) == (1, 1)
    with sessions() as db:
        assert db.scalars(select(CustomerPhone.e164)).all() == ["+442079460018"]


def test_one_bad_row_imports_nothing_and_every_problem_names_its_line(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    text = (
        "name,account,balance,currency,phones,language\n"  # 1
        "Good One,71000001,10.00,USD,+14155550100,en\n"  # 2
        "   ,71000002,12.345,DOLLAR,12,\n"  # 3
        "\n"  # 4: blank lines are skipped, but counted
        '"Good\nTwo",71000003,,,,\n'  # 5-6: a quoted name across lines
        "Bad Balance,71000004,1;000,,not a phone,english-us\n"  # 7
        "Too Many,71000005,1,USD,,en,extra\n"  # 8
        "Good Three,71000006,0,,,\n"  # 9
        "Lost Balance,,5.00,EUR,,\n"  # 10: a balance is an account's
        "No Balance,,0.00,EUR,,\n"  # 11: nothing to lose
    )
    path = write(tmp_path, text)
    report = import_customers(sessions, path, "US")
    assert [str(e) for e in report.errors] == [
        f"{path}:3: name: is empty",
        f"{path}:3: balance: more than 2 decimal places: '12.345'",
        f"{path}:3: currency: not a 3-letter code: 'DOLLAR'",
        f"{path}:3: phones: not a possible phone number in US: '12'",
        f"{path}:7: language: longer than 8 characters",
        f"{path}:7: balance: not a number: '1;000'",
        f"{path}:7: phones: not a possible phone number in US: 'not a phone'",
        f"{path}:8: row: 7 fields, but the header has 6",
        f"{path}:10: balance: no account to hold it: '5.00'",
    ]
    assert (report.customers, report.phones) == (0, 0)
    assert customer_count(sessions) == 0


def test_long_values_and_huge_balances_are_refused(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    text = f"name,account,tier,balance\n{'x' * 129},{'1' * 33},{'t' * 17},1e12\nOk,,,NaN\n"
    path = write(tmp_path, text)
    report = import_customers(sessions, path)
    assert [str(e) for e in report.errors] == [
        f"{path}:2: account: longer than 32 characters",
        f"{path}:2: name: longer than 128 characters",
        f"{path}:2: tier: longer than 16 characters",
        f"{path}:2: balance: larger than 9999999999.99: '1e12'",
        f"{path}:3: balance: not a number: 'NaN'",
    ]
    assert customer_count(sessions) == 0


@pytest.mark.parametrize("queries", [4, 0], ids=["asks-about-each", "reads-all-stored"])
def test_an_account_twice_in_the_file_or_already_stored_is_refused(
    sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, queries: int
) -> None:
    monkeypatch.setattr(customer_import, "LOOKUP_QUERIES", queries)
    with sessions.begin() as db:
        db.add(Customer(name="Stored", accounts=[Account(number="72000001")]))
    text = (
        "account,name\n"
        "72000002,Ana\n"  # 2
        "72000001,Bo\n"  # 3: in the database already
        "72000003,Cy\n"  # 4
        "72000002,Di\n"  # 5: Ana's account again
    )
    path = write(tmp_path, text)
    report = import_customers(sessions, path)
    assert [str(e) for e in report.errors] == [
        f"{path}:3: account: '72000001' is in the database already",
        f"{path}:5: account: '72000002' is also on line 2",
    ]
    assert customer_count(sessions) == 1


@pytest.mark.parametrize(
    ("header", "messages"),
    [
        (
            "name,account,email,fax",
            [
                "unknown column(s) 'email', 'fax'; the columns are account, name, tier, "
                "language, balance, currency, phones"
            ],
        ),
        ("account,phones", ["no 'name' column"]),
        ("name,Name", ["column(s) given twice: name"]),
    ],
)
def test_the_header_must_name_known_columns_and_the_name(
    sessions: sessionmaker[Session], tmp_path: Path, header: str, messages: list[str]
) -> None:
    path = write(tmp_path, f"{header}\nAna,1,2,3\n")
    report = import_customers(sessions, path)
    assert [str(e) for e in report.errors] == [f"{path}:1: header: {m}" for m in messages]
    assert customer_count(sessions) == 0


def test_an_empty_or_header_only_file(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    empty = write(tmp_path, "", "empty.csv")
    assert [str(e) for e in import_customers(sessions, empty).errors] == [
        f"{empty}:1: header: the file is empty"
    ]
    header_only = import_customers(sessions, write(tmp_path, "name,phones\n"))
    assert header_only.ok and header_only.customers == 0


def test_an_unreadable_file_or_a_bad_region_raises(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("name\nJosé\n".encode("latin-1"))
    with pytest.raises(CustomerFileError, match=re.escape(f"{latin1}: not UTF-8 text")):
        import_customers(sessions, latin1)
    with pytest.raises(CustomerFileError, match=r"cannot read .*missing\.csv: No such file"):
        import_customers(sessions, tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="unknown region 'XX'"):
        import_customers(sessions, write(tmp_path, GOOD), "XX")


def test_a_utf8_file_with_a_byte_order_mark_reads(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffname,language\n李伟,zh\n".encode())
    assert import_customers(sessions, path).customers == 1
    with sessions() as db:
        assert db.scalars(select(Customer.name)).all() == ["李伟"]


def ivr(db_url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IVR, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "", "IVR_DATABASE__URL": db_url},
    )


def test_the_command_imports_or_reports_with_exit_codes(
    db_url: str, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    good = write(tmp_path, GOOD, "good.csv")
    done = ivr(db_url, "customers", "import", "good.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "imported 4 customers (4 phone numbers) from good.csv\n"
    assert customer_count(sessions) == 4

    again = ivr(db_url, "customers", "import", str(good), cwd=tmp_path)
    assert again.returncode == 1
    assert again.stdout == ""
    assert again.stderr.splitlines() == [
        f"{good}:2: account: '70000001' is in the database already",
        f"{good}:3: account: '70000002' is in the database already",
        f"{good}:4: account: '70000003' is in the database already",
        "nothing imported: 3 errors",
    ]
    assert customer_count(sessions) == 4

    (tmp_path / "latin1.csv").write_bytes(b"name\nJos\xe9\n")
    for args, message in [
        (["latin1.csv"], "ivr customers import: latin1.csv: not UTF-8 text"),
        (["missing.csv"], "ivr customers import: cannot read missing.csv: No such file"),
        (["--region", "XX", "good.csv"], "ivr customers import: unknown region 'XX'"),
    ]:
        refused = ivr(db_url, "customers", "import", *args, cwd=tmp_path)
        assert refused.returncode == 2 and refused.stderr.startswith(message), refused.stderr
    assert customer_count(sessions) == 4


def test_a_large_file_imports_in_one_go(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    rows = 20_000
    path = tmp_path / "large.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("account,name,balance,phones\n")
        for i in range(rows):
            out.write(
                f"A{i:08d},Customer {i},{i % 1000}.25,+1 415 {200 + i % 800} {i % 10000:04d}\n"
            )
    report = import_customers(sessions, path)
    assert report.ok and (report.customers, report.phones) == (rows, rows)
    with sessions() as db:
        last = db.scalars(
            select(Customer).join(Account).where(Account.number == f"A{rows - 1:08d}")
        ).one()
        assert last.name == f"Customer {rows - 1}"
        assert [p.e164 for p in last.phones] == [
            f"+1415{200 + (rows - 1) % 800}{(rows - 1) % 10000:04d}"
        ]
