from __future__ import annotations

import subprocess
import sys

from driftgate.rollout.policy import Route, SingleVersion, VersionRef


def test_single_version_routes_everything_to_its_target() -> None:
    policy = SingleVersion(VersionRef("m", 3))
    assert {policy.route(key) for key in (None, "a", "b")} == {Route(VersionRef("m", 3))}
    assert policy.versions == (VersionRef("m", 3),)


def test_rollout_decisions_import_no_web_or_database_code() -> None:
    code = (
        "import sys, driftgate.rollout.policy\n"
        "bad = [m for m in ('fastapi', 'starlette', 'sqlalchemy', 'httpx', 'uvicorn') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
