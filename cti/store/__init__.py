"""The data store: SQLAlchemy models, Alembic migrations, and the writers that use them."""
