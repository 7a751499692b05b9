"""The Vantage6 4.x adapter: turns lancelot protocols into a central and a partial function.

Everything vantage6-specific lives here (and in :mod:`lancelot.v6.local`): how a round of steps
becomes subtasks and is waited for (with a deadline), how a station's data, node policy and
per-job folder reach a step, and where the facts for the station guard (:mod:`lancelot.runtime.guard`)
come from: the server's own record of the task, its parent and the collaboration, read with the
container's token. The vantage6 5.x adapter (:mod:`lancelot.v6.v5.adapter`) reuses the transport
and the central and station bodies here (:func:`run_central`, :func:`run_partial`) and replaces
only the decorators and where the facts come from, so this module imports vantage6 4.x only inside
:func:`make_central` and :func:`make_partial`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..policy import NodePolicy, read_policy
from ..runtime.coordinator import Coordinator, StepCall
from ..runtime.errors import InputError, LancelotError, PrivacyError, SubtaskError
from ..runtime.guard import ENDED, TaskFacts, check_central_task, check_station_task
from ..runtime.state import JobState
from ..runtime.station import END_JOB, FETCH_PART, StationContext, StepFunction, run_step, send_in_parts

PARTIAL_METHOD = "partial"
CENTRAL_METHOD = "central"
DEFAULT_SUBTASK_TIMEOUT = 900.0   # seconds a station may take for one step before the job ends with an error
POLL_MAX = 1.0                    # seconds between status checks of a pending subtask, at most (vantage6's own)
ENV_POLL = "LANCELOT_POLL_SECONDS"  # the coordinator node may poll more often (the in-process network does)


def node_env(name: str) -> str | None:
    """A variable of the node's ``algorithm_env`` (4.x and 5.x nodes base32-encode the values)."""
    from vantage6.algorithm.tools.util import get_env_var

    return get_env_var(name, None)


def node_policy() -> NodePolicy:
    return read_policy(node_env)


def token_identity() -> dict:
    """Who this container is, from the token its node gave it (task, organisation, image)."""
    import jwt

    with open(os.environ["TOKEN_FILE"]) as fh:
        token = fh.read().strip()
    return jwt.decode(token, options={"verify_signature": False})["sub"]


def _id(ref: Any) -> int | None:
    """A HATEOAS reference ({"id": ...}) or a plain id."""
    if isinstance(ref, dict):
        return ref.get("id")
    return ref


GUARD_CACHE = "station_guard"


def task_facts(client: Any, station_side: bool = False) -> TaskFacts:
    """The server's record of this run's task, its parent and the collaboration (never the task input).

    A 4.x container knows its task and organisation from the token its node gave it.
    """
    me = token_identity()
    return server_facts(client, me["task_id"], me["organization_id"], station_side)


def _record(answer: Any, what: str) -> dict:
    """A task record from the server, or a refusal naming what could not be read (and the server's message)."""
    if not isinstance(answer, dict) or answer.get("id") is None:
        why = answer.get("msg") if isinstance(answer, dict) else None
        raise PrivacyError(f"refused by the station guard: the server did not give the record of {what}"
                           + (f" ({why})" if why else ""))
    return answer


def server_facts(client: Any, task_id: int, organization_id: int, station_side: bool = False) -> TaskFacts:
    """The facts of :class:`TaskFacts` for task ``task_id`` running at ``organization_id``, read from the server.

    What cannot change during a job (the parent's image, parent, organisations and creator, and the
    collaboration's encryption) is read once per job at a station and kept in the job's own state
    folder; the parent's status (has the job ended?) is read every time. Each call through the
    node's proxy costs a fraction of a second on a real network, and a job has many rounds.
    """
    task = _record(client.task.get(task_id), "this task")  # (the caller keeps the static facts once the guard has passed)
    parent_id = _id(task.get("parent"))
    facts: dict[str, Any] = {
        "task_id": task_id, "job_id": task.get("job_id") or task_id,
        "organization_id": organization_id, "image": task.get("image"), "parent_id": parent_id,
        "init_org": _id(task.get("init_org")),
    }
    if parent_id is None:
        facts["collaboration_encrypted"] = bool(client.collaboration.get().get("encrypted"))
        return TaskFacts(**facts)
    parent = _record(client.task.get(parent_id), "the parent task")
    state = JobState.from_environment(facts["job_id"]) if station_side else None
    cached = state.get(GUARD_CACHE) if state is not None and state.has(GUARD_CACHE) else None
    if cached is None or cached.get("parent_id") != parent_id:
        runs = client.run.from_task(parent_id)
        runs = runs.get("data", []) if isinstance(runs, dict) else runs
        cached = {"parent_id": parent_id, "parent_image": parent.get("image"),
                  "parent_parent_id": _id(parent.get("parent")), "parent_init_org": _id(parent.get("init_org")),
                  "parent_run_orgs": sorted(_id(r.get("organization")) for r in runs),
                  "collaboration_encrypted": bool(client.collaboration.get().get("encrypted"))}
    facts.update({k: v for k, v in cached.items() if k != "parent_id"}, parent_status=parent.get("status"))
    facts["parent_run_orgs"] = tuple(facts["parent_run_orgs"])
    return TaskFacts(**facts)


class V6Transport:
    """One round = one subtask per station (inputs differ per station), all created before waiting.

    Every subtask carries the study (station name -> organisation) for the station guard. A round
    ends with an error naming the station and step when a subtask fails or is not done in time.
    """

    def __init__(self, client: Any, stations: Mapping[str, int], timeout: float = DEFAULT_SUBTASK_TIMEOUT,
                 host_opted_in: bool = False):
        self.client = client
        self.stations = dict(stations)
        self.timeout = timeout
        self.host_opted_in = host_opted_in
        self.poll_max = float(node_env(ENV_POLL) or POLL_MAX)

    def create_subtask(self, station: str, call: StepCall, study: dict) -> Any:
        """Ask the server for one subtask; what it answers (4.x: ``input_`` holds method and kwargs)."""
        return self.client.task.create(
            input_={"method": PARTIAL_METHOD,
                    "kwargs": {"step": call.step, "station": station, "payload": call.payload, "study": study}},
            organizations=[self.stations[station]],
            name=f"lancelot {call.step} @ {station}",
            description=f"lancelot step {call.step} at station {station}",
        )

    def status(self, task_id: int) -> str | None:
        return self.client.task.get(task_id).get("status")

    def run_round(self, calls: Mapping[str, StepCall], wait: bool = True) -> dict[str, Any]:
        tasks = {}
        study = {"stations": self.stations, "host_opted_in": self.host_opted_in}
        for station, call in calls.items():
            task = self.create_subtask(station, call, study)
            if not isinstance(task, dict) or "id" not in task:
                raise SubtaskError(station, call.step, f"the server did not create the subtask: {task}")
            tasks[station] = task["id"]
        if not wait:
            return {}
        deadline = time.monotonic() + self.timeout
        pending, delay = dict(tasks), min(0.25, self.poll_max)
        seen: dict[str, str | None] = {}
        while pending:
            for station, task_id in list(pending.items()):
                status = seen[station] = self.status(task_id)
                if status == "completed":
                    del pending[station]
                elif status in ENDED:
                    raise SubtaskError(station, calls[station].step,
                                       f"the subtask ended '{status}'; see the node's log")
            if pending and time.monotonic() > deadline:
                # name a station whose node never picked the subtask up (offline) before one still at work
                station = next((s for s in pending if seen.get(s) != "active"), next(iter(pending)))
                raise SubtaskError(station, calls[station].step,
                                   f"no result within {self.timeout:.0f} s: the station is offline or too slow "
                                   "(the researcher can set subtask_timeout)")
            if pending:
                time.sleep(delay)
                delay = min(delay * 1.5, self.poll_max)
        results = {}
        for station, task_id in tasks.items():
            out = self.client.result.from_task(task_id)
            if not out or out[0] is None:
                raise SubtaskError(station, calls[station].step, "the station returned no result; see the node's log")
            results[station] = out[0]
        return results


def check_stations(stations: Any) -> dict[str, int]:
    if not isinstance(stations, Mapping) or not stations:
        raise InputError("'stations' must map station names to organisation ids, e.g. {\"registry\": 2}")
    out = {}
    for name, org in stations.items():
        if not isinstance(name, str) or not name:
            raise InputError(f"station name {name!r} must be a non-empty string")
        if isinstance(org, bool):
            raise InputError(f"organisation id of station '{name}' must be an integer")
        try:
            out[name] = int(org)
        except (TypeError, ValueError) as exc:
            raise InputError(f"organisation id of station '{name}' must be an integer") from exc
    if len(set(out.values())) != len(out):
        raise InputError("two stations map to the same organisation")
    return out


def check_timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 10 <= value <= 86400:
        raise InputError("subtask_timeout must be a number of seconds between 10 and 86400")
    return float(value)


ProtocolRun = Callable[..., dict]
REMOVED_ARGUMENTS = {
    "allow_coordinator_at_data_station": "whether the coordinator may run at a data station is the node "
                                         "operator's decision (node policy 'allow_coordinator_here'), not the task's",
}


TransportFactory = Callable[[dict[str, int], float, bool], "V6Transport"]


def run_central(protocol: ProtocolRun, client: Any, facts: Callable[[], TaskFacts], stations: Any, progress: Any,
                subtask_timeout: Any, kwargs: dict, transport: TransportFactory) -> dict:
    """The central function's body for either vantage6 major: checks, the protocol, the job's end.

    ``facts`` reads the server's record of this task; ``transport(stations, timeout, at_station)``
    makes the major's transport (it may raise :class:`InputError` for a bad major-specific argument).
    """
    coordinator = None
    try:
        for name, why in REMOVED_ARGUMENTS.items():
            if name in kwargs:
                raise InputError(f"'{name}' is not a task argument: {why}")
        station_orgs = check_stations(stations)
        timeout = check_timeout(subtask_timeout)
        policy = node_policy()
        at_station = check_central_task(facts(), station_orgs, policy)
        coordinator = Coordinator(transport(station_orgs, timeout, at_station), list(station_orgs),
                                  progress=bool(progress), max_input_mb=policy.max_input_mb)
        result = protocol(coordinator, **kwargs)
    except LancelotError as exc:
        return {"lancelot_error": str(exc)}
    finally:
        if coordinator is not None:  # every station still holding state for this job wipes it
            coordinator.close()
    result["coordinator"] = {"organization_id": client.organization_id, "neutral": not at_station}
    if at_station:
        result["coordinator"]["warning"] = ("the coordinator ran at a data station whose node operator opted in "
                                            "(allow_coordinator_here): that station also saw the coordinator's view")
    result["cost"] = coordinator.cost.as_dict()
    return result


def run_partial(steps: dict[str, StepFunction], df: Any, step: str, station: str, payload: dict,
                study: dict | None, facts: Callable[[], TaskFacts]) -> dict:
    """A station run's body for either vantage6 major: the station guard, then the named step (or chain)."""
    try:
        policy = node_policy()
        job_facts = facts()
        stations = check_stations((study or {}).get("stations"))
        check_station_task(job_facts, station, stations, policy, bool((study or {}).get("host_opted_in")),
                           allow_ended=True)
        state = JobState.from_environment(job_facts.job_id)
        if job_facts.job_ended and step != END_JOB:  # a late subtask of a job that has ended: clean up only
            state.wipe()
            raise PrivacyError("refused by the station guard: the job this subtask belongs to has already "
                               "ended (its state at this station is wiped)")
        if not job_facts.job_ended and not state.has(GUARD_CACHE):
            # (an ended job's runs write nothing: a late run and the clean-up can run at once, and a write
            # racing the clean-up's wipe would crash the run instead of refusing it)
            state.put(GUARD_CACHE, {"parent_id": job_facts.parent_id, **{
                f: getattr(job_facts, f) for f in ("parent_image", "parent_parent_id", "parent_init_org",
                                                   "parent_run_orgs", "collaboration_encrypted")}})
    except (LancelotError, RuntimeError) as exc:
        print(f"[lancelot] station {station}: step {step} refused: {exc}", flush=True)
        return {"lancelot_error": str(exc)}
    ctx = StationContext(station=station, data=df, state=state, policy=policy)
    result = run_step(steps, ctx, step, payload)
    return result if step == FETCH_PART else send_in_parts(result, ctx)


def make_central(protocol: ProtocolRun) -> Callable:
    """Wrap ``protocol(coordinator, **kwargs) -> dict`` as the vantage6 4.15 central function."""
    from vantage6.algorithm.tools.decorators import algorithm_client

    @algorithm_client
    def central(client: Any, stations: dict, progress: bool = True,
                subtask_timeout: float = DEFAULT_SUBTASK_TIMEOUT, **kwargs: Any) -> dict:
        return run_central(protocol, client, lambda: task_facts(client), stations, progress, subtask_timeout,
                           kwargs, lambda orgs, timeout, at_station: V6Transport(client, orgs, timeout, at_station))

    central.protocol = protocol  # its signature is the rest of the central arguments (lancelot.v6.store)
    return central


def make_partial(steps: dict[str, StepFunction]) -> Callable:
    """The vantage6 4.15 partial function: the station guard, then the named step (or chain of steps)."""
    from vantage6.algorithm.tools.decorators import algorithm_client, data

    @data(1)
    @algorithm_client
    def partial(client: Any, df: Any, step: str, station: str, payload: dict, study: dict | None = None) -> dict:
        return run_partial(steps, df, step, station, payload, study, lambda: task_facts(client, station_side=True))

    return partial
