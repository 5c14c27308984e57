"""An empty, migrated database for one benchmark round: a SQLite file, or a schema of
its own on the real PostgreSQL (dropped afterwards)."""

from __future__ import annotations

import os
import uuid

from sqlalchemy import create_engine, text

from cti.store.db import make_engine, session_factory, upgrade

POSTGRES_URL = os.environ.get(
    "IVR_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


class ScratchDatabase:
    def __init__(self, kind: str, folder: str, name: str) -> None:
        self.schema = None
        if kind == "sqlite":
            url = f"sqlite:///{folder}/{name}-{uuid.uuid4().hex[:8]}.sqlite3"
        else:
            self.schema = "bench_" + uuid.uuid4().hex[:12]
            with create_engine(POSTGRES_URL).begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {self.schema}"))
            url = f"{POSTGRES_URL}?options=-csearch_path%3D{self.schema}"
        self.engine = make_engine(url)
        upgrade(self.engine)
        self.sessions = session_factory(self.engine)

    def drop(self) -> None:
        self.engine.dispose()
        if self.schema:
            with create_engine(POSTGRES_URL).begin() as conn:
                conn.execute(text(f"DROP SCHEMA {self.schema} CASCADE"))
