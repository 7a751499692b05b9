"""The station side of a protocol: pure step functions, dispatched by name.

A step receives a :class:`StationContext` (its data, its name, its per-job state, the node
operator's settings) and the payload relayed by the coordinator, and returns a JSON-able dict.
"""

from __future__ import annotations

import os
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
StepFunction = Callable[[StationContext, dict], dict]


def run_step(steps: dict[str, StepFunction], ctx: StationContext, step: str, payload: dict) -> dict:
    """Run one step; failures become a readable ``lancelot_error`` result that names the step.

    Only lancelot's own errors carry their message (they never contain data values); any other
    exception is reported by type only, so a stray value cannot leak through an error message.
    """
    if step == MULTI_STEP:  # several steps in one subtask (one round), results in order
        results = []
        for sub in payload["calls"]:
            result = run_step(steps, ctx, sub["step"], sub["payload"])
            if "lancelot_error" in result:
                return result
            results.append(result)
        return {"results": results}
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
