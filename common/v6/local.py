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

import contextlib
import itertools
import json
import multiprocessing as mp
import multiprocessing.connection
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..algorithms import PACKAGES

# Imported once in the forkserver, so that a run process starts in milliseconds (the algorithm
# packages save 0.2 s per subtask).
_ALGORITHMS = PACKAGES
_PRELOAD = ["numpy", "pandas", "gmpy2", "jwt", "cryptography.hazmat.primitives.asymmetric.x25519",
            "vantage6.algorithm.tools.wrap", "vantage6.algorithm.tools.decorators", "lancelot.v6.adapter",
            *_ALGORITHMS]
ENDED = ("completed", "failed", "killed by user")
COLLABORATION_ID = 1


def _context() -> mp.context.BaseContext:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


@contextlib.contextmanager
def _caller_script_hidden():
    """Start a run without making it re-import the caller's script as ``__mp_main__``.

    multiprocessing hands every new process the path of ``__main__`` to import first; a run needs
    nothing from it (its target and arguments live in this module), and a benchmark or CLI script
    costs about 1.5 s to import, once per subtask. (The forkserver's "__main__" preload that should
    avoid this drops the path on Python 3.11.)
    """
    main = sys.modules.get("__main__")
    path = main.__dict__.pop("__file__", None) if main is not None else None
    try:
        yield
    finally:
        if path is not None:
            main.__file__ = path


class _PipeAlgorithmClient:
    """Stands in for vantage6's ``AlgorithmClient`` in every run (same constructor and call signatures)."""

    connection: Any = None  # set by the harness in the child before wrap_algorithm runs

    def __init__(self, token: str, host: str = "", port: str = "", path: str = "", **_: Any):
        import jwt

        identity = jwt.decode(token, options={"verify_signature": False})["sub"]
        self.image = identity.get("image")
        self.databases = identity.get("databases", [])
        self.node_id = identity.get("node_id")
        self.collaboration_id = identity.get("collaboration_id")
        self.organization_id = identity.get("organization_id")
        outer = self

        class Task:
            def get(self, task_id: int) -> dict:
                return outer._call("task", task_id)

            def create(self, input_: dict, organizations: list[int] | None = None, name: str = "subtask",
                       description: str | None = None) -> dict:
                return outer._call("create", input_, list(organizations or []), name)

        class Run:
            def from_task(self, task_id: int) -> list:
                return outer._call("runs", task_id)

        class Result:
            def from_task(self, task_id: int) -> list:
                return outer._call("results", task_id)

        class Collaboration:
            def get(self) -> dict:
                return outer._call("collaboration")

        class Organization:
            def get(self, id_: int) -> dict:
                return outer._call("organization", id_)

        self.task, self.run, self.result = Task(), Run(), Result()
        self.collaboration, self.organization = Collaboration(), Organization()

    def _call(self, *message: Any) -> Any:
        self.connection.send(message)
        kind, value = self.connection.recv()
        if kind == "error":
            raise RuntimeError(value)
        return value

    def wait_for_results(self, task_id: int, interval: float = 0.05) -> list:
        while self.task.get(task_id)["status"] not in ENDED:
            time.sleep(interval)
        return self.result.from_task(task_id)


def _child_main(env: dict, connection: Any, log_path: str) -> None:
    """Body of every run process: the environment of a container, then ``wrap_algorithm``."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ.update(env)
    import vantage6.algorithm.tools.decorators as decorators

    _PipeAlgorithmClient.connection = connection
    decorators.AlgorithmClient = _PipeAlgorithmClient
    from vantage6.algorithm.tools.wrap import wrap_algorithm

    wrap_algorithm()


@dataclass
class _Run:
    id: int
    task: _Task
    org_id: int
    folder: Path
    status: str = "pending"
    process: Any = None
    connection: Any = None
    result: Any = None


@dataclass
class _Task:
    id: int
    job_id: int
    parent_id: int | None
    init_org: int
    image: str
    name: str
    input: dict
    runs: list[_Run] = field(default_factory=list)

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


class ProcessNetwork:
    """What both in-process networks (4.15 and 5.x) share: organisations, nodes, folders, and runs as processes.

    ``stations`` maps station name -> CSV path; each station is an organisation with a node. The
    coordinator (organisation 1) is a node with no data; the researcher is an organisation of its
    own without a node (``researcher_at`` puts the researcher in the coordinator's or a station's
    organisation instead, to exercise the refusal of that set-up). ``station_env`` maps station name
    -> its node's ``algorithm_env``; ``coordinator_env`` is the coordinator node's.
    ``coordinator_at`` runs central tasks at a station's organisation; ``encrypted=False`` models an
    unencrypted collaboration; ``offline`` names stations whose node is down.
    """

    COORDINATOR_ORG = 1
    RESEARCHER_ORG = 100

    def __init__(self, package: str, stations: dict[str, str | os.PathLike], workdir: str | os.PathLike | None,
                 station_env: dict[str, dict[str, str]] | None, keep_workdir: bool, coordinator_at: str | None,
                 researcher_at: str | None, encrypted: bool, coordinator_env: dict[str, str] | None,
                 offline: tuple[str, ...], image_tag: str, prefix: str):
        if not stations:
            raise ValueError("a network needs at least one station")
        self.package = package
        self.image = f"localhost/{package.replace('_', '-')}:{image_tag}"
        self.orgs = {name: 2 + i for i, name in enumerate(stations)}
        self.coordinator_org = self.orgs[coordinator_at] if coordinator_at else self.COORDINATOR_ORG
        self.researcher_org = (self.RESEARCHER_ORG if researcher_at is None else
                               self.COORDINATOR_ORG if researcher_at == "coordinator" else self.orgs[researcher_at])
        self.encrypted = encrypted
        self.databases = {self.orgs[name]: str(Path(path).resolve()) for name, path in stations.items()}
        self.node_env = {self.orgs[name]: dict((station_env or {}).get(name, {})) for name in stations}
        self.node_env[self.COORDINATOR_ORG] = {"LANCELOT_POLL_SECONDS": "0.01", **(coordinator_env or {})}
        if coordinator_at:
            self.node_env[self.coordinator_org].setdefault("LANCELOT_POLL_SECONDS", "0.01")
        self.nodes = {self.COORDINATOR_ORG, *self.orgs.values()}
        self.offline = {self.orgs[name] for name in offline}
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=prefix))
        self.keep_workdir = keep_workdir
        self._ids = itertools.count(1)

    def set_online(self, station: str) -> None:
        """A node comes back: it starts its pending runs (serve them with :meth:`wait` or :meth:`settle`)."""
        self.offline.discard(self.orgs[station])
        for task in self.tasks.values():
            for run in task.runs:
                if run.org_id == self.orgs[station] and run.status == "pending":
                    self._start(run)

    def settle(self, timeout: float = 600) -> None:
        """Serve until no run is active anywhere."""
        deadline = time.monotonic() + timeout
        while any(self._active(job) for job in {t.job_id for t in self.tasks.values()}):
            if time.monotonic() > deadline:
                raise TimeoutError("runs still active")
            self._pump(0.05)

    def _active(self, job: int) -> bool:
        return any(r.status == "active" for t in self.tasks.values() if t.job_id == job for r in t.runs)

    def _kill_job(self, job: int) -> None:
        for task in self.tasks.values():
            for run in task.runs:
                if task.job_id == job and run.status == "active":
                    run.process.terminate()
                    run.process.join()
                    run.status = "killed by user"

    def _pump(self, wait: float) -> None:
        """Answer every pending request, then note runs that have exited (:meth:`_finish` reads their output)."""
        active = [r for t in self.tasks.values() for r in t.runs if r.status == "active"]
        waitables = [r.connection for r in active] + [r.process.sentinel for r in active]
        ready = mp.connection.wait(waitables, timeout=wait) if active else []
        for run in active:
            if run.connection in ready:
                try:
                    message = run.connection.recv()
                except (EOFError, OSError):
                    message = None
                if message is not None:
                    run.connection.send(self._serve(run, message))
        for run in active:
            if not run.process.is_alive():
                while run.connection.poll():  # requests sent just before exiting
                    try:
                        run.connection.send(self._serve(run, run.connection.recv()))
                    except (EOFError, OSError):
                        break
                run.process.join()
                self._finish(run)
                run.connection.close()

    def close(self) -> None:
        for job in {t.job_id for t in self.tasks.values()}:
            self._kill_job(job)
        if self._own_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalNetwork(ProcessNetwork):
    """Organisations with CSV databases, a neutral coordinator, a researcher, and tasks run as processes
    (the layout and its arguments: :class:`ProcessNetwork`; :meth:`set_online` brings an offline station up).
    """

    def __init__(self, package: str, stations: dict[str, str | os.PathLike], workdir: str | os.PathLike | None = None,
                 station_env: dict[str, dict[str, str]] | None = None, keep_workdir: bool = False,
                 coordinator_at: str | None = None, researcher_at: str | None = None, encrypted: bool = True,
                 coordinator_env: dict[str, str] | None = None, offline: tuple[str, ...] = ()):
        super().__init__(package, stations, workdir, station_env, keep_workdir, coordinator_at, researcher_at,
                         encrypted, coordinator_env, offline, image_tag="local", prefix="lancelot-net-")
        self.tasks: dict[int, _Task] = {}
        self.ctx = _context()

    # -- the researcher's side ---------------------------------------------------------------
    def run(self, kwargs: dict, method: str = "central", timeout: float = 3600) -> Any:
        """Run one job as the researcher: the central method at the coordinator; return its result."""
        task = self.create_task({"method": method, "kwargs": kwargs}, [self.coordinator_org])
        results = self.wait(task, timeout)
        central = self.tasks[task].runs[0]
        if central.status != "completed" or not results:
            log_file = central.folder / "log.txt"
            log = log_file.read_text()[-3000:] if log_file.exists() else "(no log: the process died at start)"
            raise RuntimeError(f"the central run ended '{central.status}'; its log ends with:\n{log}")
        return results[0]

    def create_task(self, input_: dict, organizations: list[int], init_org: int | None = None) -> int:
        """A task created by a user (of the researcher's organisation unless ``init_org`` says otherwise)."""
        return self._create(input_, organizations, init_org or self.researcher_org, parent=None, name="task")

    def wait(self, task_id: int, timeout: float = 3600) -> list:
        """Serve the network until the task has ended and its job has no active run; the task's results."""
        task = self.tasks[task_id]
        deadline = time.monotonic() + timeout
        while task.status not in ENDED or self._active(task.job_id):
            if time.monotonic() > deadline:
                self._kill_job(task.job_id)
                raise TimeoutError(f"task {task_id} did not finish within {timeout} s")
            self._pump(0.05)
        return [r.result for r in task.runs if r.status == "completed"]

    def state_files(self, station: str) -> list[Path]:
        """Every file a station keeps in its per-job folders (for checking that jobs wipe their state)."""
        org = self.orgs[station]
        return sorted(p for p in self.workdir.glob(f"job*/tmp-org{org}/**/*") if p.is_file())

    # -- the "server" ------------------------------------------------------------------------
    def _create(self, input_: dict, organizations: list[int], init_org: int, parent: _Task | None, name: str) -> int:
        unknown = [o for o in organizations if o not in self.nodes]
        if unknown:
            raise ValueError(f"organisations without a node in this collaboration: {unknown}")
        task_id = next(self._ids)
        task = _Task(id=task_id, job_id=parent.job_id if parent else task_id, parent_id=parent.id if parent else None,
                     init_org=init_org, image=parent.image if parent else self.image, name=name, input=input_)
        self.tasks[task_id] = task
        for org in organizations:
            folder = self.workdir / f"job{task.job_id}" / f"task{task_id}-org{org}"
            run = _Run(id=next(self._ids), task=task, org_id=org, folder=folder)
            task.runs.append(run)
            if org not in self.offline:
                self._start(run)
        return task_id

    def _token(self, run: _Run) -> str:
        import jwt

        sub = {"task_id": run.task.id, "node_id": 1000 + run.org_id, "organization_id": run.org_id,
               "collaboration_id": COLLABORATION_ID, "image": run.task.image, "databases": [{"label": "default"}]}
        return jwt.encode({"sub": sub, "iat": int(time.time())}, "local-network-node-secret-of-32-bytes-or-more", algorithm="HS256")

    def _start(self, run: _Run) -> None:
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
        parent_end, child_end = self.ctx.Pipe()
        run.process = self.ctx.Process(target=_child_main, args=(env, child_end, str(run.folder / "log.txt")))
        with _caller_script_hidden():
            run.process.start()
        child_end.close()
        run.connection = parent_end
        run.status = "active"

    def _finish(self, run: _Run) -> None:
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

    def _serve(self, run: _Run, message: tuple) -> tuple[str, Any]:
        """One API call of a container, answered with the container's own identity (never its claims)."""
        kind = message[0]
        try:
            if kind == "create":
                _, input_, organizations, name = message
                return "ok", {"id": self._create(input_, organizations, run.org_id, parent=run.task, name=name)}
            if kind == "task":
                return "ok", self._task_json(self.tasks[message[1]])
            if kind == "runs":
                return "ok", [{"id": r.id, "status": r.status, "organization": {"id": r.org_id},
                               "task": {"id": r.task.id},
                               "log": (r.folder / "log.txt").read_text() if (r.folder / "log.txt").exists() else ""}
                              for r in self.tasks[message[1]].runs]
            if kind == "results":
                task = self.tasks[message[1]]
                if self.encrypted and task.init_org != run.org_id:
                    return "error", "the results are encrypted for another organisation"
                return "ok", [r.result for r in task.runs if r.status == "completed"]
            if kind == "collaboration":
                return "ok", {"id": COLLABORATION_ID, "encrypted": self.encrypted}
            if kind == "organization":
                return "ok", {"id": message[1], "public_key": ""}
        except Exception as exc:  # noqa: BLE001 - report to the container as a server error
            return "error", f"{type(exc).__name__}: {exc}"
        return "error", f"unknown request {kind}"
