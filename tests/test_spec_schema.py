"""The one spec schema (common/spec.schema.json) agrees with the algorithms' own spec checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_exploration import ANALYSES
from test_training import FEATURES, OUTCOME

from lancelot.cli import main
from lancelot.synth import generate
from lancelot.validate import spec_kind, validate_spec

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "docs" / "examples").glob("*.json"))


@pytest.fixture(scope="module")
def link_spec(tmp_path_factory):
    paths = generate(n_patients=30, gp_stations=2, seed=1).write(tmp_path_factory.mktemp("schema"))
    return json.loads(paths["link_spec"].read_text())


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_the_nsclc_examples_are_valid(path):
    assert validate_spec(json.loads(path.read_text())) == []


def test_the_specs_the_tests_run_are_valid_for_the_schema(link_spec):
    assert validate_spec(link_spec) == []
    assert validate_spec({"linkage": link_spec, "analyses": ANALYSES}) == []
    train = {"linkage": link_spec, "model": "logistic", "outcome": OUTCOME, "features": FEATURES, "penalty": 1.5}
    assert validate_spec(train) == []
    assert [spec_kind(s) for s in (link_spec, {"analyses": []}, train)] == ["link", "explore", "train"]
    cox = {"linkage": link_spec, "model": "cox", "time": {"station": "registry", "column": "survival_days"},
           "event": {"station": "registry", "column": "vital_status"}, "features": FEATURES, "ties": "breslow",
           "survival_times": [365, 730]}
    assert validate_spec(cox) == []


@pytest.mark.parametrize("change, kind, message", [
    (lambda s: {**s, "threshold": 2}, "link", "threshold"),
    (lambda s: {**s, "fields": [{**s["fields"][0], "kind": "soundex"}]}, "link", "soundex"),
    (lambda s: {"linkage": s, "analyses": [{"type": "histogram", "variable": {"station": "registry", "column": "a"}}]},
     "explore", "'edges' is a required property"),
    (lambda s: {"linkage": s, "analyses": [{"type": "crosstab", "variables": [{"station": "registry", "column": "a"}]}]},
     "explore", "too short"),
    (lambda s: {"linkage": s, "outcome": OUTCOME, "features": [{"station": "registry", "colum": "age"}]},
     "train", "'column' is a required property"),
    (lambda s: {"linkage": s, "outcome": OUTCOME, "features": FEATURES, "model": "cox"}, "train",
     "'time' is a required property"),
    (lambda s: {"linkage": s, "outcome": OUTCOME, "features": FEATURES, "model": "probit"}, "train", "'probit' is not one of"),
    (lambda s: {"linkage": s, "model": "cox", "time": OUTCOME, "outcome": OUTCOME, "features": FEATURES}, "train",
     "'outcome' does not belong here"),
    (lambda s: {"linkage": s, "model": "cox", "time": OUTCOME, "event": OUTCOME, "features": FEATURES, "ties": "exact"},
     "train", "'exact' is not one of"),
    # meaning only the algorithms' checks can see: a station the linkage does not know
    (lambda s: {"linkage": s, "outcome": OUTCOME, "features": [{"station": "gp_9", "column": "bmi"}]},
     "train", "not part of this run"),
])
def test_bad_specs_are_explained(link_spec, change, kind, message):
    problems = validate_spec(change(link_spec), kind)
    assert problems and any(message in p for p in problems), problems
    assert all(len(p) < 300 for p in problems), problems   # a line each, never the whole spec quoted back


def test_validate_command(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(EXAMPLES[0].read_text())
    assert main(["validate", "--spec", str(good)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"analyses": [{"type": "nonsense"}]}))
    assert main(["validate", "--spec", str(bad)]) == 2
    assert "nonsense" in capsys.readouterr().err


def test_a_one_station_exploration_is_checked_against_the_study_stations(tmp_path):
    """No linkage spec (one station alone): the check takes the study's stations, not an empty list."""
    from lancelot import Study

    paths = generate(n_patients=60, gp_stations=1, seed=2).write(tmp_path)
    spec = {"analyses": [{"type": "summary", "variable": {"station": "registry", "column": "age_at_diagnosis"}}]}
    assert validate_spec(spec) == []                                   # the stations it names
    assert validate_spec(spec, "explore", stations=["registry"]) == []
    assert any("unknown station 'registry'" in p for p in validate_spec(spec, "explore", stations=["gp_1"]))
    result = Study.local({"registry": paths["registry"]}).explore(spec).to_json()
    assert result["analyses"][0]["overall"]["n"] is not None
