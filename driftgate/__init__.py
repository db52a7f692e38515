"""driftgate: serve, roll out, log, monitor and retrain ML models in production."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Client", "__version__"]


def __getattr__(name: str) -> object:
    # Lazy so that `import driftgate.monitoring.drift` stays free of HTTP imports.
    if name == "Client":
        from driftgate.client import Client

        return Client
    raise AttributeError(name)
