"""KPI interval rollups: kpi_intervals and ivr_node_intervals, the marks the database's
triggers write when a call or survey answer changes (kpi_marks), and kpi_rollup

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 06:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# The 15-minute interval of a start, as cti/reports/parts.py's bucket grouping has it.
PG_BUCKET = "floor(extract(epoch FROM {0}) / 900)::bigint"
SQLITE_BUCKET = "CAST(strftime('%s', {0}) AS INTEGER) / 900"

# PostgreSQL: statement-level triggers read the changed rows as transition tables, a
# mark for each interval a statement touched (and the former customer of the calls whose
# customer, start or kind it changed), not one a row.
PG_FUNCTIONS = [
    f"""CREATE FUNCTION kpi_mark_calls() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kpi_marks (bucket)
    SELECT DISTINCT {PG_BUCKET.format("started_at")} FROM changed;
    RETURN NULL;
END $$""",
    f"""CREATE FUNCTION kpi_mark_updated_calls() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kpi_marks (bucket)
    SELECT DISTINCT {PG_BUCKET.format("started_at")} FROM changed;
    INSERT INTO kpi_marks (bucket, customer_id, caller_number)
    SELECT DISTINCT {PG_BUCKET.format("o.started_at")}, o.customer_id, o.caller_number
    FROM before o JOIN changed n ON n.id = o.id
    WHERE (o.started_at, o.kind, o.customer_id, o.caller_number)
        IS DISTINCT FROM (n.started_at, n.kind, n.customer_id, n.caller_number);
    RETURN NULL;
END $$""",
    f"""CREATE FUNCTION kpi_mark_deleted_calls() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kpi_marks (bucket, customer_id, caller_number)
    SELECT DISTINCT {PG_BUCKET.format("started_at")}, customer_id, caller_number FROM changed;
    RETURN NULL;
END $$""",
    f"""CREATE FUNCTION kpi_mark_answers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kpi_marks (bucket)
    SELECT DISTINCT {PG_BUCKET.format("c.started_at")}
    FROM changed a JOIN calls c ON c.id = a.call_id;
    RETURN NULL;
END $$""",
]
PG_TRIGGERS = [
    ("kpi_calls_inserted", "INSERT ON calls REFERENCING NEW TABLE AS changed", "kpi_mark_calls"),
    ("kpi_calls_updated",
     "UPDATE ON calls REFERENCING OLD TABLE AS before NEW TABLE AS changed",
     "kpi_mark_updated_calls"),
    ("kpi_calls_deleted", "DELETE ON calls REFERENCING OLD TABLE AS changed",
     "kpi_mark_deleted_calls"),
    ("kpi_answers_inserted", "INSERT ON survey_answers REFERENCING NEW TABLE AS changed",
     "kpi_mark_answers"),
    ("kpi_answers_updated", "UPDATE ON survey_answers REFERENCING NEW TABLE AS changed",
     "kpi_mark_answers"),
    ("kpi_answers_deleted", "DELETE ON survey_answers REFERENCING OLD TABLE AS changed",
     "kpi_mark_answers"),
]


def _sqlite_mark(moment: str) -> str:
    """A mark for the interval of `moment`, unless it has one (SQLite writes one at a
    time: the refresher holds the write lock while it reads and drops marks)."""
    bucket = SQLITE_BUCKET.format(moment)
    return (
        f"INSERT INTO kpi_marks (bucket) SELECT {bucket} WHERE NOT EXISTS (SELECT 1 FROM"
        f" kpi_marks WHERE bucket = {bucket} AND customer_id IS NULL"
        " AND caller_number IS NULL);"
    )


KEY_MARK = (
    "INSERT INTO kpi_marks (bucket, customer_id, caller_number)"
    f" SELECT {SQLITE_BUCKET.format('OLD.started_at')}, OLD.customer_id, OLD.caller_number"
)
SQLITE_TRIGGERS = [
    ("kpi_calls_inserted", "AFTER INSERT ON calls", _sqlite_mark("NEW.started_at")),
    ("kpi_calls_updated", "AFTER UPDATE ON calls",
     _sqlite_mark("NEW.started_at") + f" {KEY_MARK} WHERE OLD.started_at IS NOT NEW.started_at"
     " OR OLD.kind IS NOT NEW.kind OR OLD.customer_id IS NOT NEW.customer_id"
     " OR OLD.caller_number IS NOT NEW.caller_number;"),
    ("kpi_calls_deleted", "AFTER DELETE ON calls", f"{KEY_MARK};"),
    ("kpi_answers_inserted", "AFTER INSERT ON survey_answers",
     _sqlite_mark("(SELECT started_at FROM calls WHERE id = NEW.call_id)")),
    ("kpi_answers_updated", "AFTER UPDATE ON survey_answers",
     _sqlite_mark("(SELECT started_at FROM calls WHERE id = NEW.call_id)")),
    ("kpi_answers_deleted", "AFTER DELETE ON survey_answers",
     _sqlite_mark("(SELECT started_at FROM calls WHERE id = OLD.call_id)")),
]  # fmt: skip


def upgrade() -> None:
    op.create_table('kpi_intervals',
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('queue', sa.String(length=64), nullable=False),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.Column('ivr_calls', sa.Integer(), nullable=False),
    sa.Column('contained', sa.Integer(), nullable=False),
    sa.Column('abandoned_ivr', sa.Integer(), nullable=False),
    sa.Column('offered', sa.Integer(), nullable=False),
    sa.Column('short_abandons', sa.Integer(), nullable=False),
    sa.Column('answered', sa.Integer(), nullable=False),
    sa.Column('answered_in_time', sa.Integer(), nullable=False),
    sa.Column('abandoned_queue', sa.Integer(), nullable=False),
    sa.Column('callback_requested', sa.Integer(), nullable=False),
    sa.Column('transferred', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('waited', sa.Integer(), nullable=False),
    sa.Column('callbacks', sa.Integer(), nullable=False),
    sa.Column('callbacks_reached', sa.Integer(), nullable=False),
    sa.Column('fcr_calls', sa.Integer(), nullable=False),
    sa.Column('repeats', sa.Integer(), nullable=False),
    sa.Column('csat_answers', sa.Integer(), nullable=False),
    sa.Column('satisfied', sa.Integer(), nullable=False),
    sa.Column('nps_answers', sa.Integer(), nullable=False),
    sa.Column('promoters', sa.Integer(), nullable=False),
    sa.Column('detractors', sa.Integer(), nullable=False),
    sa.Column('callback_requests', sa.Integer(), nullable=False),
    sa.Column('outcome_contained', sa.Integer(), nullable=False),
    sa.Column('outcome_answered', sa.Integer(), nullable=False),
    sa.Column('outcome_abandoned_queue', sa.Integer(), nullable=False),
    sa.Column('outcome_abandoned_ivr', sa.Integer(), nullable=False),
    sa.Column('outcome_callback_requested', sa.Integer(), nullable=False),
    sa.Column('outcome_survey_completed', sa.Integer(), nullable=False),
    sa.Column('outcome_transferred', sa.Integer(), nullable=False),
    sa.Column('outcome_failed', sa.Integer(), nullable=False),
    sa.Column('wait', sa.Float(), nullable=False),
    sa.Column('talk', sa.Float(), nullable=False),
    sa.Column('hold', sa.Float(), nullable=False),
    sa.Column('wrapup', sa.Float(), nullable=False),
    sa.Column('callback_seconds', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'queue')
    )
    op.create_table('ivr_node_intervals',
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('queue', sa.String(length=64), nullable=False),
    sa.Column('flow', sa.String(length=64), nullable=False),
    sa.Column('node', sa.String(length=160), nullable=False),
    sa.Column('visits', sa.Integer(), nullable=False),
    sa.Column('hangups', sa.Integer(), nullable=False),
    sa.Column('escapes', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'queue', 'flow', 'node')
    )
    op.create_table('kpi_marks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
              nullable=False),
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('caller_number', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_kpi_marks_bucket', 'kpi_marks', ['bucket'], unique=False)
    rollup = op.create_table('kpi_rollup',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('thresholds', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(rollup, [{'id': 1, 'thresholds': ''}])  # none yet: every interval stale
    if op.get_bind().dialect.name == 'postgresql':
        for function in PG_FUNCTIONS:
            op.execute(function)
        for name, event, function in PG_TRIGGERS:
            op.execute(f"CREATE TRIGGER {name} AFTER {event}"
                       f" FOR EACH STATEMENT EXECUTE FUNCTION {function}()")
    else:
        for name, event, body in SQLITE_TRIGGERS:
            op.execute(f"CREATE TRIGGER {name} {event} FOR EACH ROW BEGIN {body} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for name, event, _ in PG_TRIGGERS:
            op.execute(f"DROP TRIGGER {name} ON {event.split(' ON ')[1].split()[0]}")
        for function in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION {function.split()[2]}")
    else:
        for name, _, _ in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table('kpi_rollup')
    op.drop_index('ix_kpi_marks_bucket', table_name='kpi_marks')
    op.drop_table('kpi_marks')
    op.drop_table('kpi_intervals')
    op.drop_table('ivr_node_intervals')
