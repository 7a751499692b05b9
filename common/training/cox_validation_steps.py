"""Cox cross-validation: the station steps (the protocol and its algebra: :mod:`lancelot.training.cox_validation`).

Each step checks its own preconditions first: a fitted model, the fit's last iteration, the five steps in
order and once per job, folds and bins within their choices, balanced fold labels.
"""

from __future__ import annotations

import numpy as np

from ..runtime.errors import InputError
from ..runtime.station import StationContext
from . import cox_validation as cv
from . import shares as sh
from . import validation
from .channel import STATE, peer_key, stream_seeds
from .cox_shares import DealtShares, Openings
from .cox_steps import A_BITS, RX, _frame, _structure, _to_time, phi_noise
from .cox_time import deaths_index, grid, grid_points, suffix_sums, sum_by
from .labels import CoxValidation as V
from .labels import Pair, Validation, at
from .ring import log_uniform_blinds
from .spec import check_bins

STEPS_IN_ORDER = ("cox_vsums", "cox_vfolds", "cox_vbin", "cox_vcount", "cox_vfinish")


def _start(ctx: StationContext, payload: dict, step: str) -> tuple[bytes, bytes, bool, dict]:
    """The station's own checks (at most one validation per job, its steps in order, at the fit's last
    iteration, folds and bins within their choices)."""
    own, pair, st = stream_seeds(ctx)
    if not ctx.state.has("train_f") or "last_t" not in st:
        raise InputError("a validation step before the fit", station=ctx.station)
    t, folds = payload.get("t"), cv.check_folds(payload.get("folds"), ctx.station)
    bins = check_bins(payload.get("bins"), ctx.station)
    done = ctx.state.get("cox_validation") if ctx.state.has("cox_validation") else None
    expected = {"next": 0, "t": st["last_t"], "folds": folds, "bins": bins} if done is None else done
    if (STEPS_IN_ORDER[expected["next"]] if expected["next"] < len(STEPS_IN_ORDER) else None) != step \
            or t != expected["t"] or folds != expected["folds"] or bins != expected["bins"]:
        raise InputError("validation steps out of order, repeated, or not at the fit's last iteration",
                         station=ctx.station)
    ctx.state.put("cox_validation", {**expected, "next": expected["next"] + 1})
    # the design columns and ties are the fit's own (kept at its last iteration), never the payload's
    return own, pair, st["role"] == "hub", {"t": t, "folds": folds, "bins": bins, **st["last_fit"]}


def _masks(pair: bytes, t: int, k: int, folds: int, p: int) -> dict[str, np.ndarray]:
    """H's and P's additive masks of the opened sums (positions in the secret group order)."""
    return {"M": cv.RV.prg(pair, at(V.MASK_Y, t), (k, p)), "MF": cv.RV.prg(pair, at(V.MASK_FOLD_Y, t), (k, folds, p)),
            "N": cv.RV.prg(pair, at(V.MASK_FOLD_S, t), (k, folds)),
            "L": cv.RV.prg(pair, at(V.MASK_FOLD_DEATHS, t), (k, folds))}


def step_sums(ctx: StationContext, payload: dict) -> dict:
    """Per event group: the risk-set sums S and G = sum r x, their restrictions to each fold and the deaths per
    fold, opened in the fit's last group order under its blinds (and fresh masks); the deaths' feature sums per fold
    stay here for the next step."""
    own, pair, hub, o = _start(ctx, payload, "cox_vsums")
    t, folds, p, feat = o["t"], o["folds"], o["p"], o["features"]
    _, _, _, big_f, struct, to_time = _frame(ctx, t, p, feat)
    n = big_f.shape[0]
    labels = cv.check_fold_labels(payload.get("fold_labels"), folds, n, ctx.station)
    ctx.state.put_array("cox_vlabels", labels)
    dealt = DealtShares(ctx, own, hub, payload, t)
    e, d = dealt.get(RX, V.RISK, n), dealt.get(RX, V.DEATHS, n)
    ex = RX.add(RX.mul(e[:, None], big_f), dealt.get(RX, V.RISK_MASK, (n, p)))
    oh = cv.onehot_folds(labels, folds)
    per_record = RX.element(np.hstack([e[:, None], e[:, None] * oh, ex, (ex[:, None, :] * oh[:, :, None]).reshape(n, -1)]))
    suffix = suffix_sums(per_record[to_time])
    starts, stops = struct["starts"], struct["stops"]
    k = len(starts)
    groups = cv.RV.lift(RX.sub(suffix[starts], suffix[stops]), RX)          # (k, 1 + K + p + K p)
    group, pos = deaths_index(struct)
    fold_deaths = cv.RV.lift(sum_by(RX.mul(d[to_time][pos][:, None], oh[to_time][pos]), group, k, RX), RX)
    # the fit's last iteration's group order, blinds and noise: S opens as the very value the fit opened there (a
    # second blind of the same integer would let C take their common divisor, found in review); the other sums
    # under that blind and fresh masks
    sigma = sh.permutation(pair, at(Pair.GROUP_ORDER, t), k)
    points, offsets = grid(grid_points(struct, o["ties"] == "efron"), sigma)
    first = offsets == 0
    rho = log_uniform_blinds(pair, at(Pair.BLINDS, t), len(points))[first]
    noise = phi_noise(pair, t, len(points))[first] if hub else 0
    g = groups[sigma]
    s_, sf, gv, gf = g[:, 0], g[:, 1:1 + folds], g[:, 1 + folds:1 + folds + p], g[:, 1 + folds + p:].reshape(k, folds, p)
    masks = _masks(pair, t, k, folds, p) if hub else {key: 0 for key in ("M", "MF", "N", "L")}
    out = Openings(pair, t, hub)
    out.put(cv.RV, V.OPEN_S, cv.RV.mul(cv.RV.add(cv.RV.mul(s_, 1 << A_BITS), noise), rho))
    out.put(cv.RV, V.OPEN_Y, cv.RV.add(cv.RV.mul(gv, rho[:, None]), masks["M"]))
    out.put(cv.RV, V.OPEN_FOLD_Y, cv.RV.add(cv.RV.mul(gf, rho[:, None, None]), masks["MF"]))
    out.put(cv.RV, V.OPEN_FOLD_S, cv.RV.add(cv.RV.mul(sf, rho[:, None]), masks["N"]))
    out.put(cv.RV, V.OPEN_FOLD_DEATHS, cv.RV.add(fold_deaths[sigma], masks["L"]))
    out.put(RX, V.OPEN_DEATHS, RX.element(RX.reduce_to(fold_deaths[sigma].sum(axis=1), RX)))
    # the deaths' feature sums per fold stay here: they enter the fold score sums, which alone are opened
    ctx.state.put("cox_vdx", RX.pack(RX.dot(oh.T, RX.mul(d[:, None], big_f))))
    return out


def step_folds(ctx: StationContext, payload: dict) -> dict:
    """The parts of the fold score sums that remove H's and P's masks: each a share of what C dealt times a mask."""
    own, pair, hub, o = _start(ctx, payload, "cox_vfolds")
    t, folds, p = o["t"], o["folds"], o["p"]
    k = len(_structure(ctx)["starts"])
    m = _masks(pair, t, k, folds, p)
    dealt = DealtShares(ctx, own, hub, payload, t)
    rv = cv.RV
    a, ad, gm = dealt.get(rv, V.RECIPROCAL, k), dealt.get(rv, V.RECIPROCAL_DEATHS, k), dealt.get(rv, V.SQUARE, k)
    a_y, a_f = dealt.get(rv, V.RECIPROCAL_Y, (k, p)), dealt.get(rv, V.RECIPROCAL_FOLD_DEATHS, (k, folds))
    g_y, g_t = dealt.get(rv, V.SQUARE_Y, (k, p)), dealt.get(rv, V.SQUARE_FOLD_SUMS, (k, folds))
    t1 = rv.sub(rv.dot(m["L"].T, rv.mul(a[:, None], m["M"])), rv.add(rv.dot(m["L"].T, a_y), rv.dot(a_f.T, m["M"])))
    t2 = rv.neg(rv.element(np.sum(rv.mul(ad[:, None, None], m["MF"]), axis=0)))
    t3 = rv.sub(rv.dot(m["N"].T, rv.mul(gm[:, None], m["M"])), rv.add(rv.dot(m["N"].T, g_y), rv.dot(g_t.T, m["M"])))
    dx = rv.lift(RX.unpack(ctx.state.get("cox_vdx")), RX)
    # one opening, scaled by 2^(2U): 2^(2U) sum d x - 2^U (terms 1 and 2) + term 3 (C adds its parts)
    scale = 1 << cv.UNIT_BITS
    total = rv.add(rv.mul(dx, scale * scale), rv.neg(rv.mul(rv.add(t1, t2), scale)), t3)
    out = Openings(pair, t, hub)
    out.put(rv, V.OPEN_SCORE_SUMS, total)
    return out


def _frame_u64(ctx: StationContext, t: int, feat: list[int], n: int) -> np.ndarray:
    """This station's view F of the design in the iteration's frame, modulo 2^64 (for the scores)."""
    _, pair, _ = stream_seeds(ctx)
    f = ctx.state.get_array("train_f").astype(np.uint64)
    f = np.tile(f, (n // f.shape[0], 1))[:, feat]
    perm = sh.permutation(pair, at(Pair.PERMUTATION, t), n)
    return (f - sh.prg(pair, at(Pair.REFRESH, t), f.shape))[perm]


def _dealt64(ctx: StationContext, payload: dict, hub: bool, own: bytes, name: str, t: int, shape: tuple) -> np.ndarray:
    return validation.dealt_share(payload, hub, own, name, at(name, t), shape, ctx.station)


def step_bin(ctx: StationContext, payload: dict) -> dict:
    """Shares of every record's out-of-fold bin-scaled score plus C's mask, sealed for the partner."""
    own, pair, hub, o = _start(ctx, payload, "cox_vbin")
    t, folds = o["t"], o["folds"]
    labels = ctx.state.get_array("cox_vlabels").astype(np.int64)
    n = len(labels)
    big_f = _frame_u64(ctx, t, o["features"], n)
    a = _dealt64(ctx, payload, hub, own, V.COEFFICIENTS, t, (folds, big_f.shape[1]))
    x = np.sum(big_f * a[labels], axis=1, dtype=np.uint64)
    refresh = sh.prg(pair, at(V.BIN_REFRESH, t), n)
    x = x + refresh if hub else x - refresh
    y = x + _dealt64(ctx, payload, hub, own, V.BIN_MASK, t, (n,))
    ctx.state.put_array("cox_vy", y)
    st = ctx.state.get(STATE)
    key = peer_key(ctx, st["partner"], st["peers"][st["partner"]])
    return {"sealed": sh.seal(key, {"y": y}, f"cox-bin-y:{ctx.station}")}


def step_count(ctx: StationContext, payload: dict) -> dict:
    """Open the masked scores with the partner; per event group the deaths, later records and risk set per bin on
    shares; start the concordance's Beaver products; open the slope grid's risk-set sums blinded."""
    own, pair, hub, o = _start(ctx, payload, "cox_vcount")
    t, bins = o["t"], o["bins"]
    st = ctx.state.get(STATE)
    key = peer_key(ctx, st["partner"], st["peers"][st["partner"]])
    mine = ctx.state.get_array("cox_vy").astype(np.uint64)
    theirs = sh.unseal(key, payload["sealed"], f"cox-bin-y:{st['partner']}")["y"].astype(np.uint64)
    n = len(mine)
    if theirs.shape != mine.shape:
        raise InputError("the relayed validation scores do not match this station's rows", station=ctx.station)
    q = validation.bin_offsets(mine + theirs, bins)
    rotated = [validation.rotate_one_hot(_dealt64(ctx, payload, hub, own, name, t, (n, bins)), q, bins)
               for name in (V.ALL_TABLE, V.DEATH_TABLE)]
    struct = _structure(ctx)
    events, later, risk = cv.bin_counts(*rotated, struct, _to_time(pair, t, struct))
    de = validation.beaver_open(*cv.concordance_factors(events, later), own, t)
    ctx.state.put_array("cox_vbeaver", de)
    weights = np.array(payload.get("slope_weights") or [], dtype=object)
    scores = np.array(payload.get("bin_scores") or [], dtype=object)
    if weights.shape != (len(cv.SLOPES), bins) or scores.shape != (bins,) \
            or not all(0 < int(w) <= 1 << cv.SLOPE_BITS for w in weights.ravel()) \
            or not all(abs(int(s)) < 1 << 40 for s in scores):
        raise InputError("the relayed slope weights do not match the bins", station=ctx.station)
    k, grid = len(struct["starts"]), len(cv.SLOPES)
    r = RX.from_u64(risk)                                                          # (groups, bins)
    first = cv.RS.lift(RX.dot(r, (weights * scores[None, :]).T), RX).T              # (grid, groups): S1
    sums = RX.dot(r, weights.T).T                                                  # (grid, groups): S0
    if hub:   # sub-unit noise before the blind: no exact multiple of a weight C knows (found in review)
        sums = RX.add(sums, RX.prg(pair, at(V.SLOPE_NOISE, t), sums.shape) % cv.SLOPE_NOISE_RANGE)
    blinded = RX.mul(sums, _slope_blinds(pair, t, k))                              # rho S0
    deaths = cv.RS.lift(RX.from_u64(events.sum(axis=1, dtype=np.uint64)), RX)       # (groups,)
    masks = _slope_masks(pair, t, k) if hub else {"M": 0, "L": 0}
    orders = _slope_orders(pair, t, k)
    rho = cv.RS.element(_slope_blinds(pair, t, k))
    out = Openings(pair, t, hub)
    out.put(RX, V.OPEN_SLOPE, np.stack([blinded[j][orders[j]] for j in range(grid)]))
    out.put(cv.RS, V.OPEN_SLOPE_FIRST, cv.RS.add(np.stack([cv.RS.mul(first[j], rho[j])[orders[j]] for j in range(grid)]),
                                                 masks["M"]))
    out.put(cv.RS, V.OPEN_SLOPE_DEATHS, cv.RS.add(np.stack([deaths[orders[j]] for j in range(grid)]), masks["L"]))
    out.put(RX, V.OPEN_EVENT_SCORE, RX.dot(RX.from_u64(events.sum(axis=0, dtype=np.uint64))[None, :], scores))
    out["sealed"] = sh.seal(key, {"de": de}, f"cox-beaver:{ctx.station}")
    return out


def _slope_blinds(pair: bytes, t: int, k: int) -> np.ndarray:
    """A fresh log-uniform blind per grid slope and event group (one for S0 and S1 of the same group and slope)."""
    return log_uniform_blinds(pair, at(V.SLOPE_BLINDS, t), len(cv.SLOPES) * k).reshape(len(cv.SLOPES), k)


def _slope_orders(pair: bytes, t: int, k: int) -> list[np.ndarray]:
    """A fresh secret group order per grid slope: C cannot line up one group's values across the slopes."""
    return [sh.permutation(pair, at(f"{V.SLOPE_ORDER}:{j}", t), k) for j in range(len(cv.SLOPES))]


def _slope_masks(pair: bytes, t: int, k: int) -> dict[str, np.ndarray]:
    shape = (len(cv.SLOPES), k)
    return {"M": cv.RS.prg(pair, at(V.SLOPE_MASK_FIRST, t), shape), "L": cv.RS.prg(pair, at(V.SLOPE_MASK_DEATHS, t), shape)}


def step_finish(ctx: StationContext, payload: dict) -> dict:
    """Finish the Beaver products (the concordance's two pair counts) and return what removes the masks from C's
    slope sums: per grid slope, sum_g (alpha L M - alpha Delta M - alpha Y L) on this station's shares."""
    own, pair, hub, o = _start(ctx, payload, "cox_vfinish")
    t = o["t"]
    st = ctx.state.get(STATE)
    key = peer_key(ctx, st["partner"], st["peers"][st["partner"]])
    mine = ctx.state.get_array("cox_vbeaver").astype(np.uint64)
    theirs = sh.unseal(key, payload["sealed"], f"cox-beaver:{st['partner']}")["de"].astype(np.uint64)
    if theirs.shape != mine.shape:
        raise InputError("the relayed validation products do not match", station=ctx.station)
    c = _dealt64(ctx, payload, hub, own, Validation.TRIPLE_C, t, mine.shape[1:])
    counts = validation.beaver_finish(mine + theirs, own, t, c, hub).sum(axis=-1, dtype=np.uint64)   # (2,)
    k = len(_structure(ctx)["starts"])
    m = _slope_masks(pair, t, k)
    dealt = DealtShares(ctx, own, hub, payload, t)
    shape = (len(cv.SLOPES), k)
    rs = cv.RS
    a_d, a_y, a = (dealt.get(rs, name, shape) for name in (V.SLOPE_RECIPROCAL_DEATHS, V.SLOPE_RECIPROCAL_FIRST,
                                                            V.SLOPE_RECIPROCAL))
    terms = rs.sub(rs.mul(a, rs.mul(m["L"], m["M"])), rs.add(rs.mul(a_d, m["M"]), rs.mul(a_y, m["L"])))
    out = Openings(pair, t, hub)
    out.put(rs, V.OPEN_SLOPE_MASKS, rs.element(terms.sum(axis=1)))
    return {"pairs": validation.open_masked(pair, hub, V.OPEN_PAIRS, t, counts), **out}


STEPS = {"cox_vsums": step_sums, "cox_vfolds": step_folds, "cox_vbin": step_bin, "cox_vcount": step_count,
         "cox_vfinish": step_finish}
