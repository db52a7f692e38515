"""Pointing an endpoint at a model version: `PUT /v1/endpoints/{e}` and `driftgate deploy` alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from driftgate.core.refs import VersionRef
from driftgate.errors import Conflict
from driftgate.registry.registry import check_version, validate_name
from driftgate.retraining.spec import RetrainSpec
from driftgate.services.serving import Serving
from driftgate.serving.dataplane import parse_config
from driftgate.store import Store


@dataclass(frozen=True)
class Deployed:
    endpoint: str
    config: dict[str, Any]
    """As stored: the version resolved to its number."""
    revision: int
    applied: Any
    """What `Serving.apply` returned: the endpoint's state in a server, None in the CLI."""


class EndpointService:
    def __init__(
        self,
        store: Store,
        serving: Serving,
        check_train: Callable[[RetrainSpec, str], None] | None = None,
    ) -> None:
        """`check_train`: refuses a retraining config this process may not run (a server's
        `--train-module` allow-list); None where the operator runs code on their own machine."""
        self.store = store
        self.serving = serving
        self.check_train = check_train

    async def deploy(self, endpoint: str, body: Mapping[str, Any], *, actor: str, reason: str) -> Deployed:
        """Check, store and apply an endpoint config. Refused (nothing stored): a bad name or
        config, a version that does not resolve or cannot serve, and a version change while a
        rollout runs (the rollout's baseline would stay on the old version)."""
        validate_name(endpoint, what="endpoint name", field="endpoint")
        config = parse_config(dict(body))
        version = await asyncio.to_thread(self.store.models.resolve, config.model, check_version(config.version))
        active = await asyncio.to_thread(self.store.rollouts.active, endpoint)
        baseline = None if active is None else (active["baseline"]["model"], active["baseline"]["version"])
        if active is not None and baseline != (config.model, version):
            raise Conflict(
                f"endpoint {endpoint!r} has a {active['strategy']} rollout running; promote or roll it back "
                "before changing its version",
                endpoint=endpoint,
            )
        # Load first: a version that cannot serve, or a step that does not import, never reaches the store
        # or the other replicas.
        await self.serving.check(config, VersionRef(config.model, version))
        if config.retraining is not None and self.check_train is not None:
            self.check_train(config.retraining, "retraining.train")
        stored = config.model_copy(update={"version": version}).model_dump()
        revision = await asyncio.to_thread(self.store.endpoints.put, endpoint, stored, actor=actor, reason=reason)
        applied = await self.serving.apply(endpoint, stored, revision)
        return Deployed(endpoint, stored, revision, applied)
