"""One retraining run, in its own process: `python -m driftgate.retraining.job REQUEST.json RESULT.json`.

The user's train function runs here, never in the server: a crash, a leak or a hang costs this
process only (the server kills it after `timeout_seconds`), and the heavy work (reading the window,
fitting, scoring) never takes the server's GIL. It runs at the lowest CPU priority, so serving wins a
busy core. Every failure ends as `{"ok": false, "error": ...}` in RESULT.json that says what to fix.
"""

from __future__ import annotations

import os
import sys

from driftgate.child import PARENT_PID_ENV, die_with_parent, kill_process_group, lower_priority

lower_priority("nice")  # before the heavy imports below
if os.environ.get(PARENT_PID_ENV):  # the server that started this run: the run ends with it
    die_with_parent(int(os.environ[PARENT_PID_ENV]), kill_process_group)

import importlib  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections import deque  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import skops.io as sio  # noqa: E402

from driftgate.core.redaction import hidden_fields  # noqa: E402
from driftgate.errors import DriftgateError  # noqa: E402
from driftgate.registry import formats  # noqa: E402
from driftgate.registry.reference import from_parquet, to_parquet  # noqa: E402
from driftgate.registry.registry import Registration, register  # noqa: E402
from driftgate.registry.schema import InputSchema  # noqa: E402
from driftgate.retraining.evaluation import compare  # noqa: E402
from driftgate.retraining.spec import RetrainSpec  # noqa: E402
from driftgate.retraining.window import Split, labelled, split, typed_labels  # noqa: E402
from driftgate.store import Store, VersionRecord  # noqa: E402
from driftgate.validation import module_allowed  # noqa: E402

REFERENCE_ROWS = 5000  # rows of the training frame kept as the new version's reference data


class RunFailed(Exception):
    """Ends the run with this message, shown to the user as the run's error."""


def run(request: dict[str, Any]) -> dict[str, Any]:
    spec = RetrainSpec.model_validate(request["spec"])
    store = Store.open(request["data_dir"], request["db"], migrate=False)
    try:
        return _run(store, spec, request)
    finally:
        store.close()


def _run(store: Store, spec: RetrainSpec, request: dict[str, Any]) -> dict[str, Any]:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    champion = store.models.get(request["champion"]["model"], request["champion"]["version"])
    target = champion.target or "label"
    window = _read_window(store, request["endpoint"], spec, float(request["now"]))
    if len(window) < spec.min_rows:
        raise RunFailed(
            f"insufficient data: {len(window)} labelled predictions in the window ({spec.data}), "
            f"{spec.min_rows} needed (min_rows); send labels with POST /v1/endpoints/{request['endpoint']}/feedback"
        )
    kind = champion.output.get("kind", "classification")
    window = typed_labels(window, champion.output.get("classes") if kind == "classification" else None)
    reference = _reference(store, champion) if spec.data == "reference_and_recent" else None
    try:
        data = split(window, target, spec.holdout, reference)
    except ValueError as exc:
        raise RunFailed(str(exc)) from None
    data = _without_pseudonyms(data, store, request["endpoint"], champion)
    timings["read_s"] = time.perf_counter() - started

    started = time.perf_counter()
    model = _train(spec.train, data, request.get("allowed_modules"))
    timings["train_s"] = time.perf_counter() - started

    started = time.perf_counter()
    try:
        artifact = sio.dumps(model)
    except Exception as exc:
        raise RunFailed(
            f"{spec.train} returned a {type(model).__name__} that skops cannot save ({type(exc).__name__}: {exc}); "
            "return a scikit-learn compatible estimator"
        ) from None
    try:
        candidate = formats.load(artifact, "skops", trust=spec.trust)
    except DriftgateError as exc:
        raise RunFailed(f"the trained model was refused: {exc.message}") from None
    truth = data.holdout[target].to_numpy()
    incumbent = formats.load(_blob(store, champion), champion.artifact_kind, trust=_trusted(champion))
    evaluation = compare(
        kind,
        truth,
        _score(incumbent, champion, data, target),
        _score(candidate, None, data, target),
        spec.min_improvement,
    )
    timings["evaluate_s"] = time.perf_counter() - started

    rows = {
        "train": len(data.train),
        "holdout": len(data.holdout),
        "reference": 0 if reference is None else len(reference),
    }
    lineage = {
        "retraining_run": request["run_id"],
        "parent": {"model": champion.name, "version": champion.version},
        "train": spec.train,
        "data": spec.data,
        "window": {"since": data.since, "until": data.until},
        "rows": rows,
    }
    sample = data.train.tail(REFERENCE_ROWS)
    try:
        record = register(
            store,
            Registration(
                name=champion.name,
                artifact=artifact,
                format="sklearn",
                reference=to_parquet(sample),
                reference_filename="reference.parquet",
                target=target,
                trust=spec.trust,
                description=f"retraining run {request['run_id']} of endpoint {request['endpoint']!r}",
                lineage=lineage,
                metrics={"holdout": evaluation.to_dict()},
                schema=_declared_of(champion.input_schema),
            ),
        )
    except DriftgateError as exc:
        raise RunFailed(f"the trained model could not be registered: {exc.message}") from None
    return {
        "ok": True,
        "candidate": {"model": record.name, "version": record.version},
        "rows": rows,
        "window": lineage["window"],
        "evaluation": evaluation.to_dict(),
        "summary": evaluation.describe(),
        "timings": timings,
    }


def _read_window(store: Store, endpoint: str, spec: RetrainSpec, now: float) -> list[Mapping[str, Any]]:
    since = None if spec.data == "all" else now - spec.window_seconds
    newest: deque[Mapping[str, Any]] = deque(maxlen=spec.max_rows)
    for chunk in store.predictions.iter_with_labels(endpoint, since=since, until=now, role="primary"):
        newest.extend(labelled(chunk))
    return list(newest)


def _reference(store: Store, champion: VersionRecord) -> Any:
    blob = store.models.blob(champion.name, champion.version, "reference")
    if blob is None:
        raise RunFailed(
            f"model {champion.name!r} v{champion.version} has no reference data to train on; use data 'recent' or 'all'"
        )
    return from_parquet(blob)


def _without_pseudonyms(data: Split, store: Store, endpoint: str, champion: VersionRecord) -> Split:
    """Fields the endpoint redacts are gone from the log ('drop') or stored as pseudonyms ('hash') that
    serving never sees: neither can train. A champion that needs one cannot be judged on logged rows."""
    config, _ = store.endpoints.get(endpoint)
    rules = hidden_fields(config.get("redact"))  # a masked text still trains (as stored)
    needed = InputSchema.from_dict(champion.input_schema).names
    lost = [n for n in needed if n in rules or n not in data.holdout.columns]
    if lost:
        why = "redacted by the endpoint config" if all(n in rules for n in lost) else "absent from the logged inputs"
        raise RunFailed(
            f"feature(s) {lost} of {champion.name} v{champion.version} are {why}, so the logged predictions can "
            "neither train a replacement nor judge it against the champion"
        )
    hashed = [n for n in data.train.columns if n in rules]
    if not hashed:
        return data
    return Split(data.train.drop(columns=hashed), data.holdout.drop(columns=hashed), data.since, data.until)


def _train(function: str, data: Split, allowed: list[str] | None) -> Any:
    module_name, _, attribute = function.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except Exception as exc:
        raise RunFailed(f"cannot load train function {function!r}: {type(exc).__name__}: {exc}") from None
    # `allowed.module:os.system` names a function the allowed module merely imported: it must be defined
    # in an allowed package, not only reachable from one.
    defined_in = getattr(target, "__module__", None) or ""
    if allowed is not None and not module_allowed(defined_in, allowed):
        raise RunFailed(
            f"train function {function!r} is defined in {defined_in!r}, outside the packages this server allows "
            f"({', '.join(allowed) or 'none'})"
        )
    try:
        model = target(data.train.copy())
    except Exception as exc:
        traceback.print_exc()  # the whole trace goes to the run's log
        raise RunFailed(f"train function {function!r} failed: {type(exc).__name__}: {exc}") from None
    if not hasattr(model, "predict"):
        raise RunFailed(f"train function {function!r} returned a {type(model).__name__}, which has no predict()")
    return model


def _blob(store: Store, record: VersionRecord) -> bytes:
    blob = store.models.blob(record.name, record.version, "model")
    if blob is None:
        raise RunFailed(f"model {record.name!r} v{record.version} has no stored artifact")
    return blob


def _trusted(record: VersionRecord) -> bool:
    return bool(record.lineage.get("trusted"))


def _score(model: formats.ModelAdapter, record: VersionRecord | None, data: Split, target: str) -> np.ndarray:
    """Predictions on the holdout. The champion gets its frame as serving builds it (its schema's
    columns and types); the candidate the columns it was fitted on, else every input column."""
    features = data.holdout.drop(columns=[target])
    if record is not None:
        schema = InputSchema.from_dict(record.input_schema)
        features = schema.to_frame({n: features[n].tolist() for n in schema.names}, len(features))
    elif model.feature_names:
        features = features[model.feature_names]
    try:
        predictions, _ = model.predict(features)
    except Exception as exc:
        who = "the champion" if record is not None else "the trained model"
        raise RunFailed(f"{who} failed on the held-out rows: {type(exc).__name__}: {exc}") from None
    return np.asarray(predictions)


def _declared_of(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The champion's text and tensor features, declared again for its successor: its training window
    alone would make a text column categorical and lose a tensor's shape and media."""
    kept = [f for f in schema.get("features", []) if f.get("kind") in ("text", "tensor")]
    return {"features": kept} if kept else None


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[1]).read_text())
    try:
        result = run(request)
    except RunFailed as exc:
        result = {"ok": False, "error": str(exc)}
    except Exception as exc:  # a bug of ours or a broken store: still a result that says so
        traceback.print_exc()
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    Path(argv[2]).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
