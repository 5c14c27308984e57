"""outcome log: the facts of both sides of a call, its outcome and times

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 00:24:27.086368
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), nullable=False, server_default='inbound'))
        batch_op.add_column(sa.Column('ivr_end', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('callback_requested', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('survey_completed', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('queue', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('queue_entered_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('agent_done_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('abandoned', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('transferred', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('ivr_seconds', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('wait_seconds', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('talk_seconds', sa.Float(), nullable=True))
        batch_op.create_index(batch_op.f('ix_calls_outcome'), ['outcome'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_started_at'), ['started_at'], unique=False)

    # `outcome` held how the IVR part ended; that is `ivr_end` now, and `outcome` the
    # call's: known here only for calls the IVR itself finished.
    op.execute("UPDATE calls SET ivr_end = outcome")
    op.execute(
        "UPDATE calls SET outcome = CASE WHEN ended_at IS NOT NULL "
        "AND ivr_end IN ('contained', 'abandoned_ivr') THEN ivr_end END"
    )



def downgrade() -> None:
    op.execute("UPDATE calls SET outcome = ivr_end")
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calls_started_at'))
        batch_op.drop_index(batch_op.f('ix_calls_outcome'))
        batch_op.drop_column('talk_seconds')
        batch_op.drop_column('wait_seconds')
        batch_op.drop_column('ivr_seconds')
        batch_op.drop_column('transferred')
        batch_op.drop_column('abandoned')
        batch_op.drop_column('agent_done_at')
        batch_op.drop_column('answered_at')
        batch_op.drop_column('queue_entered_at')
        batch_op.drop_column('queue')
        batch_op.drop_column('survey_completed')
        batch_op.drop_column('callback_requested')
        batch_op.drop_column('ivr_end')
        batch_op.drop_column('kind')

