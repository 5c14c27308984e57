"""The `ivr` command: one entry point with a subcommand per job."""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cti.reports.kpis import DIMENSIONS
from cti.store.models import ROLES
from ivr import __version__
from ivr.config import ConfigError, Settings, load_settings
from ivr.flows.plan import DialPlanError
from ivr.logs import setup_logging

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


def cmd_serve(settings: Settings, _args: argparse.Namespace) -> int:
    from ivr.service import serve

    return serve(settings)


def cmd_dialer(settings: Settings, _args: argparse.Namespace) -> int:
    from ivr.service import run_dialer

    return run_dialer(settings)


def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from cti.store.db import current_revision, make_engine, upgrade

    engine = make_engine(settings.database.url)
    upgrade(engine)
    print(f"database schema at {current_revision(engine)}")
    return 0


def cmd_db_demo(settings: Settings, args: argparse.Namespace) -> int:
    """Demo data; the users' password goes to a 0600 file, never to the terminal."""
    from cti.store.db import make_engine, session_factory
    from cti.store.demo import seed

    out = Path(args.credentials)
    password = secrets.token_urlsafe(12)
    if not seed(session_factory(make_engine(settings.database.url)), password):
        print(f"demo data exists already; the logins are in {out}")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    out.touch(mode=0o600)
    out.write_text(f"users: ops, supervisor, agent1\npassword: {password}\n", encoding="utf-8")
    print(f"demo users, customers and orders added; the password is in {out}")
    return 0


def cmd_customers_import(settings: Settings, args: argparse.Namespace) -> int:
    """All rows or none: each bad row as FILE:LINE: field: message on stderr."""
    from cti.store.customer_import import CustomerFileError, import_customers
    from cti.store.db import make_engine, session_factory

    sessions = session_factory(make_engine(settings.database.url))
    try:
        report = import_customers(sessions, args.file, args.region)
    except (CustomerFileError, ValueError) as exc:
        print(f"ivr customers import: {exc}", file=sys.stderr)
        return 2
    if report.errors:
        return _refused(report.errors)
    print(f"imported {report.customers} customers ({report.phones} phone numbers) from {args.file}")
    return 0


def cmd_user_add(settings: Settings, args: argparse.Namespace) -> int:
    from cti.store.db import make_engine, session_factory
    from cti.store.users import UserError, add_user

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.username}: ")
    try:
        add_user(
            session_factory(make_engine(settings.database.url)),
            args.username,
            password,
            args.role,
            args.interface,
        )
    except UserError as exc:
        print(f"ivr user add: {exc}", file=sys.stderr)
        return 1
    print(f"user {args.username} ({args.role}) added")
    return 0


def cmd_call(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from cti.ami.originate import AmiError, place_test_call, simulated_call_action

    try:
        action = simulated_call_action(args.did, press=args.press, say=args.say, hold=args.hold)
        message = asyncio.run(place_test_call(settings.ami, action))
    except (AmiError, ValueError) as exc:
        print(f"ivr call: {exc}", file=sys.stderr)
        return 1
    print(f"calling {args.did}: {message}")
    return 0


def cmd_validate(settings: Settings, args: argparse.Namespace) -> int:
    """Errors as file:line:column: message on stdout, warnings after them; non-zero on errors."""
    from ivr.flows.validate import check

    _plan, problems = check(Path(args.path or settings.paths.dialplans), settings.paths.prompts)
    errors = [p for p in problems if not p.warning]
    for problem in errors + [p for p in problems if p.warning]:
        print(problem)
    print(f"{len(errors)} errors, {len(problems) - len(errors)} warnings", file=sys.stderr)
    return 1 if errors else 0


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    """Scripts: one line per script, non-zero at the first mismatch. Else interactive."""
    from datetime import UTC, datetime

    from ivr.flows.simulate import ScriptMismatch, interactive, run_script
    from ivr.flows.source import SourceError
    from ivr.flows.validate import load_plan

    plan = load_plan(settings.paths.dialplans, settings.paths.prompts)
    if args.script:
        for script in args.script:
            try:
                transcript = run_script(plan, Path(script), settings.paths.prompts)
            except (ScriptMismatch, SourceError) as exc:
                print(f"FAIL {exc}")
                return 1
            print(f"ok   {script} ({len(transcript)} lines)")
        return 0
    if not args.flow:
        print("ivr simulate: name a FLOW (or an entry), or give --script", file=sys.stderr)
        return 2
    from cti.store.db import make_engine, session_factory
    from cti.store.directory import Directory

    directory = Directory(session_factory(make_engine(settings.database.url)))
    now = datetime.fromisoformat(args.at) if args.at else datetime.now(UTC)
    try:
        return interactive(
            plan, args.flow, settings.paths.prompts, directory.lookup, now, caller=args.caller
        )
    except ValueError as exc:  # an unknown flow or entry
        print(f"ivr simulate: {exc}", file=sys.stderr)
        return 2


def cmd_graph(settings: Settings, args: argparse.Namespace) -> int:
    """With --from/--to, the calls of those days (in reports.timezone) on it."""
    from dataclasses import asdict

    from ivr.flows.graph import GraphError, write_svg
    from ivr.flows.simulate import flow_name
    from ivr.flows.validate import load_plan

    if (args.since is None) != (args.until is None):
        print("ivr graph: --from and --to go together", file=sys.stderr)
        return 2
    plan = load_plan(settings.paths.dialplans, settings.paths.prompts)
    out = Path(args.output or f"{args.flow}.svg")
    try:
        flow = flow_name(plan, args.flow)
        traffic = None
        if args.since is not None:
            from cti.reports.traffic import node_traffic

            start, end = _days(args, settings)
            period = f"{args.since} to {args.until} {settings.reports.timezone}"
            found = _read_log(settings, lambda db: node_traffic(db, flow, start, end))
            traffic = asdict(found) | {"period": period}
        write_svg(plan, flow, out, traffic)
    except _Stop as stop:
        print(f"ivr graph: {stop}", file=sys.stderr)
        return stop.code
    except (GraphError, ValueError) as exc:
        print(f"ivr graph: {exc}", file=sys.stderr)
        return 1
    if traffic is not None:
        print(f"wrote {out} ({traffic['calls']} calls, {traffic['period']})")
    else:
        print(f"wrote {out}")
    return 0


class _Stop(Exception):
    """A command cannot go on: the message, and the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _days(args: argparse.Namespace, settings: Settings) -> tuple[Any, Any]:
    """The days --from to --to (inclusive) in the center's zone, as [start, end)."""
    from datetime import date, datetime, time, timedelta

    days: list[date] = []
    for option, given in (("--from", args.since), ("--to", args.until)):
        try:
            days.append(date.fromisoformat(given))
        except ValueError:
            raise _Stop(f"{option} {given!r}: expected a day, e.g. 2026-11-01", 2) from None
    if days[0] > days[1]:
        raise _Stop("--from is after --to", 2)
    zone = settings.reports.zone()
    start = datetime.combine(days[0], time(), tzinfo=zone)
    return start, datetime.combine(days[1] + timedelta(days=1), time(), tzinfo=zone)


def _read_log(settings: Settings, read: Callable[[Any], Any]) -> Any:
    """`read(session)` on the configured database; _Stop if it cannot be read."""
    from sqlalchemy.exc import SQLAlchemyError

    from cti.store.db import make_engine, session_factory

    engine = make_engine(settings.database.url)
    try:
        with session_factory(engine)() as db:
            return read(db)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise _Stop(f"cannot read the outcome log: {reason}", 1) from None
    finally:
        engine.dispose()


def cmd_prompts_build(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.prompts import PromptError, build_missing

    try:
        written = build_missing(settings.paths.prompts, args.lang or None, force=args.force)
    except PromptError as exc:
        print(f"ivr prompts build: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"built {path}")
    print(f"{len(written)} prompts built", file=sys.stderr)
    return 0


def cmd_speech_models(settings: Settings, _args: argparse.Namespace) -> int:
    from ivr.speech.models import format_models, list_models

    speech = settings.speech
    print(format_models(list_models(speech.model_dir, speech.models)))
    engine = speech.engine
    if engine == "auto":
        engine = "vosk" if speech.models else "pocketsphinx (built-in English)"
    print(f"engine: {engine}", file=sys.stderr)
    return 0


def cmd_speech_install(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.speech.models import ModelError, install

    try:
        path = install(args.source, settings.speech.model_dir, sha256=args.sha256)
    except ModelError as exc:
        print(f"ivr speech install: {exc}", file=sys.stderr)
        return 1
    print(f"installed {path}")
    print(f"use it: speech.models.<language>: {path.name}  (e.g. IVR_SPEECH__MODELS__EN)")
    return 0


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    """KPIs of the days --from to --to (inclusive) in reports.timezone: a table, CSV or JSON."""
    from cti.reports.export import to_csv, to_json, to_table
    from cti.reports.kpis import Period, kpis

    report = settings.reports
    try:
        start, end = _days(args, settings)
        period = Period(start, end, args.queue)
        rows = _read_log(
            settings, lambda db: kpis(db, period, report.thresholds(), report.zone(), args.by)
        )
    except _Stop as stop:
        print(f"ivr report: {stop}", file=sys.stderr)
        return stop.code
    if args.format == "csv":
        sys.stdout.write(to_csv(rows))
    elif args.format == "json":
        sys.stdout.write(to_json(rows))
    else:
        scope = "".join(
            [f", by {args.by}" if args.by else "", f", queue {args.queue}" if args.queue else ""]
        )
        print(f"KPIs of {args.since} to {args.until} ({report.timezone}){scope}")
        print(
            f"service level: answered within {report.service_level_seconds:g} s; abandons "
            f"under {report.short_abandon_seconds:g} s left out; repeat calls within "
            f"{report.repeat_hours:g} h"
        )
        print()
        sys.stdout.write(to_table(rows))
    return 0


def cmd_config_check(settings: Settings, _args: argparse.Namespace) -> int:
    """Print the effective configuration; secrets show as stars."""
    import yaml

    print(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False), end="")
    return 0


def _guard(prefix: str, func: Command) -> Command:
    """Run a campaign or dnc command; its problems as one line on stderr: bad input
    (an unknown campaign, a bad file) exits 2, a database that cannot be used 1."""

    def run(settings: Settings, args: argparse.Namespace) -> int:
        from sqlalchemy.exc import SQLAlchemyError

        from cti.store.campaigns import CampaignNotFound
        from cti.store.customer_import import CustomerFileError

        try:
            return func(settings, args)
        except _Stop as stop:
            print(f"{prefix}: {stop}", file=sys.stderr)
            return stop.code
        except (CampaignNotFound, CustomerFileError, ValueError) as exc:
            print(f"{prefix}: {exc}", file=sys.stderr)
            return 2
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            print(f"{prefix}: database error: {reason}", file=sys.stderr)
            return 1

    return run


def _sessions(settings: Settings) -> sessionmaker[Session]:
    from cti.store.db import make_engine, session_factory

    return session_factory(make_engine(settings.database.url))


def _operator() -> str | None:
    """Who runs the command, for the campaign's created_by."""
    try:
        return getpass.getuser()[:64]
    except (OSError, KeyError):
        return None


def _spec_problems(source: Any, exc: Any) -> list[str]:
    """FILE:LINE:COLUMN: field: message for each of a CampaignSpec's validation errors,
    in the file's order."""
    from cti.campaigns.spec import CampaignSpec

    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        first = message.split(" ", 1)[0].rstrip(":")
        if not loc and first in CampaignSpec.model_fields:  # a check across fields
            loc, message = (first,), message.removeprefix(f"{first}: ")
        name = ".".join(str(part) for part in loc) or "campaign"
        if error["type"] == "extra_forbidden":
            where, message = source.at(loc, key=True), "unknown field"
        elif error["type"] == "missing":
            where, message = source.at(loc[:-1]), "missing field"
        else:
            where = source.at(loc)
            value = error.get("input")
            scalar = value is not None and not isinstance(value, dict | list)
            if loc and scalar and repr(value) not in message:
                message += f", got {value!r}"
        problems.append((where.line, where.column, f"{where}: {name}: {message}"))
    return [text for *_, text in sorted(problems)]


def cmd_campaign_create(settings: Settings, args: argparse.Namespace) -> int:
    """A campaign from a YAML file of CampaignSpec's fields; it starts active."""
    from pydantic import ValidationError

    from cti.campaigns.spec import CampaignSpec
    from cti.store.campaigns import create
    from ivr.flows.source import SourceError, load_source

    path = Path(args.file)
    try:
        source = load_source(path)
    except SourceError as exc:
        raise _Stop(str(exc), 2) from None
    except UnicodeDecodeError:
        raise _Stop(f"{path}: not UTF-8 text", 2) from None
    except OSError as exc:
        raise _Stop(f"cannot read {path}: {exc.strerror or exc}", 2) from None
    if not isinstance(source.data, dict):
        raise _Stop(f"{source.at(())}: expected a mapping of a campaign's fields", 2)
    try:
        spec = CampaignSpec.model_validate(source.data)
    except ValidationError as exc:
        problems = _spec_problems(source, exc)
        for problem in problems:
            print(problem, file=sys.stderr)
        count = len(problems)
        raise _Stop(f"no campaign created: {count} error{'s' * (count != 1)}", 2) from None
    try:
        create(_sessions(settings), spec, _operator())
    except ValueError as exc:  # the name is taken
        raise _Stop(str(exc), 1) from None
    print(f"campaign {spec.name} created ({spec.kind}, active); add contacts with:")
    print(f"  ivr campaign import {spec.name} FILE.csv")
    return 0


PROGRESS = ("contacts", "remaining", "dialled", "reached", "completed", "blocked")


def _progress(db: Any, campaign: Any, spec: Any) -> Any:
    from datetime import UTC, datetime

    from cti.store.campaigns import progress

    return progress(db, campaign.id, spec, datetime.now(UTC))


def cmd_campaign_list(settings: Settings, _args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from cti.campaigns.spec import CampaignSpec
    from cti.store.models import Campaign

    header = ("name", "kind", "status", *PROGRESS, "outside_window")
    table = [header]
    with _sessions(settings)() as db:
        for campaign in db.scalars(select(Campaign).order_by(Campaign.name)):
            done = _progress(db, campaign, CampaignSpec.model_validate(campaign.spec))
            counts = [getattr(done, name) for name in (*PROGRESS, "outside_window")]
            table.append((campaign.name, campaign.kind, campaign.status, *map(str, counts)))
    if len(table) == 1:
        print("no campaigns; create one with: ivr campaign create FILE.yaml")
        return 0
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = [
            cell.ljust(width) if i < 3 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
    return 0


def cmd_campaign_show(settings: Settings, args: argparse.Namespace) -> int:
    """The status, progress, and the settings as YAML (a valid create file)."""
    import yaml

    from cti.store.campaigns import find

    with _sessions(settings)() as db:
        campaign, spec = find(db, args.name)
        done = _progress(db, campaign, spec)
    by = f" by {campaign.created_by}" if campaign.created_by else ""
    print(f"campaign {campaign.name}: {campaign.kind}, {campaign.status}")
    print(f"created {campaign.created_at:%Y-%m-%d %H:%M} UTC{by}")
    counts = ", ".join(f"{name} {getattr(done, name)}" for name in PROGRESS)
    print(f"progress: {counts}; outside their calling window now {done.outside_window}")
    print()
    print(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False), end="")
    return 0


def _set_status(settings: Settings, name: str, status: str, done: str) -> int:
    from cti.store.campaigns import find, set_status

    sessions = _sessions(settings)
    with sessions() as db:
        campaign, _spec = find(db, name)
        if campaign.status == status:
            print(f"campaign {name} is {status} already")
            return 0
    set_status(sessions, name, status)
    print(f"campaign {name} {done}")
    return 0


def cmd_campaign_pause(settings: Settings, args: argparse.Namespace) -> int:
    """No new calls; those under way go on."""
    return _set_status(settings, args.name, "paused", "paused: no new calls")


def cmd_campaign_resume(settings: Settings, args: argparse.Namespace) -> int:
    return _set_status(settings, args.name, "active", "resumed")


def _refused(errors: list[Any]) -> int:
    """An import's errors on stderr, each FILE:LINE: field: message; exit status 1."""
    for error in errors:
        print(error, file=sys.stderr)
    print(f"nothing imported: {len(errors)} error{'s' * (len(errors) != 1)}", file=sys.stderr)
    return 1


def _print_import(report: Any, what: str, file: str) -> int:
    """The errors (exit 1, nothing imported), or the counts and each skipped row."""
    if report.errors:
        return _refused(report.errors)
    skipped = len(report.skipped)
    print(f"added {report.added} {what} from {file}; skipped {skipped}")
    for row in report.skipped:
        print(f"  skipped {file}:{row.line}: {row.number}: {row.reason}")
    return 0


def cmd_campaign_import(settings: Settings, args: argparse.Namespace) -> int:
    """All rows or none; do-not-call numbers are skipped and listed."""
    from cti.store.contact_import import import_contacts

    report = import_contacts(_sessions(settings), args.name, args.file, args.region)
    return _print_import(report, "contacts", args.file)


def cmd_campaign_export(settings: Settings, args: argparse.Namespace) -> int:
    from cti.store.campaigns import find
    from cti.store.contact_import import export_contacts

    with _sessions(settings)() as db:
        campaign, _spec = find(db, args.name)
        if args.output is None:
            export_contacts(db, campaign.id, sys.stdout)
            return 0
        try:
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                contacts, rows = export_contacts(db, campaign.id, out)
        except OSError as exc:
            raise _Stop(f"cannot write {args.output}: {exc.strerror or exc}", 2) from None
    print(f"wrote {args.output} ({contacts} contacts, {rows} rows)")
    return 0


def _campaign_id(settings: Settings, name: str | None) -> int | None:
    from cti.store.campaigns import find

    if name is None:
        return None
    with _sessions(settings)() as db:
        return find(db, name)[0].id


def _list_name(campaign: str | None) -> str:
    return f"campaign {campaign}'s do-not-call list" if campaign else "the do-not-call list"


def cmd_dnc_add(settings: Settings, args: argparse.Namespace) -> int:
    from cti.store.campaigns import add_dnc
    from cti.store.contact_import import MAX_LENGTH, parse_number
    from cti.store.customer_import import check_region

    number = parse_number(args.number, check_region(args.region))
    if len(args.note) > MAX_LENGTH["note"]:
        raise _Stop(f"--note: longer than {MAX_LENGTH['note']} characters", 2)
    campaign_id = _campaign_id(settings, args.campaign)
    added = add_dnc(_sessions(settings), number, campaign_id, "ops", args.note)
    where = _list_name(args.campaign)
    print(f"{number} added to {where}" if added else f"{number} is on {where} already")
    return 0


def cmd_dnc_import(settings: Settings, args: argparse.Namespace) -> int:
    from cti.store.contact_import import import_dnc

    report = import_dnc(_sessions(settings), args.file, args.campaign, args.region)
    return _print_import(report, f"numbers to {_list_name(args.campaign)}", args.file)


Command = Callable[[Settings, argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ivr", description="IVR and CTI service for Asterisk contact centers."
    )
    parser.add_argument("--version", action="version", version=f"ivr {__version__}")
    parser.add_argument(
        "-c", "--config", help="YAML config file (default: $IVR_CONFIG, ./ivr.yaml)"
    )
    top = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(into: Any, name: str, func: Command, help: str) -> argparse.ArgumentParser:
        sub = into.add_parser(name, help=help, description=help)
        sub.set_defaults(func=func)
        return sub

    def group(name: str, help: str) -> Any:
        sub = top.add_parser(name, help=help, description=help)
        return sub.add_subparsers(title="commands", metavar="COMMAND", required=True)

    command(top, "serve", cmd_serve, "Run the FastAGI server, AMI bridge and web app.")
    command(top, "dialer", cmd_dialer, "Run only the campaigns' dialer (more dialers, or apart).")

    db = group("db", "Create, migrate or fill the database.")
    command(db, "upgrade", cmd_db_upgrade, "Create or migrate the schema to the latest version.")
    demo = command(db, "demo", cmd_db_demo, "Add demo users, customers and orders.")
    demo.add_argument(
        "--credentials",
        default="var/demo-logins.txt",
        help="file that receives the demo password (mode 0600)",
    )

    customers = group("customers", "Manage customer records.")
    imports = command(
        customers, "import", cmd_customers_import, "Add customers from a CSV file, all or none."
    )
    imports.add_argument(
        "file",
        metavar="FILE.csv",
        help="header: name, account, tier, language, balance, currency, phones",
    )
    imports.add_argument(
        "--region", default="US", help="for numbers without +country code (default: US)"
    )

    users = group("user", "Manage web users.")
    add = command(users, "add", cmd_user_add, "Add a user (agent, supervisor or ops).")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument(
        "--interface",
        help="an agent's phone as Asterisk names it in queues (e.g. PJSIP/1001): pops go there",
    )
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )

    call = command(top, "call", cmd_call, "Place a test call into a DID with a simulated caller.")
    call.add_argument("did", help="the DID to call, e.g. 5551000")
    call.add_argument("--press", default="", help="keys to press; w waits 0.5 s, a comma 2 s")
    call.add_argument(
        "--say", default="", help="recordings the caller speaks, e.g. digits/7 (& joins)"
    )
    call.add_argument("--hold", type=float, default=30, help="seconds the caller stays on the line")

    validate = command(
        top,
        "validate",
        cmd_validate,
        "Check dial plans: errors as file:line:column, then warnings.",
    )
    validate.add_argument("path", nargs="?", help="a folder or file (default: paths.dialplans)")

    simulate = command(
        top, "simulate", cmd_simulate, "Run a flow at the terminal, or check it against scripts."
    )
    simulate.add_argument("flow", nargs="?", help="a flow name or an entry (e.g. a DID)")
    simulate.add_argument(
        "--script",
        nargs="+",
        metavar="FILE",
        help="YAML scripts of inputs and expected prompts and route",
    )
    simulate.add_argument("--at", help="the clock, ISO 8601 with offset (default: now)")
    simulate.add_argument("--caller", default="+14155550100", help="caller ID")

    graph = command(
        top, "graph", cmd_graph, "Draw a flow as SVG: nodes, options, failures, and its calls."
    )
    graph.add_argument("flow", help="a flow name or an entry")
    graph.add_argument("-o", "--output", help="SVG file (default: FLOW.svg)")
    graph.add_argument(
        "--from",
        dest="since",
        metavar="DATE",
        help="draw the calls from this day on (YYYY-MM-DD; with --to)",
    )
    graph.add_argument(
        "--to", dest="until", metavar="DATE", help="the last day of calls drawn (inclusive)"
    )

    report = command(
        top, "report", cmd_report, "Print the KPIs of a span of days: a table, CSV or JSON."
    )
    report.add_argument(
        "--from", dest="since", metavar="DATE", required=True, help="the first day (YYYY-MM-DD)"
    )
    report.add_argument(
        "--to", dest="until", metavar="DATE", required=True, help="the last day (inclusive)"
    )
    report.add_argument(
        "--by", choices=DIMENSIONS, help="one row per queue, agent, campaign, flow, hour or day"
    )
    report.add_argument("--queue", help="only the calls of this queue")
    report.add_argument(
        "--format", choices=("table", "csv", "json"), default="table", help="default: table"
    )

    prompts = group("prompts", "Manage IVR prompts.")
    build = command(
        prompts,
        "build",
        cmd_prompts_build,
        "Speak missing prompts from the text catalogs (espeak-ng).",
    )
    build.add_argument("--lang", action="append", help="only this language (repeatable)")
    build.add_argument("--force", action="store_true", help="rebuild existing files too")

    speech = group("speech", "Manage speech recognition models.")
    command(speech, "models", cmd_speech_models, "List installed and configured vosk models.")
    install = command(
        speech, "install", cmd_speech_install, "Unpack a vosk model zip into speech.model_dir."
    )
    install.add_argument("source", metavar="PATH_OR_URL", help="a model .zip file or http(s) URL")
    install.add_argument("--sha256", help="refuse the file unless its SHA-256 is this")

    campaign = group("campaign", "Manage outbound campaigns and their contacts.")

    def campaign_command(name: str, func: Command, help: str) -> argparse.ArgumentParser:
        return command(campaign, name, _guard(f"ivr campaign {name}", func), help)

    create_campaign = campaign_command(
        "create", cmd_campaign_create, "Create a campaign from a YAML file (docs/campaigns.md)."
    )
    create_campaign.add_argument("file", metavar="FILE.yaml")
    campaign_command("list", cmd_campaign_list, "List campaigns with their progress.")
    for name, func, help in [
        ("show", cmd_campaign_show, "Print a campaign's status, progress and settings."),
        ("pause", cmd_campaign_pause, "Pause a campaign: no new calls."),
        ("resume", cmd_campaign_resume, "Resume a paused campaign."),
    ]:
        campaign_command(name, func, help).add_argument("name", metavar="NAME")
    contacts = campaign_command(
        "import", cmd_campaign_import, "Add contacts from a CSV file, all or none."
    )
    contacts.add_argument("name", metavar="NAME")
    contacts.add_argument("file", metavar="FILE.csv", help="header: number, name, timezone, reason")
    contacts.add_argument(
        "--region", default="US", help="for numbers without +country code (default: US)"
    )
    export = campaign_command(
        "export", cmd_campaign_export, "Write a campaign's contacts and attempts as CSV."
    )
    export.add_argument("name", metavar="NAME")
    export.add_argument("-o", "--output", metavar="FILE", help="CSV file (default: stdout)")

    dnc = group("dnc", "Manage the do-not-call list.")
    dnc_add = command(
        dnc, "add", _guard("ivr dnc add", cmd_dnc_add), "Put a number on the do-not-call list."
    )
    dnc_add.add_argument("number", metavar="NUMBER")
    dnc_add.add_argument("--note", default="", help="why (kept with the number)")
    dnc_import = command(
        dnc,
        "import",
        _guard("ivr dnc import", cmd_dnc_import),
        "Put the numbers of a CSV file on the do-not-call list, all or none.",
    )
    dnc_import.add_argument("file", metavar="FILE.csv", help="header: number, note")
    for sub in (dnc_add, dnc_import):
        sub.add_argument(
            "--campaign", metavar="NAME", help="only this campaign's list (default: every campaign)"
        )
        sub.add_argument(
            "--region", default="US", help="for numbers without +country code (default: US)"
        )

    config = group("config", "Check the configuration.")
    command(
        config,
        "check",
        cmd_config_check,
        "Validate and print the effective settings (secrets hidden).",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"ivr: config error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log.level, settings.log.format, settings.secret_values())
    try:
        return args.func(settings, args)
    except (DialPlanError, ConfigError) as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
