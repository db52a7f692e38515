"""Opening the database: URL resolution, SQLite pragmas, Alembic migrations to head."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

MIGRATIONS = Path(__file__).parent / "migrations"
# Alembic's upgrade is not safe to run concurrently in one process (it touches module globals).
_migrate_lock = threading.Lock()


def database_url(data_dir: str | Path | None, db: str | None) -> str:
    """`--db` wins; otherwise SQLite under the data directory (created if needed)."""
    if db:
        if db.startswith("postgresql://") or db.startswith("postgres://"):
            # Bare postgresql:// would pick psycopg2; we ship psycopg 3.
            db = "postgresql+psycopg://" + db.split("://", 1)[1]
        return db
    folder = Path(data_dir or ".driftgate")
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'driftgate.db').resolve()}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers and one writer work at once; NORMAL sync is durable against process
    # crashes (only an OS crash can lose the last transactions), which is SPEC's promise.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def open_engine(url: str, *, migrate: bool = True) -> Engine:
    """An engine for `url` with the dialect's settings, migrated to the newest schema (unless told not to)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10}, pool_size=8)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)
    if migrate:
        migrate_to_head(engine)
    return engine


def migrate_to_head(engine: Engine) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _migrate_lock, engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Several replicas may start together; one migrates, the others wait here.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(4242001)")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
