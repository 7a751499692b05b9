"""The protocol runtime and the in-process network behave like real vantage6 runs."""

from __future__ import annotations

import pandas as pd
import pytest

from lancelot.v6.local import LocalNetwork


@pytest.fixture
def csvs(tmp_path):
    paths = {}
    for name, values in {"a": [1, 2, 3], "b": [10, 20]}.items():
        path = tmp_path / f"{name}.csv"
        pd.DataFrame({"x": values}).to_csv(path, index=False)
        paths[name] = path
    return paths


def test_state_survives_between_rounds_only_through_the_job_folder(csvs, tmp_path):
    with LocalNetwork("toy_algorithm", csvs, workdir=tmp_path / "net",
                      station_env={"b": {"LANCELOT_MIN_CELL_COUNT": "25"}}) as net:
        out = net.run({"stations": net.orgs, "column": "x"})
    assert out["first"]["a"] == {"rows": 3, "column_sum": 6.0, "pid": out["first"]["a"]["pid"]}
    assert out["first"]["b"]["column_sum"] == 30.0
    for station in "ab":
        # a fresh process per run: globals are gone, the per-job folder is not
        assert out["second"][station]["pid"] != out["first"][station]["pid"]
        assert out["second"][station]["from_globals"] is None
        assert isinstance(out["second"][station]["from_state"], int)
    assert out["second"]["b"]["floor"] == 25 and out["second"]["a"]["floor"] == 10  # the node policy's default
    # two rounds; the toy marks no round final, so the end of the job is sent after them (not awaited)
    assert out["cost"]["rounds"] == 2 and out["cost"]["subtasks"] == 4 and out["cost"]["cleanup_subtasks"] == 2
    assert out["coordinator"]["neutral"] is True
    assert net.state_files("a") == [] and net.state_files("b") == []  # the job wiped its station state


def test_second_job_does_not_see_first_jobs_state(csvs, tmp_path):
    with LocalNetwork("toy_algorithm", csvs, workdir=tmp_path / "net") as net:
        one = net.run({"stations": net.orgs, "column": "x"})
        two = net.run({"stations": net.orgs, "column": "x"})
    assert one["second"]["a"]["from_state"] != two["second"]["a"]["from_state"]


def test_failing_step_surfaces_with_station_and_column(csvs, tmp_path):
    with LocalNetwork("toy_algorithm", csvs, workdir=tmp_path / "net") as net:
        out = net.run({"stations": net.orgs, "column": "x", "failing": "fail"})
    assert "lancelot_error" in out
    assert "step 'fail' failed at station" in out["lancelot_error"]
    assert "column 'x'" in out["lancelot_error"]


def test_crash_is_reported_by_type_without_its_message(csvs, tmp_path):
    with LocalNetwork("toy_algorithm", csvs, workdir=tmp_path / "net") as net:
        out = net.run({"stations": net.orgs, "column": "x", "failing": "crash"})
    assert "ValueError" in out["lancelot_error"]
    assert "12345" not in out["lancelot_error"]


def test_coordinator_at_a_data_station_only_with_that_node_operators_opt_in(csvs, tmp_path):
    with LocalNetwork("toy_algorithm", csvs, workdir=tmp_path / "net", coordinator_at="a") as net:
        refused = net.run({"stations": net.orgs, "column": "x"})
        asked = net.run({"stations": net.orgs, "column": "x", "allow_coordinator_at_data_station": True})
    assert "neutral node" in refused["lancelot_error"] and "'a'" in refused["lancelot_error"]
    assert "node operator's decision" in asked["lancelot_error"]  # no longer a researcher's parameter
    with LocalNetwork("toy_algorithm", csvs, workdir=tmp_path / "net2", coordinator_at="a",
                      station_env={"a": {"LANCELOT_ALLOW_COORDINATOR_HERE": "1"}}) as net:
        allowed = net.run({"stations": net.orgs, "column": "x"})
    assert allowed["coordinator"]["neutral"] is False
    assert "opted in" in allowed["coordinator"]["warning"]
    assert allowed["second"]["b"]["from_state"] is not None
