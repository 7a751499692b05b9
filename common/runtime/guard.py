"""The station guard: a station step runs only as a subtask of a genuine lancelot coordinator.

A researcher may create any task with the algorithm's image at any station, with any input: a
direct ``partial`` task with a chain of steps of their choosing, or a central task at their own
organisation. Node policies cannot tell those from lancelot's own subtasks, so every station
checks, from what vantage6 itself records about the task (never from the task input):

* the task has a parent: it was created by an algorithm container, not by a user;
* the parent runs the same image, has no parent of its own, runs at exactly one organisation (the
  coordinator), and has not ended;
* the coordinator's organisation is not the researcher's (the organisation that created the
  parent task), since vantage6 encrypts subtask results for the coordinator's organisation;
* the collaboration is encrypted (otherwise the server reads every result);
* this node's organisation is the one the coordinator addresses as this station, and the
  coordinator is not at a data station of the study unless that station's operator opted in,
  nor outside the operator's allow-list of coordinator organisations.

Only lancelot's central function creates subtasks (the partial function never does, and a
container can only create tasks with its own image), so a task that passes was built by
lancelot's own coordinator code from the job's own rounds. These rules are pure functions of
:class:`TaskFacts`; the vantage6 adapters gather the facts from the server's API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..policy import NodePolicy
from .errors import PrivacyError

ENDED = {"completed", "failed", "start failed", "non-existing Docker image", "crashed", "killed by user",
         "not allowed", "unknown error"}


@dataclass(frozen=True)
class TaskFacts:
    """What the server records about this run's task and its parent (nothing from the task input)."""

    task_id: int
    job_id: int
    organization_id: int                  # this node's organisation
    image: str
    parent_id: int | None
    init_org: int                         # who created this task (a subtask: the coordinator's organisation)
    collaboration_encrypted: bool
    parent_image: str | None = None
    parent_parent_id: int | None = None
    parent_status: str | None = None
    parent_run_orgs: tuple[int, ...] = ()
    parent_init_org: int | None = None    # who created the central task: the researcher's organisation

    @property
    def job_ended(self) -> bool:
        return self.parent_status in ENDED


def refuse(message: str) -> PrivacyError:
    return PrivacyError(f"refused by the station guard: {message}")


def check_station_task(facts: TaskFacts, station: str, study: Mapping[str, int], policy: NodePolicy,
                       host_opted_in: bool, allow_ended: bool = False) -> None:
    """Raise :class:`PrivacyError` unless this run is a subtask of a genuine lancelot coordinator.

    ``study`` maps the job's station names to organisation ids (built by the coordinator's code);
    ``host_opted_in`` says the coordinator's own node policy allows it at a data station.
    ``allow_ended``: pass a genuine subtask of a job that has ended (it may only clean up).
    """
    if facts.parent_id is None:
        raise refuse("lancelot station steps run only as subtasks of a lancelot central task; "
                     "this task was created directly by a user")
    if facts.parent_image != facts.image:
        raise refuse("the parent task runs another image")
    if facts.parent_parent_id is not None:
        raise refuse("the parent task is itself a subtask, not a lancelot central task")
    if list(facts.parent_run_orgs) != [facts.init_org]:
        raise refuse("the parent task must run at exactly one organisation, the one that created this subtask")
    if facts.job_ended and not allow_ended:
        raise refuse("the job this subtask belongs to has already ended")
    if facts.parent_init_org == facts.init_org:
        raise refuse("the researcher belongs to the coordinator's organisation, which can decrypt every station "
                     "result: run the central task at a neutral organisation the researcher does not belong to")
    if not facts.collaboration_encrypted:
        raise refuse("the collaboration is not encrypted, so the server could read every station result")
    if study.get(station) != facts.organization_id:
        raise refuse(f"the coordinator addressed this node as station '{station}', which is another organisation")
    hosts = [name for name, org in study.items() if org == facts.init_org]
    if hosts:
        mine = hosts[0] == station
        if not (host_opted_in and (policy.allow_coordinator_here or not mine)):
            raise refuse(f"the coordinator runs at data station '{hosts[0]}' and that station's node operator has "
                         "not opted in (node policy 'allow_coordinator_here')")
    if policy.coordinator_organizations is not None and facts.init_org not in policy.coordinator_organizations:
        raise refuse(f"organisation {facts.init_org} is not on this node's list of coordinator organisations "
                     "(node policy 'coordinator_organizations')")


def check_central_task(facts: TaskFacts, study: Mapping[str, int], policy: NodePolicy) -> bool:
    """Raise unless the central task may coordinate this study here; return whether it runs at a data station."""
    if facts.parent_id is not None:
        raise refuse("the central function runs only as a task a researcher created, not as a subtask")
    if facts.init_org == facts.organization_id:
        raise PrivacyError(
            "the researcher's organisation is the coordinator's organisation: vantage6 encrypts every station "
            "result for the coordinator's organisation, so its members could read them. Run the central task at a "
            "neutral organisation the researcher does not belong to (the network administrator gives researchers "
            "an organisation of their own)")
    if not facts.collaboration_encrypted:
        raise PrivacyError("the collaboration is not encrypted, so the server could read every station result: "
                           "the collaboration administrator must enable encryption")
    hosts = [name for name, org in study.items() if org == facts.organization_id]
    if hosts and not policy.allow_coordinator_here:
        raise PrivacyError(
            f"the central task runs at the organisation of station '{hosts[0]}'. The coordinator must run at a "
            "neutral node (an organisation with no data in this study), unless that node's operator sets "
            "allow_coordinator_here in its node policy")
    return bool(hosts)
