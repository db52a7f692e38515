"""Rollouts: the running one per endpoint drives traffic; every change bumps the endpoint's
revision (so every replica re-applies it within a poll) and is audited in the same commit."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, and_, or_, select

from driftgate.core.refs import ACTIVE_ROLLOUT_STATES as ACTIVE_STATES
from driftgate.core.rows import expand
from driftgate.errors import Conflict
from driftgate.store import tables as t
from driftgate.store.database import inserted_id
from driftgate.store.endpoints import bump_revision, record_audit
from driftgate.store.predictions import NO_INPUTS, labels_of, newest_rows

_R = t.rollouts


def _row(row: Any) -> dict[str, Any]:
    return dict(row._asdict())


class RolloutRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(
        self,
        endpoint: str,
        *,
        strategy: str,
        baseline: dict[str, Any],
        candidate: dict[str, Any],
        spec: dict[str, Any],
        weight: float,
        actor: str,
        reason: str,
    ) -> dict[str, Any]:
        now = time.time()
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                # Two replicas starting a rollout on one endpoint at once: the endpoint row serialises them.
                conn.execute(select(t.endpoints.c.name).where(t.endpoints.c.name == endpoint).with_for_update())
            running = conn.execute(
                select(_R.c.id, _R.c.strategy, _R.c.candidate).where(
                    _R.c.endpoint == endpoint, _R.c.state.in_(ACTIVE_STATES)
                )
            ).first()
            if (
                running is not None
                and running.strategy == "shadow"
                and strategy != "shadow"
                and (running.candidate == candidate)
            ):
                # Shadow, then canary, of one candidate: the usual path, so the shadow steps aside.
                conn.execute(
                    _R.update()
                    .where(_R.c.id == running.id)
                    .values(
                        state="superseded",
                        finished_at=now,
                        updated_at=now,
                        reason=f"superseded by a {strategy} rollout",
                    )
                )
                record_audit(conn, actor, "rollout.supersede", endpoint, {"rollout": running.id, "by": strategy})
            elif running is not None:
                raise Conflict(
                    f"endpoint {endpoint!r} already has a {running.strategy} rollout (id {running.id}); "
                    "promote or roll it back first",
                    endpoint=endpoint,
                )
            rollout_id = inserted_id(
                conn.execute(
                    _R.insert().values(
                        endpoint=endpoint,
                        strategy=strategy,
                        state="running",
                        baseline=baseline,
                        candidate=candidate,
                        spec=spec,
                        step=0,
                        weight=weight,
                        started_at=now,
                        step_started_at=now,
                        updated_at=now,
                        reason=reason or None,
                        actor=actor,
                    )
                )
            )
            bump_revision(conn, endpoint)
            record_audit(
                conn,
                actor,
                "rollout.start",
                endpoint,
                {
                    "rollout": rollout_id,
                    "strategy": strategy,
                    "candidate": candidate,
                    "weight": weight,
                    "reason": reason,
                },
            )
            return _row(conn.execute(select(_R).where(_R.c.id == rollout_id)).one())

    def active(self, endpoint: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_R).where(_R.c.endpoint == endpoint, _R.c.state.in_(ACTIVE_STATES)).order_by(_R.c.id.desc())
            ).first()
        return _row(row) if row is not None else None

    def latest(self, endpoint: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_R).where(_R.c.endpoint == endpoint).order_by(_R.c.id.desc())).first()
        return _row(row) if row is not None else None

    def running(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(select(_R).where(_R.c.state == "running"))]

    def history(self, endpoint: str, limit: int = 50) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(_R).where(_R.c.endpoint == endpoint).order_by(_R.c.id.desc()).limit(limit))
            return [_row(r) for r in rows]

    def transition(
        self,
        current: dict[str, Any],
        *,
        action: str,
        actor: str,
        reason: str,
        state: str | None = None,
        step: int | None = None,
        weight: float | None = None,
        endpoint_config: dict[str, Any] | None = None,
        analysis: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Move a rollout on, if nobody moved it since `current` was read (compare-and-set).

        Returns the new row, or None when another replica or person got there first.
        """
        now = time.time()
        values: dict[str, Any] = {"updated_at": now, "reason": reason}
        if state is not None:
            values["state"] = state
            if state not in ACTIVE_STATES:
                values["finished_at"] = now
        if step is not None:
            values["step"] = step
            values["step_started_at"] = now
        if weight is not None:
            values["weight"] = weight
        if analysis is not None:
            values["analysis"] = analysis
        with self.engine.begin() as conn:
            moved = conn.execute(
                _R.update()
                .where(_R.c.id == current["id"], _R.c.state == current["state"], _R.c.step == current["step"])
                .values(**values)
            ).rowcount
            if not moved:
                return None
            bump_revision(conn, current["endpoint"], endpoint_config)
            detail = {"rollout": current["id"], "strategy": current["strategy"], "reason": reason}
            detail.update({k: v for k, v in (("state", state), ("step", step), ("weight", weight)) if v is not None})
            record_audit(conn, actor, f"rollout.{action}", current["endpoint"], detail)
            return _row(conn.execute(select(_R).where(_R.c.id == current["id"])).one())

    def save_analysis(self, rollout_id: int, analysis: dict[str, Any], reason: str) -> None:
        """The latest gate values, for people and dashboards (no revision bump: routing is unchanged)."""
        with self.engine.begin() as conn:
            conn.execute(
                _R.update()
                .where(_R.c.id == rollout_id, _R.c.state.in_(ACTIVE_STATES))
                .values(analysis=analysis, reason=reason, updated_at=time.time())
            )

    def window(
        self, endpoint: str, since: float, versions: list[tuple[str, int]], limit: int = 20_000
    ) -> list[dict[str, Any]]:
        """The newest logged predictions of the given versions since `since` (at most `limit`), each
        with its label if one arrived (a shadow row takes the label of the row it shadows)."""
        b = t.prediction_batches
        which = or_(*(and_(b.c.model == m, b.c.version == v) for m, v in versions))
        query = select(*NO_INPUTS).where(b.c.endpoint == endpoint, b.c.ts >= since, which).order_by(b.c.ts.desc())
        with self.engine.connect() as conn:
            rows = [p for row in newest_rows(conn, query, limit) for p in expand(row._asdict())][-limit:]
            labels = labels_of(conn, list({p["parent_id"] or p["id"] for p in rows}))
        columns = ("id", "model", "version", "role", "status", "latency_ms", "output", "probabilities", "parent_id")
        out = []
        for p in reversed(rows):
            row = {c: p[c] for c in columns}
            row["label"] = labels.get(p["parent_id"] or p["id"], (None, None))[0]
            out.append(row)
        return out
