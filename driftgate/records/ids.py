"""Prediction ids: time-ordered (48-bit milliseconds + 80 random bits, hex), so inserts stay local in
indexes and ids sort by creation time, like UUIDv7."""

from __future__ import annotations

import os
import time


def new_ids(n: int) -> list[str]:
    prefix = f"{int(time.time() * 1000):012x}"
    noise = os.urandom(10 * n).hex()
    return [prefix + noise[i * 20 : (i + 1) * 20] for i in range(n)]
