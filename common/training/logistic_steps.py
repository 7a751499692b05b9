"""Logistic regression: the station steps (hub H and its partner P; further stations only send rows).

The round-by-round description is in :mod:`lancelot.training.logistic_fit` (the coordinator's side);
the algebra and the leakage in docs/leakage/training.md.
"""

from __future__ import annotations

import numpy as np

from ..linkage.steps import station_rows
from ..runtime.errors import InputError
from ..runtime.station import StationContext
from . import channel, products
from . import shares as sh
from .design import build_block
from .labels import LogisticDealt, Pair, at


def step_rows(ctx: StationContext, payload: dict) -> dict:
    """All of this station's rows (linkage order), masked by the coordinator's seed, sealed for the peer."""
    st = ctx.state.get(channel.STATE)
    st["peers"] = payload["peers"]
    ctx.state.put(channel.STATE, st)
    block = build_block(channel.spec_of(payload), ctx.station, station_rows(ctx), ctx.policy, scaling=st["scaling"])
    return channel.seal_rows(ctx, payload, block.values)


def step_share(ctx: StationContext, payload: dict) -> dict:
    """Turn the peers' masked rows into this station's view f = X - b of their cohort columns."""
    parts, _ = channel.receive_parts(ctx, payload)
    return {**channel.forward_parts(ctx, payload, parts), **products.share_round(ctx, payload, parts)}


def step_open(ctx: StationContext, payload: dict) -> dict:
    """Permuted, re-masked shares of z = X beta, of the open columns and of the coordinator's mask b."""
    o, t = channel.open_shares(ctx, payload), payload["t"]
    out = np.column_stack([o["z"], o["share"][:, payload["layout"]["open"]], o["b_part"]])
    mask = sh.prg(o["pair"], at(Pair.OPEN_MASK, t), out.shape)
    out = out + mask if o["hub"] else out - mask
    return {"shares": sh.pack(out[sh.permutation(o["pair"], at(Pair.PERMUTATION, t), o["n"])]), **products.open_round(ctx, payload)}


def step_aggregate(ctx: StationContext, payload: dict) -> dict:
    """Shares of the gradient F'r and of the Hessian F'WF + F'U + U'F in the iteration's permuted order."""
    products.finish_round(ctx, payload)
    own_seed, pair, st = channel.stream_seeds(ctx)
    layout, t = payload["layout"], payload["t"]
    feat = layout["features"]
    f = ctx.state.get_array("train_f").astype(np.uint64)
    n, p = f.shape[0], len(feat)
    perm = sh.permutation(pair, at(Pair.PERMUTATION, t), n)
    big_f = (f[:, feat] - sh.prg(pair, at(Pair.REFRESH, t), (n, p)))[perm]
    if st["role"] == "hub":
        w, u, r = (sh.prg(own_seed, at(LogisticDealt.WEIGHTS, t), n), sh.prg(own_seed, at(LogisticDealt.WEIGHTED_MASK, t), (n, p)), sh.prg(own_seed, at(LogisticDealt.RESIDUALS, t), n))
    else:
        w, u, r = (sh.unpack(payload[name]) for name in (LogisticDealt.WEIGHTS, LogisticDealt.WEIGHTED_MASK,
                                                         LogisticDealt.RESIDUALS))
        if len(w) != n or u.shape != (n, p) or len(r) != n:
            raise InputError("the relayed weights do not match this station's shares", station=ctx.station)
    hess = big_f.T @ (big_f * w[:, None]) + big_f.T @ u + u.T @ big_f
    grad = big_f.T @ r
    out = np.concatenate([hess.ravel(), grad])
    mask = sh.prg(pair, at(Pair.SUMS_MASK, t), out.shape)
    return {"sums": sh.pack(out + mask if st["role"] == "hub" else out - mask)}


STEPS = {"train_setup": channel.step_setup, "train_rows": step_rows, "train_share": step_share,
         "train_open": step_open, "train_aggregate": step_aggregate}
