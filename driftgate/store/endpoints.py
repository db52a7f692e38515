"""Endpoint configurations, with a revision counter replicas poll, and the audit trail."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from driftgate.errors import EndpointNotFound
from driftgate.store import tables as t


class EndpointRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(self, name: str, config: dict[str, Any], *, actor: str, reason: str = "") -> int:
        """Create or replace an endpoint's config; returns its new revision. Audited in the same commit."""
        now = time.time()
        with self.engine.begin() as conn:
            revision = next_revision(conn)
            exists = conn.execute(select(t.endpoints.c.name).where(t.endpoints.c.name == name)).first()
            if exists:
                conn.execute(
                    t.endpoints.update()
                    .where(t.endpoints.c.name == name)
                    .values(config=config, revision=revision, updated_at=now)
                )
            else:
                conn.execute(
                    t.endpoints.insert().values(
                        name=name, config=config, revision=revision, created_at=now, updated_at=now
                    )
                )
            record_audit(conn, actor, "endpoint.put", name, {"config": config, "reason": reason})
        return revision

    def get(self, name: str) -> tuple[dict[str, Any], int]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.endpoints.c.config, t.endpoints.c.revision).where(t.endpoints.c.name == name)
            ).first()
        if row is None:
            raise EndpointNotFound(
                f"no endpoint named {name!r}; create it with PUT /v1/endpoints/{name}", endpoint=name
            )
        return dict(row.config), int(row.revision)

    def all(self) -> dict[str, tuple[dict[str, Any], int]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.endpoints.c.name, t.endpoints.c.config, t.endpoints.c.revision)).all()
        return {r.name: (dict(r.config), int(r.revision)) for r in rows}

    def changed_since(self, revision: int) -> dict[str, tuple[dict[str, Any], int]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.endpoints.c.name, t.endpoints.c.config, t.endpoints.c.revision).where(
                    t.endpoints.c.revision > revision
                )
            ).all()
        return {r.name: (dict(r.config), int(r.revision)) for r in rows}

    def head_revision(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(t.endpoints.c.revision), 0))).scalar() or 0)

    def history(self, name: str, limit: int = 100) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.audit_log)
                .where(t.audit_log.c.subject == name)
                .order_by(t.audit_log.c.at.desc(), t.audit_log.c.id.desc())
                .limit(limit)
            ).all()
        return [r._asdict() for r in rows]


def next_revision(conn: Connection) -> int:
    current = conn.execute(select(func.coalesce(func.max(t.endpoints.c.revision), 0))).scalar() or 0
    # Wall-clock-based revisions stay increasing even if two writers race on max()+1.
    return max(int(current) + 1, int(time.time() * 1000))


def bump_revision(conn: Connection, name: str, config: dict[str, Any] | None = None) -> int:
    """Mark an endpoint changed (its rollout, or its config) so every replica re-applies it."""
    revision = next_revision(conn)
    values: dict[str, Any] = {"revision": revision, "updated_at": time.time()}
    if config is not None:
        values["config"] = config
    conn.execute(t.endpoints.update().where(t.endpoints.c.name == name).values(**values))
    return revision


def record_audit(conn: Connection, actor: str, action: str, subject: str, detail: dict[str, Any]) -> None:
    conn.execute(
        t.audit_log.insert().values(at=time.time(), actor=actor, action=action, subject=subject, detail=detail)
    )
