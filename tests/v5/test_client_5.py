"""lancelot.client on a vantage6 5.x HQ, without one: session, extraction at the stations, the central task."""

from __future__ import annotations

import json

import pytest

from lancelot.client import Study, login_5, task_finished
from lancelot.runtime.errors import LancelotError

STATIONS = {"registry": 2, "gp_1": 3, "gp_2": 4}   # the stations of tests/v5's study
COORDINATOR = 5


class FakeHQ:
    """Just enough of vantage6 5.x's UserClient: a session, a dataframe that becomes ready, one central task."""

    def __init__(self, result: dict, own_org: int = 9):
        self.calls: list[tuple] = []
        self.polls = self.task_polls = 0
        self.whoami = type("WhoAmI", (), {"organization_id": own_org})()
        self.cryptor = type("Cryptor", (), {"encrypt_bytes_to_str": staticmethod(lambda data, key: f"enc:{key}")})()
        outer = self

        class Session:
            def create(self, **kwargs):
                outer.calls.append(("session", kwargs))
                return {"id": 7}

        class Dataframe:
            def get(self, id_):
                outer.polls += 1
                return {"id": id_, "ready": outer.polls > 2, "last_session_task": {"id": 70}}

        class Organization:
            def get(self, id_):
                return {"id": id_, "public_key": f"key{id_}"}

        class Collaboration:
            def get(self, id_):
                return {"id": id_, "encrypted": True}

        class Task:
            def create(self, **kwargs):
                outer.calls.append(("task", kwargs))
                return {"id": 41}

            def get(self, id_):
                outer.task_polls += 1
                return {"id": id_, "status": "completed" if id_ == 41 and outer.task_polls > 1 else "awaiting"}

            def list(self, parent, per_page):
                return {"data": [{"status": "completed"}, {"status": "awaiting"}]}

        class ResultApi:
            def from_task(self, task_id):
                return {"data": [{"result": json.dumps(result)}]}

        self.session, self.dataframe, self.organization = Session(), Dataframe(), Organization()
        self.collaboration, self.task, self.result = Collaboration(), Task(), ResultApi()

    def request(self, endpoint, method="get", json=None, **_):
        self.calls.append(("request", endpoint, method, json))
        return {"id": 12}


def test_a_5x_study_extracts_at_the_stations_then_runs_the_central_task_on_that_dataframe(v5_study):
    spec = json.loads(v5_study["link_spec"].read_text())
    fake = FakeHQ({"summary": {"pairs": {}}, "cost": {"rounds": 2}})
    study = Study(fake, collaboration_id=1, stations=STATIONS, coordinator_org=COORDINATOR, vantage6=5, poll=0.0,
                  progress=False)
    out = study.link(spec)
    assert out.rounds == 2 and out.task_id == 41
    kinds = [c[0] for c in fake.calls]
    assert kinds == ["session", "request", "task"]
    endpoint, method, body = fake.calls[1][1:]
    assert endpoint == "session/7/dataframe" and method == "post" and body["label"] == "default"
    assert body["task"]["method"] == "extract" and body["task"]["image"] == "localhost/lancelot-linkage:dev-v5"
    assert [o["id"] for o in body["task"]["organizations"]] == [2, 3, 4]  # the stations only, arguments encrypted
    assert all(o["arguments"].startswith("enc:key") for o in body["task"]["organizations"])
    task = fake.calls[2][1]
    assert task["organizations"] == [COORDINATOR] and task["method"] == "central" and task["session"] == 7
    assert task["action"] == "central_compute" and task["databases"] == []
    assert task["arguments"]["dataframe"] == 12 and task["arguments"]["stations"] == STATIONS
    study.link(spec)  # the same session and dataframe for the next linkage job
    assert [c[0] for c in fake.calls][3:] == ["task"]


def test_a_5x_study_can_reuse_a_session_and_dataframe_of_the_researcher():
    fake = FakeHQ({})
    study = Study(fake, collaboration_id=1, stations=STATIONS, coordinator_org=COORDINATOR, vantage6=5,
                  dataframe={"registry": 3, "gp_1": 4, "gp_2": 5})
    with pytest.raises(LancelotError, match="session_id"):
        study.session_and_dataframe("linkage")
    study.session_id = 2
    assert study.session_and_dataframe("training") == (2, {"registry": 3, "gp_1": 4, "gp_2": 5}) and fake.calls == []


def test_5x_login_needs_keycloak_and_takes_no_password():
    with pytest.raises(LancelotError, match="pass auth_url"):
        login_5("http://hq:7601/api", "researcher", None, None, "vantage6", None)
    with pytest.raises(LancelotError, match="takes no password"):
        login_5("http://hq:7601/api", "researcher", "secret", "http://auth:8080", "vantage6", None)


def test_5x_task_statuses():
    assert task_finished("completed") and task_finished("failed") and not task_finished("awaiting")
