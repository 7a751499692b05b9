"""Logistic regression: the station steps (hub H and its partner P; further stations only send rows).

The round-by-round description is in :mod:`lancelot.training.logistic_fit` (the coordinator's side);
the algebra and the leakage in docs/leakage/training.md.
"""

from __future__ import annotations

import numpy as np

from ..linkage.steps import station_rows
from ..runtime.errors import InputError
from ..runtime.station import StationContext
from . import channel, products, validation
from . import shares as sh
from .design import build_block
from .labels import LogisticDealt, Pair, Validation, at
from .spec import check_bins


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


def _frame(ctx: StationContext, layout: dict, t: int) -> tuple[np.ndarray, np.ndarray]:
    """This station's view F = pi_t(f - d_t) of the design in iteration t's order (X = F + b', C knows
    b'), and that order."""
    _, pair, _ = channel.stream_seeds(ctx)
    feat = layout["features"]
    f = ctx.state.get_array("train_f").astype(np.uint64)
    n = f.shape[0]
    perm = sh.permutation(pair, at(Pair.PERMUTATION, t), n)
    return (f[:, feat] - sh.prg(pair, at(Pair.REFRESH, t), (n, len(feat))))[perm], perm


def step_aggregate(ctx: StationContext, payload: dict) -> dict:
    """Shares of the gradient F'r and of the Hessian F'WF + F'U + U'F in the iteration's permuted order."""
    products.finish_round(ctx, payload)
    own_seed, pair, st = channel.stream_seeds(ctx)
    t = payload["t"]
    ctx.state.put(channel.STATE, {**st, "last_t": t})   # the validation runs at this iteration only
    big_f, _ = _frame(ctx, payload["layout"], t)
    n, p = big_f.shape
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


# ---------------------------------------------------------------------------------------------
# internal validation (bootstrap optimism; the protocol and its algebra: lancelot.training.validation)
# ---------------------------------------------------------------------------------------------
def _dealt(ctx: StationContext, payload: dict, hub: bool, own: bytes, name: str, label: str, shape: tuple) -> np.ndarray:
    return validation.dealt_share(payload, hub, own, name, label, shape, ctx.station)


VALIDATION_STEPS = ("train_resample", "train_bin", "train_count", "train_auc")


def _validation_start(ctx: StationContext, payload: dict, step: str) -> tuple[bytes, bytes, bool, int, int]:
    """The station's own checks: at most one validation per job, its four steps in order, at the last
    aggregated iteration (fresh resample weights at another would escape the bound on repetitions), with
    at most one resample per two linked records."""
    own, pair, st = channel.stream_seeds(ctx)
    if not ctx.state.has("train_f"):
        raise InputError("a validation step before the fit", station=ctx.station)
    n = ctx.state.get_array("train_f").shape[0]
    reps, t = payload.get("repetitions"), payload.get("t")
    validation.check_repetitions(reps, n, ctx.station)
    done = ctx.state.get("train_validation") if ctx.state.has("train_validation") else None
    expected = {"next": 0, "t": st.get("last_t"), "repetitions": reps} if done is None else done
    if (VALIDATION_STEPS[expected["next"]] if expected["next"] < len(VALIDATION_STEPS) else None) != step \
            or t != expected["t"] or reps != expected["repetitions"]:
        raise InputError("validation steps out of order, repeated, or not at the fit's last iteration",
                         station=ctx.station)
    ctx.state.put("train_validation", {**expected, "next": expected["next"] + 1})
    return own, pair, st["role"] == "hub", n, reps


def step_resample(ctx: StationContext, payload: dict) -> dict:
    """Shares of every bootstrap resample's Hessian and gradient at the last iterate (weights from the pair key)."""
    own, pair, hub, n, reps = _validation_start(ctx, payload, "train_resample")
    t = payload["t"]
    big_f, _ = _frame(ctx, payload["layout"], t)
    p = big_f.shape[1]
    shapes = {Validation.WEIGHTS: (n,), Validation.RESIDUALS: (n,), Validation.WEIGHTED_MASK: (n, p),
              Validation.MASK_SQUARES: (n, p * (p + 1) // 2), Validation.MASK_RESIDUALS: (n, p)}
    dealt = {name: _dealt(ctx, payload, hub, own, name, at(name, t), shape) for name, shape in shapes.items()}
    sums = validation.station_resample_sums(big_f, dealt, validation.resample_weights(pair, t, reps, n))
    return {"sums": validation.open_masked(pair, hub, "vsums", t, sums)}


def step_bin(ctx: StationContext, payload: dict) -> dict:
    """Shares of the resample models' bin-scaled scores plus the dealt mask, sealed for the partner."""
    own, pair, hub, n, reps = _validation_start(ctx, payload, "train_bin")
    t, st = payload["t"], ctx.state.get(channel.STATE)
    big_f, _ = _frame(ctx, payload["layout"], t)
    a = _dealt(ctx, payload, hub, own, Validation.COEFFICIENTS, at(Validation.COEFFICIENTS, t), (reps, big_f.shape[1]))
    x = validation.station_scores(big_f, a)
    refresh = sh.prg(pair, at(Pair.BIN_REFRESH, t), x.shape)
    x = x + refresh if hub else x - refresh
    y = x + _dealt(ctx, payload, hub, own, Validation.BIN_MASK, at(Validation.BIN_MASK, t), x.shape)
    ctx.state.put_array("train_bin_y", y)
    key = channel.peer_key(ctx, st["partner"], st["peers"][st["partner"]])
    return {"sealed": sh.seal(key, {"y": y}, f"bin-y:{ctx.station}")}


def step_count(ctx: StationContext, payload: dict) -> dict:
    """Open the masked scores with the partner, count events and non-events per bin on shares, open the
    calibration statistics and start the Beaver products of the AUC's pair counts."""
    own, pair, hub, n, reps = _validation_start(ctx, payload, "train_count")
    t, st = payload["t"], ctx.state.get(channel.STATE)
    bins = check_bins(payload.get("bins"), ctx.station)
    key = channel.peer_key(ctx, st["partner"], st["peers"][st["partner"]])
    mine = ctx.state.get_array("train_bin_y").astype(np.uint64)
    theirs = sh.unseal(key, payload["sealed"], f"bin-y:{st['partner']}")["y"].astype(np.uint64)
    if theirs.shape != mine.shape or mine.shape != (reps, n):
        raise InputError("the relayed validation scores do not match this station's rows", station=ctx.station)
    tables = {}
    for name in (Validation.EVENT_TABLE, Validation.NONEVENT_TABLE):
        relayed = [] if hub else payload[name]
        if not hub and len(relayed) != reps:
            raise InputError("the relayed validation tables do not match the resamples", station=ctx.station)
        tables[name] = [_dealt(ctx, {} if hub else {name: relayed[b]}, hub, own, name, at(f"{name}{b}", t),
                               (n, bins)) for b in range(reps)]
    counts = validation.station_bin_counts(mine + theirs, tables, validation.resample_weights(pair, t, reps, n), bins)
    coefficients = sh.unpack(payload["weights"])
    if coefficients.shape != (2, validation.STATISTICS, bins):
        raise InputError("the relayed calibration coefficients do not match the bins", station=ctx.station)
    stats = validation.calibration_statistics(counts, coefficients)
    if hub:   # noise C cannot remove (pair key), scaled by the stations from C's coefficients
        stats = stats + validation.statistic_noise(pair, t, coefficients, stats.shape)
    opened = np.concatenate([stats.ravel(), validation.outcome_totals(counts).ravel()])
    de = validation.beaver_open(*validation.auc_factors(counts), own, t)
    ctx.state.put_array("train_beaver", de)
    return {"stats": validation.open_masked(pair, hub, "vstats", t, opened),
            "sealed": sh.seal(key, {"de": de}, f"beaver:{ctx.station}")}


def step_auc(ctx: StationContext, payload: dict) -> dict:
    """Finish the Beaver products: shares of each AUC numerator sum_k E_k L_k, opened masked."""
    own, pair, hub, n, reps = _validation_start(ctx, payload, "train_auc")
    t, st = payload["t"], ctx.state.get(channel.STATE)
    key = channel.peer_key(ctx, st["partner"], st["peers"][st["partner"]])
    mine = ctx.state.get_array("train_beaver").astype(np.uint64)
    theirs = sh.unseal(key, payload["sealed"], f"beaver:{st['partner']}")["de"].astype(np.uint64)
    if theirs.shape != mine.shape:
        raise InputError("the relayed validation products do not match", station=ctx.station)
    shape = mine.shape[1:]
    c = _dealt(ctx, payload, hub, own, Validation.TRIPLE_C, at(Validation.TRIPLE_C, t), shape)
    numerators = validation.beaver_finish(mine + theirs, own, t, c, hub)
    return {"auc": validation.open_masked(pair, hub, "vauc", t, numerators)}


STEPS = {"train_setup": channel.step_setup, "train_rows": step_rows, "train_share": step_share,
         "train_open": step_open, "train_aggregate": step_aggregate, "train_resample": step_resample,
         "train_bin": step_bin, "train_count": step_count, "train_auc": step_auc}
