"""A toy two-round algorithm used to test the runtime and the in-process network."""

from __future__ import annotations

import os
import secrets

from lancelot.runtime.errors import InputError
from lancelot.v6.entry import extract, make_central, make_partial

_MEMORY: dict = {}  # deliberately module-global: a protocol that relied on it would break in real runs


def remember(ctx, payload):
    secret = secrets.randbelow(10**9)
    ctx.state.put("secret", {"value": secret})
    _MEMORY["secret"] = secret
    return {"rows": len(ctx.data), "column_sum": float(ctx.data[payload["column"]].sum()), "pid": os.getpid()}


def recall(ctx, payload):
    return {"from_state": ctx.state.get("secret")["value"], "from_globals": _MEMORY.get("secret"),
            "pid": os.getpid(), "floor": ctx.policy.min_cell_count}


def fail(ctx, payload):
    raise InputError("the column is missing", station=ctx.station, column=payload["column"])


def crash(ctx, payload):
    raise ValueError("secret value 12345 must not leak")


def run(coordinator, column: str, failing: str | None = None):
    first = coordinator.broadcast("remember", {"column": column})
    if failing:
        coordinator.broadcast(failing, {"column": column})
    second = coordinator.broadcast("recall", {})
    return {"first": first, "second": second}


central = make_central(run)
partial = make_partial({"remember": remember, "recall": recall, "fail": fail, "crash": crash})
__all__ = ["central", "extract", "partial"]
