"""The Vantage6 5.x adapter: the same protocols, steps and station guard as :mod:`lancelot.v6.adapter`.

What a 5.x node does differently (read in vantage6 5.0.3's node, HQ and algorithm tools), and what
this adapter does about it:

* A station's table is a dataframe of a session, made beforehand by a data-extraction task
  (:func:`extract`, run by the researcher at the stations) and read with ``@dataframe``. The
  central task runs at a neutral organisation without that dataframe, so the researcher names it
  (``dataframe``) and the coordinator puts it on every subtask.
* Only central runs get a container token; a station (federated) run gets none, and the node's
  default network policy cuts it off from every address. So the coordinator relays its own token
  in each subtask (``study["credential"]``, encrypted for the station's organisation like the rest
  of the input) and the station reads HQ's record of *its own* task (``TASK_ID``, set by its node)
  through its node's proxy. The token only lets it read: every fact comes from HQ, and a task a
  researcher created directly has no parent there, whatever its input says. The node operator must
  let federated runs reach the node's proxy (docs/node-operators.md); without that a station
  refuses every step, naming the reason.
* Per-job state goes into ``SESSION_FOLDER`` (one per session and node, shared by the session's
  jobs), under the job id HQ records, and is wiped when the job ends (:mod:`lancelot.runtime.state`).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlparse

import pandas as pd
from vantage6.algorithm.decorator import algorithm_client, data_extraction, dataframe, federated
from vantage6.algorithm.decorator import central as central_step

from ...runtime.errors import InputError, LancelotError, PrivacyError
from ...runtime.guard import TaskFacts, refuse
from ...runtime.state import JobState
from ...runtime.station import StationContext, StepFunction, run_step
from ..adapter import (
    DEFAULT_SUBTASK_TIMEOUT,
    PARTIAL_METHOD,
    ProtocolRun,
    V6Transport,
    node_env,
    node_policy,
    run_central,
    run_partial,
    server_facts,
)

CREDENTIAL = "credential"          # the key of the coordinator's token in a subtask's ``study``
PROXY_TIMEOUT = 5.0                # seconds to wait for the node's proxy before refusing (a blocked pod hangs)
MOCK_JOB = 1                       # vantage6's MockHQ records job 1 for every task
MOCK_MODULE = "vantage6.algorithm.mock.network"
MOCK_MARK = "LANCELOT_UNDER_MOCK_NETWORK"


def own_ids() -> tuple[int, int]:
    """This run's task and organisation, as its node sets them (``TASK_ID``, ``ORGANIZATION_ID``)."""
    try:
        return int(node_env("TASK_ID")), int(node_env("ORGANIZATION_ID"))
    except (TypeError, ValueError) as exc:
        raise RuntimeError("TASK_ID and ORGANIZATION_ID are not set: is this a vantage6 5.x algorithm run?") from exc


def under_mock_network() -> bool:
    """vantage6's ``MockNetwork`` runs every function in the test's own process, and lancelot's study set-up
    of it (lancelot.v6.v5.mock) marks its runs in the raw environment. A node's run imports no mock module,
    and a node base32-encodes every variable it passes, so it cannot carry the plain mark: both must
    hold before a station skips the guard."""
    return MOCK_MODULE in sys.modules and os.environ.get(MOCK_MARK) == "1"


def _is_mock_client(client: Any) -> bool:
    return type(client).__module__.startswith("vantage6.algorithm.mock.")


def reach_proxy(timeout: float = PROXY_TIMEOUT) -> None:
    """Refuse quickly when this run cannot open a connection to its node's proxy (a blocked pod would hang)."""
    host, port = node_env("HOST") or "", node_env("PORT") or ""
    try:
        socket.create_connection((urlparse(host).hostname or host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise PrivacyError(
            "refused by the station guard: this run cannot reach its node's proxy, so it cannot read HQ's record "
            "of its task. On vantage6 5.x the node operator must let federated runs reach the node's proxy "
            "(node.whitelist.federated_compute, see lancelot's docs/node-operators.md)") from exc


def hq_client(token: str) -> Any:
    """An ``AlgorithmClient`` on this node's proxy with a relayed token (looked up at call time: harnesses swap it)."""
    import vantage6.algorithm.client as v6client

    host, port, path = node_env("HOST") or "", node_env("PORT") or "", node_env("API_PATH") or ""
    return v6client.AlgorithmClient(token=token, hq_url=f"{host}:{port}{path}")


def credential_task(token: str) -> int | None:
    """The task a container token was issued for (HQ has checked its signature when it answered with it)."""
    import jwt

    try:
        return int(jwt.decode(token, options={"verify_signature": False})["sub"]["task_id"])
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return None


def station_facts(study: Mapping | None) -> TaskFacts:
    """HQ's record of this station run's own task and its parent, read with the coordinator's relayed token."""
    task_id, organization_id = own_ids()
    token = (study or {}).get(CREDENTIAL)
    if not isinstance(token, str) or not token:
        raise refuse("lancelot station steps run only as subtasks of a lancelot central task, which relays the "
                     "credential to read HQ's record of the task; this task carries none")
    reach_proxy()
    try:
        facts = server_facts(hq_client(token), task_id, organization_id, station_side=True)
    except (LancelotError, RuntimeError):
        raise
    except Exception as exc:  # noqa: BLE001 - an HQ answer that is not a record: refuse, name only the type
        raise refuse(f"reading HQ's record of this task failed ({type(exc).__name__})") from exc
    if facts.parent_id is not None and credential_task(token) != facts.parent_id:
        raise refuse("the relayed credential is not the parent task's")
    return facts


def central_facts(client: Any) -> TaskFacts:
    """HQ's record of this central run's task (5.x gives central runs a token of their own)."""
    task_id, organization_id = own_ids()
    if _is_mock_client(client):  # vantage6's MockNetwork: no task records; its user is organisation 0
        return TaskFacts(task_id=task_id, job_id=MOCK_JOB, organization_id=client.organization_id,
                         image=str(client.image), parent_id=None, init_org=0,
                         collaboration_encrypted=bool(client.collaboration.get().get("encrypted")))
    return server_facts(client, task_id, organization_id)


def _dataframe_ids(databases: Any) -> list[int]:
    """Dataframe ids in a task's ``databases`` (a list, or a list of lists, of dicts)."""
    flat = [d for group in databases or [] for d in (group if isinstance(group, list) else [group])]
    return [d["dataframe_id"] for d in flat if isinstance(d, dict) and d.get("dataframe_id") is not None]


def check_dataframes(frames: Any, stations: Mapping[str, int], own: Any = None) -> dict[str, int]:
    """Each station's session dataframe: one id for all stations, ``{station: id}``, or the central task's own."""
    if frames is None:
        ids = set(_dataframe_ids(own))
        if len(ids) != 1:
            raise InputError("'dataframe' must give the id of the session dataframe the stations extracted (one id "
                             "for all stations, or {station: id}); the central task carries none of its own")
        frames = ids.pop()
    if isinstance(frames, bool):
        raise InputError("'dataframe' must be a dataframe id or {station: dataframe id}")
    if isinstance(frames, int):
        return dict.fromkeys(stations, frames)
    if not isinstance(frames, Mapping) or set(frames) != set(stations):
        raise InputError(f"'dataframe' must be a dataframe id or map every station ({', '.join(stations)}) to one")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in frames.values()):
        raise InputError("every dataframe id in 'dataframe' must be an integer")
    return dict(frames)


class V6Transport5(V6Transport):
    """The 4.15 transport with 5.x subtasks: method and arguments apart, the station's dataframe, the credential."""

    def __init__(self, client: Any, stations: Mapping[str, int], frames: Mapping[str, int], credential: str,
                 timeout: float = DEFAULT_SUBTASK_TIMEOUT, host_opted_in: bool = False):
        super().__init__(client, stations, timeout=timeout, host_opted_in=host_opted_in)
        self.frames = dict(frames)
        self.credential = credential
        self.mock = _is_mock_client(client)

    def create_subtask(self, station: str, call: Any, study: dict) -> Any:
        frame = {"type": "dataframe", "dataframe_id": self.frames[station]}
        # AlgorithmClient.task.create sends client.databases (HQ: a list of lists; the mock wants a flat list)
        self.client.databases = [frame] if self.mock else [[frame]]
        return self.client.task.create(
            method=PARTIAL_METHOD,
            arguments={"step": call.step, "station": station, "payload": call.payload,
                       "study": {**study, CREDENTIAL: self.credential}},
            organizations=[self.stations[station]],
            name=f"lancelot {call.step} @ {station}",
            description=f"lancelot step {call.step} at station {station}",
        )

    def status(self, task_id: int) -> str | None:
        if self.mock:  # vantage6's MockNetwork has run the subtask inside task.create
            return "completed"
        return super().status(task_id)


def make_central(protocol: ProtocolRun) -> Callable:
    """Wrap ``protocol(coordinator, **kwargs) -> dict`` as the vantage6 5.x central function."""

    @central_step
    @algorithm_client
    def central(client: Any, stations: dict, dataframe: int | dict | None = None, progress: bool = True,
                subtask_timeout: float = DEFAULT_SUBTASK_TIMEOUT, **kwargs: Any) -> dict:
        def transport(orgs: dict[str, int], timeout: float, at_station: bool) -> V6Transport5:
            frames = check_dataframes(dataframe, orgs, getattr(client, "databases", None))
            return V6Transport5(client, orgs, frames, node_env("CONTAINER_TOKEN") or "", timeout, at_station)

        return run_central(protocol, client, lambda: central_facts(client), stations, progress, subtask_timeout,
                           kwargs, transport)

    central.protocol = protocol  # its signature is the rest of the central arguments (lancelot.v6.store)
    return central


def make_partial(steps: dict[str, StepFunction]) -> Callable:
    """The vantage6 5.x partial function: the station guard (facts read with the relayed token), then the step."""

    @federated
    @dataframe(1)
    def partial(df: pd.DataFrame, step: str, station: str, payload: dict, study: dict | None = None) -> dict:
        if under_mock_network():  # tests only: the mock keeps no parents to check (lancelot.v6.v5.local does)
            print(f"[lancelot] station {station}: station guard skipped (vantage6 MockNetwork)", flush=True)
            context = StationContext(station=station, data=df, state=JobState.from_environment(MOCK_JOB),
                                     policy=node_policy())
            return run_step(steps, context, step, payload)
        return run_partial(steps, df, step, station, payload, study, lambda: station_facts(study))

    return partial


READERS = {"csv": pd.read_csv, "parquet": pd.read_parquet, "excel": pd.read_excel}


@data_extraction
def extract(connection_details: dict) -> pd.DataFrame:
    """The session's dataframe from the node's database, read as vantage6 4.15 read it (csv, parquet, excel)."""
    kind = str(connection_details.get("type", "")).lower()
    if kind not in READERS:
        raise InputError(f"lancelot reads csv, parquet or excel databases, not '{kind}'")
    return READERS[kind](connection_details["uri"])
