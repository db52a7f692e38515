"""The rollout controller: starts rollouts, analyses them from the prediction log, and moves them on.

Not pure (it reads and writes the store); the decisions come from `analysis` and `decision`.
Every replica runs `tick()`; a move is a compare-and-set on the rollout row, so two replicas
deciding at once move it only once. The log is shared, so every replica sees the same numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from driftgate.core.refs import VersionRef
from driftgate.errors import BadRequest, Conflict, NotFound
from driftgate.registry.registry import check_version
from driftgate.rollout.analysis import Gate, VersionSample, agreement, evaluate_gates, summary
from driftgate.rollout.decision import Decision, decide
from driftgate.rollout.spec import ACTIVE_STATES, KEEP_PREVIOUS_S, RolloutSpec
from driftgate.rollout.standby import How, late_rollback
from driftgate.rollout.view import describe as describe  # re-exported: routes and the CLI read it here
from driftgate.store import Store
from driftgate.validation import parse

log = logging.getLogger("driftgate.rollout")


def parse_spec(body: dict[str, Any]) -> RolloutSpec:
    return parse(RolloutSpec, body, "rollout")


def ref_of(doc: dict[str, Any]) -> VersionRef:
    return VersionRef(doc["model"], int(doc["version"]))


def _is_error(status: str) -> bool:
    return status in ("error", "timeout")


def samples(
    rows: list[dict[str, Any]], champion: VersionRef, candidate: VersionRef, classification: bool
) -> tuple[VersionSample, VersionSample, list[tuple[Any, Any]]]:
    """Per-version samples and (candidate, champion) output pairs on the same inputs."""
    candidate_rows, champion_rows = _by_version(rows, champion, candidate)
    return (
        _version_sample(candidate_rows, classification),
        _version_sample(champion_rows, classification),
        _pairs(rows, champion, candidate),
    )


def _by_version(
    rows: list[dict[str, Any]], champion: VersionRef, candidate: VersionRef
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The candidate's rows and the champion's primary rows (not its shadow copies)."""
    candidate_rows: list[dict[str, Any]] = []
    champion_rows: list[dict[str, Any]] = []
    for r in rows:
        ref = ref_of(r)
        if ref == candidate:
            candidate_rows.append(r)
        elif ref == champion and r["role"] == "primary":
            champion_rows.append(r)
    return candidate_rows, champion_rows


def _pairs(rows: list[dict[str, Any]], champion: VersionRef, candidate: VersionRef) -> list[tuple[Any, Any]]:
    """(candidate, champion) outputs of a row and its parent (shadow and primary), both answered."""
    by_id = {r["id"]: r for r in rows}
    pairs: list[tuple[Any, Any]] = []
    for r in rows:
        parent = by_id.get(r["parent_id"]) if r["parent_id"] else None
        if parent is None or _is_error(r["status"]) or _is_error(parent["status"]):
            continue
        ref, pref = ref_of(r), ref_of(parent)
        if ref == candidate and pref == champion:
            pairs.append((r["output"], parent["output"]))
        elif ref == champion and pref == candidate:
            pairs.append((parent["output"], r["output"]))
    return pairs


def _version_sample(group: list[dict[str, Any]], classification: bool) -> VersionSample:
    ok = [r for r in group if not _is_error(r["status"])]
    probs = [max(r["probabilities"]) for r in ok if r["probabilities"]]
    scores = [score for score in (_label_score(r, classification) for r in ok) if score is not None]
    return VersionSample(
        rows=len(group),
        errors=len(group) - len(ok),
        latencies_ms=np.asarray([r["latency_ms"] for r in ok], dtype=float),
        outputs=[r["output"] for r in ok if r["output"] is not None],
        confidences=np.asarray(probs, dtype=float) if probs else None,
        label_scores=np.asarray(scores, dtype=float),
        classification=classification,
    )


def _label_score(row: dict[str, Any], classification: bool) -> float | None:
    """1.0 / 0.0 for a right / wrong class, else the absolute error; None without a label, or for an
    output or label that is not a number."""
    if row["label"] is None or row["output"] is None:
        return None
    if classification:
        return float(row["output"] == row["label"] or str(row["output"]) == str(row["label"]))
    try:
        return abs(float(row["output"]) - float(row["label"]))
    except (TypeError, ValueError):
        return None


class RolloutController:
    def __init__(self, store: Store, dataplane: Any = None) -> None:
        self.store = store
        self.dataplane = dataplane
        self._next_analysis: dict[Any, float] = {}  # rollout id -> monotonic time of its next analysis

    # ---- people's commands (called from a worker thread, except where async) --------------------

    def prepare(self, endpoint: str, body: dict[str, Any]) -> tuple[RolloutSpec, VersionRef, VersionRef]:
        spec = parse_spec(body)
        config, _ = self.store.endpoints.get(endpoint)
        champion = VersionRef(config["model"], int(config["version"]))
        model = spec.model or champion.model
        number = self.store.models.resolve(model, check_version(spec.version))
        self.store.models.get(model, number)  # 404 for a version that does not exist
        candidate = VersionRef(model, number)
        if candidate == champion:
            raise BadRequest(f"{candidate} already serves endpoint {endpoint!r}; name another version", field="version")
        if spec.rollback_of is not None:
            raise BadRequest("rollback_of is set by driftgate when a rollback starts a rollout", field="rollback_of")
        return spec, champion, candidate

    def start(
        self, endpoint: str, spec: RolloutSpec, champion: VersionRef, candidate: VersionRef, actor: str
    ) -> dict[str, Any]:
        row = self.store.rollouts.start(
            endpoint,
            strategy=spec.strategy,
            baseline={"model": champion.model, "version": champion.version},
            candidate={"model": candidate.model, "version": candidate.version},
            spec=spec.model_dump(),
            weight=spec.initial_weight(),
            actor=actor,
            reason=spec.reason,
        )
        log.info("rollout %s started on %s: %s -> %s (%s)", row["id"], endpoint, champion, candidate, spec.strategy)
        return row

    def _active(self, endpoint: str) -> dict[str, Any]:
        self.store.endpoints.get(endpoint)  # 404 for an unknown endpoint
        row = self.store.rollouts.active(endpoint)
        if row is None:
            raise Conflict(f"endpoint {endpoint!r} has no rollout running", endpoint=endpoint)
        return row

    def current(self, endpoint: str) -> dict[str, Any]:
        self.store.endpoints.get(endpoint)
        row = self.store.rollouts.latest(endpoint)
        if row is None:
            raise NotFound(f"endpoint {endpoint!r} has never had a rollout", endpoint=endpoint)
        return row

    def promote(self, endpoint: str, actor: str, reason: str = "") -> dict[str, Any]:
        return self._finish(self._active(endpoint), "promoted", actor, reason or "promoted by hand")

    def rollback(self, endpoint: str, actor: str, reason: str = "") -> dict[str, Any]:
        """Roll back what can be rolled back at once: the running rollout, or a blue-green one promoted
        within its `keep_previous_s`. A later rollback loads a version: `rollout.rollback.roll_back`."""
        row, how = self.rollback_target(endpoint, time.time())
        if how == "new_rollout":
            previous, window = ref_of(row["baseline"]), row["spec"].get("keep_previous_s", KEEP_PREVIOUS_S)
            raise Conflict(
                f"endpoint {endpoint!r} has no rollout running; rollout {row['id']} was promoted more than "
                f"keep_previous_s={window} s ago, so {previous} is no longer loaded: a rollback is now a new "
                "rollout to it (POST .../rollouts/current/rollback, or `driftgate rollback`)",
                endpoint=endpoint,
            )
        return self.rollback_now(row, actor, reason)

    def rollback_target(self, endpoint: str, now: float) -> tuple[dict[str, Any], How]:
        """The rollout a rollback acts on and how: the running one (instant), else the last one if it is
        a promoted blue-green rollout still serving (`standby.late_rollback`); Conflict otherwise."""
        config, _ = self.store.endpoints.get(endpoint)  # 404 for an unknown endpoint
        row = self.store.rollouts.active(endpoint)
        if row is not None:
            return row, "instant"
        row = self.store.rollouts.latest(endpoint)
        plan = late_rollback(endpoint, row, VersionRef(config["model"], int(config["version"])), now)
        if plan.how is None or row is None:
            raise Conflict(plan.refusal, endpoint=endpoint)
        return row, plan.how

    def rollback_now(self, row: dict[str, Any], actor: str, reason: str) -> dict[str, Any]:
        """Traffic back on the rollout's baseline, which is loaded: running, or kept after promotion."""
        if row["state"] in ACTIVE_STATES:
            return self._finish(row, "rolled_back", actor, reason or "rolled back by hand")
        config, _ = self.store.endpoints.get(row["endpoint"])
        back = {**config, "model": row["baseline"]["model"], "version": row["baseline"]["version"]}
        age = time.time() - float(row["finished_at"])
        previous = ref_of(row["baseline"])
        why = f"{reason or 'rolled back by hand'} ({age:.0f} s after promotion: instant, {previous} was loaded)"
        log.warning("rollout %s on %s rolled back after promotion: %s", row["id"], row["endpoint"], why)
        return self._move(row, "rollback", actor, why, state="rolled_back", weight=0.0, endpoint_config=back)

    def rollout_back(self, promoted: dict[str, Any], actor: str, reason: str) -> dict[str, Any]:
        """After the window: a blue-green rollout to the promoted one's baseline (warmed by the caller),
        promoted at once. It keeps nothing loaded and cannot be rolled back in turn."""
        endpoint = promoted["endpoint"]
        row, how = self.rollback_target(endpoint, time.time())
        if row["id"] != promoted["id"] or how != "new_rollout":
            raise Conflict(
                f"rollout {promoted['id']} on {endpoint!r} changed meanwhile; read it again", endpoint=endpoint
            )
        serving, previous = ref_of(promoted["candidate"]), ref_of(promoted["baseline"])
        why = (
            f"{reason or 'rolled back by hand'} (rollout {promoted['id']} was promoted past its keep_previous_s: "
            f"a new rollout back to {previous})"
        )
        spec = RolloutSpec(
            strategy="blue_green",
            version=previous.version,
            model=previous.model,
            keep_previous_s=0.0,
            rollback_of=int(promoted["id"]),
            reason=why,
        )
        started = self.start(endpoint, spec, serving, previous, actor)
        return self._finish(started, "promoted", actor, why)

    def pause(self, endpoint: str, actor: str, reason: str = "") -> dict[str, Any]:
        row = self._active(endpoint)
        if row["state"] == "paused":
            return row
        return self._move(row, "pause", actor, reason or "paused by hand", state="paused")

    def resume(self, endpoint: str, actor: str, reason: str = "") -> dict[str, Any]:
        row = self._active(endpoint)
        if row["state"] == "running":
            return row
        # The step's clock restarts: time spent paused says nothing about the candidate.
        return self._move(row, "resume", actor, reason or "resumed by hand", state="running", step=row["step"])

    def _finish(self, row: dict[str, Any], state: str, actor: str, reason: str) -> dict[str, Any]:
        config = self._promoted_config(row) if state == "promoted" else None
        weight = 100.0 if state == "promoted" else 0.0
        action = "promote" if state == "promoted" else "rollback"
        log.warning("rollout %s on %s %s: %s", row["id"], row["endpoint"], state, reason)
        return self._move(row, action, actor, reason, state=state, weight=weight, endpoint_config=config)

    def _promoted_config(self, row: dict[str, Any]) -> dict[str, Any]:
        """The endpoint's config with the candidate as its version (written with the promotion)."""
        config, _ = self.store.endpoints.get(row["endpoint"])
        return {**config, "model": row["candidate"]["model"], "version": row["candidate"]["version"]}

    def _move(self, row: dict[str, Any], action: str, actor: str, reason: str, **changes: Any) -> dict[str, Any]:
        moved = self.store.rollouts.transition(row, action=action, actor=actor, reason=reason, **changes)
        if moved is None:
            raise Conflict(
                f"rollout {row['id']} on {row['endpoint']!r} changed meanwhile; read it again", endpoint=row["endpoint"]
            )
        return moved

    # ---- analysis -------------------------------------------------------------------------------

    def analyse(self, row: dict[str, Any], now: float | None = None) -> tuple[list[Gate], dict[str, Any], Decision]:
        now = time.time() if now is None else now
        spec = RolloutSpec.model_validate(row["spec"])
        champion, candidate = ref_of(row["baseline"]), ref_of(row["candidate"])
        classification = self._classification(candidate)
        rows = self.store.rollouts.window(
            row["endpoint"],
            row["started_at"],
            [(champion.model, champion.version), (candidate.model, candidate.version)],
        )
        cand, champ, pairs = samples(rows, champion, candidate, classification)
        gates = evaluate_gates(spec.analysis, cand, champ, pairs)
        step_rows = self.store.predictions.count_range(
            row["endpoint"], since=row["step_started_at"], model=candidate.model, version=candidate.version, role=None
        )
        decision = decide(spec, row["step"], step_rows, now - row["step_started_at"], gates)
        report = {
            "gates": [g.to_dict() for g in gates],
            "verdict": decision.verdict,
            "decision": decision.action,
            "step_rows": step_rows,
            "pairs": len(pairs),
            "agreement": agreement(pairs, spec.analysis.agreement_tolerance, classification),
            "versions": {"candidate": summary(cand), "champion": summary(champ)},
            "at": now,
        }
        return gates, report, decision

    def _classification(self, ref: VersionRef) -> bool:
        try:
            return self.store.models.get(ref.model, ref.version).output.get("kind") == "classification"
        except Exception:  # a version gone from the registry: treat outputs as labels
            return True

    def tick(self, before: Callable[[], None] | None = None) -> list[dict[str, Any]]:
        """Analyse every running rollout and act on the decisions; returns the rows that moved.

        `before` runs once when there is something to analyse (the app flushes its log there).
        """
        moved = []
        now = time.monotonic()
        running = [r for r in self.store.rollouts.running() if now >= self._next_analysis.get(r["id"], 0.0)]
        if running and before is not None:
            before()
        for row in running:
            started = time.thread_time()  # CPU time: waiting on the database holds no GIL
            try:
                _, report, decision = self.analyse(row)
                result = self._act(row, report, decision)
                if result is not None:
                    moved.append(result)
            except Exception:  # one broken rollout must not stop the others' analysis
                log.exception("analysis of rollout %s failed", row["id"])
            self._next_analysis[row["id"]] = time.monotonic() + _analysis_gap(row, time.thread_time() - started)
        return moved

    def _act(self, row: dict[str, Any], report: dict[str, Any], decision: Decision) -> dict[str, Any] | None:
        actor = "controller"
        if decision.action == "hold":
            self.store.rollouts.save_analysis(row["id"], report, decision.reason)
            return None
        if decision.action in ("promote", "rollback"):
            state = "promoted" if decision.action == "promote" else "rolled_back"
            weight = 100.0 if state == "promoted" else 0.0
            config = self._promoted_config(row) if state == "promoted" else None
            log.warning("rollout %s on %s %s: %s", row["id"], row["endpoint"], state, decision.reason)
            return self.store.rollouts.transition(
                row,
                action=decision.action,
                actor=actor,
                reason=decision.reason,
                state=state,
                weight=weight,
                endpoint_config=config,
                analysis=report,
            )
        if decision.action == "pause":
            return self.store.rollouts.transition(
                row, action="pause", actor=actor, reason=decision.reason, state="paused", analysis=report
            )
        spec = RolloutSpec.model_validate(row["spec"])
        step = row["step"] + 1
        log.info("rollout %s on %s: step %d -> %g%%", row["id"], row["endpoint"], step + 1, spec.steps[step])
        return self.store.rollouts.transition(
            row,
            action="advance",
            actor=actor,
            reason=decision.reason,
            step=step,
            weight=spec.steps[step],
            analysis=report,
        )


# An analysis reads up to 20,000 logged rows in a thread of the serving process: tens of ms of GIL
# time that requests wait behind. It may take at most 1/ANALYSIS_DUTY of the time, and rollouts a
# person decides (shadow, blue-green, A/B, canary with auto off) are analysed every MANUAL_GAP_S:
# with a shadow analysed every second, the primary's p99 at 100 req/s went from 6.5 to 13 ms.
ANALYSIS_DUTY = 50
MANUAL_GAP_S = 5.0
MAX_GAP_S = 30.0  # a canary's decisions are never deferred longer than this


def _analysis_gap(row: dict[str, Any], cpu_seconds: float) -> float:
    automatic = row["strategy"] == "canary" and bool(row["spec"].get("auto", True))
    return min(max(0.0 if automatic else MANUAL_GAP_S, ANALYSIS_DUTY * cpu_seconds), MAX_GAP_S)
