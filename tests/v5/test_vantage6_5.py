"""vantage6 5.x: the example study through 5.x's MockNetwork and the 5.x process harness gives the 4.15 results.

The jobs are those of scripts/example_study.py (linkage, its exploration, logistic and Cox models),
on synthetic data with its three stations; the real 4.15 network runs that study through
lancelot.client (tests/network/test_client_network.py) and matches the 4.15 in-process network.

Runs in the Python 3.13 venv with vantage6 5.0.3 (./.venv5, made by scripts/test.sh). The reference
is the 4.15 in-process network (lancelot.v6.local, vantage6 4.15.2's own wrapper) on the same files,
run by the 4.15 venv (./.venv, or LANCELOT_V4_PYTHON); the 3.11 suite checks those results against
the synthetic truth and pooled statsmodels/pandas fits, so equality here carries those checks over.
"""

from __future__ import annotations

import json
import math
import re
import sys

import pandas as pd
import pytest
from helpers import station_paths

from lancelot.study import run_local
from lancelot.v6.entry import MAJOR
from lancelot.v6.v5.local import LocalNetwork5
from lancelot.v6.v5.mock import StudyMockNetwork

REG, GP = "registry", "gp_1"
PACKAGES = {"link": "lancelot_linkage", "explore": "lancelot_exploration", "train": "lancelot_training"}
MOCK_JOBS = ["link", "explore", "logistic"]        # the three algorithms (Cox: on the harness)
HARNESS_JOBS = ["link", "explore", "logistic", "cox"]
EVALUATE_ENV = {"LANCELOT_ALLOW_EVALUATE": "1"}


def test_the_installed_major_is_5():
    assert MAJOR == 5 and sys.version_info >= (3, 13)


@pytest.fixture(scope="module")
def study(v5_study):
    return v5_study


@pytest.fixture(scope="module")
def jobs(v5_jobs):
    return v5_jobs


@pytest.fixture(scope="module")
def references(v4_reference_run) -> dict[str, dict]:
    """The 4.15 results on the same files (started with the session by tests/v5/conftest.py)."""
    if v4_reference_run is None:
        pytest.skip("no vantage6 4.15 venv at ./.venv (scripts/test.sh makes it; or set LANCELOT_V4_PYTHON)")
    assert v4_reference_run["process"].wait(timeout=900) == 0, v4_reference_run["stderr"].read_text()[-3000:]
    return json.loads(v4_reference_run["out"].read_text())


def assert_same(got, want, path="result"):
    """Equal, numbers within 1e-6, absolute or relative (the fits' tolerance: a hazard ratio's bound of 14 is
    exp of a number known to 1e-6, so only relatively close); the job's cost and coordinator are not compared.

    The links of an evaluation run come in a random order (the coordinator shuffles them): compared as sets.
    """
    if path.endswith(".links"):
        got, want = (sorted(x, key=json.dumps) for x in (got, want))
    if isinstance(want, dict):
        keys = set(want) - {"cost", "coordinator"}
        assert set(got) - {"cost", "coordinator"} == keys, path
        for k in keys:
            assert_same(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{path}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-6), (path, got, want)
    else:
        assert got == want, (path, got, want)


def check_meaningful(name: str, result: dict, study) -> None:
    """The compared results are real ones: links found, counts released, fitted models."""
    if name == "link":
        truth = pd.read_csv(study["truth_links"])
        for gp in ("gp_1", "gp_2"):
            want = {tuple(map(str, r)) for r in truth[truth.station == gp][["registry_id", "station_id"]].values}
            got = {(str(lk[REG]), str(lk[gp])) for lk in result["links"] if lk.get(gp) is not None}
            assert len(got & want) >= 0.95 * len(want), gp
    elif name == "explore":
        assert [a["type"] for a in result["analyses"]] == ["crosstab", "summary", "kaplan_meier", "table_one"]
    else:
        assert {c["feature"] for c in result["coefficients"]} >= {"age_at_diagnosis", "copd", "bmi"}


@pytest.mark.parametrize("name", MOCK_JOBS)
def test_mock_network_gives_the_415_result(study, jobs, references, name):
    algorithm, kwargs, evaluate = jobs[name]
    env = {s: EVALUATE_ENV for s in station_paths(study)} if evaluate else None
    with StudyMockNetwork(PACKAGES[algorithm], station_paths(study), station_env=env) as net:
        result = net.run({"stations": net.orgs, "progress": False, **kwargs})
        assert "lancelot_error" not in result, result
        assert all(net.state_files(s) == [] for s in net.orgs)  # the job wiped its state in the session folder
    check_meaningful(name, result, study)
    assert_same(result, references[name])


LOG_LINES = [re.compile(p) for p in (
    r"^\[lancelot\] round \d+: [A-Za-z:;,()' -]+( \d+, [A-Za-z ,()-]+)? at [a-z0-9_, ]+$",
    r"^\[lancelot\] station [a-z0-9_]+: (step [a-z_]+ (started|done in [0-9.]+s)|job state wiped)$",
    r"^\[lancelot\] linkage: [a-z0-9_]+ and [a-z0-9_]+ matched$",
    r"^\[lancelot\] training: iteration (1: |([2-9]|\d\d+): log(-| partial )likelihood -?[0-9.]+, )"
    r"largest step [0-9.e+-]+$",
    r"^\[lancelot\] end of job: station state is wiped at [a-z0-9_, ]+$",
    r"^info > (wrapper for \w+|Reading function arguments from file \S+|Dispatching \.\.\.|Module '\w+' imported!|"
    r"Writing output to \S+|Using '\S+' with dataframe name 'lancelot' as database)$",
    r"^\[info \] - (Validating function action: \w+|Converting algorithm output to a Parquet Table\.)$",
)]


@pytest.mark.parametrize("name", HARNESS_JOBS)
def test_process_harness_gives_the_415_result(study, jobs, references, name, tmp_path):
    algorithm, kwargs, evaluate = jobs[name]
    env = {s: EVALUATE_ENV for s in station_paths(study)} if evaluate else None
    with LocalNetwork5(PACKAGES[algorithm], station_paths(study), workdir=tmp_path / "net", station_env=env) as net:
        result = net.run({"stations": net.orgs, **kwargs})
        assert "lancelot_error" not in result, result
        assert all(net.state_files(s) == [] for s in net.orgs)  # the job wiped its state in the session folder
        # run logs go to HQ, readable by the researcher: only names, rounds, durations and vantage6's own lines
        assert [line for line in net.run_logs() if not any(p.match(line) for p in LOG_LINES)] == []
    assert result["coordinator"]["neutral"] is True
    check_meaningful(name, result, study)
    assert_same(result, references[name])


def test_the_command_line_runs_on_the_5x_harness(tmp_path):
    """``lancelot link/explore/train`` (Study.local's transport, run_local) picks the installed major's network."""
    from lancelot.v6.entry import local_network

    assert local_network() is LocalNetwork5
    paths = {}
    for name, values in {"a": [1, 2, 3], "b": [10, 20]}.items():
        paths[name] = tmp_path / f"{name}.csv"
        paths[name].write_text("x\n" + "\n".join(map(str, values)) + "\n")
    out = run_local("toy_algorithm", paths, {"column": "x"})
    assert out["first"]["a"]["column_sum"] == 6.0 and out["second"]["b"]["from_state"] is not None
