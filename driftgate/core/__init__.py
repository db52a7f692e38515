"""Leaf types and formats every layer may import: version references, prediction ids, the encoding of
logged rows' fields, outcome events, metric points, rollout states. Nothing here imports another
driftgate package (bar `driftgate.errors`), which is what keeps the layers above pointing one way."""
