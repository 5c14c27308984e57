"""calls.origin_call_id: the call an outbound call follows (a survey rates its agent);
campaigns.next_start_at and campaign_contacts.claimed_at: the campaign's pace and caps
shared by its dialers

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

COLUMNS = (
    ('calls', sa.Column('origin_call_id', sa.String(length=64), nullable=True)),
    ('campaigns', sa.Column('next_start_at', sa.DateTime(timezone=True), nullable=True)),
    ('campaign_contacts', sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True)),
)


# Plain ALTER TABLE on both dialects: a batch (copy and move) on SQLite would drop the
# triggers 0008 put on calls.
def upgrade() -> None:
    for table, column in COLUMNS:
        op.add_column(table, column)


def downgrade() -> None:
    for table, column in reversed(COLUMNS):
        op.drop_column(table, column.name)
