"""driftgate with its prediction log off.

driftgate has no switch for this, so "off" means: the same app (`create_app`) with the log written by
a thread of the server (`log_process=False`) whose `Recorder.record` drops every batch at hand-over,
so nothing is encoded or written. The request path still admits the rows (reserves log room), builds
the log batch and ids; only the writer's work is gone. (A queue of zero rows no longer works for
this: admission answers 413 to requests the log could never hold.)

Usage: python driftgate_nolog.py DATA_DIR PORT   (run in driftgate's venv)
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from driftgate.records.recorder import Recorder
from driftgate.server.app import create_app
from driftgate.settings import Settings

if __name__ == "__main__":
    port = int(sys.argv[2])
    Recorder.record = lambda self, batch: True  # type: ignore[method-assign]  # dropped at hand-over
    settings = Settings(data_dir=Path(sys.argv[1]), port=port, log_process=False)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=30)
