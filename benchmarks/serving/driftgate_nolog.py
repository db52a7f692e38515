"""driftgate with its prediction log off.

driftgate has no switch for this, so "off" means: the same app (`create_app`) with a recorder queue
of zero rows (`log_max_queued_rows=0`), so every batch is dropped at hand-over (counted in the
`log_dropped` metric) and nothing is encoded or written. The request path still builds the log
batch and ids; only the writer thread's work is gone.

Usage: python driftgate_nolog.py DATA_DIR PORT   (run in driftgate's venv)
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from driftgate.api.app import create_app
from driftgate.settings import Settings

if __name__ == "__main__":
    port = int(sys.argv[2])
    settings = Settings(data_dir=Path(sys.argv[1]), port=port, log_max_queued_rows=0)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=30)
