"""The protocol runtime and the in-process network behave like real vantage6 runs."""

from __future__ import annotations

import json

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


def test_an_input_in_parts_is_put_together_in_order_and_a_missing_part_is_named(tmp_path):
    """The station side of inputs above the coordinator node's max_input_mb: slices of the JSON text stored by
    earlier subtasks, the last one with the step; escapes and non-ASCII text survive the slicing."""
    from lancelot.runtime.coordinator import Coordinator, StepCall
    from lancelot.runtime.state import JobState
    from lancelot.runtime.station import StationContext, run_step

    seen = []
    steps = {"echo": lambda ctx, payload: seen.append(payload) or {"ok": True}}
    ctx = StationContext("a", pd.DataFrame(), JobState(str(tmp_path / "state")))

    class Direct:
        def run_round(self, calls, wait=True):
            return {s: run_step(steps, ctx, c.step, json.loads(json.dumps(c.payload))) for s, c in calls.items()}

    payload = {"text": "Zoë \"quoted\" \\ back" * 2000, "values": list(range(3000))}
    coord = Coordinator(Direct(), ["a"], progress=False, max_input_mb=0.01)   # about 60 kB in slices of 10 kB
    assert coord.round({"a": StepCall("echo", payload)}) == {"a": {"ok": True}}
    assert seen == [payload]
    assert coord.cost.rounds >= 6
    assert not list(ctx.state.folder.glob("input-*"))   # the slices are dropped
    # a step whose earlier slices never arrived (or were wiped with the job) is refused, naming the part
    out = run_step(steps, ctx, "echo", {"lancelot_input_parts": {"token": "0123456789abcdef", "count": 3, "part": "}"}})
    assert out == {"lancelot_error": "part 1 of this step's input is not (or no longer) at this station"}
    assert run_step(steps, ctx, "store_part", {"token": "../../etc", "index": 0, "part": "x"}) == {
        "lancelot_error": "bad part of an input"}
    assert len(seen) == 1
