"""The attacks of tests/test_station_guard.py on the real vantage6 4.15 network: refusals, never data.

The researcher here is a user of an organisation of its own (as on a real network); ``insider`` is a
user of the coordinator's organisation, which can decrypt every station result and which lancelot
must therefore refuse as a researcher. docs/leakage/threats.md lists the attacks.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from lancelot.linkage import pseudonym
from lancelot.training import shares as sh

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[2]
REG, GP1, GP2 = "registry", "gp_1", "gp_2"


def link_spec(devnet) -> dict:
    return json.loads((devnet.data_dir / "link_spec.json").read_text())


def crosstab_spec(devnet) -> dict:
    return {"linkage": link_spec(devnet), "analyses": [
        {"type": "crosstab", "variables": [{"station": REG, "column": "stage"}, {"station": GP1, "column": "copd"}]}]}


def direct(devnet, image: str, step: str, payload: dict) -> list:
    """The researcher's own task with the partial method at the registry, and what it returns to them."""
    task_id = devnet.submit(image, "partial", {"step": step, "station": REG, "payload": payload,
                                               "study": {"stations": devnet.stations, "host_opted_in": True}},
                            [devnet.stations[REG]], name="attack: direct partial")
    status = devnet.wait(task_id, timeout=300)
    assert status == "completed", devnet.runs(task_id)
    return devnet.results(task_id)


def assert_refused(results: list, why: str) -> None:
    assert len(results) == 1 and set(results[0]) == {"lancelot_error"}, results
    assert "refused by the station guard" in results[0]["lancelot_error"] and why in results[0]["lancelot_error"]


@pytest.mark.parametrize("algorithm", ["linkage", "exploration", "training"])
def test_direct_station_tasks_are_refused(devnet, algorithm):
    spec = link_spec(devnet)
    _, researcher_key = sh.new_exchange_key()
    encode = {"step": "link_encode", "payload": {"spec": spec, "evaluate": False}}
    train = {"model": "logistic", "outcome": {"station": REG, "column": "death_within_2y"},
             "features": [{"station": REG, "column": "age_at_diagnosis"}], "linkage": spec}
    guess = pseudonym.pack_points([pseudonym.hash_to_point("surname+initials.first+birth_date|Jansen\x1fJ\x1f1950-01-01")])
    chains = [("multi", {"calls": [encode, {"step": "train_setup", "payload": {
                  "spec": train, "stations": [REG, GP1], "seed": "00" * 32, "role": "hub"}},
               {"step": "train_rows", "payload": {"spec": train, "stations": [REG, GP1], "n_hub": 1,
                                                  "peers": {GP1: researcher_key}, "receiver": GP1}}]}),
              ("multi", {"calls": [encode, {"step": "link_exponentiate",
                                            "payload": {"batches": {GP1: {"surname+initials.first+birth_date": guess}}}}]}),
              ("explore_local", {"spec": {"analyses": [{"type": "count", "variable": {"station": REG, "column": "stage"}}]},
                                 "stations": [REG]})]
    for step, payload in chains:
        assert_refused(direct(devnet, devnet.images[algorithm], step, payload), "created directly by a user")


def test_a_researcher_in_the_coordinators_organisation_is_refused(insider):
    run = insider.submit_central(insider.images["linkage"], {"stations": insider.stations, "spec": link_spec(insider)})
    assert run.status == "completed", run.log
    assert "researcher's organisation is the coordinator's organisation" in run.result["lancelot_error"]
    assert insider.client.task.list(parent=run.task_id, per_page=10)["data"] == []  # no station was asked


def test_the_client_refuses_before_submitting_for_an_insider(devnet):
    from lancelot.client import Study
    from lancelot.runtime.errors import LancelotError

    c = devnet.connection
    s, user = c["server"], c["insider"]
    study = Study.login(s["url"], s["port"], s["api_path"], user["username"], user["password"], user["private_key"],
                        collaboration_id=c["collaboration"]["id"], stations=c["stations"],
                        coordinator_org=c["coordinator_org"], images=c["images"], progress=False)
    with pytest.raises(LancelotError, match="coordinator's organisation"):
        study.link(link_spec(devnet))


@pytest.mark.parametrize("kwargs, message", [
    ({"allow_coordinator_at_data_station": True}, "node operator's decision"),
    ({"key_bits": 1024}, "key_bits must be 2048 or 3072"),
])
def test_crafted_parameters_are_refused(devnet, kwargs, message):
    run = devnet.submit_central(devnet.images["exploration"],
                                {"stations": devnet.stations, "spec": crosstab_spec(devnet), **kwargs})
    assert message in run.result["lancelot_error"]


@pytest.mark.parametrize("change, message", [
    ({"max_categories": 100000, "analyses": [{"type": "count", "variable": {"station": REG, "column": "diagnosis_date"}}]},
     "max_categories=20"),
    ({"analyses": [{"type": "crosstab", "variables": [{"station": REG, "column": "surname"},
                                                      {"station": GP1, "column": "copd"}]}]}, "identifier"),
    ({"linkage_keys": [["surname", "birth_date"]]}, "combines 2 distinct fields"),
])
def test_crafted_specs_cannot_lift_the_node_policy(devnet, change, message):
    spec = crosstab_spec(devnet)
    if "linkage_keys" in change:
        spec["linkage"] = {**spec["linkage"], "keys": change["linkage_keys"]}
    else:
        spec.update(change)
    run = devnet.submit_central(devnet.images["exploration"], {"stations": devnet.stations, "spec": spec})
    assert message in run.result["lancelot_error"], run.result


def test_coordinator_at_a_data_station_without_its_opt_in(devnet):
    run = devnet.submit_central(devnet.images["linkage"], {"stations": devnet.stations, "spec": link_spec(devnet)},
                                organization=devnet.stations[REG])
    assert "neutral node" in run.result["lancelot_error"]


def devnet_cmd(*args: str) -> str:
    return subprocess.run(["bash", str(ROOT / "scripts" / "devnet.sh"), *args], check=True, capture_output=True,
                          text=True, timeout=300).stdout


def wait_node(devnet, station: str, status: str, timeout: float = 180) -> None:
    org = devnet.stations[station]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nodes = devnet.client.node.list(collaboration=devnet.collaboration_id)["data"]
        if any(n["organization"]["id"] == org and n["status"] == status for n in nodes):
            return
        time.sleep(2)
    raise AssertionError(f"node of {station} not {status} after {timeout} s")


@pytest.mark.serial   # stops a node, then checks that no node keeps any job's files
def test_an_offline_station_ends_the_job_and_no_station_keeps_state(devnet, insider):
    devnet_cmd("node", "stop", GP2)
    try:
        wait_node(devnet, GP2, "offline")
        spec = {**crosstab_spec(devnet)}
        run = devnet.submit_central(devnet.images["exploration"],
                                    {"stations": devnet.stations, "spec": spec, "subtask_timeout": 20}, timeout=300)
        error = run.result["lancelot_error"]
        assert "station 'gp_2'" in error and "no result within 20 s" in error, error
    finally:
        devnet_cmd("node", "start", GP2)
    wait_node(devnet, GP2, "online")
    # the node runs what was queued for it while it was down: the round-1 step (refused, the job
    # has ended) and the clean-up; then no node keeps any file of any lancelot job
    children = insider.client.task.list(parent=run.task_id, per_page=100)["data"]
    for child in children:
        insider.wait(child["id"], timeout=300)
    late = [r for c in children if "@ gp_2" in c["name"] for r in insider.results(c["id"])]
    assert any("already ended" in (r or {}).get("lancelot_error", "") for r in late), late
    leftover = {node: {v: f for v, f in vols.items() if f} for node, vols in json.loads(devnet_cmd("job-state")).items()}
    assert all(not vols for vols in leftover.values()), leftover
