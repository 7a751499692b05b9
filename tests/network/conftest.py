"""End-to-end fixtures: a researcher on the real vantage6 network started by ``scripts/devnet.sh up``.

    scripts/devnet.sh up
    .venv/bin/python -m pytest -m network tests/network
    scripts/devnet.sh down

Every test here is skipped, with the reason, when the network is not up; set
``LANCELOT_DEVNET_REQUIRED=1`` (CI) to turn that into a failure. ``LANCELOT_DEVNET`` points at
another connection file (default: ``.v6dev/network/connection.json``).

A test for a lancelot algorithm needs a few lines::

    @pytest.mark.network
    def test_linkage_end_to_end(devnet):
        run = devnet.submit_central(devnet.images["linkage"], {"stations": devnet.stations, ...})
        assert "lancelot_error" not in run.result, run.result

``devnet.stations`` maps the data stations (registry, gp_1, gp_2) to organisation ids,
``devnet.databases[station]`` is the CSV each node serves as database ``default`` and
``devnet.read_csv(station)`` loads it; central tasks run at the neutral coordinator organisation
unless ``organization=`` says otherwise.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONNECTION_FILE = Path(os.environ.get("LANCELOT_DEVNET", ROOT / ".v6dev" / "network" / "connection.json"))
TIMINGS_FILE = CONNECTION_FILE.parent.parent / "round-timings.json"  # survives `devnet.sh down`


@dataclass
class CentralRun:
    """One central task as the researcher sees it."""

    task_id: int
    status: str
    result: Any  # the central function's JSON result (decoded), None when it produced none
    seconds: float  # wall time from task creation to the decoded result
    devnet: Devnet = field(repr=False)
    _runs: list[dict] | None = field(default=None, repr=False)

    @property
    def runs(self) -> list[dict]:
        """Every run of the task (status, organisation, log); fetched on first use."""
        if self._runs is None:
            self._runs = self.devnet.runs(self.task_id)
        return self._runs

    @property
    def log(self) -> str:
        """The logs of the task's runs, e.g. for an assertion message."""
        return "\n".join(f"--- run {r.get('id')} ({r.get('status')}):\n{r.get('log') or ''}" for r in self.runs)


class Devnet:
    """The network as one user sees it: ``researcher`` (an organisation of its own), or ``insider`` (a
    user of the coordinator's organisation, which the attack tests use and lancelot must refuse)."""

    def __init__(self, connection: dict, user: str = "researcher"):
        from vantage6.client import Client

        self.connection = connection
        self.stations: dict[str, int] = dict(connection["stations"])
        self.organizations: dict[str, int] = dict(connection["organizations"])
        self.coordinator_org: int = connection["coordinator_org"]
        self.collaboration_id: int = connection["collaboration"]["id"]
        self.images: dict[str, str] = dict(connection["images"])
        self.databases: dict[str, Path] = {k: Path(v) for k, v in connection["databases"].items()}
        self.data_dir = Path(connection["data_dir"])  # lancelot synth output: link_spec.json, truth_*.csv
        self.station_env: dict[str, dict[str, str]] = connection.get("station_env", {})
        server = connection["server"]
        self.client = Client(server["url"], server["port"], server["api_path"], log_level="warn")
        from lancelot.client import setup_encryption

        researcher = connection[user]
        self.user = user
        self.client.authenticate(researcher["username"], researcher["password"])
        # end-to-end encryption: input is encrypted for each organisation's public key, results
        # of a task for the organisation that created it (the user's), decrypted with its private key
        # here (a fresh cryptor per user: vantage6 keeps one per process)
        setup_encryption(self.client, researcher.get("private_key"))

    def read_csv(self, station: str):
        import pandas as pd

        return pd.read_csv(self.databases[station])

    def submit(self, image: str, method: str, kwargs: dict, organizations: list[int],
               name: str = "lancelot e2e") -> int:
        task = self.client.task.create(
            collaboration=self.collaboration_id, organizations=organizations, name=name, image=image,
            description="tests/network", input_={"method": method, "kwargs": kwargs},
            databases=[{"label": self.connection.get("database_label", "default")}],
        )
        if not isinstance(task, dict) or "id" not in task:
            raise AssertionError(f"the server refused the task: {task}")
        return task["id"]

    def wait(self, task_id: int, timeout: float = 600, poll: float = 0.5) -> str:
        from vantage6.common.task_status import has_task_finished

        deadline = time.monotonic() + timeout
        while True:
            status = self.client.task.get(task_id)["status"]
            if has_task_finished(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_id} still '{status}' after {timeout:.0f} s")
            time.sleep(poll)

    def runs(self, task_id: int) -> list[dict]:
        runs = self.client.run.from_task(task_id)
        return runs["data"] if isinstance(runs, dict) else list(runs)

    def results(self, task_id: int) -> list[Any]:
        out = self.client.result.from_task(task_id)
        items = out["data"] if isinstance(out, dict) else out
        decoded = []
        for item in items:
            value = item.get("result") if isinstance(item, dict) else item
            decoded.append(json.loads(value) if isinstance(value, (str, bytes)) and value else value)
        return decoded

    def submit_central(self, image: str, kwargs: dict, *, organization: int | None = None,
                       timeout: float = 600, method: str = "central", name: str | None = None) -> CentralRun:
        """Run ``method`` (default: lancelot's ``central``) at the coordinator; wait; decode the result."""
        t0 = time.monotonic()
        task_id = self.submit(image, method, kwargs, [organization or self.coordinator_org],
                              name=name or f"e2e {image.rsplit('/', 1)[-1]}")
        status = self.wait(task_id, timeout)
        results = self.results(task_id) if status == "completed" else []
        seconds = time.monotonic() - t0
        return CentralRun(task_id, status, results[0] if results else None, seconds, self)


def _load_connection() -> tuple[dict | None, str]:
    if not CONNECTION_FILE.exists():
        return None, f"the dev network is not up (no {CONNECTION_FILE}): run scripts/devnet.sh up"
    try:
        connection = json.loads(CONNECTION_FILE.read_text())
    except ValueError as exc:
        return None, f"unreadable connection file {CONNECTION_FILE}: {exc}"
    server = connection["server"]
    url = f"{server['url']}:{server['port']}{server['api_path']}/version"
    try:
        with urllib.request.urlopen(url, timeout=5):
            pass
    except OSError as exc:
        return None, f"the dev network's server does not answer at {url} ({exc}): scripts/devnet.sh status"
    return connection, ""


@pytest.fixture(scope="session")
def devnet() -> Devnet:
    connection, reason = _load_connection()
    if connection is None:
        if os.environ.get("LANCELOT_DEVNET_REQUIRED"):
            pytest.fail(reason)
        pytest.skip(reason)
    return Devnet(connection)


@pytest.fixture(scope="session")
def insider(devnet) -> Devnet:
    """A user of the coordinator's organisation (the attack tests: every station result would be readable)."""
    return Devnet(devnet.connection, user="insider")


@pytest.fixture(scope="session")
def submit_central(devnet):
    """``submit_central(image, kwargs, organization=None, timeout=600) -> CentralRun``."""
    return devnet.submit_central


@pytest.fixture(scope="session")
def record_timing():
    """Collects named timing measurements into .v6dev/round-timings.json (docs/real-network.md)."""
    measured: dict[str, Any] = {}
    yield measured.__setitem__
    if measured:
        previous = {}
        if TIMINGS_FILE.exists():
            try:
                previous = json.loads(TIMINGS_FILE.read_text())
            except ValueError:
                previous = {}
        previous.update(measured)
        TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
        TIMINGS_FILE.write_text(json.dumps(previous, indent=2))
