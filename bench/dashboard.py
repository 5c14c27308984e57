"""The reports page's dashboard over a month of 1,000,000 calls on PostgreSQL, against
the goal of 1 s.

A fresh schema at the latest migration is filled server-side (INSERT ... SELECT FROM
generate_series, no Python loop): 1,000,000 ended calls over the 30 days of November
2026 in America/New_York, more by day than by night; inbound calls (about 35% answered,
15% contained, 11% abandoned in the queue, a fifth of those within 5 s, 10% abandoned in
the IVR, 5% callback requested, 10% transferred out by the IVR, 9% failed; some
answered calls transferred by their agent) over five queues, 120 agents, three flows and
three campaigns; 5% survey calls (campaign csat) with their scale5, nps and yes/no
answers; 3% callback calls dialled for the callback requests (the requests are rows of
`callbacks`, the calls point at them through calls.callback_id; some requests are
dialled more than once). 60% of the calls are of one of 150,000 customers (some call
often), the others known by their number only; every call has a caller number. Each call
of a flow has a journey of three or four steps (welcome, main menu, where it ended; a
few go through a subflow), as the drop-off chart reads them; 5,000 commitments.

The page reads the 15-minute interval rollups (cti/reports/intervals.py: the KPIs' sums
and the drop-off per node) where they are up to date. The fill bypasses the database's
triggers, so the rollups are then built from scratch by the refresher (timed). Then the
reports page's `build` (cti/web/reports.py), in a session of its own as the page runs
it: `breakdowns` (the KPIs in all, by hour and by day, from one pass),
`commitments_past_due`, `dropoff`, and the charts; each call timed where the page makes
it. The goal, 1 s month-wide, is for the dashboard: the KPIs and commitments; the whole
page is printed too. Three states of the log, each over the month and over its last 7
days (the page's default), in alternating rounds after one that warms the cache,
medians:

- rolled up: the refresher has run since the last write;
- live: LIVE_CALLS calls written through the log (CallLog) in the last hour of the month
  since the refresher's last round (some minutes of a busy center): their intervals,
  and for the KPIs those their customers' earlier answered calls are in, are read from
  the calls;
- from the calls: every interval read from the calls (the dashboard under thresholds
  other than the rollups'), as before the rollups.

The CSV export by day (`kpis` by day in a session of its own, then `to_csv`) is timed in
the same rounds.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session

from cti.reports import intervals
from cti.reports.export import to_csv
from cti.reports.kpis import kpis
from cti.store.calls import CallLog
from cti.store.db import make_engine, session_factory, upgrade
from cti.web import reports
from cti.web.reports import Filters, build
from ivr.config import ReportSettings

POSTGRES_URL = os.environ.get(
    "IVR_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CALLS = 1_000_000
CALLBACK_CALLS = 30_000  # 3%: dialled for the callback requests
SURVEY_CALLS = 50_000  # 5%
CUSTOMERS = 150_000
COMMITMENTS = 5_000
ZONE = "America/New_York"
FIRST = date(2026, 11, 1)
DAYS = 30
LAST = FIRST + timedelta(days=DAYS - 1)
ROUNDS = 5
LIVE_CALLS = 300  # written since the refresher's last round
GOAL = 1.0  # seconds, the month's dashboard
TIMEOUT = "60s"  # statement_timeout of the timed sessions
LOAD_TIMEOUT = "300s"  # of the load's statements

# Inbound outcomes, cumulative shares of the inbound calls (92% of all): with the
# callback and survey calls, about 35% answered, 15% contained, 11% abandoned in the
# queue, 10% abandoned in the IVR, 5% callback requested, 10% transferred, 9% failed.
INBOUND = (
    ("answered", 0.38),
    ("contained", 0.543),
    ("abandoned_queue", 0.663),
    ("abandoned_ivr", 0.75),
    ("callback_requested", 0.804),
    ("transferred", 0.912),
    ("failed", 1.0),
)


def _outcome_case() -> str:
    arms = " ".join(f"WHEN ro < {share} THEN '{name}'" for name, share in INBOUND[:-1])
    return f"CASE {arms} ELSE '{INBOUND[-1][0]}' END"


def _pick(random: str, names: tuple[str, ...], shares: tuple[float, ...]) -> str:
    """A CASE choosing one of `names` with cumulative `shares` by `random` (0..1)."""
    total, arms = 0.0, []
    for name, share in zip(names[:-1], shares, strict=False):
        total += share
        arms.append(f"WHEN {random} < {total:.4f} THEN '{name}'")
    return f"CASE {' '.join(arms)} ELSE '{names[-1]}' END"


QUEUES = _pick("rq", ("support", "sales", "billing", "tech", "vip"), (0.4, 0.25, 0.2, 0.1))
FLOWS = _pick("rf", ("customer_service", "billing_line", "sales_line"), (0.6, 0.25))
CAMPAIGNS = _pick("rm * 10", ("promo_nov", "winback", "tv_spot"), (0.5, 0.3))
LOST_AT = _pick(
    "rx", ("main_menu", "language", "account_number", "order_number", "billing_menu"),
    (0.35, 0.1, 0.25, 0.2),
)  # fmt: skip
ESCAPED_AT = _pick("rx", ("main_menu", "billing_menu", "order_number"), (0.6, 0.25))


def exp(random: str, mean: float) -> str:
    """An exponential draw of `mean` from a uniform one."""
    return f"(-ln(1 - {random}) * {mean})"


# The inbound and survey calls, in the order of their start (as a log fills).
# started_at: day d of the month, at a local time of day w (a fraction of the day),
# denser around noon than at night.
MAIN_CALLS = f"""
WITH s AS (
    SELECT g, d, fr + 0.6 * sin(2 * pi() * fr) / (2 * pi()) AS w,
           random() AS rk, random() AS ro, random() AS rc, random() AS rn, random() AS rq,
           random() AS rw, random() AS rt, random() AS rh, random() AS ra, random() AS rx,
           random() AS rf, random() AS rg, random() AS rm, random() AS re
    FROM (
        SELECT g, floor(f)::int AS d, f - floor(f) AS fr
        FROM (SELECT g, (g - 0.5) / :n * {DAYS} AS f FROM generate_series(1, :n) g) a
    ) b
    OFFSET 0
), k AS (
    SELECT s.*,
           ((DATE '{FIRST.isoformat()}' + d)::timestamp + w * interval '1 day')
               AT TIME ZONE '{ZONE}' AS started_at,
           CASE WHEN rk < :surveys THEN 'survey' ELSE 'inbound' END AS kind,
           CASE WHEN rk < :surveys THEN
               CASE WHEN ro < 0.6 THEN 'survey_completed' ELSE 'abandoned_ivr' END
           ELSE {_outcome_case()} END AS outcome
    FROM s
), f AS (
    SELECT k.*,
           CASE WHEN kind = 'survey' THEN 'survey'
                WHEN outcome = 'failed' AND rf < 0.5 THEN NULL
                WHEN outcome IN ('answered', 'abandoned_queue') AND re < 0.05 THEN NULL
                ELSE {FLOWS} END AS flow,
           CASE WHEN outcome IN ('answered', 'abandoned_queue') AND kind = 'inbound'
                     OR outcome = 'callback_requested' AND rq < 0.3
                THEN {QUEUES} END AS queue,
           CASE WHEN kind = 'survey' OR rc < 0.6
                THEN 1 + floor({CUSTOMERS} * power(rn, 1.5))::int END AS customer_id
    FROM k
), t AS (
    SELECT f.*,
           CASE WHEN flow IS NULL THEN NULL
                WHEN kind = 'survey' THEN 20 + {exp("rx", 30)}
                ELSE 8 + {exp("rx", 35)} END AS ivr_seconds,
           CASE WHEN outcome = 'answered' THEN {exp("rw", 25)}
                WHEN outcome = 'abandoned_queue' AND rw < 0.2 THEN rw / 0.2 * 5
                WHEN outcome = 'abandoned_queue' THEN 5 + {exp("rt", 60)}
                WHEN queue IS NOT NULL THEN 30 + {exp("rw", 90)} END AS wait_seconds,
           CASE WHEN outcome = 'answered' THEN 30 + {exp("rt", 220)} END AS talk_seconds,
           CASE WHEN outcome = 'answered' AND rh < 0.3 THEN 5 + {exp("ra", 40)}
                END AS hold_seconds,
           CASE WHEN outcome = 'answered' AND ra < 0.8 THEN 5 + {exp("rh", 25)}
                END AS wrapup_seconds
    FROM f
), c AS (
    SELECT t.*,
           started_at + coalesce(ivr_seconds, 0) * interval '1 second' AS ivr_done
    FROM t
)
INSERT INTO calls (
    id, linkedid, channel, direction, kind, campaign, entry, did, caller_number, flow,
    flow_version, started_at, ivr_ended_at, ivr_end, route, exit_node, escape_node,
    callback_requested, survey_completed, queue, queue_entered_at, answered_at,
    agent_done_at, abandoned, transferred, hold_seconds, disposed_at, ended_at, outcome,
    ivr_seconds, wait_seconds, talk_seconds, wrapup_seconds, customer_id, agent,
    disposition
)
SELECT
    floor(extract(epoch FROM started_at))::bigint || '.' || g,
    floor(extract(epoch FROM started_at))::bigint || '.' || g,
    'PJSIP/trunk-' || lpad(to_hex(g), 8, '0'),
    CASE WHEN kind = 'survey' THEN 'outbound' ELSE 'inbound' END,
    kind,
    CASE WHEN kind = 'survey' THEN 'csat' WHEN rm < 0.1 THEN {CAMPAIGNS} END,
    CASE WHEN kind = 'survey' THEN 'survey' ELSE '5551000' END,
    CASE WHEN kind = 'survey' THEN NULL ELSE '+1555100' || (g % 4) END,
    CASE WHEN customer_id IS NOT NULL THEN '+1555' || lpad(customer_id::text, 7, '0')
         ELSE '+1444' || lpad(floor(300000 * power(rc, 1.3))::text, 7, '0') END,
    flow,
    CASE WHEN flow IS NOT NULL THEN '7' END,
    started_at,
    CASE WHEN flow IS NOT NULL THEN ivr_done END,
    CASE WHEN flow IS NULL THEN NULL
         WHEN outcome IN ('contained', 'survey_completed', 'callback_requested')
             THEN 'contained'
         WHEN outcome IN ('abandoned_ivr', 'failed') THEN outcome
         ELSE 'routed' END,
    CASE WHEN queue IS NOT NULL AND outcome <> 'callback_requested' THEN 'queue:' || queue
         WHEN outcome = 'transferred' THEN 'transfer:+15559999'
         WHEN outcome IN ('contained', 'callback_requested') THEN 'hangup' END,
    CASE WHEN flow IS NULL THEN NULL
         WHEN kind = 'survey' AND outcome = 'abandoned_ivr'
             THEN CASE WHEN rx < 0.5 THEN 'q_csat' ELSE 'q_nps' END
         WHEN kind = 'survey' THEN 'thanks'
         WHEN outcome = 'abandoned_ivr' THEN {LOST_AT}
         WHEN outcome IN ('contained', 'callback_requested', 'failed') THEN 'goodbye'
         WHEN outcome = 'transferred' THEN 'transfer_out'
         ELSE 'to_' || queue END,
    CASE WHEN flow IS NOT NULL AND queue IS NOT NULL AND rg < 0.25 THEN {ESCAPED_AT} END,
    outcome = 'callback_requested',
    outcome = 'survey_completed',
    queue,
    CASE WHEN queue IS NOT NULL THEN ivr_done END,
    CASE WHEN outcome = 'answered' THEN ivr_done + wait_seconds * interval '1 second' END,
    CASE WHEN outcome = 'answered' THEN ivr_done
        + (wait_seconds + talk_seconds + coalesce(hold_seconds, 0)) * interval '1 second' END,
    outcome = 'abandoned_queue',
    outcome = 'answered' AND rg > 0.95,
    hold_seconds,
    CASE WHEN wrapup_seconds IS NOT NULL THEN ivr_done + (wait_seconds + talk_seconds
        + coalesce(hold_seconds, 0) + wrapup_seconds) * interval '1 second' END,
    ivr_done + (coalesce(wait_seconds, 0) + coalesce(talk_seconds, 0)
        + coalesce(hold_seconds, 0)
        + CASE WHEN flow IS NULL AND queue IS NULL THEN 5 ELSE 0 END) * interval '1 second',
    outcome,
    ivr_seconds,
    wait_seconds,
    talk_seconds,
    wrapup_seconds,
    customer_id,
    CASE WHEN outcome = 'answered' THEN 'agent' || lpad((1 + floor(rg * 120))::text, 3, '0')
         END,
    CASE WHEN wrapup_seconds IS NOT NULL
         THEN CASE WHEN rh < 0.7 THEN 'resolved' ELSE 'follow_up' END END
FROM c
"""

CUSTOMER_ROWS = f"""
INSERT INTO customers (id, name, tier, language, created_at)
SELECT g, 'customer ' || g, CASE WHEN g % 20 = 0 THEN 'gold' ELSE 'standard' END,
       CASE WHEN g % 7 = 0 THEN 'es' ELSE 'en' END, TIMESTAMPTZ '2024-01-01 00:00Z'
FROM generate_series(1, {CUSTOMERS}) g
"""

# The callback requests: one per call that asked for one, created at its end.
CALLBACK_ROWS = """
INSERT INTO callbacks (linkedid, customer_id, number, due_at, reason, status, created_by,
                       created_at)
SELECT id, customer_id, caller_number, ended_at + interval '1 hour', 'asked in the IVR',
       'pending', NULL, ended_at
FROM calls WHERE outcome = 'callback_requested' ORDER BY started_at
"""

# The callback calls: each dials a request at random, some minutes to hours after it;
# some requests get two or three calls, some none. 70% are answered.
CALLBACK_CALLS_SQL = f"""
WITH s AS (
    SELECT g, (SELECT min(id) FROM callbacks)
               + floor(random() * (SELECT count(*) FROM callbacks))::int AS request,
           random() AS ro, random() AS rd, random() AS rq, random() AS rw, random() AS rt,
           random() AS rh, random() AS ra, random() AS rg
    FROM generate_series(1, :n) g
    OFFSET 0
), k AS (
    SELECT s.*, r.customer_id, r.number,
           r.created_at + (300 + {exp("rd", 3 * 3600)}) * interval '1 second' AS started_at,
           CASE WHEN ro < 0.7 THEN 'answered' ELSE 'failed' END AS outcome,
           {QUEUES} AS queue, {exp("rw", 12)} AS wait_seconds,
           30 + {exp("rt", 180)} AS talk_seconds,
           CASE WHEN ra < 0.8 THEN 5 + {exp("rh", 25)} END AS wrapup_seconds,
           r.id AS callback_id
    FROM s JOIN callbacks r ON r.id = s.request
)
INSERT INTO calls (
    id, linkedid, channel, direction, kind, campaign, callback_id, entry, caller_number,
    flow, flow_version, started_at, ivr_ended_at, ivr_end, route, exit_node, queue,
    queue_entered_at, answered_at, agent_done_at, disposed_at, ended_at, outcome,
    ivr_seconds, wait_seconds, talk_seconds, wrapup_seconds, customer_id, agent,
    disposition
)
SELECT
    floor(extract(epoch FROM started_at))::bigint || '.cb' || g,
    floor(extract(epoch FROM started_at))::bigint || '.cb' || g,
    'PJSIP/trunk-cb' || g, 'outbound', 'callback', 'callbacks', callback_id, 'callback',
    number,
    CASE WHEN outcome = 'answered' THEN 'callback' END,
    CASE WHEN outcome = 'answered' THEN '7' END,
    started_at,
    CASE WHEN outcome = 'answered' THEN started_at + interval '6 seconds' END,
    CASE WHEN outcome = 'answered' THEN 'routed' END,
    CASE WHEN outcome = 'answered' THEN 'queue:' || queue END,
    CASE WHEN outcome = 'answered' THEN 'to_' || queue END,
    CASE WHEN outcome = 'answered' THEN queue END,
    CASE WHEN outcome = 'answered' THEN started_at + interval '6 seconds' END,
    CASE WHEN outcome = 'answered'
         THEN started_at + (6 + wait_seconds) * interval '1 second' END,
    CASE WHEN outcome = 'answered'
         THEN started_at + (6 + wait_seconds + talk_seconds) * interval '1 second' END,
    CASE WHEN outcome = 'answered' AND wrapup_seconds IS NOT NULL THEN started_at
        + (6 + wait_seconds + talk_seconds + wrapup_seconds) * interval '1 second' END,
    CASE WHEN outcome = 'answered'
         THEN started_at + (6 + wait_seconds + talk_seconds) * interval '1 second'
         ELSE started_at + interval '30 seconds' END,
    outcome,
    CASE WHEN outcome = 'answered' THEN 6.0 END,
    CASE WHEN outcome = 'answered' THEN wait_seconds END,
    CASE WHEN outcome = 'answered' THEN talk_seconds END,
    CASE WHEN outcome = 'answered' THEN wrapup_seconds END,
    customer_id,
    CASE WHEN outcome = 'answered' THEN 'agent' || lpad((1 + floor(rg * 120))::text, 3, '0')
         END,
    CASE WHEN outcome = 'answered' AND wrapup_seconds IS NOT NULL THEN 'resolved' END
FROM k
"""

# Survey answers: the completed surveys answered csat (scale5), nps and a yes/no
# question; half of the unfinished ones the csat question only.
SURVEY_ANSWERS = """
INSERT INTO survey_answers (call_id, question, scale, value, answered_at)
SELECT c.id, q.question, q.scale,
       CASE q.scale
           WHEN 'scale5'
               THEN (ARRAY['1', '2', '3', '4', '4', '5', '5', '5'])[1 + floor(q.r * 8)::int]
           WHEN 'nps' THEN least(10, floor(11 * power(q.r, 0.6)))::int::text
           ELSE CASE WHEN q.r < 0.7 THEN 'yes' ELSE 'no' END
       END,
       c.started_at + (10 + 12 * q.n) * interval '1 second'
FROM calls c
CROSS JOIN LATERAL (
    SELECT question, scale, n, random() AS r
    FROM (VALUES ('csat', 'scale5', 1), ('nps', 'nps', 2), ('solved', 'yesno', 3))
         AS v(question, scale, n)
    WHERE c.outcome = 'survey_completed' OR n = 1
) q
WHERE c.kind = 'survey' AND (c.outcome = 'survey_completed' OR hashtext(c.id) % 2 = 0)
"""

# Journeys of the calls of a flow: welcome, the main menu, the node the call left the IVR
# at (its exit node; its escape node marked); one in 200 inbound calls goes through the
# identify subflow first.
JOURNEYS = """
INSERT INTO journey_events (call_id, seq, at, kind, node, data)
SELECT c.id, s.seq, c.started_at + s.seq * interval '4 seconds', s.kind, s.node,
       s.data::json
FROM calls c
CROSS JOIN LATERAL (
    SELECT row_number() OVER () AS seq, kind, node, data
    FROM (VALUES
        (1, 'play', CASE WHEN c.kind = 'survey' THEN 'intro' ELSE 'welcome' END, '{}', true),
        (2, 'subflow', 'verify', '{"flow": "identify"}',
            c.kind = 'inbound' AND hashtext(c.id) % 200 = 0),
        (3, 'valid', 'account_number', '{}', c.kind = 'inbound' AND hashtext(c.id) % 200 = 0),
        (4, 'return', 'done', '{"to": "main_menu"}',
            c.kind = 'inbound' AND hashtext(c.id) % 200 = 0),
        (5, 'match', CASE WHEN c.kind = 'survey' THEN 'q_csat' ELSE 'main_menu' END,
            CASE WHEN c.escape_node = 'main_menu' THEN '{"value": "0", "escape": true}'
                 ELSE '{"value": "2"}' END, c.kind <> 'callback'),
        (6, CASE WHEN c.outcome = 'abandoned_ivr' THEN 'hangup'
                 WHEN c.route LIKE 'queue:%' THEN 'route' ELSE 'play' END,
            c.exit_node,
            CASE WHEN c.escape_node = c.exit_node THEN '{"escape": true}' ELSE '{}' END,
            c.exit_node IS DISTINCT FROM 'main_menu' AND c.exit_node IS NOT NULL)
    ) AS v(n, kind, node, data, shown)
    WHERE shown
) s
WHERE c.flow IS NOT NULL
"""

COMMITMENT_ROWS = f"""
INSERT INTO commitments (linkedid, customer_id, text, due, status, created_by, created_at)
SELECT id, customer_id, 'send the form',
       (started_at AT TIME ZONE '{ZONE}')::date + (hashtext(id) & 7) + 1,
       CASE WHEN hashtext(id) & 24 = 0 THEN 'kept' WHEN hashtext(id) & 24 = 8 THEN 'broken'
            ELSE 'open' END,
       agent, ended_at
FROM calls
WHERE outcome = 'answered' AND customer_id IS NOT NULL
ORDER BY hashtext(id)
LIMIT {COMMITMENTS}
"""

TABLES = ("customers", "calls", "callbacks", "survey_answers", "journey_events", "commitments")


class Schema:
    """A fresh schema at the latest migration, filled with the month's calls."""

    def __init__(self) -> None:
        self.name = "bench_dash_" + uuid.uuid4().hex[:8]
        with create_engine(POSTGRES_URL).begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {self.name}"))
        self.url = f"{POSTGRES_URL}?options=-csearch_path%3D{self.name}"
        self.engine: Engine = make_engine(self.url)
        try:
            upgrade(self.engine)
        except BaseException:
            self.drop()
            raise
        self.sessions = session_factory(self.engine)

    def fill(self) -> dict[str, float]:
        """The month's rows; seconds per step."""
        took: dict[str, float] = {}
        with self.engine.begin() as conn:
            conn.execute(text(f"SET LOCAL statement_timeout = '{LOAD_TIMEOUT}'"))
            conn.execute(text("SET LOCAL synchronous_commit = off"))
            conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
            # Rows right by construction: no foreign key triggers while loading, and the
            # plain indexes built once at the end rather than row by row.
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            indexes = self.plain_indexes(conn)
            for name, _ in indexes:
                conn.execute(text(f'DROP INDEX "{name}"'))
            conn.execute(text("SELECT setseed(0.2611)"))
            steps: list[tuple[str, str, dict[str, Any]]] = [
                ("customers", CUSTOMER_ROWS, {}),
                ("calls", MAIN_CALLS, {"n": CALLS - CALLBACK_CALLS,
                                       "surveys": SURVEY_CALLS / (CALLS - CALLBACK_CALLS)}),
                ("callbacks", CALLBACK_ROWS, {}),
                ("callback calls", CALLBACK_CALLS_SQL, {"n": CALLBACK_CALLS}),
                ("survey answers", SURVEY_ANSWERS, {}),
                ("journeys", JOURNEYS, {}),
                ("commitments", COMMITMENT_ROWS, {}),
            ]  # fmt: skip
            for label, sql, params in steps:
                began = time.perf_counter()
                conn.execute(text(sql), params)
                took[label] = time.perf_counter() - began
            began = time.perf_counter()
            for _, definition in indexes:
                conn.execute(text(definition))
            took["indexes"] = time.perf_counter() - began
        began = time.perf_counter()
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"SET statement_timeout = '{LOAD_TIMEOUT}'"))
            conn.execute(text(f"VACUUM ANALYZE {', '.join(TABLES)}"))
        took["vacuum analyze"] = time.perf_counter() - began
        return took

    def plain_indexes(self, conn: Connection) -> list[tuple[str, str]]:
        """The indexes of the filled tables that no constraint owns: (name, definition)."""
        rows = conn.execute(
            text(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = :s"
                " AND i.tablename = ANY(:t) AND NOT EXISTS (SELECT 1 FROM pg_constraint c"
                " WHERE c.conname = i.indexname AND c.connamespace = CAST(:s AS regnamespace))"
            ),
            {"s": self.name, "t": list(TABLES)},
        )
        return [(name, definition) for name, definition in rows]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in TABLES
            }

    def session(self) -> Session:
        db = self.sessions()
        db.execute(text(f"SET statement_timeout = '{TIMEOUT}'"))
        return db

    def drop(self) -> None:
        self.engine.dispose()
        with create_engine(POSTGRES_URL).begin() as conn:
            conn.execute(text(f"DROP SCHEMA {self.name} CASCADE"))


SETTINGS = ReportSettings(timezone=ZONE)
PERIODS = {
    "month": Filters(FIRST, LAST, None),
    "7 days": Filters(LAST - timedelta(days=6), LAST, None),  # the page's default
}
TODAY = LAST  # the page's "today": the last day shown
STEPS = ("kpis", "commitments", "dropoff", "charts")  # kpis: all, by hour, by day at once
DASHBOARD = ("kpis", "commitments")  # as the goal counts it


@contextmanager
def timing(took: dict[str, float]) -> Iterator[None]:
    """What the page calls, timed as it calls them: cti.web.reports's own names of them
    wrapped for the while."""
    names = {"breakdowns": reports.breakdowns, "dropoff": reports.dropoff}
    names["commitments_past_due"] = reports.commitments_past_due

    def timed(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                step = {"commitments_past_due": "commitments", "breakdowns": "kpis"}.get(name, name)
                took[step] = took.get(step, 0.0) + time.perf_counter() - began

        return wrapper

    for name, call in names.items():
        setattr(reports, name, timed(name, call))
    try:
        yield
    finally:
        for name, call in names.items():
            setattr(reports, name, call)


def page(schema: Schema, filters: Filters, settings: ReportSettings) -> dict[str, float]:
    """The reports page's `build` in a session of its own: seconds per step; `charts` is
    the rest (the charts drawn, the tiles)."""
    took: dict[str, float] = {}
    with schema.session() as db, timing(took):
        began = time.perf_counter()
        report = build(db, filters, settings, TODAY)
        total = time.perf_counter() - began
    assert report.total is not None and report.total.calls > 0
    took["charts"] = total - sum(took.values())
    took["page"] = total
    took["dashboard"] = sum(took[step] for step in DASHBOARD)
    return took


def export_by_day(schema: Schema, filters: Filters, settings: ReportSettings) -> dict[str, float]:
    """The CSV export by day as the page's export runs it: kpis in a session of its own,
    then to_csv."""
    zone = settings.zone()
    with schema.session() as db:
        began = time.perf_counter()
        rows = kpis(db, filters.period(zone), settings.thresholds(), zone, by="day")
        queried = time.perf_counter()
        to_csv(rows)
        done = time.perf_counter()
    return {"export kpis by day": queried - began, "to_csv": done - queried}


def measure(
    schema: Schema, settings: ReportSettings, rounds: int = ROUNDS
) -> dict[str, dict[str, list[float]]]:
    """Alternating rounds, month then 7 days, after one round that warms the cache."""
    found: dict[str, dict[str, list[float]]] = {name: {} for name in PERIODS}
    for round_ in range(rounds + 1):
        for name, filters in PERIODS.items():
            took = page(schema, filters, settings) | export_by_day(schema, filters, settings)
            if round_:
                for step, seconds in took.items():
                    found[name].setdefault(step, []).append(seconds)
    return found


def live_calls(schema: Schema) -> None:
    """LIVE_CALLS answered calls in the month's last hour, through the log as the
    service writes them, some of them known customers calling again."""
    log = CallLog(schema.sessions)
    end = datetime.combine(LAST + timedelta(days=1), datetime.min.time(), ZoneInfo(ZONE))
    for n in range(LIVE_CALLS):
        start = (end - timedelta(minutes=60 - n * 55 / LIVE_CALLS)).astimezone(UTC)
        answer = start + timedelta(seconds=40)
        done = answer + timedelta(seconds=120)
        facts = {
            "started_at": start, "kind": "inbound", "flow": "customer_service",
            "caller_number": f"+1555{n * 397 % CUSTOMERS:07d}", "queue": "support",
            "queue_entered_at": start + timedelta(seconds=20), "answered_at": answer,
            "agent": "agent001", "agent_done_at": done, "ended_at": done,
            "ivr_end": "routed", "route": "queue:support", "ivr_ended_at": answer,
        }  # fmt: skip
        if n % 2:
            facts["customer_id"] = 1 + n * 397 % CUSTOMERS
        log.submit(log.facts_write(f"live.{n}", facts))
    log.flush()


def report(found: dict[str, dict[str, list[float]]], state: str) -> None:
    for name, times in found.items():
        filters = PERIODS[name]
        rounds = len(times["page"])
        print(
            f"  {state}: {name} ({filters.first} to {filters.last}), medians of {rounds} rounds, s"
        )
        for step in (*STEPS, "page", "dashboard", "export kpis by day", "to_csv"):
            label = {
                "page": "page: build() in all",
                "dashboard": "dashboard: kpis (all, hour, day) + commitments",
                "export kpis by day": "CSV export by day: kpis",
                "to_csv": "CSV export by day: to_csv",
            }.get(step, step)
            each = ", ".join(f"{t:.3f}" for t in times[step])
            print(f"    {label:40} {statistics.median(times[step]):7.3f}  ({each})")
        for step in ("dashboard", "page"):
            label = f"ratio {step} / goal {GOAL:g} s"
            print(f"    {label:40} {statistics.median(times[step]) / GOAL:7.2f}")


def run() -> None:
    print(
        f"dashboard: the reports page over {CALLS:,} calls in {DAYS} days on PostgreSQL, "
        f"{ROUNDS} alternating rounds"
    )
    load = os.getloadavg()
    print(f"  load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)")
    schema = Schema()
    try:
        took = schema.fill()
        print("  filled in " + ", ".join(f"{label} {t:.1f} s" for label, t in took.items()))
        print("  rows: " + ", ".join(f"{table} {n:,}" for table, n in schema.counts().items()))
        thresholds = SETTINGS.thresholds()
        began = time.perf_counter()
        written = intervals.refresh(schema.sessions, thresholds)
        print(f"  rollups built from scratch: {written:,} intervals in "
              f"{time.perf_counter() - began:.1f} s")  # fmt: skip
        dashboards: dict[str, float] = {}
        rolled = measure(schema, SETTINGS)
        report(rolled, "rolled up")
        live_calls(schema)
        with schema.session() as db:
            marks = len(intervals.pending(db))
            stale = len(intervals.stale(db, thresholds, intervals.pending(db)))
        print(f"  {LIVE_CALLS} calls written since the last refresh: {marks} marks, "
              f"{stale} stale intervals")  # fmt: skip
        live = measure(schema, SETTINGS)
        report(live, "live")
        began = time.perf_counter()
        written = intervals.refresh(schema.sessions, thresholds)
        print(f"  the refresher's round after them: {written} intervals in "
              f"{time.perf_counter() - began:.2f} s")  # fmt: skip
        other = SETTINGS.model_copy(update={"service_level_seconds": 30.0})
        from_calls = measure(schema, other, rounds=3)
        report(from_calls, "from the calls")
        for state, found in (("rolled up", rolled), ("live", live), ("from the calls", from_calls)):
            for name, times in found.items():
                dashboards[f"{state}, {name}"] = statistics.median(times["dashboard"])
        print("  dashboard medians, s: " + ", ".join(f"{k} {v:.3f}" for k, v in dashboards.items()))
        for name in PERIODS:
            ratio = dashboards[f"from the calls, {name}"] / dashboards[f"live, {name}"]
            print(f"  ratio dashboard from the calls / live, {name}: {ratio:.1f}")
    finally:
        schema.drop()


if __name__ == "__main__":
    run()
