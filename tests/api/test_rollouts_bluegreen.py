"""Blue-green rollback after promotion, through a real server on loopback (issue 20): within
`keep_previous_s` the previous version is still loaded and a rollback returns traffic to it at once;
after it, a rollback is a new rollout back to it. The CLI runs the route's code."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from driftgate.client import Client, ServerError
from driftgate.core.refs import VersionRef
from driftgate.errors import Conflict
from driftgate.rollout.controller import RolloutController
from tests.api.test_rollouts import FAST, rows, server, two_versions, until  # noqa: F401 (fixtures)
from tests.conftest import LiveServer, make_server
from tests.test_cli import run

V1, V2 = VersionRef("clf", 1), VersionRef("clf", 2)


def loaded(srv: LiveServer) -> set[VersionRef]:
    return set(srv.app.state.services.dataplane.state("clf").versions)


def audit(client: Client) -> list[dict[str, object]]:
    return client.http.get("/v1/endpoints/clf/history").json()["history"]


def test_a_promoted_blue_green_rolls_back_at_once_within_its_window(
    two_versions: Client,  # noqa: F811
    server: LiveServer,  # noqa: F811
) -> None:
    client = two_versions
    client.start_rollout("clf", "blue_green", 2)
    plane = server.app.state.services.dataplane
    promoted = client.rollout_command("clf", "promote")
    assert promoted["state"] == "promoted" and promoted["keep_previous_until"] > time.time() + 500
    state = plane.state("clf")
    assert set(state.versions) == {V1, V2}  # the old one stays loaded after the switch is confirmed
    warm_v1, warm_calls = state.versions[V1], state.batchers[V1]
    assert client.predict("clf", rows(1, 0))["version"] == 2

    answer = client.rollout_command("clf", "rollback", reason="conversion dropped")
    assert answer["rolled_back"] == "instant"
    assert (answer["id"], answer["state"]) == (promoted["id"], "rolled_back")
    # At once: the next request is answered by v1, from the very model and calls kept warm (no reload).
    assert client.predict("clf", rows(1, 1))["version"] == 1
    state = plane.state("clf")
    assert state.versions[V1] is warm_v1 and state.batchers[V1] is warm_calls
    assert set(state.versions) == {V1}
    assert client.endpoint("clf")["config"]["version"] == 1
    assert [r["state"] for r in client.rollouts("clf")] == ["rolled_back"]
    last = audit(client)[0]
    assert last["action"] == "rollout.rollback" and last["actor"] == "api"
    assert "conversion dropped" in str(last["detail"]) and "instant" in str(last["detail"])
    # Nothing is left to undo: a repeated rollback changes nothing.
    with pytest.raises(ServerError) as err:
        client.rollout_command("clf", "rollback")
    assert err.value.status_code == 409 and "no rollout running" in str(err.value)
    assert client.predict("clf", rows(1, 2))["version"] == 1


def test_after_the_window_a_rollback_is_a_new_rollout_to_the_previous_version(
    two_versions: Client,  # noqa: F811
    server: LiveServer,  # noqa: F811
) -> None:
    client = two_versions
    first = client.start_rollout("clf", "blue_green", 2, keep_previous_s=0.5)
    client.rollout_command("clf", "promote")
    until(lambda: loaded(server) == {V2}, 30)  # the window ended: v1 was unloaded
    # The controller's own rollback (an alert's) only rolls back what is loaded; it says what a person can do.
    with pytest.raises(Conflict) as refused:
        RolloutController(server.app.state.services.store).rollback("clf", "alert", "error rate")
    assert "new rollout" in refused.value.message

    answer = client.rollout_command("clf", "rollback", reason="conversion dropped")
    assert answer["rolled_back"] == "new_rollout"
    assert answer["id"] != first["id"] and answer["strategy"] == "blue_green" and answer["state"] == "promoted"
    assert (answer["champion"]["version"], answer["candidate"]["version"]) == (2, 1)
    assert answer["spec"]["rollback_of"] == first["id"] and "conversion dropped" in answer["reason"]
    assert client.predict("clf", rows(1, 0))["version"] == 1
    assert client.endpoint("clf")["config"]["version"] == 1
    assert loaded(server) == {V1}  # a rollback keeps nothing warm for a rollback of itself
    assert [(r["id"], r["state"]) for r in client.rollouts("clf")] == [
        (answer["id"], "promoted"),
        (first["id"], "promoted"),
    ]
    assert [h["action"] for h in audit(client)[:2]] == ["rollout.promote", "rollout.start"]
    with pytest.raises(ServerError) as err:
        client.rollout_command("clf", "rollback")
    assert err.value.status_code == 409 and "itself the rollback" in str(err.value)
    assert client.predict("clf", rows(1, 1))["version"] == 1


def test_the_cli_rolls_back_a_promoted_blue_green_like_the_route(
    two_versions: Client,  # noqa: F811
    server: LiveServer,  # noqa: F811
) -> None:
    client = two_versions
    client.start_rollout("clf", "blue_green", 2)
    client.rollout_command("clf", "promote")
    warm_v1 = server.app.state.services.dataplane.state("clf").versions[V1]
    data_dir = Path(server.settings.data_dir)
    code, output = run("rollback", "clf", "--reason", "pager", "--data-dir", str(data_dir))
    assert code == 0, output
    assert "rolled back: instant" in output and "rolled_back" in output
    # The server follows the store within its poll, onto the version it kept loaded.
    until(lambda: client.predict("clf", rows(1, 0))["version"] == 1, 10)
    assert server.app.state.services.dataplane.state("clf").versions[V1] is warm_v1
    last = audit(client)[0]
    assert last["action"] == "rollout.rollback" and last["actor"] == "cli" and "pager" in str(last["detail"])
    code, output = run("rollback", "clf", "--data-dir", str(data_dir))
    assert code == 2 and "no rollout running" in output


def test_a_restart_within_the_window_keeps_the_previous_version_loaded(
    tmp_path: Path,
    two_versions: Client,  # noqa: F811
    server: LiveServer,  # noqa: F811
) -> None:
    two_versions.start_rollout("clf", "blue_green", 2)
    two_versions.rollout_command("clf", "promote")
    server.stop()
    again = make_server(tmp_path, None, **FAST)  # the same data dir
    try:
        assert loaded(again) == {V1, V2}  # loaded at start-up, from the last rollout and the clock
        with Client(again.url) as client:
            assert client.predict("clf", rows(1, 0))["version"] == 2
            assert client.rollout_command("clf", "rollback")["rolled_back"] == "instant"
            assert client.predict("clf", rows(1, 0))["version"] == 1
    finally:
        again.stop()
