"""What a use case needs from the place that serves models: a server's data plane, or a CLI process
that only checks and writes the store (`Offline`)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Protocol

from driftgate.core.refs import VersionRef
from driftgate.serving.checks import check_config
from driftgate.serving.endpoint_config import EndpointConfig
from driftgate.serving.runtime import ModelCache, score_reference_rows
from driftgate.store import Store


class Serving(Protocol):
    async def check(self, cfg: EndpointConfig, ref: VersionRef) -> None:
        """Raise if `cfg` could not be applied with `ref`: a version that does not load, a step that
        does not import, a guard that cannot judge the model."""

    async def warm(self, ref: VersionRef, rows: int = 16) -> Any:
        """Load `ref` and score a few of its reference rows; raise if it cannot serve them."""

    async def refresh(self, name: str) -> Any:
        """Apply the endpoint's stored config and rollout here now (nothing where nothing serves)."""

    async def apply(self, name: str, config: dict[str, Any], revision: int) -> Any:
        """Apply a config just stored (nothing where nothing serves)."""


class Offline:
    """`Serving` for a CLI process: loads and checks like a server, serves nothing. Pipeline steps
    must import here, whatever module they come from (a server runs them only from its
    `--pipeline-module` packages: that check happens when it applies the config)."""

    def __init__(self, store: Store, trust_pickle: bool = False) -> None:
        self.store = store
        self.cache = ModelCache(store, trust_pickle=trust_pickle)

    async def check(self, cfg: EndpointConfig, ref: VersionRef) -> None:
        await check_config(cfg, ref, functools.partial(self.cache.get, ref), None)

    async def warm(self, ref: VersionRef, rows: int = 16) -> Any:
        version = await asyncio.to_thread(self.cache.get, ref)
        await asyncio.to_thread(score_reference_rows, self.store, version, rows)
        return version

    async def refresh(self, name: str) -> None:
        return None

    async def apply(self, name: str, config: dict[str, Any], revision: int) -> None:
        return None
