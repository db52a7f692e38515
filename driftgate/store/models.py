"""Model versions, their blobs and aliases."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from driftgate.errors import BadRequest, Conflict, ModelNotFound
from driftgate.store import tables as t


@dataclass(frozen=True, slots=True)
class VersionRecord:
    name: str
    version: int
    format: str
    artifact_kind: str
    artifact_sha256: str
    input_schema: dict[str, Any]
    output: dict[str, Any]
    target: str | None
    reference_rows: int
    lineage: dict[str, Any]
    metrics: dict[str, Any]
    description: str | None
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "format": self.format,
            "artifact_kind": self.artifact_kind,
            "artifact_sha256": self.artifact_sha256,
            "schema": self.input_schema,
            "output": self.output,
            "target": self.target,
            "reference_rows": self.reference_rows,
            "lineage": self.lineage,
            "metrics": self.metrics,
            "description": self.description,
            "created_at": self.created_at,
        }


class ModelRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_version(
        self, record: dict[str, Any], artifact: bytes, reference: bytes | None, attempts: int = 20
    ) -> VersionRecord:
        """Store a new immutable version numbered max+1.

        On PostgreSQL the model row is locked so concurrent registrations queue up; SQLite
        serialises writers itself and a writer that loses the race retries.
        """
        name = record["name"]
        self._ensure_model(name)
        for attempt in range(attempts):
            try:
                with self.engine.begin() as conn:
                    conn.execute(select(t.models.c.name).where(t.models.c.name == name).with_for_update())
                    current = conn.execute(
                        select(func.max(t.model_versions.c.version)).where(t.model_versions.c.name == name)
                    ).scalar()
                    version = (current or 0) + 1
                    row = {**record, "version": version, "created_at": time.time()}
                    conn.execute(t.model_versions.insert().values(**row))
                    conn.execute(t.artifacts.insert().values(name=name, version=version, kind="model", data=artifact))
                    if reference is not None:
                        conn.execute(
                            t.artifacts.insert().values(name=name, version=version, kind="reference", data=reference)
                        )
                return self.get(name, version)
            except (IntegrityError, OperationalError):
                time.sleep(random.uniform(0.005, 0.02) * (attempt + 1))  # another writer won; try the next number
        raise Conflict(f"could not allocate a version number for model {name!r}; retry the registration")

    def _ensure_model(self, name: str) -> None:
        try:
            with self.engine.begin() as conn:
                if conn.execute(select(t.models.c.name).where(t.models.c.name == name)).first() is None:
                    conn.execute(t.models.insert().values(name=name, created_at=time.time()))
        except IntegrityError:
            pass  # created concurrently

    def get(self, name: str, version: int | str) -> VersionRecord:
        number = self.resolve(name, version)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.model_versions).where(t.model_versions.c.name == name, t.model_versions.c.version == number)
            ).first()
        if row is None:
            raise ModelNotFound(f"model {name!r} has no version {version!r}", model=name, version=version)
        return VersionRecord(**row._asdict())

    def resolve(self, name: str, version: int | str) -> int:
        """A version number from a number, a numeric string, `latest` or an alias."""
        if isinstance(version, int) or (isinstance(version, str) and version.isascii() and version.isdigit()):
            return int(version)
        with self.engine.connect() as conn:
            if version == "latest":
                number = conn.execute(
                    select(func.max(t.model_versions.c.version)).where(t.model_versions.c.name == name)
                ).scalar()
            else:
                number = conn.execute(
                    select(t.model_aliases.c.version).where(
                        t.model_aliases.c.name == name, t.model_aliases.c.alias == version
                    )
                ).scalar()
        if number is None:
            raise ModelNotFound(f"model {name!r} has no version or alias {version!r}", model=name, version=version)
        return int(number)

    def versions(self, name: str) -> list[VersionRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.model_versions).where(t.model_versions.c.name == name).order_by(t.model_versions.c.version)
            ).all()
        if not rows:
            raise ModelNotFound(f"no model named {name!r}", model=name)
        return [VersionRecord(**r._asdict()) for r in rows]

    def names(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(t.models.c.name).order_by(t.models.c.name)).scalars())

    def blob(self, name: str, version: int, kind: str) -> bytes | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(t.artifacts.c.data).where(
                    t.artifacts.c.name == name, t.artifacts.c.version == version, t.artifacts.c.kind == kind
                )
            ).scalar()

    def aliases(self, name: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.model_aliases.c.alias, t.model_aliases.c.version).where(t.model_aliases.c.name == name)
            ).all()
        return {alias: version for alias, version in rows}

    def set_alias(self, name: str, alias: str, version: int) -> None:
        if alias == "latest" or alias.isdigit():
            raise BadRequest(f"alias {alias!r} is reserved; choose a name that is not 'latest' or a number")
        self.get(name, version)
        with self.engine.begin() as conn:
            conn.execute(
                t.model_aliases.delete().where(t.model_aliases.c.name == name, t.model_aliases.c.alias == alias)
            )
            conn.execute(
                t.model_aliases.insert().values(name=name, alias=alias, version=version, updated_at=time.time())
            )
