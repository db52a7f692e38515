"""API tokens, stored as SHA-256 digests (they are random 256-bit secrets, so no slow hash is needed)."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from sqlalchemy import Engine, select

from driftgate.errors import BadRequest
from driftgate.store import tables as t

SCOPES = ("predict", "admin", "metrics")  # metrics: only /metrics, with `--metrics-auth`


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, scope: str, name: str = "") -> str:
        """A new token; the plaintext is returned once and never stored."""
        if scope not in SCOPES:
            raise BadRequest(f"scope must be one of {list(SCOPES)}, got {scope!r}", field="scope")
        token = f"dg_{scope}_{secrets.token_urlsafe(32)}"
        token_id = secrets.token_hex(8)
        with self.engine.begin() as conn:
            conn.execute(
                t.tokens.insert().values(
                    id=token_id,
                    name=name or token_id,
                    scope=scope,
                    token_sha256=digest(token),
                    created_at=time.time(),
                    revoked=False,
                )
            )
        return token

    def scopes_by_digest(self) -> dict[str, str]:
        """All live tokens as {digest: scope}; the API caches this and refreshes it."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.tokens.c.token_sha256, t.tokens.c.scope).where(t.tokens.c.revoked.is_(False))
            ).all()
        return {d: s for d, s in rows}

    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.tokens.c.id, t.tokens.c.name, t.tokens.c.scope, t.tokens.c.created_at, t.tokens.c.revoked)
            ).all()
        return [r._asdict() for r in rows]

    def revoke(self, token_id: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(t.tokens.update().where(t.tokens.c.id == token_id).values(revoked=True))
        return result.rowcount > 0
