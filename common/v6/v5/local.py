"""An in-process vantage6 5.x network: every run goes through 5.x's ``wrap_algorithm`` in a fresh process.

The 5.x twin of :mod:`lancelot.v6.local`. Each run is a new process forked from a clean,
pre-imported forkserver, with the environment a 5.x node gives a Kubernetes job (read in
vantage6-node 5.0.3's ``k8s/container_manager.py``): ``PKG_NAME`` (the image's), ``INPUT_FILE``
(the arguments as JSON), ``OUTPUT_FILE``, ``ALGORITHM_METHOD``, ``FUNCTION_ACTION``, ``TASK_ID``,
``NODE_ID``, ``ORGANIZATION_ID``, ``COLLABORATION_ID``, ``SESSION_FOLDER`` and ``SESSION_FILE``
(one folder per session and node, holding the session's dataframes as parquet), ``HOST``/``PORT``/
``API_PATH`` (the node's proxy), ``DATABASE_URI``/``DATABASE_TYPE`` for a data extraction or
``USER_REQUESTED_DATAFRAMES`` otherwise, the node operator's ``algorithm_env``, all base32-encoded
as the node does; and ``CONTAINER_TOKEN`` (a JWT as HQ issues it) for central runs only.

The "HQ" models what the station guard relies on, as 5.0.3's HQ records it: a task has an
``init_org`` (the creating user's organisation, or for a subtask the organisation of the node whose
container created it), a ``parent`` and a ``job_id`` (subtasks share their parent's), an image (a
subtask gets its parent's), a session and an action; runs per organisation with their statuses; a
collaboration that is encrypted or not; results that a node's proxy can only decrypt when they were
encrypted for that node's organisation. Every request carries the token it is made with, and HQ
answers from that token's identity (an invalid token gets HQ's 401 message). Only central runs get
a token. A federated run reaches the proxy only when its node's operator allows it
(``station_egress``; the 5.x default network policy blocks it), otherwise every connection it opens
fails, as in a pod without egress. A researcher can create any task at any organisation, so the
attacks run here as on a real network; a node can be offline and come back.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..inprocess import COLLABORATION_ID, PipeClient, ProcessNetwork, Run, Task, TaskCalls, redirect_output

_PRELOAD = ["numpy", "pandas", "gmpy2", "jwt", "pyarrow.parquet", "cryptography.hazmat.primitives.asymmetric.x25519",
            "vantage6.algorithm.tools.wrap", "vantage6.algorithm.decorator", "vantage6.algorithm.client",
            "lancelot.v6.v5.adapter"]
RUN_ENDED = ("completed", "failed", "killed by user", "dataframe not found")
TASK_ENDED = ("completed", "failed")  # HQ's task statuses besides "awaiting"
SESSION_ID = 1
HQ_SECRET = "local-network-hq-jwt-secret-of-32-bytes-or-more"  # HQ signs container tokens (HS256)
KEEP_ENV = ("PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")  # a container's own, not encoded


def encoded(value: Any) -> str:
    """A value as a 5.x node puts it in a run's environment (base32, '=' written as '!')."""
    return base64.b32encode(str(value).encode()).decode().replace("=", "!")


class _TaskCalls(TaskCalls):
    def create(self, method: str, arguments: dict | None = None, organizations: list[int] | None = None,
               name: str = "subtask", description: str | None = None) -> dict:
        return self.client._call("create", {"method": method, "arguments": arguments or {},
                                            "organizations": list(organizations or []), "name": name,
                                            "databases": self.client.databases, "action": "federated_compute"})


class _PipeAlgorithmClient(PipeClient):
    """Stands in for 5.x's ``AlgorithmClient`` (same constructor and calls), talking to the harness's HQ."""

    network: bool = True     # False: the run's pod has no egress, every request fails
    task_calls = _TaskCalls
    task_ended = TASK_ENDED

    def __init__(self, token: str, hq_url: str = "", **_: Any):
        import jwt

        identity = jwt.decode(token, options={"verify_signature": False}).get("sub", {})
        super().__init__(identity)
        self._access_token = token
        self.session_id = identity.get("session_id")
        self.study_id = self.store_id = None

    def _call(self, *message: Any) -> Any:
        """Every request carries the container's token (HQ answers from it)."""
        if not self.network:
            raise ConnectionRefusedError("no egress from this run (the node's network policy)")
        return super()._call(self._access_token, *message)


def _no_egress(*_: Any, **__: Any) -> Any:
    raise ConnectionRefusedError("no egress from this run (the node's network policy)")


def _child_main(env: dict, connection: Any, log_path: str, network: bool) -> None:
    """Body of every run process: a container's environment, then 5.x's ``wrap_algorithm``."""
    import sys

    redirect_output(log_path)
    kept = {k: os.environ[k] for k in KEEP_ENV if k in os.environ}
    os.environ.clear()
    os.environ.update({**kept, **env})
    import vantage6.algorithm.client as v6client
    import vantage6.algorithm.decorator  # noqa: F401 - loads the module patched below

    _PipeAlgorithmClient.connection, _PipeAlgorithmClient.network = connection, network
    v6client.AlgorithmClient = _PipeAlgorithmClient
    sys.modules["vantage6.algorithm.decorator.algorithm_client"].AlgorithmClient = _PipeAlgorithmClient
    if not network:
        socket.create_connection = _no_egress
    from vantage6.algorithm.tools.wrap import wrap_algorithm

    wrap_algorithm()


@dataclass(kw_only=True)
class _Task(Task):
    method: str
    action: str
    arguments: dict
    databases: list
    session_id: int = SESSION_ID
    dataframe: str | None = None          # the dataframe a data extraction makes

    @property
    def status(self) -> str:
        """As 5.x's HQ derives it from the runs: failed, completed, or awaiting."""
        statuses = [r.status for r in self.runs]
        if any(s in RUN_ENDED and s != "completed" for s in statuses):
            return "failed"
        if statuses and all(s == "completed" for s in statuses):
            return "completed"
        return "awaiting"


class LocalNetwork5(ProcessNetwork):
    """Organisations with databases, a neutral coordinator, a researcher, one session, tasks run as processes.

    The same interface as :class:`lancelot.v6.local.LocalNetwork` (``stations`` maps station name ->
    CSV path; ``station_env``, ``coordinator_env``, ``coordinator_at``, ``researcher_at``,
    ``encrypted``, ``offline``), plus ``station_egress`` (False: the stations' operators have not
    let federated runs reach the node's proxy). :meth:`run` extracts the stations' dataframe in the
    session first (once), as a researcher on 5.x must, and passes its id to the central function.
    """

    DATAFRAME = "lancelot"
    task_class = _Task
    task_ended = TASK_ENDED
    tasks: dict[int, _Task]

    def __init__(self, package: str, stations: dict[str, str | os.PathLike], workdir: str | os.PathLike | None = None,
                 station_env: dict[str, dict[str, str]] | None = None, keep_workdir: bool = False,
                 coordinator_at: str | None = None, researcher_at: str | None = None, encrypted: bool = True,
                 coordinator_env: dict[str, str] | None = None, offline: tuple[str, ...] = (),
                 station_egress: bool = True):
        super().__init__(package, stations, workdir, station_env, keep_workdir, coordinator_at, researcher_at,
                         encrypted, coordinator_env, offline, image_tag="local-v5", prefix="lancelot-net5-",
                         preload=_PRELOAD)
        self.station_egress = station_egress
        self.dataframes: dict[int, dict] = {}   # id -> {"name", "ready": set of organisations}
        self.dataframe_id: int | None = None
        self.proxy = socket.create_server(("127.0.0.1", 0), backlog=256)  # the nodes' proxy address (accepts only)
        self.proxy.setblocking(False)
        self._steps = importlib.import_module(package)

    # -- the researcher's side ---------------------------------------------------------------
    def extract(self, name: str | None = None, timeout: float = 600) -> int:
        """The researcher's data-extraction task at every station: the session dataframe's id."""
        name = name or self.DATAFRAME
        frame_id = next(self._ids)
        self.dataframes[frame_id] = {"name": name, "ready": set()}
        task = self._create({"method": "extract", "arguments": {}, "action": "data_extraction",
                             "databases": [[{"label": "default", "type": "source"}]]},
                            list(self.orgs.values()), self.researcher_org, parent=None, dataframe=name)
        self.wait(task, timeout)
        if self.tasks[task].status != "completed":
            raise RuntimeError(f"the data extraction ended '{self.tasks[task].status}': {self._log_tail(task)}")
        return frame_id

    def run(self, kwargs: dict, method: str = "central", timeout: float = 3600) -> Any:
        """Run one job as the researcher: the central method at the coordinator, on the session dataframe."""
        if self.dataframe_id is None:
            self.dataframe_id = self.extract()
        task = self.create_task(method, {"dataframe": self.dataframe_id, **kwargs}, [self.coordinator_org])
        return self._central_result(task, timeout)

    def create_task(self, method: str, arguments: dict, organizations: list[int], init_org: int | None = None,
                    action: str | None = None, databases: list | None = None) -> int:
        """A task created by a user (of the researcher's organisation unless ``init_org`` says otherwise).

        The action, as HQ takes it from the algorithm store, is the function's own step type unless given.
        """
        action = action or getattr(self._steps, method).vantage6_decorator_step_type.value
        return self._create({"method": method, "arguments": arguments, "action": action,
                             "databases": databases or []}, organizations,
                            init_org or self.researcher_org, parent=None)

    def session_folder(self, org: int) -> Path:
        return self.workdir / f"node{org}" / f"session{SESSION_ID:09d}"  # as the node names it

    def state_files(self, station: str) -> list[Path]:
        """Every file a station keeps for jobs in its session folder (for checking that jobs wipe their state)."""
        return sorted(p for p in self.session_folder(self.orgs[station]).glob("lancelot-state/**/*") if p.is_file())

    def run_logs(self) -> list[str]:
        return [line for t in self.tasks.values() for r in t.runs if (r.folder / "log.txt").exists()
                for line in (r.folder / "log.txt").read_text().splitlines() if line.strip()]

    # -- HQ ----------------------------------------------------------------------------------
    def _create(self, request: dict, organizations: list[int], init_org: int, parent: _Task | None,
                dataframe: str | None = None) -> int:
        return self._add_task(organizations, parent, init_org=init_org, name=request.get("name", "task"),
                              method=request["method"], action=request["action"], arguments=request["arguments"],
                              databases=request.get("databases") or [],
                              session_id=parent.session_id if parent else SESSION_ID, dataframe=dataframe)

    def _run_folder(self, task: _Task, org: int) -> Path:
        return self.workdir / "runs" / f"task{task.id}-org{org}"

    def _results(self, task: _Task) -> list:
        """A data extraction's runs complete without a result."""
        return [r.result for r in task.runs if r.status == "completed" and r.result is not None]

    def _frame_ids(self, databases: list) -> list[int]:
        flat = [d for group in databases for d in (group if isinstance(group, list) else [group])]
        return [d["dataframe_id"] for d in flat if isinstance(d, dict) and d.get("type") == "dataframe"]

    def _token(self, run: Run) -> str:
        import jwt

        databases = [[{"label": None, "type": "dataframe", "dataframe_id": i}] for i in self._frame_ids(run.task.databases)]
        sub = {"vantage6_client_type": "container", "node_id": 1000 + run.org_id, "organization_id": run.org_id,
               "collaboration_id": COLLABORATION_ID, "study_id": None, "store_id": None,
               "session_id": run.task.session_id, "task_id": run.task.id, "image": run.task.image,
               "databases": databases}
        return jwt.encode({"sub": sub}, HQ_SECRET, algorithm="HS256")

    def _start(self, run: Run) -> None:
        """The node starts a run: checks the dataframes, writes input and output files, sets the environment."""
        task = self.tasks[run.task.id]
        run.folder.mkdir(parents=True, exist_ok=True)
        session = self.session_folder(run.org_id)
        session.mkdir(parents=True, exist_ok=True, mode=0o700)
        (run.folder / "input").write_text(json.dumps(task.arguments))
        (run.folder / "output").write_bytes(b"")
        env = {"OUTPUT_FILE": run.folder / "output", "INPUT_FILE": run.folder / "input", "SESSION_FOLDER": session,
               "SESSION_FILE": session / "session_state.parquet", "HOST": "http://127.0.0.1",
               "PORT": self.proxy.getsockname()[1], "API_PATH": "", "ALGORITHM_METHOD": task.method,
               "FUNCTION_ACTION": task.action, "TASK_ID": task.id, "NODE_ID": 1000 + run.org_id,
               "ORGANIZATION_ID": run.org_id, "COLLABORATION_ID": COLLABORATION_ID}
        if task.action == "data_extraction":
            if run.org_id not in self.databases:
                run.status = "failed"
                return
            env.update({"DATABASE_URI": self.databases[run.org_id], "DATABASE_TYPE": "csv"})
        else:
            names = [self.dataframes[i]["name"] for i in self._frame_ids(task.databases) if i in self.dataframes]
            if any(not (session / f"{n}.parquet").exists() for n in names):
                run.status = "dataframe not found"
                return
            env["USER_REQUESTED_DATAFRAMES"] = ";".join(names)
        for key, value in self.node_env.get(run.org_id, {}).items():
            env.setdefault(key, value)  # the node refuses algorithm_env that overrides its own variables
        env = {k: encoded(v) for k, v in env.items()}
        env["PKG_NAME"] = self.package  # set in the image, not by the node
        if task.action == "central_compute":
            env["CONTAINER_TOKEN"] = self._token(run)  # a Kubernetes secret: not encoded
        self._launch(run, _child_main, env, task.action == "central_compute" or self.station_egress)

    def _pump(self, wait: float) -> None:
        """Drop the proxy's probe connections, then serve as every in-process network does."""
        with contextlib.suppress(BlockingIOError):
            while True:
                self.proxy.accept()[0].close()
        super()._pump(wait)

    def _finish(self, run: Run) -> None:
        """The node reads the output: a data extraction's parquet joins the session, a computation's JSON is the result."""
        out = run.folder / "output"
        if run.process.exitcode != 0 or not out.exists() or out.stat().st_size == 0:
            run.status = "failed"
            return
        task = self.tasks[run.task.id]
        if task.action == "data_extraction":
            shutil.copyfile(out, self.session_folder(run.org_id) / f"{task.dataframe}.parquet")
            for frame in self.dataframes.values():
                if frame["name"] == task.dataframe:
                    frame["ready"].add(run.org_id)
        else:
            run.result = json.loads(out.read_bytes())
        run.status = "completed"

    def _task_json(self, task: _Task) -> dict:
        return {"id": task.id, "job_id": task.job_id, "image": task.image, "name": task.name, "method": task.method,
                "action": task.action, "status": task.status, "init_org": {"id": task.init_org},
                "parent": {"id": task.parent_id} if task.parent_id else None,
                "collaboration": {"id": COLLABORATION_ID}, "session": {"id": task.session_id},
                "databases": [{"type": "dataframe", "dataframe_id": i} for i in self._frame_ids(task.databases)]}

    def _identity(self, token: Any) -> dict | None:
        """The container a token was issued to, if HQ signed it."""
        import jwt

        try:
            sub = jwt.decode(token, HQ_SECRET, algorithms=["HS256"], options={"verify_sub": False})["sub"]
        except (jwt.PyJWTError, KeyError, TypeError):
            return None
        return sub if isinstance(sub, dict) and sub.get("vantage6_client_type") == "container" else None

    def _serve(self, run: Run, message: tuple, caller: dict | None = None) -> tuple[str, Any]:
        """One request through a node's proxy, answered from the token it carries (HQ's 401 message otherwise)."""
        token, *request = message
        me = self._identity(token)
        if me is None or me.get("collaboration_id") != COLLABORATION_ID:
            return "ok", {"msg": "Authentication failed"}
        return super()._serve(run, tuple(request), caller=me)

    def _answer(self, run: Run, kind: str, args: list, caller: dict | None) -> Any:
        if kind == "create":
            return self._container_creates(caller, args[0])
        if kind == "task":
            task = self.tasks.get(args[0])
            return self._task_json(task) if task else {"msg": f"task id={args[0]} is not found"}
        if kind == "runs":
            return [{"id": r.id, "status": r.status, "organization": {"id": r.org_id}, "task": {"id": r.task.id},
                     "action": r.task.action} for r in self.tasks[args[0]].runs]
        if kind == "collaboration":
            return {"id": COLLABORATION_ID, "encrypted": self.encrypted, "session_restrict_to_same_image": False}
        return None

    def _container_creates(self, me: dict, request: dict) -> dict:
        """A subtask, as 5.x's HQ makes it for a container: its parent's job, image and session."""
        parent = self.tasks.get(me["task_id"])
        if parent is None or parent.status != "awaiting":
            return {"msg": "Container-token is not valid"}
        for frame in self._frame_ids(request.get("databases") or []):
            missing = [o for o in request["organizations"] if o not in self.dataframes.get(frame, {}).get("ready", ())]
            if missing:
                return {"msg": f"The dataframe you selected is not present for the following organizations: {missing}"}
        return {"id": self._create(request, request["organizations"], me["organization_id"], parent=parent)}

    def close(self) -> None:
        super().close()
        self.proxy.close()
