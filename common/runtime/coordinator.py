"""The coordinator's view of a protocol: rounds of steps at stations, relayed through it.

A protocol is written against :class:`Coordinator` only; how a round reaches the stations
(vantage6 subtasks, the in-process network, a test double) is a :class:`Transport`. That keeps
every protocol free of vantage6 imports.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .cost import CostMeter
from .errors import LancelotError, SubtaskError
from .station import END_JOB, FETCH_PART, IN_PARTS, INPUT_PARTS, STORE_PART, text_slices


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
    def run_round(self, calls: Mapping[str, StepCall], wait: bool = True) -> dict[str, Any]:
        """Run the calls (station name -> call) in parallel; return station name -> JSON result.

        Must raise :class:`SubtaskError` when a station fails, returns nothing or is not done within
        the transport's deadline. ``wait=False``: only start the calls and return nothing.
        """
        ...


def json_size(obj: Any) -> int:
    return len(json.dumps(obj, separators=(",", ":")))


class Coordinator:
    """Runs rounds, checks results, counts rounds/bytes and reports progress.

    Every station keeps per-job state (keys, permutations, masks) until the job ends there: a
    protocol marks a station's last round with ``final`` (the station wipes its state after that
    step), and :meth:`close` ends the job at every station not yet ended, without waiting for it,
    after the protocol has finished or failed.
    """

    def __init__(self, transport: Transport, stations: list[str], progress: bool = True, max_input_mb: float = 64.0):
        self.transport = transport
        self.stations = list(stations)
        self.max_input_mb = max_input_mb  # the coordinator node's policy: larger subtask inputs go in parts
        self.cost = CostMeter()
        self.progress = progress
        self.ended: set[str] = set()

    def log(self, message: str) -> None:
        if self.progress:
            print(f"[lancelot] {message}", file=sys.stderr, flush=True)

    def round(self, calls: Mapping[str, StepCall], label: str | None = None,
              final: Iterable[str] = ()) -> dict[str, Any]:
        """One round: every call runs at its station in parallel; returns their results.

        Stations in ``final`` take no further part in the job: they wipe their state after this step.
        """
        unknown = set(calls) - set(self.stations)
        if unknown:
            raise ValueError(f"round addressed to unknown stations: {sorted(unknown)}")
        ending = set(final) & set(calls)
        steps = sorted({c.step for c in calls.values()})
        sent_calls = {s: (StepCall.combine(c, StepCall(END_JOB, {})) if s in ending else c) for s, c in calls.items()}
        sent_calls = self._store_parts({s: c.step for s, c in calls.items()}, sent_calls)
        self.log(f"round {self.cost.rounds + 1}: {label or ', '.join(steps)} at {', '.join(calls)}")
        sent = sum(json_size(c.payload) for c in sent_calls.values())
        results = self.transport.run_round(sent_calls)
        self._check({s: c.step for s, c in calls.items()}, results)
        received = sum(json_size(r) for r in results.values())
        self.cost.record_round(len(calls), sent, received)
        self.ended |= ending
        results = self._fetch_parts(calls, results)
        return {s: (r["results"][0] if s in ending else r) for s, r in results.items()}

    @staticmethod
    def _check(steps: Mapping[str, str], results: Mapping[str, Any]) -> None:
        """Every station (name -> the step it ran) returned a result, and none a refusal."""
        for station, step in steps.items():
            res = results.get(station)
            if res is None:
                raise SubtaskError(station, step, "no result returned")
            if isinstance(res, dict) and "lancelot_error" in res:
                raise SubtaskError(station, step, res["lancelot_error"])

    def _store_parts(self, steps: Mapping[str, str], calls: dict[str, StepCall]) -> dict[str, StepCall]:
        """Inputs above ``max_input_mb`` go as slices of their JSON text, one extra round per slice before the
        round itself, which carries the last slice (a vantage6 4.x server keeps task inputs in its database, as
        it keeps results). The stations store the slices in the job's folder and put the input together again."""
        limit = int(self.max_input_mb * 1_000_000)
        texts = {s: json.dumps(c.payload, separators=(",", ":")) for s, c in calls.items()}
        parts = {s: text_slices(t, limit - 200) for s, t in texts.items() if len(t) > limit}
        if not parts:
            return calls
        tokens = {s: secrets.token_hex(8) for s in parts}
        for index in range(max(len(p) for p in parts.values()) - 1):
            store = {s: StepCall(STORE_PART, {"token": tokens[s], "index": index, "part": p[index]})
                     for s, p in parts.items() if index < len(p) - 1}
            self.log(f"round {self.cost.rounds + 1}: part {index + 1} of a large input to {', '.join(store)}")
            out = self.transport.run_round(store)
            self._check({s: steps[s] for s in store}, out)
            self.cost.record_round(len(store), sum(json_size(c.payload) for c in store.values()),
                                   sum(json_size(r) for r in out.values()))
        return {**calls, **{s: StepCall(calls[s].step, {INPUT_PARTS: {"token": tokens[s], "count": len(p),
                                                                       "part": p[-1]}})
                            for s, p in parts.items()}}

    def _fetch_parts(self, calls: Mapping[str, StepCall], results: dict[str, Any]) -> dict[str, Any]:
        """Results a station sent in parts (above its node's ``max_result_mb``): one extra round per part."""
        parts = {s: r[IN_PARTS] for s, r in results.items() if isinstance(r, dict) and IN_PARTS in r}
        if not parts:
            return results
        texts = {s: [p["part"]] for s, p in parts.items()}
        self.ended -= set(parts)  # the parts wait in the job's state: close() wipes it
        for index in range(1, max(p["count"] for p in parts.values())):
            fetch = {s: StepCall(FETCH_PART, {"token": p["token"], "index": index})
                     for s, p in parts.items() if index < p["count"]}
            self.log(f"round {self.cost.rounds + 1}: part {index + 1} of a large result from {', '.join(fetch)}")
            out = self.transport.run_round(fetch)
            self._check({s: calls[s].step for s in fetch}, out)
            self.cost.record_round(len(fetch), sum(json_size(c.payload) for c in fetch.values()),
                                   sum(json_size(r) for r in out.values()))
            for s in fetch:
                texts[s].append(out[s]["part"])
        return {**results, **{s: json.loads("".join(texts[s])) for s in parts}}

    def close(self) -> None:
        """End the job at every station that has not ended it yet.

        The clean-up subtasks are sent without waiting for them (no round of latency): a station runs
        them even after the coordinator has finished, and a station that is offline runs them when it
        comes back (the station guard lets a genuine subtask of an ended job only clean up).
        """
        rest = [s for s in self.stations if s not in self.ended]
        self.ended |= set(rest)
        if not rest:
            return
        self.log(f"end of job: station state is wiped at {', '.join(rest)}")
        try:
            self.transport.run_round({s: StepCall(END_JOB, {}) for s in rest}, wait=False)
            self.cost.record_cleanup(len(rest))
        except LancelotError as exc:  # the job's result stands; log why the clean-up could not be sent
            self.log(f"end of job: clean-up not sent ({exc})")

    def broadcast(self, step: str, payload: dict, stations: list[str] | None = None,
                  label: str | None = None, final: Iterable[str] = ()) -> dict[str, Any]:
        """Run one step with the same payload at several stations (all by default) in one round."""
        targets = self.stations if stations is None else stations
        return self.round({s: StepCall(step, dict(payload)) for s in targets}, label=label, final=final)
