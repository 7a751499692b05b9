"""The researcher's Python API on a real vantage6 network (4.15 server or 5.x HQ): link, explore, train.

A thin layer over ``vantage6.client`` (4.15's ``Client`` or 5.x's ``UserClient``, whichever is
installed; :meth:`Study.login` asks the server which major it runs): it builds each algorithm's task input from a spec,
starts the central function at the neutral coordinating organisation, waits with progress (task
status and how many station subtasks have finished), decodes the result and raises a clear error
on a refusal. Results come back as the same objects ``Study.local`` gives (:mod:`lancelot.results`:
the JSON the local ``lancelot`` commands write, with pandas views and the same reports)::

    from lancelot import Study
    study = Study.from_connection_file(".v6dev/network/connection.json")   # the dev network
    link = study.link(spec)                      # the link stays inside the job
    tables = study.explore(explore_spec).tables()
    model = study.train(train_spec)
    model.coefficients(); model.report("report/")

See scripts/example_study.py for a full study on the dev network.

On a vantage6 5.x HQ a task runs in a session on dataframes: before the first job of an algorithm
the study creates a session (or uses ``session_id``) and runs the algorithm's ``extract`` step at
the stations (or uses ``dataframe``), then passes the dataframe's id to the central function.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from .algorithms import ALGORITHMS as _REGISTRY
from .results import Exploration, LinkageResult, Model, Result
from .runtime.errors import LancelotError
from .study import Study as _Study
from .study import central_kwargs

ALGORITHMS = tuple(_REGISTRY)   # the image names: lancelot-linkage, lancelot-exploration, lancelot-training
# The names this module's results had before lancelot.results: LinkResult, ExploreResult, TrainResult.
LinkResult = LinkageResult
ExploreResult = Exploration
__all__ = ["Study", "Result", "LinkResult", "ExploreResult", "TrainResult", "table_one_frame"]


def TrainResult(raw: dict, task_id: int | None = None, seconds: float | None = None) -> Model:  # noqa: N802
    """A training result's object (:class:`LogisticModel` or :class:`CoxModel`); the name it had here."""
    return Model.from_json(raw, task_id=task_id, seconds=seconds)


def table_one_frame(analysis: dict):
    """A released table_one as the DataFrame of a paper's Table 1 (the ``tableone`` package's layout).

    Rows: ``(variable, level)``, with "n" first; columns: missing, overall, one per level of the stratifier,
    p-value and test. Cells are text ("68.8 (9.05)", "56 (21.3)", "3.10 [2.04, 6.02]"); a withheld value is
    an em dash. The numbers themselves are in ``analysis["rows"]``.
    """
    from .results.explore import TableOne

    return TableOne(analysis).frame()


class Study(_Study):
    """One collaboration's stations and neutral coordinator, reached through a logged-in vantage6 client
    (the transport of :class:`lancelot.study.Study` on a real network)."""

    def __init__(self, client: Any, collaboration_id: int, stations: dict[str, int], coordinator_org: int,
                 images: dict[str, str] | None = None, database: str = "default", progress: bool = True,
                 timeout: float = 1800, poll: float = 1.0, vantage6: int = 4, session_id: int | None = None,
                 dataframe: int | dict | None = None):
        """``vantage6``: the server's major (4 or 5). On 5.x, ``session_id`` and ``dataframe`` reuse a session
        and the stations' dataframe made earlier; by default each algorithm gets its own on first use."""
        if coordinator_org in stations.values():
            raise LancelotError("the coordinator organisation also holds study data: choose a neutral one")
        if vantage6 not in (4, 5):
            raise LancelotError(f"vantage6 major {vantage6} is not supported: 4 (4.15) or 5 (5.0)")
        self.client = client
        self.vantage6 = vantage6
        self.session_id = session_id
        self.dataframe = dataframe
        self._frames: dict[str, tuple[int, Any]] = {}   # image -> (session, dataframe) made by this study
        self.collaboration_id = collaboration_id
        self.stations = dict(stations)
        self.coordinator_org = coordinator_org
        tag = "dev" if vantage6 == 4 else "dev-v5"  # what docs/real-network.md builds
        self.images = {a: f"localhost/lancelot-{a}:{tag}" for a in ALGORITHMS} | dict(images or {})
        self.database = database
        self.progress = progress
        self.timeout = timeout
        self.poll = poll
        self._checked = False

    def check_setup(self) -> None:
        """Refuse, before submitting anything, a set-up in which the privacy model does not hold.

        vantage6 encrypts every station result for the coordinator's organisation, so the researcher
        must not belong to it; an unencrypted collaboration lets the server read every result. The
        central function and every station check the same again.
        """
        if self._checked:
            return
        whoami = getattr(self.client, "whoami", None)
        own_org = getattr(whoami, "organization_id", None)
        if own_org is not None and own_org == self.coordinator_org:
            raise LancelotError(
                f"you belong to organisation {own_org}, the coordinator's organisation: its members can decrypt "
                "every station result. Ask the network administrator for a researcher organisation of your own "
                "and run the coordinator at a neutral organisation")
        collaboration = self.client.collaboration.get(self.collaboration_id)
        if not (collaboration or {}).get("encrypted"):
            raise LancelotError(f"collaboration {self.collaboration_id} is not encrypted, so the server could read "
                                "every station result: the collaboration administrator must enable encryption")
        self._checked = True

    @classmethod
    def login(cls, url: str, port: int, api_path: str, username: str | None = None, password: str | None = None,
              private_key: str | None = None, vantage6: int | None = None, auth_url: str | None = None,
              auth_realm: str = "vantage6", client_secret: str | None = None, **kwargs: Any) -> Study:
        """Log in with vantage6-client; ``private_key`` is the organisation key of an encrypted collaboration.

        ``vantage6`` (4 or 5) is the server's major; by default the server is asked (its ``/version``).
        4.15: ``username`` and ``password``. 5.x: users sign in through the HQ's Keycloak (``auth_url``),
        as a service account (``username`` and ``client_secret``) or, without a secret, in a browser
        (vantage6's device flow, which prints a link); 5.x takes no password.
        """
        major = vantage6 or server_major(url, port, api_path)
        installed = installed_client_major()
        if major != installed:
            raise LancelotError(f"the server runs vantage6 {major}.x but vantage6-client {installed}.x is installed: "
                                f"install lancelot[{'vantage6' if major == 4 else 'vantage6-5'}] "
                                f"(vantage6 5.x needs Python 3.13)")
        if major == 4:
            from vantage6.client import Client

            client = Client(url, port, api_path, log_level="warn")
            client.authenticate(username, password)
        else:
            client = login_5(f"{url}:{port}{api_path}", username, password, auth_url, auth_realm, client_secret)
        setup_encryption(client, private_key)
        return cls(client, vantage6=major, **kwargs)

    @classmethod
    def from_connection_file(cls, path: str | Path, **kwargs: Any) -> Study:
        """The dev network's connection file (written by ``scripts/devnet.sh up``)."""
        c = json.loads(Path(path).read_text())
        s, r = c["server"], c["researcher"]
        return cls.login(s["url"], s["port"], s["api_path"], r["username"], r["password"], r.get("private_key"),
                         collaboration_id=c["collaboration"]["id"], stations=c["stations"],
                         coordinator_org=c["coordinator_org"], images=c.get("images"),
                         database=c.get("database_label", "default"), **kwargs)

    def task_input(self, spec: dict, evaluate: bool = False, min_cell_count: int | None = None,
                   rounding_base: int | None = None, **extra: Any) -> dict:
        """The central function's input: only the stations the spec's linkage names take part."""
        link = spec if "fields" in spec else spec.get("linkage") or {}
        names = list(link.get("stations", self.stations))
        unknown = [n for n in names if n not in self.stations]
        if unknown:
            raise LancelotError(f"the spec names stations this study does not have: {unknown}")
        kwargs = central_kwargs(spec, evaluate, min_cell_count, rounding_base, **extra)
        return {"method": "central", "kwargs": {"stations": {n: self.stations[n] for n in names}, **kwargs}}

    def submit(self, a: Any, spec: dict, **options: Any) -> tuple[dict, int]:
        """Create the central task at the coordinator, wait for it, decode its result."""
        algorithm = a.name
        self.check_setup()
        if self.vantage6 == 4:
            task = self.client.task.create(
                collaboration=self.collaboration_id, organizations=[self.coordinator_org],
                name=f"lancelot {algorithm}", image=self.images[algorithm], description="lancelot.client",
                input_=self.task_input(spec, **options), databases=[{"label": self.database}])
        else:
            task = self.submit_5(algorithm, self.task_input(spec, **options))
        if not isinstance(task, dict) or "id" not in task:
            raise LancelotError(f"the server refused the task: {task}")
        status = self.wait(task["id"])
        results = self.results(task["id"]) if status == "completed" else []
        if not results or results[0] is None:
            raise LancelotError(f"{algorithm} task {task['id']} ended '{status}' without a result; "
                                f"last log lines:\n{self.log_tail(task['id'])}")
        raw = results[0]
        if isinstance(raw, dict) and "lancelot_error" in raw:
            raise LancelotError(f"{algorithm} refused: {raw['lancelot_error']}")
        return raw, task["id"]

    # -- vantage6 5.x: sessions and dataframes ---------------------------------------------------
    def submit_5(self, algorithm: str, task_input: dict) -> Any:
        """The central task on a 5.x HQ: in the algorithm's session, on the stations' dataframe."""
        session, frame = self.session_and_dataframe(algorithm)
        return self.client.task.create(
            organizations=[self.coordinator_org], name=f"lancelot {algorithm}", image=self.images[algorithm],
            description="lancelot.client", method=task_input["method"],
            arguments={**task_input["kwargs"], "dataframe": frame}, session=session,
            collaboration=self.collaboration_id, databases=[], action="central_compute")

    def session_and_dataframe(self, algorithm: str) -> tuple[int, Any]:
        """The session and the stations' dataframe a job of ``algorithm`` runs on (made on first use).

        One session per image: a collaboration may restrict each session to one image, and the
        dataframe must then be made by the same image (every lancelot image has ``extract``).
        """
        if self.dataframe is not None:
            if self.session_id is None:
                raise LancelotError("give the session_id of the session that holds the dataframe")
            return self.session_id, self.dataframe
        image = self.images[algorithm]
        if image not in self._frames:
            session = self.session_id or self._created(self.client.session.create(
                scope="own", name=f"lancelot {algorithm} {secrets.token_hex(4)}",
                collaboration=self.collaboration_id), "session")
            self._frames[image] = (session, self.extract(session, image))
        return self._frames[image]

    def extract(self, session: int, image: str, name: str = "lancelot") -> int:
        """Run ``extract`` at the stations (their database ``self.database``) and wait: the dataframe's id."""
        from vantage6.common.serialization import serialize

        orgs = [{"id": org, "arguments": self.client.cryptor.encrypt_bytes_to_str(
                    serialize({}), self.client.organization.get(org).get("public_key"))}
                for org in self.stations.values()]
        frame = self._created(self.client.request(f"session/{session}/dataframe", method="post", json={
            "label": self.database, "name": name,
            "task": {"method": "extract", "image": image, "organizations": orgs,
                     "description": "lancelot: each station's table as the session's dataframe"}}), "dataframe")
        t0 = time.monotonic()
        while not self.client.dataframe.get(frame).get("ready"):
            task = (self.client.dataframe.get(frame).get("last_session_task") or {}).get("id")
            if task is not None and self.client.task.get(task).get("status") == "failed":
                raise LancelotError(f"the stations could not read database '{self.database}' into the session "
                                    f"(task {task}):\n{self.log_tail(task)}")
            if time.monotonic() - t0 > self.timeout:
                raise LancelotError(f"dataframe {frame} not ready after {self.timeout:.0f} s")
            time.sleep(self.poll)
        return frame

    @staticmethod
    def _created(answer: Any, what: str) -> int:
        if not isinstance(answer, dict) or "id" not in answer:
            raise LancelotError(f"the HQ did not create the {what}: {answer}")
        return answer["id"]

    # -- vantage6 plumbing --------------------------------------------------------------------
    def wait(self, task_id: int) -> str:
        """Poll until the task finishes; print status and finished station subtasks as they change."""
        t0, last = time.monotonic(), None
        while True:
            status = self.client.task.get(task_id)["status"]
            if self.progress:
                children = self.client.task.list(parent=task_id, per_page=500).get("data", [])
                done = sum(1 for c in children if task_finished(c["status"]))
                line = f"task {task_id}: {status}; station subtasks finished {done}/{len(children)}"
                if line != last:
                    print(f"[lancelot] {time.monotonic() - t0:6.1f}s {line}", file=sys.stderr, flush=True)
                    last = line
            if task_finished(status):
                return status
            if time.monotonic() - t0 > self.timeout:
                raise LancelotError(f"task {task_id} still '{status}' after {self.timeout:.0f} s")
            time.sleep(self.poll)

    def results(self, task_id: int) -> list[Any]:
        out = self.client.result.from_task(task_id)
        items = out["data"] if isinstance(out, dict) else out
        return [decode(item.get("result") if isinstance(item, dict) else item) for item in items]

    def log_tail(self, task_id: int, lines: int = 20) -> str:
        runs = self.client.run.from_task(task_id)
        runs = runs["data"] if isinstance(runs, dict) else list(runs)
        text = "\n".join(r.get("log") or "" for r in runs)
        return "\n".join(text.splitlines()[-lines:])


def task_finished(status: str) -> bool:
    """Has a task with this status ended (4.15 and 5.x statuses)."""
    try:
        from vantage6.common.task_status import has_task_finished  # 4.x
    except ImportError:
        from vantage6.common.enum import TaskStatus  # 5.x: awaiting, completed, failed

        return TaskStatus.has_finished(status)
    return has_task_finished(status)


def server_major(url: str, port: int, api_path: str, timeout: float = 10.0) -> int:
    """The vantage6 major a server runs, from its ``/version`` (public on 4.15 servers and 5.x HQs)."""
    import requests

    try:
        version = requests.get(f"{url}:{port}{api_path}/version", timeout=timeout).json()["version"]
        return int(str(version).split(".")[0])
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        raise LancelotError(f"could not ask {url}:{port}{api_path} for its vantage6 version ({type(exc).__name__}); "
                            "pass vantage6=4 or vantage6=5") from exc


def installed_client_major() -> int:
    """The major of the installed vantage6-client (4 or 5)."""
    import importlib.metadata

    try:
        return int(importlib.metadata.version("vantage6-client").split(".")[0])
    except importlib.metadata.PackageNotFoundError as exc:
        raise LancelotError("vantage6-client is not installed: pip install lancelot[vantage6] (4.15) or "
                            "lancelot[vantage6-5] (5.x, Python 3.13)") from exc


def login_5(hq_url: str, username: str | None, password: str | None, auth_url: str | None, auth_realm: str,
            client_secret: str | None) -> Any:
    """A 5.x ``UserClient`` signed in through the HQ's Keycloak: a service account, or the device flow."""
    from vantage6.client import UserClient
    from vantage6.common import WhoAmI

    if not auth_url:
        raise LancelotError("a vantage6 5.x HQ signs users in through its Keycloak: pass auth_url")
    if password and not client_secret:
        raise LancelotError("vantage6 5.x takes no password: sign in as a service account (username and "
                            "client_secret) or leave both out to sign in in a browser")
    client = UserClient(hq_url, auth_url, auth_realm=auth_realm, log_level="warn")
    if client_secret:
        client.initialize_service_account(client_secret=client_secret, username=username)
        client.authenticate_service_account()
        me = client.request("user/me")  # a service account's login does not say who it is
        if "id" not in me:
            raise LancelotError(f"the HQ does not know this service account: {me.get('msg', me)}")
        org = me["organization"]["id"]
        client.whoami = WhoAmI(type_="user", id_=me["id"], name=me.get("username"), organization_id=org,
                               organization_name=client.request(f"organization/{org}").get("name"))
    else:
        client.authenticate()
    if not getattr(client, "whoami", None):
        raise LancelotError("signing in to the vantage6 5.x HQ failed (see vantage6's messages above)")
    return client


def setup_encryption(client: Any, private_key: str | Path | None) -> None:
    """vantage6's ``setup_encryption``, made safe for a second login in the same process.

    vantage6 (4.15 and 5.x) keeps one RSA cryptor per process (a singleton), so a second organisation's key
    would silently be the first one's; and on a mismatch it uploads the local public key as the
    organisation's, which would make every result for that organisation unreadable to its nodes. So:
    a fresh cryptor for this key, and a refusal instead of an upload when the key does not match.
    """
    if private_key is None:
        client.setup_encryption(None)
        return
    from vantage6.common import Singleton
    from vantage6.common.encryption import RSACryptor

    Singleton._instances.pop(RSACryptor, None)
    cryptor = RSACryptor(Path(private_key))
    registered = client.organization.get(client.whoami.organization_id).get("public_key")
    if registered and not cryptor.verify_public_key(registered):
        raise LancelotError(f"the private key {private_key} is not the key of your organisation "
                            f"({client.whoami.organization_id}) on the server; nothing was changed")
    client.setup_encryption(Path(private_key))


def decode(value: Any) -> Any:
    """A run's result as stored by the server: JSON text (decrypted by the client) or already decoded."""
    return json.loads(value) if isinstance(value, (str, bytes)) and value else value
