"""HTTP routes, one module per resource."""

from __future__ import annotations

from typing import Any

JSON = "application/json"


def request_body(schema: dict[str, Any], example: Any, other: dict[str, Any] | None = None) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its raw body itself (for speed) but should still document
    it: a required JSON body with `schema` and `example`, plus `other` media types ({type: spec})."""
    content: dict[str, Any] = {JSON: {"schema": schema, "example": example}, **(other or {})}
    return {"requestBody": {"required": True, "content": content}}
