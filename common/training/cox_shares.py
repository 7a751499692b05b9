"""Cox proportional hazards: shares the coordinator deals to H and P, and shares they open to it.

A value the coordinator computes per record or per risk set reaches H and P as two shares: H derives
its own from the seed it shares with the coordinator (nothing crosses), P receives the difference
(:class:`Deal` builds that payload, :class:`DealtShares` reads either side). What H and P return is
masked with a mask from their pair key, labelled by the result key (:class:`Openings`), so that the
coordinator sees only the sum. The names are in :mod:`lancelot.training.labels`.
"""

from __future__ import annotations

import numpy as np

from ..runtime.errors import InputError
from ..runtime.station import StationContext
from .labels import at, opening


class DealtShares:
    """This station's shares dealt by the coordinator: the hub derives its own from the seed it
    shares with the coordinator, the partner receives the difference (and keeps those it needs in a
    later round of the same iteration in its job folder, so that they are sent once)."""

    def __init__(self, ctx: StationContext, own: bytes, hub: bool, payload: dict, t: int, keep: tuple[str, ...] = ()):
        self.own, self.hub, self.payload, self.t = own, hub, payload, t
        self.saved: dict = {}
        if not hub:
            name = f"cox_dealt{t}"
            self.saved = ctx.state.get(name) if ctx.state.has(name) else {}
            new = {k: payload[k] for k in keep if k in payload}
            if new:
                self.saved.update(new)
                ctx.state.put(name, self.saved)

    def get(self, ring, name: str, shape) -> np.ndarray:
        if self.hub:
            return ring.prg(self.own, at(name, self.t), shape)
        text = self.payload.get(name, self.saved.get(name))
        if text is None:
            raise InputError(f"the coordinator did not relay the share '{name}'")
        got = ring.unpack(text)
        if got.shape != tuple(np.atleast_1d(shape)):
            raise InputError(f"the relayed share '{name}' has the wrong shape")
        return got


class Deal(dict):
    """The coordinator's side of :class:`DealtShares`: the partner's payload of dealt shares (each value minus
    the hub's share PRG(seed_H, name/t), under the name)."""

    def __init__(self, seed_hub: bytes, t: int):
        super().__init__()
        self.seed, self.t = seed_hub, t

    def put(self, ring, name: str, value: np.ndarray) -> None:
        self[name] = ring.pack(ring.sub(value, ring.prg(self.seed, at(name, self.t), np.shape(value))))


class Openings(dict):
    """A step's result: shares opened to the coordinator, each masked with the H-P pair mask labelled by
    its key (H adds it, P subtracts it), so that the coordinator sees only their sum."""

    def __init__(self, pair: bytes, t: int, hub: bool):
        super().__init__()
        self.pair, self.t, self.hub = pair, t, hub

    def put(self, ring, key: str, value: np.ndarray) -> None:
        mask = ring.prg(self.pair, opening(key, self.t), np.shape(value))
        self[key] = ring.pack(ring.add(value, mask) if self.hub else ring.sub(value, mask))
