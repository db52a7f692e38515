"""Retraining runs: at most one open (queued or running) per endpoint, checked in the transaction that
opens a new one; an open run past its deadline was abandoned by a server that stopped, and is closed
as failed when the next one opens."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, select

from driftgate.errors import Conflict, NotFound
from driftgate.store import tables as t
from driftgate.store.database import inserted_id
from driftgate.store.endpoints import record_audit

_R = t.retraining_runs
OPEN_STATES = ("queued", "running")
DONE_STATES = ("succeeded", "rejected", "failed")


def _row(row: Any) -> dict[str, Any]:
    return dict(row._asdict())


class RetrainingRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(
        self,
        endpoint: str,
        *,
        trigger: str,
        actor: str,
        spec: dict[str, Any],
        champion: dict[str, Any],
        deadline: float,
        now: float | None = None,
    ) -> dict[str, Any]:
        """A new queued run; Conflict while another run of the endpoint is open."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                # Two replicas opening a run on one endpoint at once: the endpoint row serialises them.
                conn.execute(select(t.endpoints.c.name).where(t.endpoints.c.name == endpoint).with_for_update())
            else:
                # SQLite: a write first takes the database's write lock before the read below (a read first
                # would let two transactions both see no open run, and both insert one).
                conn.execute(_R.update().where(_R.c.endpoint == endpoint, _R.c.id < 0).values(state=_R.c.state))
            running = conn.execute(
                select(_R.c.id, _R.c.state, _R.c.deadline).where(_R.c.endpoint == endpoint, _R.c.state.in_(OPEN_STATES))
            ).first()
            if running is not None and running.deadline < now:
                conn.execute(
                    _R.update()
                    .where(_R.c.id == running.id)
                    .values(state="failed", finished_at=now, detail="abandoned: its server stopped before it ended")
                )
            elif running is not None:
                raise Conflict(
                    f"endpoint {endpoint!r} already has retraining run {running.id} {running.state}; "
                    f"see GET /v1/retraining-runs/{running.id}",
                    endpoint=endpoint,
                    run=running.id,
                )
            run_id = inserted_id(
                conn.execute(
                    _R.insert().values(
                        endpoint=endpoint,
                        state="queued",
                        trigger=trigger,
                        actor=actor,
                        spec=spec,
                        champion=champion,
                        created_at=now,
                        deadline=deadline,
                    )
                )
            )
            record_audit(conn, actor, "retrain.start", endpoint, {"run": run_id, "trigger": trigger})
            return _row(conn.execute(select(_R).where(_R.c.id == run_id)).one())

    def update(self, run_id: int, **values: Any) -> dict[str, Any]:
        """Set these columns; a run that ends is audited in the same commit."""
        with self.engine.begin() as conn:
            conn.execute(_R.update().where(_R.c.id == run_id).values(**values))
            row = _row(conn.execute(select(_R).where(_R.c.id == run_id)).one())
            if values.get("state") in DONE_STATES:
                record_audit(
                    conn, row["actor"], "retrain.finish", row["endpoint"], {"run": run_id, "state": row["state"]}
                )
            return row

    def get(self, run_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(_R).where(_R.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"no retraining run {run_id}", run=run_id)
        return _row(row)

    def list(self, endpoint: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first."""
        query = select(_R).order_by(_R.c.created_at.desc(), _R.c.id.desc()).limit(limit)
        if endpoint is not None:
            query = query.where(_R.c.endpoint == endpoint)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def last_created(self, endpoint: str) -> float | None:
        """When the endpoint's newest run was opened (the schedule counts from it)."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(_R.c.created_at).where(_R.c.endpoint == endpoint).order_by(_R.c.created_at.desc()).limit(1)
            ).scalar()
