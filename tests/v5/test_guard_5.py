"""vantage6 5.x: the station guard, per-job state and the node policy on the 5.x process harness.

The harness (lancelot.v6.v5.local) records parents, organisations, sessions and encryption as
5.0.3's HQ does, gives only central runs a token and answers every request from the token it
carries. A researcher who does not behave gets refusals, never data (the 4.15 twins of these tests
are in tests/test_station_guard.py and tests/test_runtime.py).
"""

from __future__ import annotations

import json

import jwt
import pandas as pd
import pytest
from helpers import make_study, station_paths

from lancelot.v6.v5.local import LocalNetwork5

REG, GP = "registry", "gp_1"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("guard5"), patients=300, seed=7)


@pytest.fixture
def csvs(tmp_path):
    paths = {}
    for name, values in {"a": [1, 2, 3], "b": [10, 20]}.items():
        path = tmp_path / f"{name}.csv"
        pd.DataFrame({"x": values}).to_csv(path, index=False)
        paths[name] = path
    return paths


def link_spec(study) -> dict:
    return json.loads(study["link_spec"].read_text())


def direct(net: LocalNetwork5, station: str, credential: str | None = None) -> list:
    """A researcher's own federated task at one station, with the session dataframe and a chain of steps."""
    if net.dataframe_id is None:
        net.dataframe_id = net.extract()
    study = {"stations": net.orgs, "host_opted_in": True, **({"credential": credential} if credential else {})}
    task = net.create_task("partial", {"step": "link_encode", "station": station,
                                       "payload": {"spec": {}, "evaluate": False}, "study": study},
                           [net.orgs[station]], databases=[[{"type": "dataframe", "dataframe_id": net.dataframe_id}]])
    return net.wait(task, timeout=120)


def assert_refused(results: list, why: str) -> None:
    assert len(results) == 1 and set(results[0]) == {"lancelot_error"}, results  # nothing but the refusal
    assert "refused by the station guard" in results[0]["lancelot_error"] and why in results[0]["lancelot_error"]


def test_direct_station_tasks_are_refused_whatever_credential_they_carry(study, tmp_path):
    with LocalNetwork5("lancelot_linkage", station_paths(study), workdir=tmp_path / "net") as net:
        assert_refused(direct(net, REG), "carries none")
        # a genuine container token (of an honest job's coordinator): HQ still records no parent for this task
        honest = net.run({"stations": net.orgs, "spec": link_spec(study)})
        assert "lancelot_error" not in honest
        central = next(t for t in net.tasks.values() if t.action == "central_compute")
        assert_refused(direct(net, REG, net._token(central.runs[0])), "created directly by a user")
        # a token HQ did not sign: HQ answers with its 401 message, the station refuses
        forged = jwt.encode({"sub": {"vantage6_client_type": "container", "task_id": 1, "collaboration_id": 1}},
                            "not-hq-secret-but-long-enough-for-hs256", algorithm="HS256")
        assert_refused(direct(net, REG, forged), "did not give the record of this task (Authentication failed)")
        assert net.state_files(REG) == []  # no step ran: no key, permutation or mask was made


def test_a_station_without_a_route_to_its_proxy_refuses_naming_the_node_setting(study, tmp_path):
    with LocalNetwork5("lancelot_linkage", station_paths(study), workdir=tmp_path / "net", station_egress=False) as net:
        out = net.run({"stations": net.orgs, "spec": link_spec(study)})
    assert "cannot reach its node's proxy" in out["lancelot_error"]
    assert "federated_compute" in out["lancelot_error"] and "station 'registry'" in out["lancelot_error"]


def test_a_central_task_at_the_researchers_own_organisation_is_refused(study, tmp_path):
    with LocalNetwork5("lancelot_linkage", station_paths(study), workdir=tmp_path / "net",
                       researcher_at="coordinator") as net:
        out = net.run({"stations": net.orgs, "spec": link_spec(study)})
        assert "researcher's organisation is the coordinator's organisation" in out["lancelot_error"]
        assert all(t.parent_id is None for t in net.tasks.values())  # no station was asked anything


def test_an_unencrypted_collaboration_is_refused(study, tmp_path):
    with LocalNetwork5("lancelot_linkage", station_paths(study), workdir=tmp_path / "net", encrypted=False) as net:
        out = net.run({"stations": net.orgs, "spec": link_spec(study)})
    assert "collaboration is not encrypted" in out["lancelot_error"]


def test_the_central_task_must_name_the_stations_dataframe(study, tmp_path):
    with LocalNetwork5("lancelot_linkage", station_paths(study), workdir=tmp_path / "net") as net:
        net.dataframe_id = net.extract()
        task = net.create_task("central", {"stations": net.orgs, "spec": link_spec(study)}, [net.coordinator_org])
        out = net.wait(task)[0]
        assert "'dataframe' must give the id of the session dataframe" in out["lancelot_error"]
        unknown = net.run({"stations": net.orgs, "spec": link_spec(study), "dataframe": 999})
        assert "the server did not create the subtask" in unknown["lancelot_error"]


def test_an_offline_station_ends_the_job_naming_it_and_leaves_no_state(study, tmp_path):
    spec = {"linkage": link_spec(study), "analyses": [
        {"type": "crosstab", "variables": [{"station": REG, "column": "stage"}, {"station": GP, "column": "copd"}]}]}
    with LocalNetwork5("lancelot_exploration", station_paths(study), workdir=tmp_path / "net") as net:
        net.dataframe_id = net.extract()
        net.offline.add(net.orgs[GP])
        out = net.run({"stations": net.orgs, "spec": spec, "subtask_timeout": 10})
        assert "station 'gp_1'" in out["lancelot_error"] and "no result within 10 s" in out["lancelot_error"]
        assert net.state_files(REG) == []  # the registry ran round 1, then wiped its state
        net.set_online(GP)  # the node comes back and runs what was queued for it: refused, nothing kept
        net.settle()
        late = [r.result for t in net.tasks.values() for r in t.runs if r.org_id == net.orgs[GP] and r.result]
        assert any("already ended" in r.get("lancelot_error", "") for r in late)
        assert net.state_files(GP) == []


def test_state_survives_between_rounds_only_through_the_session_folder(csvs, tmp_path):
    with LocalNetwork5("toy_algorithm", csvs, workdir=tmp_path / "net",
                       station_env={"b": {"LANCELOT_MIN_CELL_COUNT": "25"}}) as net:
        one = net.run({"stations": net.orgs, "column": "x"})
        two = net.run({"stations": net.orgs, "column": "x"})  # a second job in the same session folder
    assert one["first"]["a"]["rows"] == 3 and one["first"]["b"]["column_sum"] == 30.0
    for station in "ab":
        assert one["second"][station]["pid"] != one["first"][station]["pid"]  # a fresh process per run
        assert one["second"][station]["from_globals"] is None                 # globals are gone
        assert isinstance(one["second"][station]["from_state"], int)          # the job's folder is not
    assert one["second"]["a"]["from_state"] != two["second"]["a"]["from_state"]  # jobs do not share state
    assert one["second"]["b"]["floor"] == 25 and one["second"]["a"]["floor"] == 10  # the node policy, as on 4.15
    assert net.state_files("a") == [] and net.state_files("b") == []


def test_the_coordinator_at_a_data_station_only_with_that_node_operators_opt_in(csvs, tmp_path):
    with LocalNetwork5("toy_algorithm", csvs, workdir=tmp_path / "net", coordinator_at="a") as net:
        assert "neutral node" in net.run({"stations": net.orgs, "column": "x"})["lancelot_error"]
    with LocalNetwork5("toy_algorithm", csvs, workdir=tmp_path / "net2", coordinator_at="a",
                       station_env={"a": {"LANCELOT_ALLOW_COORDINATOR_HERE": "1"}}) as net:
        allowed = net.run({"stations": net.orgs, "column": "x"})
    assert allowed["coordinator"]["neutral"] is False and allowed["second"]["b"]["from_state"] is not None
