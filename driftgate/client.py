"""`driftgate.Client`: the Python client for a running driftgate server.

>>> client = Client("http://127.0.0.1:8080")            # doctest: +SKIP
>>> client.predict("fraud", [{"amount": 12.5, "merchant": "online"}])["predictions"]  # doctest: +SKIP
[0]
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from driftgate.errors import DriftgateError


class ServerError(DriftgateError):
    """An error answer from the server; `status_code` is the HTTP status it sent."""

    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        super().__init__(str(body.get("error", body)), **{k: v for k, v in body.items() if k != "error"})
        self.status_code = status_code


class Client:
    def __init__(self, url: str = "http://127.0.0.1:8080", token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"error": response.text}
            raise ServerError(response.status_code, body if isinstance(body, dict) else {"error": body})
        return response.json() if response.content else None

    # ---- registry -------------------------------------------------------------------------------

    def register_model(
        self,
        name: str,
        artifact: str | Path | bytes,
        format: str,
        reference: Any = None,
        target: str | None = None,
        trust: bool = False,
        description: str | None = None,
        schema: Mapping[str, Any] | str | Path | None = None,
    ) -> dict[str, Any]:
        """Upload a version. `reference` is a path, bytes, or a pandas DataFrame (sent as Parquet; tensor
        features as list columns). `schema`: a declared schema, {"features": [...]} (a dict, JSON text or
        a path to a JSON file), laid over the one inferred from the reference (text and tensor features)."""
        data = artifact if isinstance(artifact, bytes) else Path(artifact).read_bytes()
        files: dict[str, tuple[str, bytes]] = {"file": ("model", data)}
        if reference is not None:
            files["reference"] = _reference_file(reference)
        form = {"format": format, "trust": str(trust).lower()}
        if target:
            form["target"] = target
        if description:
            form["description"] = description
        if schema is not None:
            form["schema"] = _schema_text(schema)
        return self._check(self.http.post(f"/v1/models/{name}/versions", data=form, files=files))

    def models(self) -> dict[str, Any]:
        return self._check(self.http.get("/v1/models"))

    def model(self, name: str) -> dict[str, Any]:
        return self._check(self.http.get(f"/v1/models/{name}"))

    # ---- endpoints ------------------------------------------------------------------------------

    def deploy(self, endpoint: str, model: str, version: int | str = "latest", **config: Any) -> dict[str, Any]:
        body = {"model": model, "version": version, **config}
        return self._check(self.http.put(f"/v1/endpoints/{endpoint}", json=body))

    def endpoint(self, endpoint: str) -> dict[str, Any]:
        return self._check(self.http.get(f"/v1/endpoints/{endpoint}"))

    # ---- rollouts -------------------------------------------------------------------------------

    def start_rollout(self, endpoint: str, strategy: str, version: int | str, **spec: Any) -> dict[str, Any]:
        """`spec`: steps, weight, min_requests_per_step, step_seconds, analysis, auto, sticky_key, reason..."""
        body = {"strategy": strategy, "version": version, **spec}
        return self._check(self.http.post(f"/v1/endpoints/{endpoint}/rollouts", json=body))

    def rollout(self, endpoint: str) -> dict[str, Any]:
        return self._check(self.http.get(f"/v1/endpoints/{endpoint}/rollouts/current"))

    def rollouts(self, endpoint: str) -> list[dict[str, Any]]:
        return self._check(self.http.get(f"/v1/endpoints/{endpoint}/rollouts"))["rollouts"]

    def rollout_command(self, endpoint: str, command: str, reason: str = "") -> dict[str, Any]:
        """`command`: promote | rollback | pause | resume."""
        url = f"/v1/endpoints/{endpoint}/rollouts/current/{command}"
        return self._check(self.http.post(url, json={"reason": reason}))

    # ---- retraining -----------------------------------------------------------------------------

    def retrain(self, endpoint: str, **spec: Any) -> dict[str, Any]:
        """Start a retraining run; `spec` (train, data, window_seconds, holdout, rollout, ...) lays over the
        endpoint's `retraining` config. Returns the queued run: follow it with `retraining_run`."""
        return self._check(self.http.post(f"/v1/endpoints/{endpoint}/retrain", json=spec))

    def retraining_run(self, run_id: int) -> dict[str, Any]:
        return self._check(self.http.get(f"/v1/retraining-runs/{run_id}"))

    def retraining_runs(self, endpoint: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, **({"endpoint": endpoint} if endpoint else {})}
        return self._check(self.http.get("/v1/retraining-runs", params=params))["runs"]

    def wait_for_run(self, run_id: int, timeout: float = 600.0, poll: float = 0.25) -> dict[str, Any]:
        """The run once it has ended (succeeded, rejected or failed); TimeoutError if it has not by then."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.retraining_run(run_id)
            if run["state"] not in ("queued", "running"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"retraining run {run_id} still {run['state']} after {timeout:g} s")
            time.sleep(poll)

    def predict(self, endpoint: str, rows: Any) -> dict[str, Any]:
        """`rows`: a list of dicts, or a pandas DataFrame (sent as dataframe_split)."""
        if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
            body: dict[str, Any] = {
                "dataframe_split": {"columns": [str(c) for c in rows.columns], "data": rows.to_numpy().tolist()}
            }
        else:
            body = {"instances": list(rows)}
        content = _dumps(body)
        return self._check(
            self.http.post(
                f"/v1/endpoints/{endpoint}/predict", content=content, headers={"content-type": "application/json"}
            )
        )

    def feedback(self, endpoint: str, labels: dict[str, Any] | list[tuple[str, Any]]) -> dict[str, Any]:
        pairs = labels.items() if isinstance(labels, dict) else labels
        body = {"labels": [{"id": i, "label": label} for i, label in pairs]}
        content = _dumps(body)
        return self._check(
            self.http.post(
                f"/v1/endpoints/{endpoint}/feedback", content=content, headers={"content-type": "application/json"}
            )
        )

    def events(self, endpoint: str, events: Iterable[Mapping[str, Any] | Sequence[Any]]) -> dict[str, Any]:
        """Report outcome events: `{"id", "name", "ts"?}` dicts or `(id, name)` / `(id, name, ts)` tuples.

        >>> client.events("search", [(ids[0], "user_retried")])  # doctest: +SKIP
        {'accepted': 1, 'unknown_ids': []}
        """
        body = {"events": [dict(e) if isinstance(e, Mapping) else _event(*e) for e in events]}
        return self._check(
            self.http.post(
                f"/v1/endpoints/{endpoint}/events",
                content=_dumps(body),
                headers={"content-type": "application/json"},
            )
        )

    def review_queue(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        params = {"endpoint": endpoint} if endpoint else {}
        return self._check(self.http.get("/v1/review", params=params))["items"]

    def review(self, prediction_id: str, label: Any) -> dict[str, Any]:
        return self._check(self.http.post(f"/v1/review/{prediction_id}", json={"label": label}))

    def ready(self) -> bool:
        try:
            return self.http.get("/v2/health/ready").status_code == 200
        except httpx.HTTPError:
            return False


def _dumps(body: Any) -> bytes:
    return orjson.dumps(body, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY)


def _json_default(value: Any) -> Any:
    """What orjson cannot write itself: pandas' missing markers (`pd.NA`, `pd.NaT`) become null, as a
    NaN float already does; numpy scalars and timestamps become their plain values."""
    pd = sys.modules.get("pandas")  # no value can be a pandas object unless pandas is loaded
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return None
    if hasattr(value, "isoformat"):  # pd.Timestamp
        return value.isoformat()
    if callable(getattr(value, "item", None)):  # numpy scalars orjson does not take (datetime64, float16...)
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _event(prediction_id: str, name: str, ts: float | None = None) -> dict[str, Any]:
    return {"id": prediction_id, "name": name} if ts is None else {"id": prediction_id, "name": name, "ts": ts}


def _reference_file(reference: Any) -> tuple[str, bytes]:
    if hasattr(reference, "to_parquet"):
        buf = io.BytesIO()
        _nested_as_lists(reference).to_parquet(buf, index=False)
        return ("reference.parquet", buf.getvalue())
    if isinstance(reference, bytes):
        return ("reference", reference)
    path = Path(reference)
    return (path.name, path.read_bytes())


def _nested_as_lists(frame: Any) -> Any:
    """Cells that are arrays of 2+ dimensions (an image a row) as nested lists: Parquet stores lists of
    lists, not n-d arrays."""
    nd = [c for c in frame.columns if frame[c].dtype == object and any(getattr(v, "ndim", 1) > 1 for v in frame[c])]
    if not nd:
        return frame
    frame = frame.copy()
    for column in nd:
        frame[column] = [v.tolist() if getattr(v, "ndim", 1) > 1 else v for v in frame[column]]
    return frame


def _schema_text(schema: Mapping[str, Any] | str | Path) -> str:
    """A declared schema as the form field's JSON text: a mapping, JSON text, or a JSON file's path."""
    if isinstance(schema, Mapping):
        return orjson.dumps(dict(schema)).decode()
    if isinstance(schema, Path) or not schema.lstrip().startswith("{"):
        return Path(schema).read_text()
    return schema
