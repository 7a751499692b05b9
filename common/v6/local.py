"""An in-process Vantage6 network: every run goes through ``wrap_algorithm`` in a fresh process.

vantage6's ``MockAlgorithmClient`` runs everything in one process, so module globals survive
between rounds and a protocol that keeps station state in memory passes there and fails on a
real node. Here each run (the central one and every partial one) is a new process forked from a
clean, pre-imported forkserver, with the environment a real 4.x node gives a container:
``PKG_NAME``, ``INPUT_FILE``, ``OUTPUT_FILE``, ``TOKEN_FILE``, ``TEMPORARY_FOLDER`` (one per job
and organisation), the database URI/type and the node operator's ``algorithm_env``. The central
run talks to this "server" through a pipe that stands in for the HTTP API of the real
``AlgorithmClient``.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PRELOAD = ["numpy", "pandas", "gmpy2", "cryptography.hazmat.primitives.asymmetric.x25519",
            "vantage6.algorithm.tools.wrap", "vantage6.algorithm.tools.decorators", "lancelot.v6.adapter"]


def _context() -> mp.context.BaseContext:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


@dataclass
class _Run:
    task_id: int
    org_id: int
    process: Any
    folder: Path
    status: str = "active"
    result: Any = None


class _PipeAlgorithmClient:
    """Stands in for vantage6's ``AlgorithmClient`` inside the central run (same call signatures)."""

    connection: Any = None  # set by the harness in the child before wrap_algorithm runs
    organization_id: int | None = None

    def __init__(self, token: str = "", host: str = "", port: str = "", path: str = "", **_: Any):
        outer = self

        class Task:
            def create(self, input_: dict, organizations: list[int] | None = None, name: str = "subtask",
                       description: str | None = None) -> dict:
                return outer._call("create", input_, list(organizations or []), name)

        class Run:
            def from_task(self, task_id: int) -> list:
                return outer._call("runs", task_id)

        class Result:
            def from_task(self, task_id: int) -> list:
                return outer._call("wait", task_id)

        self.task, self.run, self.result = Task(), Run(), Result()

    def _call(self, *message: Any) -> Any:
        self.connection.send(message)
        kind, value = self.connection.recv()
        if kind == "error":
            raise RuntimeError(value)
        return value

    def wait_for_results(self, task_id: int, interval: float = 1) -> list:
        return self._call("wait", task_id)


def _child_main(env: dict, connection: Any, org_id: int, log_path: str) -> None:
    """Body of every run process: the environment of a container, then ``wrap_algorithm``."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ.update(env)
    if connection is not None:
        import vantage6.algorithm.tools.decorators as decorators
        _PipeAlgorithmClient.connection = connection
        _PipeAlgorithmClient.organization_id = org_id
        decorators.AlgorithmClient = _PipeAlgorithmClient
    from vantage6.algorithm.tools.wrap import wrap_algorithm
    wrap_algorithm()


class LocalNetwork:
    """Organisations with CSV databases, a neutral coordinator organisation, and jobs run as processes.

    ``stations`` maps station name -> CSV path. The coordinator is its own organisation with no
    data, as lancelot requires. ``station_env`` maps station name -> its node's ``algorithm_env``.
    """

    def __init__(self, package: str, stations: dict[str, str | os.PathLike], workdir: str | os.PathLike | None = None,
                 station_env: dict[str, dict[str, str]] | None = None, keep_workdir: bool = False,
                 coordinator_at: str | None = None):
        if not stations:
            raise ValueError("a network needs at least one station")
        self.package = package
        self.orgs = {name: 2 + i for i, name in enumerate(stations)}
        # The neutral coordinator organisation (id 1) holds no data; ``coordinator_at`` instead runs
        # central tasks at a station's organisation, to exercise the refusal of that set-up.
        self.coordinator_org = self.orgs[coordinator_at] if coordinator_at else 1
        self.databases = {self.orgs[name]: str(Path(path).resolve()) for name, path in stations.items()}
        self.station_env = {self.orgs[name]: dict((station_env or {}).get(name, {})) for name in stations}
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="lancelot-net-"))
        self.keep_workdir = keep_workdir
        self._task_ids = itertools.count(1)
        self._job_ids = itertools.count(1)
        self._runs: dict[int, list[_Run]] = {}
        self.ctx = _context()

    # -- the "server" ------------------------------------------------------------------------
    def _start(self, job: int, task_id: int, org_id: int, input_: dict, connection: Any = None) -> _Run:
        folder = self.workdir / f"job{job}" / f"task{task_id}-org{org_id}"
        folder.mkdir(parents=True)
        tmp = self.workdir / f"job{job}" / f"tmp-org{org_id}"  # one per job and node, like vantage6 4.x
        tmp.mkdir(exist_ok=True, mode=0o700)
        (folder / "input.json").write_text(json.dumps(input_))
        (folder / "token.txt").write_text("local-network-token")
        env = {"PKG_NAME": self.package, "INPUT_FILE": str(folder / "input.json"),
               "OUTPUT_FILE": str(folder / "output.json"), "TOKEN_FILE": str(folder / "token.txt"),
               "TEMPORARY_FOLDER": str(tmp), "HOST": "http://localhost", "PORT": "0", "API_PATH": "/api"}
        if org_id in self.databases:
            env.update({"USER_REQUESTED_DATABASE_LABELS": "default", "DB_LABELS": "default",
                        "DEFAULT_DATABASE_URI": self.databases[org_id], "DEFAULT_DATABASE_TYPE": "csv"})
            env.update(self.station_env.get(org_id, {}))
        proc = self.ctx.Process(target=_child_main, args=(env, connection, org_id, str(folder / "log.txt")))
        proc.start()
        return _Run(task_id, org_id, proc, folder)

    def _finish(self, run: _Run) -> None:
        run.process.join()
        out = run.folder / "output.json"
        if run.process.exitcode == 0 and out.exists():
            run.result = json.loads(out.read_text())
            run.status = "completed"
        else:
            run.status = "failed"

    def run(self, kwargs: dict, method: str = "central", timeout: float = 3600) -> Any:
        """Run one job: the central method at the coordinator organisation; returns its result."""
        job = next(self._job_ids)
        parent_conn, child_conn = self.ctx.Pipe()
        central = self._start(job, next(self._task_ids), self.coordinator_org,
                              {"method": method, "kwargs": kwargs}, connection=child_conn)
        child_conn.close()
        deadline = time.monotonic() + timeout
        while True:
            if parent_conn.poll(0.05):
                try:
                    message = parent_conn.recv()
                except EOFError:
                    break
                parent_conn.send(self._serve(job, message))
            elif not central.process.is_alive():
                break
            if time.monotonic() > deadline:
                central.process.terminate()
                raise TimeoutError(f"job {job} did not finish within {timeout} s")
        self._finish(central)
        if central.status != "completed":
            log_file = central.folder / "log.txt"
            log = log_file.read_text()[-3000:] if log_file.exists() else "(no log: the process died at start)"
            raise RuntimeError(f"the central run failed (exit code {central.process.exitcode}); "
                               f"its log ends with:\n{log}")
        return central.result

    def _serve(self, job: int, message: tuple) -> tuple[str, Any]:
        kind = message[0]
        try:
            if kind == "create":
                _, input_, organizations, _name = message
                task_id = next(self._task_ids)
                unknown = [o for o in organizations if o not in self.databases and o != self.coordinator_org]
                if unknown:
                    return "error", f"unknown organisations {unknown}"
                self._runs[task_id] = [self._start(job, task_id, org, input_) for org in organizations]
                return "ok", {"id": task_id}
            if kind == "wait":
                runs = self._runs[message[1]]
                for run in runs:
                    if run.status == "active":
                        self._finish(run)
                return "ok", [r.result for r in runs if r.status == "completed"]
            if kind == "runs":
                return "ok", [{"status": r.status, "organization": {"id": r.org_id},
                               "log": (r.folder / "log.txt").read_text() if (r.folder / "log.txt").exists() else ""}
                              for r in self._runs[message[1]]]
        except Exception as exc:  # noqa: BLE001 - report to the central run as a server error
            return "error", f"{type(exc).__name__}: {exc}"
        return "error", f"unknown request {kind}"

    def close(self) -> None:
        if self._own_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalNetwork:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
