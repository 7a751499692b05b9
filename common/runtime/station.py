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

from .errors import LancelotError
from .state import JobState

# Settings a node operator can put in the node's ``algorithm_env``.
ENV_MIN_CELL_COUNT = "LANCELOT_MIN_CELL_COUNT"
ENV_ALLOW_EVALUATE = "LANCELOT_ALLOW_EVALUATE"


@dataclass
class StationContext:
    station: str
    data: pd.DataFrame
    state: JobState
    settings: dict = field(default_factory=dict)

    @property
    def min_cell_count_floor(self) -> int:
        """The node operator's floor for the disclosure-control minimum cell count (0 = none)."""
        return int(self.settings.get("min_cell_count", 0) or 0)

    @property
    def allows_evaluate(self) -> bool:
        return bool(self.settings.get("allow_evaluate", False))


def settings_from_environment() -> dict:
    """Read the node operator's settings; values may be base32-encoded by a real node."""
    def get(name: str) -> str | None:
        try:
            from vantage6.algorithm.tools.util import get_env_var  # decodes the node's encoding
            return get_env_var(name, None)
        except ImportError:
            return os.environ.get(name)

    floor = get(ENV_MIN_CELL_COUNT)
    allow = (get(ENV_ALLOW_EVALUATE) or "").strip().lower() in {"1", "true", "yes"}
    settings: dict = {"allow_evaluate": allow}
    if floor:
        try:
            settings["min_cell_count"] = int(floor)
        except ValueError as exc:
            raise LancelotError(f"{ENV_MIN_CELL_COUNT} must be an integer") from exc
    return settings


MULTI_STEP = "multi"
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
