"""An in-process Vantage6 network: every run goes through ``wrap_algorithm`` in a fresh process.

vantage6's ``MockAlgorithmClient`` runs everything in one process, so module globals survive
between rounds and a protocol that keeps state in memory passes there and fails on a real node.
Here each run (central and partial) is a new process forked from a clean, pre-imported forkserver,
with the environment a real 4.x node gives a container: ``PKG_NAME``, ``INPUT_FILE``,
``OUTPUT_FILE``, ``TOKEN_FILE`` (a JWT whose ``sub`` names the task, node, organisation,
collaboration and image, as a node's container token does), ``TEMPORARY_FOLDER`` (one per job and
node), the database URI/type and the node operator's ``algorithm_env``.

The "server" models what the station guard relies on, as vantage6 4.15 records it: tasks have an
``init_org`` (the creating user's organisation, or for a subtask the organisation of the container
that created it), a ``parent`` and a ``job_id`` (subtasks share their parent's), an image (a subtask
gets its parent's), runs per organisation with their statuses, a collaboration that is encrypted
or not, and results a container can read only when they were encrypted for its organisation. Every
run reaches the server through a pipe that stands in for the node's proxy and answers the calls of
vantage6's ``AlgorithmClient`` that lancelot uses. A researcher (an organisation of its own by
default) can create any task at any organisation, so attacks run here exactly as on a real network;
a node can be offline (its runs stay pending) and come back.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .inprocess import COLLABORATION_ID, PipeClient, ProcessNetwork, Run, Task, TaskCalls, redirect_output

_PRELOAD = ["numpy", "pandas", "gmpy2", "jwt", "cryptography.hazmat.primitives.asymmetric.x25519",
            "vantage6.algorithm.tools.wrap", "vantage6.algorithm.tools.decorators", "lancelot.v6.adapter"]
ENDED = ("completed", "failed", "killed by user")


class _TaskCalls(TaskCalls):
    def create(self, input_: dict, organizations: list[int] | None = None, name: str = "subtask",
               description: str | None = None) -> dict:
        return self.client._call("create", input_, list(organizations or []), name)


class _PipeAlgorithmClient(PipeClient):
    """Stands in for vantage6's ``AlgorithmClient`` in every run (same constructor and call signatures)."""

    task_calls = _TaskCalls
    task_ended = ENDED

    def __init__(self, token: str, host: str = "", port: str = "", path: str = "", **_: Any):
        import jwt

        super().__init__(jwt.decode(token, options={"verify_signature": False})["sub"])


def _child_main(env: dict, connection: Any, log_path: str) -> None:
    """Body of every run process: the environment of a container, then ``wrap_algorithm``."""
    redirect_output(log_path)
    os.environ.update(env)
    import vantage6.algorithm.tools.decorators as decorators

    _PipeAlgorithmClient.connection = connection
    decorators.AlgorithmClient = _PipeAlgorithmClient
    from vantage6.algorithm.tools.wrap import wrap_algorithm

    wrap_algorithm()


@dataclass(kw_only=True)
class _Task(Task):
    input: dict

    @property
    def status(self) -> str:
        statuses = [r.status for r in self.runs]
        if "failed" in statuses:
            return "failed"
        if "killed by user" in statuses:
            return "killed by user"
        if statuses and all(s == "completed" for s in statuses):
            return "completed"
        return "active" if "active" in statuses or "completed" in statuses else "pending"


class LocalNetwork(ProcessNetwork):
    """Organisations with CSV databases, a neutral coordinator, a researcher, and tasks run as processes
    (the layout and its arguments: :class:`~lancelot.v6.inprocess.ProcessNetwork`; :meth:`set_online` brings an
    offline station up).
    """

    task_class = _Task
    task_ended = ENDED
    tasks: dict[int, _Task]

    def __init__(self, package: str, stations: dict[str, str | os.PathLike], workdir: str | os.PathLike | None = None,
                 station_env: dict[str, dict[str, str]] | None = None, keep_workdir: bool = False,
                 coordinator_at: str | None = None, researcher_at: str | None = None, encrypted: bool = True,
                 coordinator_env: dict[str, str] | None = None, offline: tuple[str, ...] = ()):
        super().__init__(package, stations, workdir, station_env, keep_workdir, coordinator_at, researcher_at,
                         encrypted, coordinator_env, offline, image_tag="local", prefix="lancelot-net-",
                         preload=_PRELOAD)

    # -- the researcher's side ---------------------------------------------------------------
    def run(self, kwargs: dict, method: str = "central", timeout: float = 3600) -> Any:
        """Run one job as the researcher: the central method at the coordinator; return its result."""
        task = self.create_task({"method": method, "kwargs": kwargs}, [self.coordinator_org])
        return self._central_result(task, timeout)

    def create_task(self, input_: dict, organizations: list[int], init_org: int | None = None) -> int:
        """A task created by a user (of the researcher's organisation unless ``init_org`` says otherwise)."""
        return self._create(input_, organizations, init_org or self.researcher_org, parent=None, name="task")

    def state_files(self, station: str) -> list[Path]:
        """Every file a station keeps in its per-job folders (for checking that jobs wipe their state)."""
        org = self.orgs[station]
        return sorted(p for p in self.workdir.glob(f"job*/tmp-org{org}/**/*") if p.is_file())

    # -- the "server" ------------------------------------------------------------------------
    def _create(self, input_: dict, organizations: list[int], init_org: int, parent: _Task | None, name: str) -> int:
        return self._add_task(organizations, parent, init_org=init_org, name=name, input=input_)

    def _run_folder(self, task: _Task, org: int) -> Path:
        return self.workdir / f"job{task.job_id}" / f"task{task.id}-org{org}"

    def _token(self, run: Run) -> str:
        import jwt

        sub = {"task_id": run.task.id, "node_id": 1000 + run.org_id, "organization_id": run.org_id,
               "collaboration_id": COLLABORATION_ID, "image": run.task.image, "databases": [{"label": "default"}]}
        return jwt.encode({"sub": sub, "iat": int(time.time())}, "local-network-node-secret-of-32-bytes-or-more", algorithm="HS256")

    def _start(self, run: Run) -> None:
        run.folder.mkdir(parents=True, exist_ok=True)
        tmp = run.folder.parent / f"tmp-org{run.org_id}"  # one per job and node, like vantage6 4.x
        tmp.mkdir(exist_ok=True, mode=0o700)
        (run.folder / "input.json").write_text(json.dumps(run.task.input))
        (run.folder / "token.txt").write_text(self._token(run))
        env = {"PKG_NAME": self.package, "INPUT_FILE": str(run.folder / "input.json"),
               "OUTPUT_FILE": str(run.folder / "output.json"), "TOKEN_FILE": str(run.folder / "token.txt"),
               "TEMPORARY_FOLDER": str(tmp), "HOST": "http://localhost", "PORT": "0", "API_PATH": "/api"}
        if run.org_id in self.databases:
            env.update({"USER_REQUESTED_DATABASE_LABELS": "default", "DB_LABELS": "default",
                        "DEFAULT_DATABASE_URI": self.databases[run.org_id], "DEFAULT_DATABASE_TYPE": "csv"})
        env.update(self.node_env.get(run.org_id, {}))
        self._launch(run, _child_main, env)

    def _finish(self, run: Run) -> None:
        """The node reads the output JSON: the run's result."""
        out = run.folder / "output.json"
        if run.process.exitcode == 0 and out.exists():
            run.result = json.loads(out.read_text())
            run.status = "completed"
        else:
            run.status = "failed"

    def _task_json(self, task: _Task) -> dict:
        return {"id": task.id, "job_id": task.job_id, "image": task.image, "name": task.name, "status": task.status,
                "parent": {"id": task.parent_id} if task.parent_id else None, "init_org": {"id": task.init_org},
                "collaboration": {"id": COLLABORATION_ID}}

    def _answer(self, run: Run, kind: str, args: list, caller: dict | None) -> Any:
        """A container's call, answered with the container's own identity (never its claims)."""
        if kind == "create":
            input_, organizations, name = args
            return {"id": self._create(input_, organizations, run.org_id, parent=run.task, name=name)}
        if kind == "task":
            return self._task_json(self.tasks[args[0]])
        if kind == "runs":
            return [{"id": r.id, "status": r.status, "organization": {"id": r.org_id}, "task": {"id": r.task.id},
                     "log": (r.folder / "log.txt").read_text() if (r.folder / "log.txt").exists() else ""}
                    for r in self.tasks[args[0]].runs]
        if kind == "collaboration":
            return {"id": COLLABORATION_ID, "encrypted": self.encrypted}
        return None
