"""calls.origin_call_id: the call an outbound call follows (a survey rates its agent)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 08:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


# Plain ALTER TABLE on both dialects: a batch (copy and move) on SQLite would drop the
# triggers 0008 put on calls.
def upgrade() -> None:
    op.add_column('calls', sa.Column('origin_call_id', sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column('calls', 'origin_call_id')
