"""outcome log: hold and wrap-up, campaign, where the IVR part ended, survey answers;
journey events lose their redundant call_id index

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 01:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('campaign', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('callback_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('exit_node', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('escape_node', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hold_seconds', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('disposed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('wrapup_seconds', sa.Float(), nullable=True))
        batch_op.create_index(batch_op.f('ix_calls_campaign'), ['campaign'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_agent'), ['agent'], unique=False)

    op.create_table('survey_answers',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('question', sa.String(length=64), nullable=False),
    sa.Column('scale', sa.String(length=16), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('call_id', 'question')
    )
    # Look-ups by call use the unique (call_id, ...) indexes; one on call_id alone only
    # slows the log's writes down.
    with op.batch_alter_table('journey_events', schema=None) as batch_op:
        batch_op.drop_index('ix_journey_events_call_id')



def downgrade() -> None:
    with op.batch_alter_table('journey_events', schema=None) as batch_op:
        batch_op.create_index('ix_journey_events_call_id', ['call_id'], unique=False)
    op.drop_table('survey_answers')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calls_agent'))
        batch_op.drop_index(batch_op.f('ix_calls_campaign'))
        batch_op.drop_column('wrapup_seconds')
        batch_op.drop_column('disposed_at')
        batch_op.drop_column('hold_seconds')
        batch_op.drop_column('escape_node')
        batch_op.drop_column('exit_node')
        batch_op.drop_column('callback_id')
        batch_op.drop_column('campaign')
