"""Stream CSV or Parquet files into profiles, window sketches and drift reports, chunk by chunk (pyarrow).

Not pure (pyarrow, temporary files); the pure statistics live in `driftgate.monitoring.drift`.
Memory stays at one batch plus a bounded row sample, whatever the file size:

* `read`: the batches and schema of a file; `columns`: one Arrow column in its kind's one
  representation (`drift.kinds`), so a boolean file column, an exported 0.0 / 1.0 column and the
  text "true" all count as the same level;
* `sample`: a uniform row sample (bottom-k of random keys);
* `spill`: the sorted finite numeric values of each batch, kept in a bounded temporary file;
* `profile`: one pass over the reference (exact category counts, a row sample whose quantiles give
  the numeric bin edges, numeric values spilled until the edges are known; past the spill budget
  the numeric columns are read a second time instead);
* `sketch`: one pass over the current file, exact counts into sketches;
* `report`: the offline report between two files (`driftgate drift report`), with KS and
  Wasserstein exact from both files' spills, as in the live monitor (`compare_frames`).

The bin edges come from a sample, so they are only approximately the reference quantiles; the
counts in them are exact, which is all the tests need.
"""

from driftgate.monitoring.files.profile import profile_file
from driftgate.monitoring.files.read import BATCH_ROWS, file_schema, iter_batches
from driftgate.monitoring.files.report import report_files
from driftgate.monitoring.files.sketch import sketch_batch, sketch_file
from driftgate.monitoring.files.spill import EXACT_ROWS

__all__ = [
    "BATCH_ROWS",
    "EXACT_ROWS",
    "file_schema",
    "iter_batches",
    "profile_file",
    "report_files",
    "sketch_batch",
    "sketch_file",
]
