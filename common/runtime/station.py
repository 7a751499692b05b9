"""The station side of a protocol: pure step functions, dispatched by name.

A step receives a :class:`StationContext` (its data, its name, its per-job state, the node
operator's settings) and the payload relayed by the coordinator, and returns a JSON-able dict.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from ..policy import NodePolicy
from .errors import LancelotError
from .state import JobState


@dataclass
class StationContext:
    station: str
    data: pd.DataFrame
    state: JobState
    policy: NodePolicy = field(default_factory=NodePolicy)

    @property
    def allows_evaluate(self) -> bool:
        return self.policy.allow_evaluate


MULTI_STEP = "multi"
END_JOB = "end_job"  # wipe this job's state at the station: appended to a station's last round
FETCH_PART = "fetch_part"  # the next part of a result larger than the node's max_result_mb
IN_PARTS = "lancelot_parts"
STORE_PART = "store_part"  # a part of an input larger than the coordinator node's max_input_mb
INPUT_PARTS = "lancelot_input_parts"  # the payload of a step whose earlier parts were stored
StepFunction = Callable[[StationContext, dict], dict]


def run_step(steps: dict[str, StepFunction], ctx: StationContext, step: str, payload: dict) -> dict:
    """Run one step; failures become a readable ``lancelot_error`` result that names the step.

    Only lancelot's own errors carry their message (they never contain data values); any other
    exception is reported by type only, so a stray value cannot leak through an error message.
    """
    if step == STORE_PART:
        return _store_part(ctx, payload)
    if isinstance(payload, dict) and INPUT_PARTS in payload:
        try:
            payload = _assembled(ctx, payload[INPUT_PARTS])
        except LancelotError as exc:
            return {"lancelot_error": str(exc)}
    if step == MULTI_STEP:  # several steps in one subtask (one round), results in order
        results = []
        for sub in payload["calls"]:
            result = run_step(steps, ctx, sub["step"], sub["payload"])
            if "lancelot_error" in result:
                return result
            results.append(result)
        return {"results": results}
    if step == FETCH_PART:
        return _fetch_part(ctx, payload)
    if step == END_JOB:
        ctx.state.wipe()
        print(f"[lancelot] station {ctx.station}: job state wiped", flush=True)
        return {"wiped": True}
    if step not in steps:
        return {"lancelot_error": f"unknown step '{step}'"}
    t0 = time.perf_counter()
    print(f"[lancelot] station {ctx.station}: step {step} started", flush=True)
    try:
        result = steps[step](ctx, payload)
    except LancelotError as exc:
        print(f"[lancelot] station {ctx.station}: step {step} refused: {exc}", flush=True)
        return {"lancelot_error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - report the type, never the message (it may hold values)
        print(f"[lancelot] station {ctx.station}: step {step} crashed with {type(exc).__name__}", flush=True)
        if os.environ.get("LANCELOT_DEBUG"):
            traceback.print_exc()
        return {"lancelot_error": f"internal error ({type(exc).__name__}) in step '{step}'"}
    print(f"[lancelot] station {ctx.station}: step {step} done in {time.perf_counter() - t0:.2f}s", flush=True)
    return result


def send_in_parts(result: dict, ctx: StationContext) -> dict:
    """The result as it goes to the server: whole, or, above the node's ``max_result_mb``, its first part.

    A vantage6 4.x server keeps every result in its database, so a node operator caps what one
    subtask returns. The rest of a larger result waits in the job's own folder until the coordinator
    fetches it, one part per extra round (:meth:`lancelot.runtime.coordinator.Coordinator.round`).
    The parts are slices of the JSON text the station would have sent anyway: nothing new leaves.
    """
    limit = int(ctx.policy.max_result_mb * 1_000_000)
    text = json.dumps(result, separators=(",", ":"))
    if len(text) <= limit:
        return result
    token = secrets.token_hex(8)
    parts = text_slices(text, limit - 100)  # room for the envelope around each part
    for index, part in enumerate(parts[1:], start=1):
        ctx.state.put(f"part-{token}-{index}", part)
    print(f"[lancelot] station {ctx.station}: result of {len(text) / 1e6:.0f} MB sent in {len(parts)} parts "
          f"(node policy max_result_mb={ctx.policy.max_result_mb})", flush=True)
    return {IN_PARTS: {"token": token, "count": len(parts), "part": parts[0]}}


def text_slices(text: str, limit: int) -> list[str]:
    """Consecutive slices of ``text`` whose JSON string encodings (escapes included) fit ``limit``."""
    out, start = [], 0
    while start < len(text):
        size = limit
        while (excess := len(json.dumps(text[start:start + size])) - limit) > 0:
            size -= excess
        out.append(text[start:start + size])
        start += size
    return out


def _fetch_part(ctx: StationContext, payload: dict) -> dict:
    token, index = str(payload.get("token", "")), payload.get("index")
    if not (len(token) == 16 and all(c in "0123456789abcdef" for c in token)) or not isinstance(index, int):
        return {"lancelot_error": "bad request for a part of a result"}
    name = f"part-{token}-{index}"
    if not ctx.state.has(name):
        return {"lancelot_error": f"part {index} of that result is not (or no longer) at this station"}
    part = ctx.state.get(name)
    ctx.state.drop(name)
    return {"part": part}


def _is_token(token: object) -> bool:
    return isinstance(token, str) and len(token) == 16 and all(c in "0123456789abcdef" for c in token)


def _store_part(ctx: StationContext, payload: dict) -> dict:
    """Keep one part of a large input in the job's folder until the step it belongs to arrives.

    The coordinator sends an input above its node's ``max_input_mb`` as slices of its JSON text, one
    per extra round, the last with the step itself (:meth:`lancelot.runtime.coordinator.Coordinator.round`).
    """
    token, index, part = payload.get("token"), payload.get("index"), payload.get("part")
    if not _is_token(token) or not isinstance(index, int) or index < 0 or not isinstance(part, str):
        return {"lancelot_error": "bad part of an input"}
    ctx.state.put(f"input-{token}-{index}", part)
    return {"stored": index}


def _assembled(ctx: StationContext, envelope: object) -> dict:
    """The whole payload from the stored parts and the last one, which came with the step."""
    if not isinstance(envelope, dict) or not _is_token(envelope.get("token")) \
            or not isinstance(envelope.get("count"), int) or not isinstance(envelope.get("part"), str):
        raise LancelotError("bad input sent in parts")
    token, count = envelope["token"], envelope["count"]
    names = [f"input-{token}-{index}" for index in range(count - 1)]
    missing = [i for i, name in enumerate(names) if not ctx.state.has(name)]
    if missing:
        raise LancelotError(f"part {missing[0] + 1} of this step's input is not (or no longer) at this station")
    text = "".join(ctx.state.get(name) for name in names) + envelope["part"]
    for name in names:
        ctx.state.drop(name)
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise LancelotError("bad input sent in parts")
    return payload
