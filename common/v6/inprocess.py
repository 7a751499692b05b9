"""What the in-process networks of both vantage6 lines share (:mod:`lancelot.v6.local` for 4.15,
:mod:`lancelot.v6.v5.local` for 5.x): runs as processes forked from a pre-imported forkserver, the
pipe a run's stand-in ``AlgorithmClient`` talks through, and the server's bookkeeping of
organisations, tasks and runs.

Each line's module keeps what its vantage6 does differently: a run's environment, the client's
constructor and ``task.create``, the task record, how a node reads a run's output, and the server's
answers. This module imports no vantage6 module: it is imported under either major, and both install
into the same ``vantage6`` namespace.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import multiprocessing as mp
import multiprocessing.connection
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..algorithms import PACKAGES
from ..runtime.errors import InputError

COLLABORATION_ID = 1


def forkserver(preload: list[str]) -> mp.context.BaseContext:
    """The forkserver context every run starts from, with ``preload`` and the algorithm packages imported
    once in the server, so that a run process starts in milliseconds (the algorithm packages save 0.2 s
    per subtask)."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([*preload, *PACKAGES])
    return ctx


@contextlib.contextmanager
def caller_script_hidden():
    """Start a run without making it re-import the caller's script as ``__mp_main__``.

    multiprocessing hands every new process the path of ``__main__`` to import first; a run needs
    nothing from it (its target and arguments live in the network's module), and a benchmark or CLI
    script costs about 1.5 s to import, once per subtask. (The forkserver's "__main__" preload that
    should avoid this drops the path on Python 3.11.)
    """
    main = sys.modules.get("__main__")
    path = main.__dict__.pop("__file__", None) if main is not None else None
    try:
        yield
    finally:
        if path is not None:
            main.__file__ = path


def redirect_output(log_path: str) -> None:
    """A run's stdout and stderr go to its log file (the node keeps a container's log)."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)


# -- inside a run: the client's calls, sent through the pipe ------------------------------------
class _Calls:
    def __init__(self, client: PipeClient):
        self.client = client


class TaskCalls(_Calls):
    """``client.task``; each line adds ``create`` with its own signature."""

    def get(self, task_id: int) -> dict:
        return self.client._call("task", task_id)


class _RunCalls(_Calls):
    def from_task(self, task_id: int) -> list:
        return self.client._call("runs", task_id)


class _ResultCalls(_Calls):
    def from_task(self, task_id: int) -> list:
        return self.client._call("results", task_id)


class _CollaborationCalls(_Calls):
    def get(self) -> dict:
        return self.client._call("collaboration", self.client.collaboration_id)


class _OrganizationCalls(_Calls):
    def get(self, id_: int) -> dict:
        return self.client._call("organization", id_)


class PipeClient:
    """The part of vantage6's ``AlgorithmClient`` that lancelot uses, answered by the harness through a pipe.

    A line's client gives the constructor vantage6's decorator calls (it passes the token's ``sub``
    here), its ``task.create`` (``task_calls``) and its ended task statuses.
    """

    connection: Any = None  # set by the harness in the child before wrap_algorithm runs
    task_calls: type[TaskCalls] = TaskCalls
    task_ended: tuple[str, ...]  # the line's task statuses at which wait_for_results stops

    def __init__(self, identity: dict):
        self.image, self.databases = identity.get("image"), identity.get("databases", [])
        self.node_id, self.organization_id = identity.get("node_id"), identity.get("organization_id")
        self.collaboration_id = identity.get("collaboration_id")
        self.task, self.run, self.result = self.task_calls(self), _RunCalls(self), _ResultCalls(self)
        self.collaboration, self.organization = _CollaborationCalls(self), _OrganizationCalls(self)

    def _call(self, *message: Any) -> Any:
        self.connection.send(message)
        kind, value = self.connection.recv()
        if kind == "error":
            raise RuntimeError(value)
        return value

    def wait_for_results(self, task_id: int, interval: float = 0.05) -> list:
        while self.task.get(task_id)["status"] not in self.task_ended:
            time.sleep(interval)
        return self.result.from_task(task_id)


# -- the server's records ------------------------------------------------------------------------
@dataclass
class Run:
    id: int
    task: Task
    org_id: int
    folder: Path
    status: str = "pending"
    process: Any = None
    connection: Any = None
    result: Any = None


@dataclass
class Task:
    """What both lines' servers record of a task; each line's subclass adds its fields (keyword-only) and ``status``."""

    id: int
    job_id: int
    parent_id: int | None
    init_org: int
    image: str
    name: str
    runs: list[Run] = field(default_factory=list)


def check_utf8(station: str, path: str | os.PathLike) -> None:
    """A node reads its CSV as UTF-8; any other encoding would crash the run with nothing but 'failed' to show
    on this machine, so the in-process network checks the file first and names the station and the byte."""
    if Path(path).suffix.lower() not in (".csv", ".txt", ".tsv"):
        return
    offset = 0
    with open(path, "rb") as f:
        decoder = codecs.getincrementaldecoder("utf-8")()
        for chunk in iter(lambda: f.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad = chunk[exc.start:exc.start + 1].hex()
                raise InputError(f"the file {path} is not UTF-8 text (byte 0x{bad} at offset {offset + exc.start}): "
                                 "save it as UTF-8 (from a spreadsheet: 'CSV UTF-8')", station=station) from None
            offset += len(chunk)


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
    task_class: type[Task] = Task
    task_ended: tuple[str, ...]  # the line's task statuses that end a task

    def __init__(self, package: str, stations: dict[str, str | os.PathLike], workdir: str | os.PathLike | None,
                 station_env: dict[str, dict[str, str]] | None, keep_workdir: bool, coordinator_at: str | None,
                 researcher_at: str | None, encrypted: bool, coordinator_env: dict[str, str] | None,
                 offline: tuple[str, ...], image_tag: str, prefix: str, preload: list[str]):
        if not stations:
            raise ValueError("a network needs at least one station")
        for name, path in stations.items():
            check_utf8(name, path)
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
        self.tasks: dict[int, Task] = {}
        self.ctx = forkserver(preload)

    # -- the researcher's side ---------------------------------------------------------------
    def wait(self, task_id: int, timeout: float = 3600) -> list:
        """Serve the network until the task has ended and its job has no active run; the task's results."""
        task = self.tasks[task_id]
        deadline = time.monotonic() + timeout
        while task.status not in self.task_ended or self._active(task.job_id):
            if time.monotonic() > deadline:
                self._kill_job(task.job_id)
                raise TimeoutError(f"task {task_id} did not finish within {timeout} s")
            self._pump(0.05)
        return self._results(task)

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

    def _central_result(self, task_id: int, timeout: float) -> Any:
        """The result of a job's central run, once its job is over (its log's tail in the error if it failed)."""
        results = self.wait(task_id, timeout)
        central = self.tasks[task_id].runs[0]
        if central.status != "completed" or not results:
            raise RuntimeError(f"the central run ended '{central.status}'; its log ends with:\n{self._log_tail(task_id)}")
        return results[0]

    def _log_tail(self, task_id: int) -> str:
        log = self.tasks[task_id].runs[0].folder / "log.txt"
        return log.read_text()[-3000:] if log.exists() else "(no log: the process died at start)"

    # -- the server ---------------------------------------------------------------------------
    def _results(self, task: Task) -> list:
        """What the server hands out as a task's results."""
        return [r.result for r in task.runs if r.status == "completed"]

    def _add_task(self, organizations: list[int], parent: Task | None, **fields: Any) -> int:
        """A task (a subtask has its parent's job and image) with a run at each organisation, started where the node is up."""
        unknown = [o for o in organizations if o not in self.nodes]
        if unknown:
            raise ValueError(f"organisations without a node in this collaboration: {unknown}")
        task_id = next(self._ids)
        task = self.task_class(id=task_id, job_id=parent.job_id if parent else task_id,
                               parent_id=parent.id if parent else None,
                               image=parent.image if parent else self.image, **fields)
        self.tasks[task_id] = task
        for org in organizations:
            run = Run(id=next(self._ids), task=task, org_id=org, folder=self._run_folder(task, org))
            task.runs.append(run)
            if org not in self.offline:
                self._start(run)
        return task_id

    def _run_folder(self, task: Task, org: int) -> Path:
        """Where a run's input, output and log live (the line's node layout)."""
        raise NotImplementedError

    def _start(self, run: Run) -> None:
        """The node starts a run: its files and environment, then :meth:`_launch`."""
        raise NotImplementedError

    def _launch(self, run: Run, target: Callable[..., None], env: dict, *args: Any) -> None:
        """Start a run's process: ``target(env, its end of the pipe, its log path, *args)``."""
        parent_end, child_end = self.ctx.Pipe()
        run.process = self.ctx.Process(target=target, args=(env, child_end, str(run.folder / "log.txt"), *args))
        with caller_script_hidden():
            run.process.start()
        child_end.close()
        run.connection = parent_end
        run.status = "active"

    def _finish(self, run: Run) -> None:
        """The node reads an exited run's output: its status and result."""
        raise NotImplementedError

    def _serve(self, run: Run, message: tuple, caller: dict | None = None) -> tuple[str, Any]:
        """One API call of a container: ``("ok", answer)``, or ``("error", text)`` as the server reports a failure.

        ``caller`` is whom the request's token names (5.x); the 4.15 server knows a container by its run.
        """
        kind, *args = message
        try:
            if kind == "results":
                task = self.tasks[args[0]]
                if self.encrypted and task.init_org != run.org_id:  # this node cannot decrypt them
                    return "error", "the results are encrypted for another organisation"
                return "ok", self._results(task)
            if kind == "organization":
                return "ok", {"id": args[0], "public_key": ""}
            answer = self._answer(run, kind, args, caller)
        except Exception as exc:  # noqa: BLE001 - report to the container as a server error
            return "error", f"{type(exc).__name__}: {exc}"
        return ("ok", answer) if answer is not None else ("error", f"unknown request {kind}")

    def _answer(self, run: Run, kind: str, args: list, caller: dict | None) -> Any:
        """The line's own answer to a request (None: not a request it knows)."""
        raise NotImplementedError

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
