"""Opening the database: URL resolution, SQLite pragmas, Alembic migrations to head."""

from __future__ import annotations

import ast
import functools
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import CursorResult, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError

MIGRATIONS = Path(__file__).parent / "migrations"
# Alembic's upgrade is not safe to run concurrently in one process (it touches module globals).
_migrate_lock = threading.Lock()


def inserted_id(result: CursorResult[Any]) -> int:
    """The autoincrement id an INSERT returned: both dialects return it, SQLAlchemy types it Optional
    (None only for statements that are not single-row INSERTs)."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the statement returned no inserted primary key")
    return int(key[0])


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


@functools.cache
def script_heads() -> frozenset[str] | None:
    """The head revision(s) of the migration scripts, read from their `revision` / `down_revision`
    lines; None when a script does not say them plainly (then alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        values: dict[str, Any] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                try:
                    values[target.id] = ast.literal_eval(value)
                except ValueError:
                    return None
        if not isinstance(values.get("revision"), str):
            return None
        revisions.add(values["revision"])
        down = values.get("down_revision")
        parents.update([down] if isinstance(down, str) else list(down or ()))
    return frozenset(revisions - parents) or None


def at_head(engine: Engine) -> bool:
    """Is the database already at the scripts' head? Then opening it needs no alembic at all: importing
    alembic (with mako and pygments) is most of a short CLI command's start-up."""
    heads = script_heads()
    if heads is None:
        return False
    try:
        with engine.connect() as connection:
            current = {row[0] for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version")}
    except DBAPIError:  # a new database: no alembic_version table yet
        return False
    return current == heads


def migrate_to_head(engine: Engine) -> None:
    if at_head(engine):
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _migrate_lock, engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Several replicas may start together; one migrates, the others wait here.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(4242001)")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
