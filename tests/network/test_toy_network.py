"""The real vantage6 4.15 network runs lancelot's runtime the way the in-process network does.

Uses the toy two-round algorithm (tests/toy_algorithm, image localhost/lancelot-toy:dev): round 1
``remember`` stores a random secret in the job's state and returns row count and column sum;
round 2 ``recall`` reads it back. On a real node each run is a new container, so the secret must
come back from TEMPORARY_FOLDER, never from module globals.
"""

from __future__ import annotations

import statistics
import time

import pytest

pytestmark = pytest.mark.network

# a numeric column that every station of the set has (the toy sends the same column to all)
STATION_SETS = {
    "gps": (("gp_1", "gp_2"), "gp_visits"),
    "registry": (("registry",), "survival_days"),
}


def _stations(devnet, names):
    return {name: devnet.stations[name] for name in names}


def _column_for(devnet, names, preferred):
    """The synthetic data's column, or the first numeric column all stations share (other data sets)."""
    frames = [devnet.read_csv(n) for n in names]
    if all(preferred in f.columns for f in frames):
        return preferred
    shared = [c for c in frames[0].select_dtypes("number").columns if all(c in f.columns for f in frames)]
    if not shared:
        pytest.skip(f"no numeric column shared by {names}")
    return shared[0]


def test_all_nodes_are_online(devnet):
    nodes = devnet.client.node.list(collaboration=devnet.collaboration_id)["data"]
    status = {n["organization"]["id"]: n["status"] for n in nodes}
    with_node = [*devnet.stations.values(), devnet.coordinator_org]  # the researcher's organisation has none
    assert status == {org: "online" for org in with_node}
    collaboration = devnet.client.collaboration.get(devnet.collaboration_id)
    assert collaboration["encrypted"] == devnet.connection["collaboration"]["encrypted"]


@pytest.mark.parametrize("station_set", sorted(STATION_SETS))
def test_state_survives_between_containers_and_sums_match_pandas(devnet, station_set):
    names, preferred = STATION_SETS[station_set]
    column = _column_for(devnet, names, preferred)
    run = devnet.submit_central(devnet.images["toy"], {"stations": _stations(devnet, names), "column": column})
    assert run.status == "completed", run.log
    out = run.result
    assert "lancelot_error" not in out, out["lancelot_error"]
    for name in names:
        df = devnet.read_csv(name)
        assert out["first"][name]["rows"] == len(df)
        assert out["first"][name]["column_sum"] == pytest.approx(float(df[column].sum()))
        # a new container per run: the module global is gone, the per-job folder is not
        assert isinstance(out["second"][name]["from_state"], int)
        assert out["second"][name]["from_globals"] is None
        # the node operator's algorithm_env reaches the station (base32-encoded by the node)
        floor = int(devnet.station_env.get(name, {}).get("LANCELOT_MIN_CELL_COUNT", 10))
        assert out["second"][name]["floor"] == floor
    assert out["cost"]["rounds"] == 2 and out["cost"]["subtasks"] == 2 * len(names)
    assert out["coordinator"] == {"organization_id": devnet.coordinator_org, "neutral": True}


def test_failing_subtask_surfaces_as_readable_error(devnet):
    stations = _stations(devnet, ["gp_1", "gp_2"])
    run = devnet.submit_central(devnet.images["toy"], {"stations": stations, "column": "gp_visits", "failing": "fail"})
    assert run.status == "completed", run.log  # the central run itself ends cleanly ...
    error = run.result["lancelot_error"]  # ... and reports which step failed where, and why
    assert "step 'fail' failed at station 'gp_1'" in error
    assert "column 'gp_visits'" in error and "missing" in error


def test_crash_is_reported_by_type_without_its_message(devnet):
    stations = _stations(devnet, ["gp_1"])
    run = devnet.submit_central(devnet.images["toy"], {"stations": stations, "column": "gp_visits", "failing": "crash"})
    error = run.result["lancelot_error"]
    assert "step 'crash' failed at station 'gp_1'" in error and "ValueError" in error
    assert "12345" not in error


def test_second_task_in_the_collaboration_sees_no_stale_state(devnet):
    stations = _stations(devnet, ["gp_1", "gp_2"])
    kwargs = {"stations": stations, "column": "gp_visits"}
    one = devnet.submit_central(devnet.images["toy"], kwargs)
    two = devnet.submit_central(devnet.images["toy"], kwargs)
    assert one.task_id != two.task_id
    for name in stations:
        assert one.result["second"][name]["from_state"] != two.result["second"][name]["from_state"]
        assert two.result["second"][name]["from_globals"] is None
        for key in ("rows", "column_sum"):
            assert one.result["first"][name][key] == two.result["first"][name][key]


def test_coordinator_at_a_data_station_is_refused(devnet):
    run = devnet.submit_central(devnet.images["toy"], {"stations": devnet.stations, "column": "gp_visits"},
                                organization=devnet.stations["registry"])
    error = run.result["lancelot_error"]
    assert "neutral node" in error and "'registry'" in error


def test_node_policy_refuses_images_outside_the_allow_list(devnet):
    if not devnet.connection.get("allowed_algorithms"):
        pytest.skip("the network was started with --allow-any-image")
    task_id = devnet.submit("localhost/not-lancelot:dev", "central", {}, [devnet.coordinator_org])
    assert devnet.wait(task_id, timeout=120) == "not allowed"


@pytest.mark.serial   # times rounds: alone on the network
def test_round_time_real_network_vs_local_network(devnet, tmp_path, record_timing):
    """Wall time per protocol round: real containers and HTTP vs lancelot.v6.local.LocalNetwork."""
    from lancelot.v6.local import LocalNetwork

    names = ["gp_1", "gp_2"]
    kwargs = {"column": "gp_visits", "progress": False}
    repeats = 3

    real = []
    for _ in range(repeats):
        run = devnet.submit_central(devnet.images["toy"], {"stations": _stations(devnet, names), **kwargs})
        cost = run.result["cost"]
        real.append({"task_s": run.seconds, "central_s": cost["seconds_total"], "rounds": cost["rounds"]})

    local = []
    with LocalNetwork("toy_algorithm", {n: devnet.databases[n] for n in names}, workdir=tmp_path / "net") as net:
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = net.run({"stations": net.orgs, **kwargs})
            local.append({"task_s": time.perf_counter() - t0, "central_s": out["cost"]["seconds_total"],
                          "rounds": out["cost"]["rounds"]})

    def summary(rows):
        rounds = rows[0]["rounds"]
        return {"rounds": rounds, "stations": len(names), "repeats": len(rows),
                "task_wall_s_median": round(statistics.median(r["task_s"] for r in rows), 2),
                "per_round_s_median": round(statistics.median(r["central_s"] / r["rounds"] for r in rows), 2),
                "per_round_s_max": round(max(r["central_s"] / r["rounds"] for r in rows), 2)}

    numbers = {"real_network": summary(real), "local_network": summary(local),
               "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    record_timing("toy_two_rounds_two_stations", numbers)
    print("\nround timings:", numbers)
    assert numbers["real_network"]["rounds"] == numbers["local_network"]["rounds"] == 2
    assert numbers["real_network"]["per_round_s_median"] < 60
