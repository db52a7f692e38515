"""Label-free performance estimation: CBPE for classifiers, DLE for regressors (numpy and scipy;
scikit-learn only once a DLE is fitted). See `classification` and `regression`."""

from driftgate.monitoring.estimation.calibration import Isotonic
from driftgate.monitoring.estimation.classification import ClassificationEstimator, MetricEstimate
from driftgate.monitoring.estimation.labels import label_key, label_keys
from driftgate.monitoring.estimation.regression import RegressionEstimator

__all__ = [
    "ClassificationEstimator",
    "Isotonic",
    "MetricEstimate",
    "RegressionEstimator",
    "label_key",
    "label_keys",
]
