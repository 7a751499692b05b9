"""The Vantage6 4.x adapter: turns lancelot protocols into a central and a partial function.

Everything vantage6-specific lives here (and in :mod:`lancelot.v6.local`): how a round of steps
becomes subtasks, how a station's data and per-job folder reach a step, and the neutral
coordinator check. A vantage6 5.x adapter would replace this module only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from vantage6.algorithm.tools.decorators import algorithm_client, data

from ..runtime.coordinator import Coordinator, StepCall
from ..runtime.errors import InputError, LancelotError, SubtaskError
from ..runtime.state import JobState
from ..runtime.station import StationContext, StepFunction, run_step, settings_from_environment

PARTIAL_METHOD = "partial"
CENTRAL_METHOD = "central"


class V6Transport:
    """One round = one subtask per station (inputs differ per station), all created before waiting."""

    def __init__(self, client: Any, stations: Mapping[str, int]):
        self.client = client
        self.stations = dict(stations)

    def run_round(self, calls: Mapping[str, StepCall]) -> dict[str, Any]:
        tasks = {}
        for station, call in calls.items():
            task = self.client.task.create(
                input_={"method": PARTIAL_METHOD,
                        "kwargs": {"step": call.step, "station": station, "payload": call.payload}},
                organizations=[self.stations[station]],
                name=f"lancelot {call.step} @ {station}",
                description=f"lancelot step {call.step} at station {station}",
            )
            if not isinstance(task, dict) or "id" not in task:
                raise SubtaskError(station, call.step, f"the server did not create the subtask: {task}")
            tasks[station] = task["id"]
        results = {}
        for station, task_id in tasks.items():
            out = self.client.wait_for_results(task_id=task_id)
            # vantage6 can return an empty list when the run crashed: look up why.
            if not out or out[0] is None:
                status = "unknown"
                try:
                    runs = self.client.run.from_task(task_id)
                    status = ", ".join(str(r.get("status")) for r in runs) or "no run"
                except Exception as exc:  # noqa: BLE001 - best effort diagnostics only
                    status = f"could not read run status ({type(exc).__name__})"
                raise SubtaskError(station, calls[station].step,
                                   f"the station returned no result (run status: {status}); see the node log")
            results[station] = out[0]
        return results


def check_stations(stations: Any) -> dict[str, int]:
    if not isinstance(stations, Mapping) or not stations:
        raise InputError("'stations' must map station names to organisation ids, e.g. {\"registry\": 2}")
    out = {}
    for name, org in stations.items():
        if not isinstance(name, str) or not name:
            raise InputError(f"station name {name!r} must be a non-empty string")
        try:
            out[name] = int(org)
        except (TypeError, ValueError) as exc:
            raise InputError(f"organisation id of station '{name}' must be an integer") from exc
    if len(set(out.values())) != len(out):
        raise InputError("two stations map to the same organisation")
    return out


def coordinator_check(own_org: int | None, stations: Mapping[str, int], allow_at_data_station: bool) -> dict:
    """The coordinator must run at a node that holds no data for the study, unless explicitly allowed."""
    at = [name for name, org in stations.items() if own_org is not None and org == own_org]
    if at and not allow_at_data_station:
        raise InputError(
            f"the central task runs at the organisation of station '{at[0]}'. The coordinator must run at a "
            "neutral node (an organisation with no data in this study): start the central task there, or pass "
            "allow_coordinator_at_data_station=true to accept that this station also sees the coordinator's view"
        )
    info = {"organization_id": own_org, "neutral": not at}
    if at:
        info["warning"] = (f"the coordinator ran at data station '{at[0]}' (explicitly allowed): "
                           "that station also saw everything the coordinator sees")
    return info


ProtocolRun = Callable[..., dict]


def make_central(protocol: ProtocolRun) -> Callable:
    """Wrap ``protocol(coordinator, **kwargs) -> dict`` as the vantage6 central function."""

    @algorithm_client
    def central(client: Any, stations: dict, allow_coordinator_at_data_station: bool = False,
                progress: bool = True, **kwargs: Any) -> dict:
        try:
            station_orgs = check_stations(stations)
            coordinator_info = coordinator_check(getattr(client, "organization_id", None), station_orgs,
                                                 bool(allow_coordinator_at_data_station))
            coordinator = Coordinator(V6Transport(client, station_orgs), list(station_orgs), progress=progress)
            result = protocol(coordinator, **kwargs)
        except LancelotError as exc:
            return {"lancelot_error": str(exc)}
        result["coordinator"] = coordinator_info
        result["cost"] = coordinator.cost.as_dict()
        return result

    central.protocol = protocol  # its signature is the rest of the central arguments (lancelot.v6.store)
    return central


def make_partial(steps: dict[str, StepFunction]) -> Callable:
    """The vantage6 partial function: one entry point that dispatches to the named step."""

    @data(1)
    def partial(df: Any, step: str, station: str, payload: dict) -> dict:
        try:
            ctx = StationContext(station=station, data=df, state=JobState.from_environment(),
                                 settings=settings_from_environment())
        except (LancelotError, RuntimeError) as exc:
            return {"lancelot_error": str(exc)}
        return run_step(steps, ctx, step, payload)

    return partial
