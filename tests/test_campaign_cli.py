"""`ivr campaign ...` and `ivr dnc ...` end to end: the real `ivr` command on a SQLite
database, the dialer's side played by the store's own functions."""

from __future__ import annotations

import csv
import io
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.campaigns.spec import CampaignSpec
from cti.store import campaigns
from cti.store.contact_import import EXPORT_COLUMNS
from cti.store.db import make_engine, session_factory, upgrade
from cti.store.models import Campaign, DoNotCall
from tests.support.service import IVR

ALWAYS = "[00:00-24:00]"
CSAT = f"""\
name: csat
kind: survey
windows: {{mon: {ALWAYS}, tue: {ALWAYS}, wed: {ALWAYS}, thu: {ALWAYS}, fri: {ALWAYS},
          sat: {ALWAYS}, sun: {ALWAYS}}}
timezone: America/Chicago
max_attempts: 2
calls_per_second: 0.5
"""
CONTACTS = """\
number,name,timezone,reason
+1 415 555 0100,Rosa Diaz,,
(212) 555-0142,Chen Jie,America/Chicago,late order
+44 20 7946 0123,,Europe/London,
+1 212 555 0199,Do Not Call,,
"""
T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


class Workdir:
    """A folder with its own SQLite database, and `ivr` run there."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path / 'ivr.sqlite3'}"
        self.engine = make_engine(self.url)
        upgrade(self.engine)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)

    def write(self, name: str, text: str) -> Path:
        (self.path / name).write_text(text, encoding="utf-8")
        return self.path / name

    def ivr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [IVR, *args],
            cwd=self.path,
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "", "IVR_DATABASE__URL": self.url},
        )


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Workdir]:
    workdir = Workdir(tmp_path)
    yield workdir
    workdir.engine.dispose()


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_create_from_yaml_then_show_pause_and_resume(work: Workdir) -> None:
    work.write("csat.yaml", CSAT)
    assert ok(work.ivr("campaign", "create", "csat.yaml")).splitlines() == [
        "campaign csat created (survey, active); add contacts with:",
        "  ivr campaign import csat FILE.csv",
    ]
    taken = work.ivr("campaign", "create", "csat.yaml")
    assert taken.returncode == 1
    assert taken.stderr == "ivr campaign create: a campaign named 'csat' exists already\n"

    shown = ok(work.ivr("campaign", "show", "csat")).split("\n\n", 1)
    lines = shown[0].splitlines()
    assert lines[0] == "campaign csat: survey, active"
    assert lines[1].startswith("created 20")
    assert lines[2] == (
        "progress: contacts 0, remaining 0, dialled 0, reached 0, completed 0, blocked 0;"
        " outside their calling window now 0"
    )
    settings = yaml.safe_load(shown[1])  # the settings: a file `create` takes
    assert CampaignSpec.model_validate(settings) == CampaignSpec.model_validate(
        yaml.safe_load(CSAT)
    )
    assert (settings["entry"], settings["max_attempts"], settings["ring_seconds"]) == (
        "survey",
        2,
        30,
    )

    assert ok(work.ivr("campaign", "pause", "csat")) == "campaign csat paused: no new calls\n"
    assert ok(work.ivr("campaign", "pause", "csat")) == "campaign csat is paused already\n"
    with work.sessions() as db:
        assert db.scalar(select(Campaign.status).where(Campaign.name == "csat")) == "paused"
    assert ok(work.ivr("campaign", "resume", "csat")) == "campaign csat resumed\n"
    with work.sessions() as db:
        assert db.scalar(select(Campaign.status).where(Campaign.name == "csat")) == "active"

    unknown = work.ivr("campaign", "pause", "nope")
    assert (unknown.returncode, unknown.stderr) == (
        2,
        "ivr campaign pause: no campaign named 'nope'\n",
    )


def test_a_bad_yaml_names_the_file_line_and_field_and_creates_nothing(work: Workdir) -> None:
    bad = work.write(
        "bad.yaml",
        "name: csat\n"
        "kind: poll\n"
        "max_attempts: 50\n"
        "timezone: Mars/Olympus\n"
        "retry_minutes: {busy: 5}\n"
        "colour: red\n",
    )
    done = work.ivr("campaign", "create", "bad.yaml")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "bad.yaml:2:7: kind: Input should be 'callback' or 'survey', got 'poll'",
        "bad.yaml:3:15: max_attempts: Input should be less than or equal to 20, got 50",
        "bad.yaml:4:11: timezone: unknown time zone 'Mars/Olympus'",
        "bad.yaml:6:1: colour: unknown field",
        "ivr campaign create: no campaign created: 4 errors",
    ]
    # The fields are right; the check across them names its field.
    bad.write_text("name: csat\nkind: survey\nretry_minutes: {busy: 5}\n")
    across = work.ivr("campaign", "create", "bad.yaml")
    assert across.returncode == 2
    assert across.stderr.splitlines()[0] == (
        "bad.yaml:3:16: retry_minutes: give a delay for machine, no_answer, failed"
    )
    work.write("broken.yaml", "name: csat\nkind: [survey\n")
    broken = work.ivr("campaign", "create", "broken.yaml")
    assert broken.returncode == 2
    assert broken.stderr.startswith("ivr campaign create: broken.yaml:3:1: not valid YAML")
    assert ok(work.ivr("campaign", "list")) == (
        "no campaigns; create one with: ivr campaign create FILE.yaml\n"
    )


def play_the_dialer(sessions: sessionmaker[Session]) -> None:
    """Rosa: busy, then no answer (out of attempts); Chen: reached; the London number
    claimed but given back until the next day."""
    with sessions() as db:
        campaign, spec = campaigns.find(db, "csat")
    first = campaigns.claim(sessions, campaign.id, "dialer-1", T0, 2)
    assert [c.number for c in first] == ["+14155550100", "+12125550142"]
    calls = [(first[0], "call-1"), (first[1], "call-2")]
    busy, human = campaigns.start_attempts(sessions, campaign.id, "dialer-1", calls, T0)
    end = T0 + timedelta(minutes=1)
    campaigns.finish_attempt(sessions, busy, "busy", spec, end, "cause 17")
    campaigns.finish_attempt(sessions, human, "human", spec, end)
    for attempt in (busy, human):
        campaigns.call_ended(sessions, attempt, end)
    later = T0 + timedelta(minutes=20)
    second = campaigns.claim(sessions, campaign.id, "dialer-1", later, 2)
    assert [c.number for c in second] == ["+442079460123", "+14155550100"]
    campaigns.release(sessions, second[0].contact_id, T0 + timedelta(days=1))
    [attempt] = campaigns.start_attempts(
        sessions, campaign.id, "dialer-1", [(second[1], "call-3")], later
    )
    campaigns.finish_attempt(sessions, attempt, "no_answer", spec, later + timedelta(seconds=30))
    campaigns.call_ended(sessions, attempt, later + timedelta(seconds=30))


def test_import_list_show_and_export_every_attempt(work: Workdir) -> None:
    work.write("csat.yaml", CSAT)
    ok(work.ivr("campaign", "create", "csat.yaml"))
    assert ok(work.ivr("dnc", "add", "2125550199", "--note", "asked")) == (
        "+12125550199 added to the do-not-call list\n"
    )
    work.write("contacts.csv", CONTACTS)
    assert ok(work.ivr("campaign", "import", "csat", "contacts.csv")).splitlines() == [
        "added 3 contacts from contacts.csv; skipped 1",
        "  skipped contacts.csv:5: +12125550199: do-not-call (global)",
    ]
    again = work.ivr("campaign", "import", "csat", "contacts.csv")
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.splitlines() == [
        "contacts.csv:2: number: +14155550100 is in campaign 'csat' already",
        "contacts.csv:3: number: +12125550142 is in campaign 'csat' already for reason"
        " 'late order'",
        "contacts.csv:4: number: +442079460123 is in campaign 'csat' already",
        "nothing imported: 3 errors",
    ]

    play_the_dialer(work.sessions)
    assert ok(work.ivr("campaign", "list")).splitlines() == [
        "name  kind    status  contacts  remaining  dialled  reached  completed  blocked"
        "  outside_window",
        "csat  survey  active         3          1        3        1          2        0"
        "               0",
    ]
    shown = ok(work.ivr("campaign", "show", "csat")).splitlines()
    assert shown[2] == (
        "progress: contacts 3, remaining 1, dialled 3, reached 1, completed 2, blocked 0;"
        " outside their calling window now 0"
    )

    expected = [list(EXPORT_COLUMNS)] + [
        line.split(",")
        for line in [
            "+14155550100,Rosa Diaz,,,import,exhausted,2,no_answer,,call-1,"
            "2026-11-23T15:00:00+00:00,2026-11-23T15:01:00+00:00,busy,cause 17",
            "+14155550100,Rosa Diaz,,,import,exhausted,2,no_answer,,call-3,"
            "2026-11-23T15:20:00+00:00,2026-11-23T15:20:30+00:00,no_answer,",
            "+12125550142,Chen Jie,America/Chicago,late order,import,done,1,human,,call-2,"
            "2026-11-23T15:00:00+00:00,2026-11-23T15:01:00+00:00,human,",
            "+442079460123,,Europe/London,,import,pending,0,,2026-11-24T15:00:00+00:00,,,,,",
        ]
    ]
    written = ok(work.ivr("campaign", "export", "csat", "--output", "out/csat.csv"))
    assert written == "wrote out/csat.csv (3 contacts, 4 rows)\n"
    with (work.path / "out" / "csat.csv").open(encoding="utf-8", newline="") as handle:
        assert list(csv.reader(handle)) == expected
    stdout = ok(work.ivr("campaign", "export", "csat"))
    assert list(csv.reader(io.StringIO(stdout))) == expected


def test_an_export_that_cannot_be_written_or_of_no_campaign(work: Workdir) -> None:
    work.write("csat.yaml", CSAT)
    ok(work.ivr("campaign", "create", "csat.yaml"))
    (work.path / "out").mkdir()
    nowhere = work.ivr("campaign", "export", "csat", "-o", "out")
    assert nowhere.returncode == 2
    assert nowhere.stderr == "ivr campaign export: cannot write out: Is a directory\n"
    assert work.ivr("campaign", "export", "nope").returncode == 2
    header_only = ok(work.ivr("campaign", "export", "csat"))
    assert header_only.splitlines() == [",".join(EXPORT_COLUMNS)]


def dnc(work: Workdir) -> list[tuple[str, int | None, str, str]]:
    with work.sessions() as db:
        query = select(
            DoNotCall.number, DoNotCall.campaign_id, DoNotCall.source, DoNotCall.note
        ).order_by(DoNotCall.id)
        return [(r.number, r.campaign_id, r.source, r.note) for r in db.execute(query)]


def test_dnc_add_and_import_onto_the_global_or_a_campaigns_list(work: Workdir) -> None:
    work.write("csat.yaml", CSAT)
    ok(work.ivr("campaign", "create", "csat.yaml"))
    with work.sessions() as db:
        csat = db.scalar(select(Campaign.id).where(Campaign.name == "csat"))
    assert ok(work.ivr("dnc", "add", "+44 20 7946 0123", "--campaign", "csat")) == (
        "+442079460123 added to campaign csat's do-not-call list\n"
    )
    assert ok(work.ivr("dnc", "add", "020 7946 0123", "--region", "GB", "--campaign", "csat")) == (
        "+442079460123 is on campaign csat's do-not-call list already\n"
    )
    for args, message in [
        (["12"], "ivr dnc add: not a valid phone number in US: '12'\n"),
        (["4155550100", "--campaign", "nope"], "ivr dnc add: no campaign named 'nope'\n"),
        (["4155550100", "--note", "n" * 257], "ivr dnc add: --note: longer than 256 characters\n"),
    ]:
        refused = work.ivr("dnc", "add", *args)
        assert (refused.returncode, refused.stderr) == (2, message)

    bad = work.write("dnc.csv", "number,note\n+1 415 555 0100,asked\n415 555 0100,twice\nabc,\n")
    refused = work.ivr("dnc", "import", "dnc.csv")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "dnc.csv:3: number: +14155550100 is also on line 2",
        "dnc.csv:4: number: not a phone number: 'abc'",
        "nothing imported: 2 errors",
    ]
    assert dnc(work) == [("+442079460123", csat, "ops", "")]

    bad.write_text("number,note\n+1 415 555 0100,asked\n+44 20 7946 0123,\n")
    assert ok(work.ivr("dnc", "import", "dnc.csv", "--campaign", "csat")).splitlines() == [
        "added 1 numbers to campaign csat's do-not-call list from dnc.csv; skipped 1",
        "  skipped dnc.csv:3: +442079460123: on the list already",
    ]
    assert ok(work.ivr("dnc", "import", "dnc.csv")).splitlines() == [
        "added 2 numbers to the do-not-call list from dnc.csv; skipped 0",
    ]
    assert dnc(work) == [
        ("+442079460123", csat, "ops", ""),
        ("+14155550100", csat, "import", "asked"),
        ("+14155550100", None, "import", "asked"),
        ("+442079460123", None, "import", ""),
    ]
    missing = work.ivr("dnc", "import", "missing.csv")
    assert missing.returncode == 2
    assert missing.stderr.startswith("ivr dnc import: cannot read missing.csv: No such file")


DOC = Path(__file__).resolve().parents[1] / "docs" / "campaigns.md"


def test_the_docs_campaign_file_and_csv_examples_are_accepted(work: Workdir) -> None:
    """docs/campaigns.md: its YAML example creates, its CSV examples import, and its
    fields table names every CampaignSpec field."""
    doc = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", doc, re.S | re.M)
    [yaml_block] = [text for language, text in blocks if language == "yaml"]
    contacts, numbers = [text for _, text in blocks if text.startswith("number,")]
    work.write("doc.yaml", yaml_block)
    ok(work.ivr("campaign", "create", "doc.yaml"))
    work.write("contacts.csv", contacts)
    work.write("numbers.csv", numbers)
    assert ok(work.ivr("dnc", "import", "numbers.csv")).startswith("added 1 numbers")
    done = ok(work.ivr("campaign", "import", "csat-november", "contacts.csv"))
    assert done.startswith("added 2 contacts from contacts.csv; skipped 0")
    table = {line.split("`")[1] for line in doc.splitlines() if line.startswith("| `")}
    assert set(CampaignSpec.model_fields) <= table
