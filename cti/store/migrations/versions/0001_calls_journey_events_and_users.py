"""calls, journey events and users

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 18:00:39.263046
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('calls',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('linkedid', sa.String(length=64), nullable=True),
    sa.Column('channel', sa.String(length=128), nullable=True),
    sa.Column('direction', sa.String(length=16), nullable=False),
    sa.Column('entry', sa.String(length=64), nullable=True),
    sa.Column('did', sa.String(length=32), nullable=True),
    sa.Column('caller_number', sa.String(length=32), nullable=True),
    sa.Column('flow', sa.String(length=64), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ivr_ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('route', sa.String(length=128), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calls_linkedid'), ['linkedid'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('journey_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('node', sa.String(length=64), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('call_id', 'seq')
    )
    with op.batch_alter_table('journey_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_journey_events_call_id'), ['call_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('journey_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_journey_events_call_id'))

    op.drop_table('journey_events')
    op.drop_table('users')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calls_linkedid'))

    op.drop_table('calls')

