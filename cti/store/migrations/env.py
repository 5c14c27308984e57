"""Alembic environment: runs migrations on the engine handed over by cti.store.db."""

from alembic import context

from cti.store.models import Base

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode rebuilds a SQLite table: a copy, DROP the table, rename the copy.
        # With foreign keys on, that DROP deletes (ON DELETE CASCADE) or refuses the rows
        # that refer to the table, so they are off while migrating (a pragma that only
        # takes effect outside a transaction) and checked at the end instead.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        with connection.begin():
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=sqlite,
                compare_type=True,
            )
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"migrations left rows with broken foreign keys: {broken}")
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
