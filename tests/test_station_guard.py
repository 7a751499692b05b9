"""The station guard and the node policy: a researcher who does not behave gets refusals, never data.

Each attack is what a researcher can do with a researcher's rights in a collaboration (create tasks
with the algorithm's image at any organisation, with any input; read their own tasks' results),
run on the in-process network, which records parents, organisations and encryption as vantage6
4.15 does. tests/network/test_attacks_network.py runs the same attacks on the real dev network.
"""

from __future__ import annotations

import json
import re

import pytest
from helpers import local_study, make_study, station_paths

from lancelot.linkage import pseudonym
from lancelot.runtime.errors import LancelotError
from lancelot.training import shares as sh
from lancelot.v6.local import LocalNetwork

REG, GP = "registry", "gp_1"
PACKAGES = {"link": "lancelot_linkage", "explore": "lancelot_exploration", "train": "lancelot_training"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("guard"), patients=300, seed=7)


def link_spec(study) -> dict:
    return json.loads(study["link_spec"].read_text())


def train_spec(study) -> dict:
    return {"model": "logistic", "outcome": {"station": REG, "column": "death_within_2y"},
            "features": [{"station": REG, "column": "age_at_diagnosis"}, {"station": GP, "column": "copd"}],
            "linkage": link_spec(study)}


def direct(net: LocalNetwork, station: str, step: str, payload: dict) -> list:
    """A researcher's own task with the partial method at one station: what it returns to the researcher."""
    task = net.create_task({"method": "partial", "kwargs": {
        "step": step, "station": station, "payload": payload,
        "study": {"stations": net.orgs, "host_opted_in": True}}}, [net.orgs[station]])
    return net.wait(task, timeout=120)


def assert_refused(results: list, why: str) -> None:
    assert len(results) == 1 and set(results[0]) == {"lancelot_error"}, results  # nothing but the refusal
    assert "refused by the station guard" in results[0]["lancelot_error"] and why in results[0]["lancelot_error"]


def attacks(study) -> dict[str, tuple[str, dict]]:
    """Crafted step chains a researcher could send straight to the registry."""
    researcher_private, researcher_public = sh.new_exchange_key()  # the researcher's own X25519 key
    encode = {"step": "link_encode", "payload": {"spec": link_spec(study), "evaluate": False}}
    guess = pseudonym.pack_points([pseudonym.hash_to_point("surname+initials.first+birth_date|Jansen\x1fJ\x1f1950-01-01")])
    spec = train_spec(study)
    return {
        "whole table to the researcher's key": ("multi", {"calls": [
            encode,
            {"step": "train_setup", "payload": {"spec": spec, "stations": [REG, GP], "seed": "00" * 32, "role": "hub"}},
            {"step": "train_rows", "payload": {"spec": spec, "stations": [REG, GP], "n_hub": 300,
                                                "peers": {GP: researcher_public}, "receiver": GP}}]}),
        "dictionary oracle": ("multi", {"calls": [
            encode, {"step": "link_exponentiate", "payload": {"batches": {GP: {"surname+initials.first+birth_date": guess}}}}]}),
        "pseudonyms under the researcher's key exchange": ("multi", {"calls": [
            encode, {"step": "link_pseudonyms", "payload": {"peers": {GP: researcher_public}, "similarity": [GP]}}]}),
        "unsuppressed local totals": ("explore_local", {"spec": {"analyses": [
            {"type": "count", "variable": {"station": REG, "column": "stage"}}]}, "stations": [REG]}),
        "decrypt anything": ("explore_decrypt", {"jobs": {}}),
        "masked records under the researcher's key exchange": ("multi", {"calls": [
            {"step": "explore_describe", "payload": {"spec": {"analyses": []}, "stations": [REG, GP]}},
            {"step": "explore_mask", "payload": {"spec": {"analyses": []}, "stations": [REG, GP], "columns": ["1"],
                                                 "bits": [1], "partner": GP, "peer_key": researcher_public}}]}),
        "shared limbs under the researcher's key exchange": ("multi", {"calls": [
            {"step": "explore_describe", "payload": {"spec": {"analyses": []}, "stations": [REG, GP]}},
            {"step": "explore_share", "payload": {"spec": {"analyses": []}, "stations": [REG, GP], "columns": ["1"],
                                                  "bits": [1], "limb_bits": 20, "partner": GP,
                                                  "keys": {GP: researcher_public}}}]}),
        "the rest of a result sent in parts": ("fetch_part", {"token": "0123456789abcdef", "index": 1}),
        "a part of an input, to be put together with a later step": (
            "store_part", {"token": "0123456789abcdef", "index": 0, "part": '{"spec": '}),
    }


@pytest.mark.parametrize("algorithm", sorted(PACKAGES))
def test_direct_station_tasks_are_refused_and_return_no_data(study, tmp_path, algorithm):
    with LocalNetwork(PACKAGES[algorithm], station_paths(study), workdir=tmp_path / "net") as net:
        for step, payload in attacks(study).values():
            assert_refused(direct(net, REG, step, payload), "created directly by a user")
        assert net.state_files(REG) == []  # no step ran: no key, permutation or mask was made


def test_a_central_task_at_the_researchers_own_organisation_is_refused(study, tmp_path):
    """vantage6 encrypts station results for the coordinator's organisation: the researcher must not be in it."""
    with LocalNetwork("lancelot_linkage", station_paths(study), workdir=tmp_path / "net",
                      researcher_at="coordinator") as net:
        out = net.run({"stations": net.orgs, "spec": link_spec(study)})
        assert "researcher's organisation is the coordinator's organisation" in out["lancelot_error"]
        assert set(out) == {"lancelot_error"}
        assert all(t.parent_id is None for t in net.tasks.values())  # no station was asked anything


def test_a_station_refuses_a_coordinator_in_the_researchers_organisation(study, tmp_path):
    """Even if the central function did not check (it does), each station checks the parent task itself."""
    from lancelot.policy import NodePolicy
    from lancelot.runtime.guard import TaskFacts, check_station_task

    facts = TaskFacts(task_id=5, job_id=4, organization_id=2, image="img", parent_id=4, init_org=1,
                      collaboration_encrypted=True, parent_image="img", parent_status="active",
                      parent_run_orgs=(1,), parent_init_org=1)
    with pytest.raises(LancelotError, match="researcher belongs to the coordinator's organisation"):
        check_station_task(facts, REG, {REG: 2, GP: 3}, NodePolicy(), host_opted_in=False)
    for change, why in [({"parent_image": "other"}, "another image"), ({"parent_parent_id": 2}, "itself a subtask"),
                        ({"parent_run_orgs": (1, 3)}, "exactly one organisation"),
                        ({"parent_status": "completed"}, "already ended"),
                        ({"collaboration_encrypted": False}, "not encrypted"),
                        ({"organization_id": 3}, "another organisation")]:
        bad = TaskFacts(**{**facts.__dict__, "parent_init_org": 100, **change})
        with pytest.raises(LancelotError, match=why):
            check_station_task(bad, REG, {REG: 2, GP: 3}, NodePolicy(), host_opted_in=False)


def test_an_unencrypted_collaboration_is_refused(study, tmp_path):
    with LocalNetwork("lancelot_linkage", station_paths(study), workdir=tmp_path / "net", encrypted=False) as net:
        out = net.run({"stations": net.orgs, "spec": link_spec(study)})
    assert "collaboration is not encrypted" in out["lancelot_error"]


def test_the_operator_can_pin_the_coordinator_organisation(study, tmp_path):
    env = {s: {"LANCELOT_COORDINATOR_ORGANIZATIONS": "77"} for s in (REG, GP)}
    with LocalNetwork("lancelot_linkage", station_paths(study), workdir=tmp_path / "net", station_env=env) as net:
        out = net.run({"stations": net.orgs, "spec": link_spec(study)})
    assert "not on this node's list of coordinator organisations" in out["lancelot_error"]


@pytest.mark.parametrize("change, message", [
    ({"max_categories": 100000, "analyses": [{"type": "count", "variable": {"station": REG, "column": "diagnosis_date"}}]},
     "more than max_categories=20"),
    ({"analyses": [{"type": "crosstab", "variables": [{"station": REG, "column": "surname"},
                                                      {"station": GP, "column": "copd"}]}]}, "identifier"),
    ({"analyses": [{"type": "count", "variable": {"station": GP, "column": "patient_nr"}}]}, "identifier"),
])
def test_crafted_exploration_specs_cannot_lift_the_node_policy(study, change, message):
    spec = {"linkage": link_spec(study), **change}
    with pytest.raises(LancelotError, match=message):
        local_study(station_paths(study)).explore(spec)


def test_operator_identifiers_and_allow_list_bind_whatever_the_linkage_spec_says(study):
    spec = {"linkage": link_spec(study), "analyses": [{"type": "count", "variable": {"station": REG, "column": "stage"}}]}
    env = {REG: {"LANCELOT_IDENTIFIER_COLUMNS": "stage"}}
    with pytest.raises(LancelotError, match="identifier"):
        local_study(station_paths(study), station_env=env).explore(spec)
    env = {REG: {"LANCELOT_POLICY": json.dumps({"analysis_columns": ["age_at_diagnosis"]})}}
    with pytest.raises(LancelotError, match="analysis_columns"):
        local_study(station_paths(study), station_env=env).explore(spec)


def test_a_linkage_column_is_analysable_only_where_its_operator_allows_it_and_never_the_record_id(study, tmp_path):
    """Sex is a linkage field and a covariate: refused by default (naming the setting), counted where the registry's
    operator lists it in analysable_linkage_columns (as pandas counts the linked records), and a record-id column
    stays refused even when listed."""
    import pandas as pd

    count = {"type": "count", "variable": {"station": REG, "column": "sex"}}
    spec = {"linkage": link_spec(study), "analyses": [count]}
    with pytest.raises(LancelotError, match="identifier or linkage field.*analysable_linkage_columns"):
        local_study(station_paths(study)).explore(spec)
    env = {REG: {"LANCELOT_ANALYSABLE_LINKAGE_COLUMNS": "sex,record_id", "LANCELOT_ROUNDING_BASE": "1",
                 "LANCELOT_ALLOW_EVALUATE": "1"}, GP: {"LANCELOT_ALLOW_EVALUATE": "1", "LANCELOT_ROUNDING_BASE": "1"}}
    out = local_study(station_paths(study), station_env=env).explore(spec, evaluate=True).to_json()
    linked = pd.DataFrame(out["links"])[[REG, GP]].dropna().merge(pd.read_csv(study[REG]), left_on=REG,
                                                                  right_on="record_id")
    got = {row["sex"]: row["count"] for row in out["analyses"][0]["table"]}
    assert got == {k: int(v) for k, v in linked["sex"].value_counts().items()} and len(got) == 2
    spec["analyses"] = [{"type": "count", "variable": {"station": REG, "column": "record_id"}}]
    with pytest.raises(LancelotError, match="identifier or linkage field") as err:
        local_study(station_paths(study), station_env=env).explore(spec)
    assert "analysable_linkage_columns" not in str(err.value)


def test_two_field_match_keys_and_frequent_keys_are_refused_or_capped(study):
    spec = link_spec(study)
    with pytest.raises(LancelotError, match="combines 2 distinct fields"):
        local_study(station_paths(study)).link({**spec, "keys": [["surname", "birth_date"]]})
    loose = local_study(station_paths(study)).link({**spec, "max_key_frequency": 1000}).to_json()
    assert loose["protections"]["max_key_frequency"] == 5  # the node's ceiling, not the spec's


def test_a_node_that_switches_the_similarity_step_off_sends_no_bloom_filters_whatever_the_spec_says(study):
    spec = {**link_spec(study), "similarity": True}
    env = {GP: {"LANCELOT_ALLOW_LINKAGE_SIMILARITY": "0"}}
    out = local_study(station_paths(study), station_env=env).link(spec).to_json()
    pair = out["summary"]["pairs"][f"{REG}~{GP}"]
    assert pair["linked_by_similarity"] == 0
    assert any("node policy at ['gp_1']" in w and "allow_linkage_similarity" in w for w in out["summary"]["warnings"])


def test_small_keys_are_refused_by_the_central_function_and_by_the_stations(study):
    spec = {"linkage": link_spec(study), "analyses": [
        {"type": "crosstab", "variables": [{"station": REG, "column": "stage"}, {"station": GP, "column": "copd"}]}]}
    with pytest.raises(LancelotError, match="key_bits must be 2048 or 3072"):
        local_study(station_paths(study)).explore(spec, key_bits=1024)
    from lancelot.policy import NodePolicy

    with pytest.raises(LancelotError, match="at least 3072 bits"):
        NodePolicy(min_key_bits=3072).check_key_bits(2048, REG)


def test_a_bad_node_policy_stops_the_station_with_the_setting_named(study):
    spec = link_spec(study)
    for env, message in [({"LANCELOT_MIN_CELL_COUNT": "5"}, "'min_cell_count' must be at least 10"),
                         ({"LANCELOT_MAX_CATEGORIES": "many"}, "'max_categories' has a value of the wrong type"),
                         ({"LANCELOT_POLICY": '{"min_cell_count": 20}', "LANCELOT_MIN_CELL_COUNT": "30"}, "set twice"),
                         ({"LANCELOT_POLICY": '{"minimum": 20}'}, "unknown setting 'minimum'")]:
        with pytest.raises(LancelotError, match=message):
            local_study(station_paths(study), station_env={GP: env}).link(spec)


def test_results_state_the_protections_in_force(study):
    env = {GP: {"LANCELOT_MIN_CELL_COUNT": "15", "LANCELOT_MAX_CATEGORIES": "8"}}
    out = local_study(station_paths(study), station_env=env).link(link_spec(study), min_cell_count=12).to_json()
    p = out["protections"]
    assert p["min_cell_count"] == 15 and p["max_categories"] == 8 and p["min_key_bits"] == 2048
    assert out["summary"]["min_cell_count"] == 15


def test_a_late_subtask_of_an_ended_job_writes_nothing_and_is_refused(tmp_path, monkeypatch):
    """A late run and the job's clean-up can run at once at a node that comes back online: the late run
    must not write (a write racing the clean-up's wipe crashed it instead of refusing it). Here the state
    folder cannot be made at all, as when the clean-up removes it under the late run's feet."""
    from lancelot.linkage.protocol import STEPS
    from lancelot.runtime.guard import TaskFacts
    from lancelot.v6.adapter import run_partial

    (tmp_path / "lancelot-state").write_text("not a folder")   # any write into the state folder fails
    monkeypatch.setenv("TEMPORARY_FOLDER", str(tmp_path))
    facts = TaskFacts(task_id=9, job_id=5, organization_id=3, image="img", parent_id=5, init_org=1,
                      collaboration_encrypted=True, parent_image="img", parent_status="failed",
                      parent_run_orgs=(1,), parent_init_org=7)   # researcher at 7, coordinator at 1
    out = run_partial(STEPS, None, "link_encode", GP, {}, {"stations": {REG: 2, GP: 3}}, lambda: facts)
    assert "already ended" in out["lancelot_error"]
    assert (tmp_path / "lancelot-state").read_text() == "not a folder"


def test_an_offline_station_ends_the_job_naming_it_and_leaves_no_state(study, tmp_path):
    spec = {"linkage": link_spec(study), "analyses": [
        {"type": "crosstab", "variables": [{"station": REG, "column": "stage"}, {"station": GP, "column": "copd"}]}]}
    with LocalNetwork("lancelot_exploration", station_paths(study), workdir=tmp_path / "net", offline=(GP,)) as net:
        out = net.run({"stations": net.orgs, "spec": spec, "subtask_timeout": 10})
        assert "station 'gp_1'" in out["lancelot_error"] and "step 'multi'" in out["lancelot_error"]
        assert "no result within 10 s" in out["lancelot_error"]
        assert net.state_files(REG) == []  # the registry ran round 1, then wiped its state
        net.set_online(GP)  # the node comes back and runs what was queued for it: refused, nothing kept
        net.settle()
        late = [r.result for t in net.tasks.values() for r in t.runs if r.org_id == net.orgs[GP]]
        assert any("already ended" in (r or {}).get("lancelot_error", "") for r in late)
        assert net.state_files(GP) == []


LOG_LINES = [re.compile(p) for p in (
    r"^\[lancelot\] round \d+: [A-Za-z:;,() -]+( \d+, [A-Za-z ,]+)? at [a-z0-9_, ]+$",   # iteration numbers only
    r"^\[lancelot\] station [a-z0-9_]+: (step [a-z_]+ (started|done in [0-9.]+s)|job state wiped)$",
    r"^\[lancelot\] linkage: [a-z0-9_]+ and [a-z0-9_]+ matched$",
    # the first iteration's log-likelihood (at beta = 0: -n log 2, the number of complete cases) is not logged
    r"^\[lancelot\] training: iteration (1: |([2-9]|\d\d+): log-likelihood -?[0-9.]+, )largest step [0-9.e+-]+$",
    r"^\[lancelot\] end of job: station state is wiped at [a-z0-9_, ]+$",
    r"^info > (Reading (token|data from database|input file \S+)|Writing output to \S+|Dispatching \.\.\.|"
    r"Module '\w+' imported!|wrapper for \w+|Applying preprocessing for database 'default'|"
    r"Using '\S+' with label 'default' as database)$",
)]


def run_logs(net: LocalNetwork) -> list[str]:
    return [line for t in net.tasks.values() for r in t.runs
            for line in (r.folder / "log.txt").read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("algorithm", ["explore", "train"])
def test_honest_jobs_leave_no_state_and_log_no_numbers_of_the_data(study, tmp_path, algorithm):
    spec = train_spec(study) if algorithm == "train" else {"linkage": link_spec(study), "analyses": [
        {"type": "crosstab", "variables": [{"station": REG, "column": "stage"}, {"station": GP, "column": "copd"}]},
        {"type": "summary", "variable": {"station": GP, "column": "bmi"}, "by": {"station": REG, "column": "surgery"}}]}
    with LocalNetwork(PACKAGES[algorithm], station_paths(study), workdir=tmp_path / "net") as net:
        out = net.run({"stations": net.orgs, "spec": spec})
        assert "lancelot_error" not in out, out
        assert net.state_files(REG) == [] and net.state_files(GP) == []
        # run logs are readable by the researcher who created the task: only names, rounds and durations
        unexpected = [line for line in run_logs(net) if not any(p.match(line) for p in LOG_LINES)]
        assert unexpected == []


def test_a_result_above_the_node_limit_arrives_in_parts_and_changes_nothing(study):
    """The GP's round-2 result, its encrypted rows for a Kaplan-Meier curve by its COPD column and its linkage
    pseudonyms (above 0.3 MB here; the crosstab and the summary go on shares, a few kB), exceeds a 0.1 MB node
    limit: the coordinator fetches the rest in extra rounds, and the released statistics are those of the run
    without a limit."""
    spec = {"linkage": link_spec(study), "analyses": [
        {"type": "crosstab", "variables": [{"station": REG, "column": "stage"}, {"station": GP, "column": "copd"}]},
        {"type": "summary", "variable": {"station": GP, "column": "bmi"}, "by": {"station": REG, "column": "surgery"}},
        {"type": "kaplan_meier", "time": {"station": REG, "column": "survival_days"},
         "event": {"station": REG, "column": "vital_status"}, "by": {"station": GP, "column": "copd"}, "times": [365]}]}
    whole = local_study(station_paths(study)).explore(spec).to_json()
    parts = local_study(station_paths(study), station_env={GP: {"LANCELOT_MAX_RESULT_MB": "0.1"}}).explore(spec).to_json()
    assert parts["analyses"] == whole["analyses"] and parts["cohort"] == whole["cohort"]
    largest = 0.3e6  # at least this many bytes came from the GP in round 2: so at least 4 parts of 0.1 MB
    assert parts["cost"]["rounds"] >= whole["cost"]["rounds"] + int(largest // 0.1e6)
    with pytest.raises(LancelotError, match="'max_result_mb' must lie between 0.1 and 4096"):
        local_study(station_paths(study), station_env={GP: {"LANCELOT_MAX_RESULT_MB": "0"}}).link(link_spec(study))


def test_an_input_above_the_coordinator_node_limit_goes_in_parts_and_changes_nothing(study, tmp_path):
    """Cox's last iteration deals the partner its shares of the concordance material (about 0.47 MB at 300
    patients): above a 0.1 MB limit at the coordinator's node it goes as stored slices, one extra round each,
    through the same guard, and the fit is the one without a limit (to its fixed-point rounding, which differs
    between jobs through the random shares)."""
    spec = {**train_spec(study), "model": "cox", "time": {"station": REG, "column": "survival_days"},
            "event": {"station": REG, "column": "vital_status"}}
    del spec["outcome"]
    out = {}
    for name, env in (("whole", {}), ("parts", {"LANCELOT_MAX_INPUT_MB": "0.1"})):
        with LocalNetwork("lancelot_training", station_paths(study), workdir=tmp_path / name,
                          coordinator_env=env) as net:
            out[name] = net.run({"stations": net.orgs, "spec": spec})
            assert "lancelot_error" not in out[name], out[name]
            assert net.state_files(REG) == [] and net.state_files(GP) == []   # the stored slices are gone too
    whole, parts = out["whole"], out["parts"]
    for a, b in zip(whole["coefficients"], parts["coefficients"]):
        assert a["feature"] == b["feature"]
        assert b["estimate"] == pytest.approx(a["estimate"], abs=1e-6) and b["std_error"] == pytest.approx(a["std_error"], rel=1e-6)
    assert parts["quality"] == whole["quality"] and parts["cohort"] == whole["cohort"]
    assert parts["cost"]["rounds"] >= whole["cost"]["rounds"] + 4      # 0.47 MB: at least 4 slices before the step
    with pytest.raises(LancelotError, match="'max_input_mb' must lie between 0.1 and 4096"):
        local_study(station_paths(study), station_env={GP: {"LANCELOT_MAX_INPUT_MB": "5000"}}).link(link_spec(study))
