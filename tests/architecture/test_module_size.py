"""No module of driftgate over 400 lines (docs/architecture.md): a module that outgrows it holds more than
one concept and is split by concept. Generated protobuf modules (`*_pb2*`) are not ours to split."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "driftgate"
MAX_LINES = 400


def _line_count(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def test_no_module_over_400_lines() -> None:
    sizes = {
        str(path.relative_to(ROOT.parent)): _line_count(path) for path in ROOT.rglob("*.py") if "_pb2" not in path.name
    }
    assert sizes, "no modules found: the test looks in the wrong place"
    too_long = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines (split them by concept): {sorted(too_long.items())}"
