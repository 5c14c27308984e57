"""commitments, callbacks, agent legs; per call its agent, disposition and customer; agent interface

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 22:52:24.436861
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('callbacks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('linkedid', sa.String(length=64), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=256), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callbacks_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_callbacks_linkedid'), ['linkedid'], unique=False)

    op.create_table('call_agents',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('linkedid', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('disposition', sa.String(length=32), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('disposed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('linkedid', 'username')
    )
    with op.batch_alter_table('call_agents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_call_agents_linkedid'), ['linkedid'], unique=False)

    op.create_table('commitments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('linkedid', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('due', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('commitments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commitments_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_commitments_linkedid'), ['linkedid'], unique=False)

    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('customer_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('agent', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('disposition', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('notes', sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f('ix_calls_customer_id'), ['customer_id'], unique=False)
        batch_op.create_foreign_key('fk_calls_customer_id', 'customers', ['customer_id'], ['id'])

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('interface', sa.String(length=128), nullable=True))
        batch_op.create_unique_constraint('uq_users_interface', ['interface'])



def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint('uq_users_interface', type_='unique')
        batch_op.drop_column('interface')

    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_constraint('fk_calls_customer_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_calls_customer_id'))
        batch_op.drop_column('notes')
        batch_op.drop_column('disposition')
        batch_op.drop_column('agent')
        batch_op.drop_column('customer_id')

    with op.batch_alter_table('commitments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commitments_linkedid'))
        batch_op.drop_index(batch_op.f('ix_commitments_customer_id'))

    op.drop_table('commitments')
    with op.batch_alter_table('call_agents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_call_agents_linkedid'))

    op.drop_table('call_agents')
    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callbacks_linkedid'))
        batch_op.drop_index(batch_op.f('ix_callbacks_customer_id'))

    op.drop_table('callbacks')
