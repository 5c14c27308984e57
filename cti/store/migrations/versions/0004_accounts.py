"""accounts: a customer may hold several; their number, balance and currency leave customers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# 0002 created customers' UNIQUE (account_number) without a name. PostgreSQL named it
# customers_account_number_key; SQLite keeps it nameless, so batch mode (which rebuilds
# the table from what it reflects) names it the same way through this convention, and
# the same drop_constraint works on both.
CUSTOMERS_ACCOUNT_KEY = 'customers_account_number_key'
NAMING = {'uq': '%(table_name)s_%(column_0_name)s_key'}


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('balance', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name='fk_accounts_customer_id', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name='pk_accounts'),
    sa.UniqueConstraint('number', name='uq_accounts_number')
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index('ix_accounts_customer_id', ['customer_id'], unique=False)

    # Every customer's one account becomes their first account row.
    op.execute(
        "INSERT INTO accounts (number, customer_id, balance, currency, status, created_at) "
        "SELECT account_number, id, balance, currency, 'open', created_at "
        "FROM customers WHERE account_number IS NOT NULL"
    )

    with op.batch_alter_table('customers', schema=None, naming_convention=NAMING) as batch_op:
        batch_op.drop_constraint(CUSTOMERS_ACCOUNT_KEY, type_='unique')
        batch_op.drop_column('currency')
        batch_op.drop_column('balance')
        batch_op.drop_column('account_number')


def downgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('account_number', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('balance', sa.Numeric(precision=12, scale=2), nullable=True))
        batch_op.add_column(sa.Column('currency', sa.String(length=3), nullable=True))

    # Each customer keeps their first account (lowest id); the others are lost.
    first = "(SELECT a.{} FROM accounts a WHERE a.customer_id = customers.id ORDER BY a.id LIMIT 1)"
    op.execute(
        f"UPDATE customers SET account_number = {first.format('number')}, "
        f"balance = COALESCE({first.format('balance')}, 0), "
        f"currency = COALESCE({first.format('currency')}, 'USD')"
    )

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.alter_column('balance', existing_type=sa.Numeric(precision=12, scale=2), nullable=False)
        batch_op.alter_column('currency', existing_type=sa.String(length=3), nullable=False)
        batch_op.create_unique_constraint(CUSTOMERS_ACCOUNT_KEY, ['account_number'])

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_accounts_customer_id')

    op.drop_table('accounts')
