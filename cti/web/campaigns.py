"""The campaigns pages: ops create campaigns, pause and resume them, upload contacts,
export them, and add numbers to the do-not-call lists; supervisors see the same pages
read-only. Agents get 403 (the guards given to `campaigns_blueprint`).

Everything goes through the same functions as ``ivr campaign ...``: `CampaignSpec`
validates the form (each error next to its field), `import_contacts` reads an upload
(all rows or none), `export_chunks` streams the export, `add_dnc` the list.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.datastructures import FileStorage

from cti.campaigns.spec import RETRIED, CampaignSpec, Kind
from cti.store.campaigns import CampaignNotFound, add_dnc, find, progress, set_status
from cti.store.campaigns import create as create_campaign
from cti.store.contact_import import (
    MAX_LENGTH,
    ContactFileError,
    ContactReport,
    export_chunks,
    import_contacts,
    parse_number,
)
from cti.store.models import Campaign
from ivr.flows.hours import DAYS

View = Callable[..., Any]
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# Bytes in any request (the app's limit); a million contacts is about 40 MB: split it.
MAX_UPLOAD = 20 * 1024 * 1024
KINDS: tuple[str, ...] = get_args(Kind)
MACHINE_ACTIONS = ("hangup", "continue")
NUMBERS = (  # form fields passed to CampaignSpec as typed (pydantic parses them)
    "max_attempts",
    "max_concurrent",
    "calls_per_second",
    "ring_seconds",
)
PROGRESS = (  # Progress fields as the pages label them
    ("contacts", "Contacts"),
    ("dialled", "Dialled"),
    ("reached", "Reached"),
    ("completed", "Completed"),
    ("remaining", "Remaining"),
    ("blocked", "Blocked (do-not-call)"),
    ("outside_window", "Outside the window now"),
)


# The form <-> CampaignSpec ------------------------------------------------------------


def form_values(spec: CampaignSpec | None = None) -> dict[str, str]:
    """The form's fields for `spec` (the defaults when None), as text."""
    shown = spec or CampaignSpec(name="new", kind="callback")
    values = {
        "name": shown.name if spec else "",
        "kind": shown.kind,
        "entry": shown.entry if spec else "",
        "agent_queue": shown.agent_queue,
        "timezone": shown.timezone,
        "starts_on": shown.starts_on.isoformat() if shown.starts_on else "",
        "ends_on": shown.ends_on.isoformat() if shown.ends_on else "",
        "amd": "on" if shown.amd else "",
        "machine_action": shown.machine_action,
    }
    values |= {name: str(getattr(shown, name)) for name in NUMBERS}
    values |= {f"window_{day}": ", ".join(map(str, shown.windows.get(day, []))) for day in DAYS}
    values |= {f"retry_{result}": str(shown.retry_minutes[result]) for result in RETRIED}
    return values


def spec_input(form: dict[str, str]) -> dict[str, Any]:
    """CampaignSpec's fields from the posted form; pydantic judges the text."""
    text = {name: form.get(name, "").strip() for name in form_values()}
    fields: dict[str, Any] = {
        name: text[name]
        for name in ("name", "kind", "entry", "agent_queue", "timezone", "machine_action")
    }
    fields |= {name: text[name] for name in NUMBERS}
    fields |= {name: text[name] or None for name in ("starts_on", "ends_on")}
    fields["amd"] = text["amd"] == "on"
    fields["windows"] = {
        day: ranges
        for day in DAYS
        if (ranges := [r.strip() for r in text[f"window_{day}"].split(",") if r.strip()])
    }
    fields["retry_minutes"] = {result: text[f"retry_{result}"] for result in RETRIED}
    return fields


def field_errors(exc: ValidationError) -> dict[str, list[str]]:
    """Form field -> its problems. A check across fields (loc ()) names its field first,
    as in "ends_on 2026-05-01 is before starts_on ..." or "windows: ..."."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if loc[:1] == ("windows",) and len(loc) > 1:
            name = f"window_{loc[1]}"
        elif loc[:1] == ("retry_minutes",) and len(loc) > 1:
            name = f"retry_{loc[1]}"
        elif loc:
            name = loc[0]
        else:
            first = message.split(" ", 1)[0].rstrip(":")
            name = first if first in CampaignSpec.model_fields else "form"
            message = message.removeprefix(f"{first}: ")
        errors.setdefault(name, []).append(message)
    return errors


def holidays(spec: CampaignSpec) -> str:
    if spec.holidays is None:
        return "none"
    return "-".join(filter(None, (spec.holidays.country, spec.holidays.subdiv)))


def settings_rows(spec: CampaignSpec) -> list[tuple[str, str]]:
    """The settings as the campaign page lists them."""
    windows = "; ".join(
        f"{day} {', '.join(map(str, spec.windows[day]))}" for day in DAYS if spec.windows.get(day)
    )
    retry = ", ".join(f"{result} {minutes} min" for result, minutes in spec.retry_minutes.items())
    return [
        ("Kind", spec.kind),
        ("Entry", spec.entry),
        ("Calling windows", windows),
        ("Time zone", spec.timezone),
        ("Holidays", holidays(spec)),
        ("Max attempts", str(spec.max_attempts)),
        ("Retry after", retry),
        ("Max concurrent calls", str(spec.max_concurrent)),
        ("Calls per second", f"{spec.calls_per_second:g}"),
        ("Ring seconds", str(spec.ring_seconds)),
        ("Starts on", spec.starts_on.isoformat() if spec.starts_on else "any day"),
        ("Ends on", spec.ends_on.isoformat() if spec.ends_on else "no end"),
        ("Answering-machine detection", "on" if spec.amd else "off"),
        ("On a machine", spec.machine_action),
        ("Agent first", spec.agent_queue or "no: the customer first"),
    ]


# Uploads and the do-not-call form --------------------------------------------------


def import_upload(
    sessions: sessionmaker[Session], name: str, upload: FileStorage, region: str
) -> tuple[ContactReport | None, str]:
    """Import an uploaded contacts CSV: the report, or why the file could not be read."""
    shown = Path(upload.filename or "upload.csv").name
    with tempfile.TemporaryDirectory(prefix="contacts-") as folder:
        path = Path(folder) / "upload.csv"  # never the client's name: it could be ".."
        upload.save(path)
        try:
            return import_contacts(sessions, name, path, region), ""
        except ContactFileError as exc:
            return None, str(exc).replace(str(path), shown)


def dnc_entry(form: dict[str, str], region: str) -> tuple[str, str, dict[str, str]]:
    """(E.164 number, note, errors by field) from the do-not-call form."""
    errors: dict[str, str] = {}
    number, note = "", form.get("note", "").strip()
    try:
        number = parse_number(form.get("number", "").strip(), region)
    except ValueError as exc:
        errors["number"] = str(exc)
    if len(note) > MAX_LENGTH["note"]:
        errors["note"] = f"longer than {MAX_LENGTH['note']} characters"
    if form.get("scope") not in ("campaign", "global"):
        errors["scope"] = "choose this campaign's list or every campaign's"
    return number, note, errors


# The pages ---------------------------------------------------------------------------


def campaigns_blueprint(
    sessions: sessionmaker[Session],
    region: str,
    viewer: Callable[[View], View],
    changer: Callable[[View], View],
) -> Blueprint:
    """/campaigns and below. `viewer` guards the pages and the export (login and roles:
    supervisors and ops), `changer` every change (ops)."""
    pages = Blueprint("campaigns", __name__)

    def can_change() -> bool:
        return g.user.role == "ops"

    def campaign_name(name: str) -> str:
        if not NAME.fullmatch(name):
            abort(404)
        return name

    @pages.get("/campaigns")
    @viewer
    def index() -> Any:
        now = datetime.now(UTC)
        rows = []
        with sessions() as db:
            for campaign in db.scalars(select(Campaign).order_by(Campaign.name)):
                spec = CampaignSpec.model_validate(campaign.spec)
                rows.append((campaign, progress(db, campaign.id, spec, now)))
        return render_template(
            "campaigns.html", rows=rows, labels=PROGRESS, can_change=can_change()
        )

    def form_page(values: dict[str, str], errors: dict[str, list[str]], status: int) -> Any:
        page = render_template(
            "campaign_new.html",
            values=values,
            errors=errors,
            days=DAYS,
            retried=RETRIED,
            kinds=KINDS,
            machine_actions=MACHINE_ACTIONS,
        )
        return page, status

    @pages.get("/campaigns/new")
    @changer
    def new() -> Any:
        return form_page(form_values(), {}, 200)

    @pages.post("/campaigns/new")
    @changer
    def create() -> Any:
        posted = request.form.to_dict()
        values = form_values() | {name: posted.get(name, "") for name in form_values()}
        try:
            spec = CampaignSpec.model_validate(spec_input(posted))
        except ValidationError as exc:
            return form_page(values, field_errors(exc), 400)
        try:
            create_campaign(sessions, spec, g.user.username)
        except ValueError as exc:  # the name is taken
            return form_page(values, {"name": [str(exc)]}, 409)
        return redirect(url_for("campaigns.show", name=spec.name, created=1))

    def show_page(name: str, status: int = 200, **shown: Any) -> Any:
        with sessions() as db:
            try:
                campaign, spec = find(db, campaign_name(name))
            except CampaignNotFound:
                abort(404)
            done = progress(db, campaign.id, spec, datetime.now(UTC))
        page = render_template(
            "campaign.html",
            campaign=campaign,
            progress=done,
            labels=PROGRESS,
            settings=settings_rows(spec),
            can_change=can_change(),
            created=request.args.get("created") == "1",
            **({"dnc": {}, "report": None, "upload_error": "", "upload_name": ""} | shown),
        )
        return page, status

    @pages.get("/campaigns/<name>")
    @viewer
    def show(name: str) -> Any:
        return show_page(name)

    def change_status(name: str, status: str) -> Any:
        try:
            set_status(sessions, campaign_name(name), status)
        except CampaignNotFound:
            abort(404)
        return redirect(url_for("campaigns.show", name=name))

    @pages.post("/campaigns/<name>/pause")
    @changer
    def pause(name: str) -> Any:
        return change_status(name, "paused")

    @pages.post("/campaigns/<name>/resume")
    @changer
    def resume(name: str) -> Any:
        return change_status(name, "active")

    @pages.post("/campaigns/<name>/contacts")
    @changer
    def upload(name: str) -> Any:
        file = request.files.get("file")
        if file is None or not file.filename:
            return show_page(name, 400, upload_error="choose a CSV file to upload")
        try:
            report, problem = import_upload(sessions, campaign_name(name), file, region)
        except CampaignNotFound:
            abort(404)
        failed = problem or (report is not None and not report.ok)
        return show_page(
            name,
            400 if failed else 200,
            report=report,
            upload_error=problem,
            upload_name=Path(file.filename).name,
        )

    @pages.post("/campaigns/<name>/dnc")
    @changer
    def dnc(name: str) -> Any:
        form = request.form.to_dict()
        number, note, errors = dnc_entry(form, region)
        if errors:
            return show_page(name, 400, dnc={"errors": errors, "values": form})
        with sessions() as db:
            try:
                campaign, _spec = find(db, campaign_name(name))
            except CampaignNotFound:
                abort(404)
        own = form["scope"] == "campaign"
        added = add_dnc(sessions, number, campaign.id if own else None, "ops", note)
        where = f"campaign {name}'s do-not-call list" if own else "the global do-not-call list"
        said = f"{number} added to {where}" if added else f"{number} is on {where} already"
        return show_page(name, dnc={"message": said})

    @pages.get("/campaigns/<name>/export.csv")
    @viewer
    def export(name: str) -> Any:
        with sessions() as db:
            try:
                campaign_id = find(db, campaign_name(name))[0].id
            except CampaignNotFound:
                abort(404)

        def chunks() -> Iterator[str]:  # streamed: a big campaign never sits in memory
            with sessions() as db:
                yield from export_chunks(db, campaign_id)

        return Response(
            chunks(),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}_contacts.csv"'},
        )

    return pages
