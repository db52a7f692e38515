"""The demo's synthetic card-transaction fraud data, before and during a pandemic-like shift.

During the shift online spending becomes normal: more online transactions, larger baskets,
shoppers closer to home (data drift), and being online stops meaning "probably fraud" (concept
drift), so a model trained before raises false alarms afterwards.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MERCHANTS = ("grocery", "restaurant", "travel", "electronics", "online_retail", "fuel")
FEATURES = ("amount", "hour", "distance_km", "tx_last_24h", "online", "merchant")
TARGET = "is_fraud"


def transactions(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """`shift` in [0, 1]: 0 is the world the model was trained in, 1 the full pandemic."""
    rng = np.random.default_rng(seed)
    online = rng.random(n) < 0.2 + 0.45 * shift
    amount = np.exp(rng.normal(3.4 + 0.6 * shift * online, 0.9, n)).round(2)
    hour = np.clip(rng.normal(14 - 2 * shift, 4.5, n), 0, 23).astype(int)
    distance = rng.exponential(12 * (1 - 0.6 * shift), n).round(1)
    tx_24h = rng.poisson(3 + 2 * shift, n)
    weights = np.array([0.30, 0.20, 0.12, 0.10, 0.13, 0.15])
    weights = weights + shift * np.array([0.05, -0.12, -0.10, 0.05, 0.17, -0.05])
    merchant = rng.choice(MERCHANTS, n, p=weights / weights.sum())
    night = (hour < 6) | (hour > 22)
    # Before the shift online and big baskets are suspicious; during it only the rest stays so.
    logit = (
        -4.6
        + (2.0 - 1.7 * shift) * online
        + (0.9 - 0.6 * shift) * np.log(amount / 40)
        + 0.04 * distance
        + 1.1 * night
        + 0.8 * (merchant == "electronics")
    )
    fraud = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "amount": amount,
            "hour": hour,
            "distance_km": distance,
            "tx_last_24h": tx_24h,
            "online": online.astype(int),
            "merchant": merchant,
            TARGET: fraud.astype(int),
        }
    )


def train(frame: pd.DataFrame) -> object:
    """The data scientist's model: a scikit-learn pipeline over named columns."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = ["amount", "hour", "distance_km", "tx_last_24h", "online"]
    pre = ColumnTransformer(
        [("num", StandardScaler(), numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), ["merchant"])]
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000, class_weight="balanced"))])
    return model.fit(frame[list(FEATURES)], frame[TARGET])
