"""lancelot.client without a server: task input, waiting, decoding, refusals and the DataFrame views."""

from __future__ import annotations

import json

import pytest
from helpers import local_study, make_study, station_paths
from test_training import FEATURES, OUTCOME

from lancelot.client import Study
from lancelot.runtime.errors import LancelotError

STATIONS = {"registry": 2, "gp_1": 3, "gp_2": 4}
COORDINATOR = 5


class FakeVantage6:
    """Just enough of vantage6.client.Client: one task that finishes with a stored JSON result."""

    def __init__(self, result, own_org=9, encrypted=True):
        self.created, self.result_text, self.polls = [], json.dumps(result), 0
        self.whoami = type("WhoAmI", (), {"organization_id": own_org})()
        outer = self

        class Collaboration:
            def get(self, id_):
                return {"id": id_, "encrypted": encrypted}

        class Task:
            def create(self, **kwargs):
                outer.created.append(kwargs)
                return {"id": 41}

            def get(self, task_id):
                outer.polls += 1
                return {"status": "completed" if outer.polls > 1 else "active"}

            def list(self, parent, per_page):
                return {"data": [{"status": "completed"}, {"status": "active"}]}

        class ResultApi:
            def from_task(self, task_id):
                return {"data": [{"result": outer.result_text}]}

        class Run:
            def from_task(self, task_id):
                return {"data": [{"log": "line 1\nline 2"}]}

        self.task, self.result, self.run = Task(), ResultApi(), Run()
        self.collaboration = Collaboration()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("client"), patients=500, gp_stations=1, seed=4)


@pytest.fixture(scope="module")
def train_result(study):
    # without smoking: in this small study its reference level has fewer than k non-events (refused)
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "outcome": OUTCOME, "features": FEATURES[:5]}
    return spec, local_study(station_paths(study)).train(spec).to_json()


def make(result, own_org=9, encrypted=True, **kw):
    fake = FakeVantage6(result, own_org, encrypted)
    return fake, Study(fake, collaboration_id=1, stations=STATIONS, coordinator_org=COORDINATOR, poll=0.0,
                       progress=True, **kw)


def test_train_submits_to_the_coordinator_and_returns_the_coefficients(train_result, capsys):
    spec, raw = train_result
    fake, study = make(raw)
    model = study.train(spec, min_cell_count=20)
    task = fake.created[0]
    assert task["organizations"] == [COORDINATOR] and task["image"] == "localhost/lancelot-training:dev"
    assert task["input_"]["method"] == "central"
    kwargs = task["input_"]["kwargs"]
    assert kwargs["stations"] == {"registry": 2, "gp_1": 3}  # only the stations the spec links
    assert kwargs["spec"] == spec and kwargs["min_cell_count"] == 20 and "evaluate" not in kwargs
    assert "rounding_base" not in kwargs   # the nodes' policies decide unless the researcher raises it
    table = model.coefficients()
    for row in raw["coefficients"]:
        assert table.loc[row["feature"], "estimate"] == row["estimate"]
        assert table.loc[row["feature"], "station"] == row["station"]
    assert model.rounds == raw["cost"]["rounds"] and model.task_id == 41
    assert "station subtasks finished 1/2" in capsys.readouterr().err


def test_a_rounding_base_reaches_linkage_and_training(train_result):
    spec, raw = train_result
    fake, study = make(raw)
    study.train(spec, rounding_base=10)
    assert fake.created[0]["input_"]["kwargs"]["rounding_base"] == 10
    from lancelot.cli import build_parser

    assert build_parser().parse_args(["link", "--spec", "s.json", "--rounding-base", "10"]).rounding_base == 10
    with pytest.raises(SystemExit):   # only 1, 5 or 10
        build_parser().parse_args(["train", "--spec", "s.json", "--rounding-base", "3"])


def test_exploration_tables_are_the_released_rows():
    raw = {"analyses": [{"name": "1_crosstab", "type": "crosstab", "variables": ["registry.stage", "gp_1.copd"],
                         "table": [{"stage": "I", "copd": "0", "count": 12}, {"stage": "I", "copd": "1", "count": None}]}],
           "cost": {"rounds": 4}}
    _, study = make(raw)
    spec = {"linkage": {"stations": {"registry": {"id_column": "id"}, "gp_1": {"id_column": "id"}},
                        "fields": [{"name": "sex", "kind": "category", "columns": {"registry": "s", "gp_1": "s"}}]},
            "analyses": [{"type": "crosstab", "variables": [{"station": "registry", "column": "stage"},
                                                            {"station": "gp_1", "column": "copd"}]}]}
    table = study.explore(spec).tables()["1_crosstab"]
    assert table["count"].tolist()[0] == 12 and table["count"].isna().tolist()[1]


def test_a_refusal_becomes_an_error_and_a_bad_spec_is_not_submitted(train_result):
    spec, _ = train_result
    _, study = make({"lancelot_error": "station 'gp_1', column 'bmi': is constant"})
    with pytest.raises(LancelotError, match="training refused: station 'gp_1'"):
        study.train(spec)
    fake, study = make({})
    with pytest.raises(LancelotError, match="not valid"):
        study.train({**spec, "features": []})
    assert fake.created == []


def test_the_coordinator_must_be_neutral():
    with pytest.raises(LancelotError, match="neutral"):
        Study(FakeVantage6({}), collaboration_id=1, stations=STATIONS, coordinator_org=3)


@pytest.mark.parametrize("own_org, encrypted, message", [(COORDINATOR, True, "coordinator's organisation"),
                                                         (9, False, "not encrypted")])
def test_unsafe_set_ups_are_refused_before_submitting(train_result, own_org, encrypted, message):
    spec, raw = train_result
    fake, study = make(raw, own_org=own_org, encrypted=encrypted)
    with pytest.raises(LancelotError, match=message):
        study.train(spec)
    assert fake.created == []


def test_login_asks_the_server_for_its_major_and_refuses_a_client_of_the_other_one():
    """A 5.x HQ answers /version with 5.x: the 4.15 client installed here must not try to log in to it."""
    import http.server
    import threading

    class Version(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"version": "5.0.3" if self.path == "/api/version" else "?"}).encode()
            self.send_response(200 if self.path == "/api/version" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Version)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        from lancelot.client import server_major

        assert server_major("http://127.0.0.1", server.server_port, "/api") == 5
        with pytest.raises(LancelotError, match=r"runs vantage6 5.x but vantage6-client 4.x is installed"):
            Study.login("http://127.0.0.1", server.server_port, "/api", "researcher", "secret", None,
                        collaboration_id=1, stations=STATIONS, coordinator_org=COORDINATOR)
        with pytest.raises(LancelotError, match="could not ask"):
            server_major("http://127.0.0.1", server.server_port, "/nothing")
    finally:
        server.shutdown()


def test_a_station_file_not_in_utf8_is_named_before_the_job_starts(study, tmp_path):
    """A node reads its CSV as UTF-8; a Latin-1 export would crash the run with only 'failed' to show."""
    import pandas as pd

    frame = pd.read_csv(study["gp_1"])
    frame.loc[3, "achternaam"] = "Müller-Lüdenscheidt"
    latin = tmp_path / "gp_latin1.csv"
    frame.to_csv(latin, index=False, encoding="latin-1")
    spec = json.loads(study["link_spec"].read_text())
    with pytest.raises(LancelotError, match=r"station 'gp_1'.*not UTF-8 text \(byte 0xfc") as err:
        local_study({**station_paths(study), "gp_1": latin}).link(spec)
    assert "'CSV UTF-8'" in str(err.value)


def test_the_command_line_prints_the_summary_and_its_warnings_when_the_json_goes_to_a_file(study, tmp_path, capsys):
    """`lancelot link --output FILE`: the JSON in the file, the summary on the terminal, warnings included (here
    40 GP patients twice under new record ids)."""
    import pandas as pd

    from lancelot.cli import main

    gp = pd.read_csv(study["gp_1"], dtype=str)
    copies = gp.iloc[:40].assign(patient_nr=[f"DUP-{i}" for i in range(40)])
    pd.concat([gp, copies]).to_csv(tmp_path / "gp.csv", index=False)
    args = ["link", "--station", f"registry={study['registry']}", "--station", f"gp_1={tmp_path / 'gp.csv'}",
            "--spec", str(study["link_spec"]), "--output", str(tmp_path / "link.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    saved = json.loads((tmp_path / "link.json").read_text())
    assert f"linked to all stations: {saved['summary']['linked_to_all_stations']}" in out
    assert "  warning: station 'gp_1': " in out and "two record ids" in out
