"""The prediction log's rows, in one place for their users: what a request hands over (`LogBatch`,
`merge`), how it is stored (`encode`: the one form `row_format` describes) and read back (`expand`,
which also reads every older form). The parts live in `log_batch`, `row_format`, `row_encode` and
`row_decode`."""

from driftgate.core.log_batch import LogBatch, merge
from driftgate.core.row_decode import as_dicts, decode_inputs, decode_list, decode_statuses, expand, from_legacy
from driftgate.core.row_encode import encode, from_prediction
from driftgate.core.row_format import COLUMNS, PREDICTION_COLUMNS, REVIEW_STATUSES, Row, count_rows, dumps

__all__ = [
    "COLUMNS",
    "PREDICTION_COLUMNS",
    "REVIEW_STATUSES",
    "LogBatch",
    "Row",
    "as_dicts",
    "count_rows",
    "decode_inputs",
    "decode_list",
    "decode_statuses",
    "dumps",
    "encode",
    "expand",
    "from_legacy",
    "from_prediction",
    "merge",
]
