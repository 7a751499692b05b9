"""The coordinator's view of a protocol: rounds of steps at stations, relayed through it.

A protocol is written against :class:`Coordinator` only; how a round reaches the stations
(vantage6 subtasks, the in-process network, a test double) is a :class:`Transport`. That keeps
every protocol free of vantage6 imports.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .cost import CostMeter
from .errors import SubtaskError


@dataclass(frozen=True)
class StepCall:
    """One partial step to run at one station: ``step`` names a function in the algorithm's registry."""

    step: str
    payload: dict

    @staticmethod
    def combine(*calls: StepCall) -> StepCall:
        """Several steps at one station in one subtask; the result is ``{"results": [...]}`` in order."""
        if len(calls) == 1:
            return calls[0]
        return StepCall("multi", {"calls": [{"step": c.step, "payload": c.payload} for c in calls]})


class Transport(Protocol):
    def run_round(self, calls: Mapping[str, StepCall]) -> dict[str, Any]:
        """Run the calls (station name -> call) in parallel; return station name -> JSON result.

        Must raise :class:`SubtaskError` when a station fails or returns nothing.
        """
        ...


def json_size(obj: Any) -> int:
    return len(json.dumps(obj, separators=(",", ":")))


class Coordinator:
    """Runs rounds, checks results, counts rounds/bytes and reports progress."""

    def __init__(self, transport: Transport, stations: list[str], progress: bool = True):
        self.transport = transport
        self.stations = list(stations)
        self.cost = CostMeter()
        self.progress = progress

    def log(self, message: str) -> None:
        if self.progress:
            print(f"[lancelot] {message}", file=sys.stderr, flush=True)

    def round(self, calls: Mapping[str, StepCall], label: str | None = None) -> dict[str, Any]:
        """One round: every call runs at its station in parallel; returns their results."""
        unknown = set(calls) - set(self.stations)
        if unknown:
            raise ValueError(f"round addressed to unknown stations: {sorted(unknown)}")
        steps = sorted({c.step for c in calls.values()})
        self.log(f"round {self.cost.rounds + 1}: {label or ', '.join(steps)} at {', '.join(calls)}")
        sent = sum(json_size(c.payload) for c in calls.values())
        results = self.transport.run_round(calls)
        for station, call in calls.items():
            res = results.get(station)
            if res is None:
                raise SubtaskError(station, call.step, "no result returned")
            if isinstance(res, dict) and "lancelot_error" in res:
                raise SubtaskError(station, call.step, res["lancelot_error"])
        received = sum(json_size(r) for r in results.values())
        self.cost.record_round(len(calls), sent, received)
        return results

    def broadcast(self, step: str, payload: dict, stations: list[str] | None = None,
                  label: str | None = None) -> dict[str, Any]:
        """Run one step with the same payload at several stations (all by default) in one round."""
        targets = self.stations if stations is None else stations
        return self.round({s: StepCall(step, dict(payload)) for s in targets}, label=label)
