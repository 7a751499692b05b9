"""Cox proportional hazards: the station steps (hub H, its partner P, further stations O).

The round-by-round description, and why Cox differs from logistic regression, are in
:mod:`lancelot.training.cox_fit` (the coordinator's side); the algebra and the leakage in
docs/leakage/training.md. Fixed-point widths shared by both ends are defined here; the names of
what crosses (dealt shares, openings, PRG labels) in :mod:`lancelot.training.labels`.

Every step reads its per-job state (the hub-ordered shares, the time structure at H and P) and
returns shares, sealed parts or blinded sums only. The hub's time structure and the sums over it
are in :mod:`.cox_time`, the dealt and opened shares in :mod:`.cox_shares`.
"""

from __future__ import annotations

import math

import numpy as np

from ..linkage.steps import station_rows
from ..runtime.errors import InputError
from ..runtime.station import StationContext
from . import products
from . import shares as sh
from .channel import (
    STATE,
    complete_view,
    forward_parts,
    open_shares,
    receive_parts,
    seal_rows,
    spec_of,
    step_setup,
    stream_seeds,
)
from .cox_shares import DealtShares, Openings
from .cox_time import (
    STRUCTURE,
    block_end,
    deaths_index,
    grid,
    grid_points,
    stratum_of_position,
    suffix_sums,
    sum_by,
    time_structure,
)
from .design import FRAC_BITS_X, build_block
from .labels import CoxDealt as D
from .labels import CoxOpened as O
from .labels import Pair, Seeded, at
from .ring import R128, R256, log_uniform_blinds

RX, RG = R128, R256        # per-record shares; risk-set (group) shares
FRAC_BITS_BETA = 24        # coefficients sent to the stations
E_BITS = 32                # r = exp(z - max z) in (0, 1]
A_BITS = 24                # Efron fractions l / D (and the matching shift of S and G)
L_BITS = 32                # per-record cumulative sums Lambda and B (errors add up over event times)
W_BITS = E_BITS + L_BITS   # per-record weights w and event indicators d
ALPHA_BITS = 182           # the coordinator's reciprocals floor(2^182 / blinded sum)
XBAR_BITS = 40             # risk-set means
BASE_BITS = 40             # baseline hazard increments and their variance terms
LOGRHO_BITS = 32           # log2 of the blinds, for the log-likelihood
# truncation shifts: rho * alpha = 2^INV / phi_real with INV = ALPHA - A - E
INV_BITS = ALPHA_BITS - A_BITS - E_BITS
SHIFT_A = INV_BITS - L_BITS
SHIFT_B = INV_BITS + A_BITS - L_BITS
SHIFT_LAMBDA = INV_BITS - BASE_BITS
SHIFT_XBAR = ALPHA_BITS + FRAC_BITS_X - XBAR_BITS


def step_rows(ctx: StationContext, payload: dict) -> dict:
    """All of this station's rows, masked by the coordinator's seed and sealed for the peer.

    The hub adds its time order and tie structure (for the partner); the others add dummy rows so
    that the hub cannot tell its padding rows from linked ones.
    """
    st = ctx.state.get(STATE)
    st["peers"] = payload["peers"]
    spec = spec_of(payload)
    block = build_block(spec, ctx.station, station_rows(ctx), ctx.policy, scaling=st["scaling"])
    values = block.values
    extra: dict[str, np.ndarray] = {}
    if st["role"] == "hub":
        complete, event = block.open_column(f"complete:{ctx.station}"), block.open_column("outcome")
        copies = int(payload.get("strata_copies") or 0)
        if copies:   # strata at another station: the fit runs on copies of these rows, one block per stratum
            n_rows = len(values)
            extra = time_structure(np.tile(block.times, copies), np.tile(event, copies), np.tile(complete, copies),
                                   spec.survival_times, np.repeat(np.arange(copies), n_rows), copies)
        else:
            levels = block.strata_levels or []
            extra = time_structure(block.times, event, complete, spec.survival_times, block.strata, max(len(levels), 1))
        ctx.state.put_array("cox_order", extra["order"])
        st["cox"] = {k: extra[k].tolist() for k in STRUCTURE}
    else:
        n_ext = len(values) + int(payload["n_hub"])
        ext = np.zeros((n_ext, values.shape[1]), dtype=np.int64)
        ext[sh.permutation(bytes.fromhex(st["seed"]), Seeded.PADDING, n_ext)[:len(values)]] = values
        values = ext
    ctx.state.put(STATE, st)
    return seal_rows(ctx, payload, values, extra)


def step_share(ctx: StationContext, payload: dict) -> dict:
    """This station's view f = X - b of the peers' columns in the hub's row order; the partner
    also keeps the hub's time structure and its share of the cohort membership."""
    parts, unsealed = receive_parts(ctx, payload, all_rows_without_idx=True)   # the hub's rows: all, in order
    st = ctx.state.get(STATE)
    for got in unsealed.values():
        if "order" in got:
            ctx.state.put_array("cox_order", got["order"].astype(np.int64))
            st["cox"] = {k: got[k].astype(np.int64).tolist() for k in STRUCTURE}
    seed = bytes.fromhex(st["seed"])
    if Seeded.MEMBERSHIP in payload:    # the partner's share is relayed, the hub derives its own
        m_share = sh.unpack(payload[Seeded.MEMBERSHIP])
    else:
        m_share = sh.prg(seed, Seeded.MEMBERSHIP, len(next(iter(parts.values()))))
    ctx.state.put_array("cox_m", m_share)
    if Seeded.STRATA_MEMBERSHIP in payload:
        ctx.state.put_array("cox_mb", sh.unpack(payload[Seeded.STRATA_MEMBERSHIP]))
    ctx.state.put(STATE, st)
    return {**forward_parts(ctx, payload, parts), **products.share_round(ctx, payload, parts)}


def _structure(ctx: StationContext) -> dict:
    st = ctx.state.get(STATE)
    out = {k: np.asarray(v, dtype=np.int64) for k, v in st["cox"].items()}
    out["order"] = ctx.state.get_array("cox_order")
    return out


def _stratum_copies(ctx: StationContext, payload: dict) -> tuple[int, np.ndarray]:
    """Strata at a station other than the hub: the number of copies of the hub's rows the fit runs on (1
    without) and this station's membership share over them. At the first opening, when f holds the strata columns (0/1 integers, D = f_D + b_D), each station
    turns its membership share into shares of m * D_s for every stratum s: f_D [m] (f_D is known to both) plus
    its share of m b_D, dealt by the coordinator (which knows m and b, never D). Copy s, row i sits at s n + i;
    a linked record is a member of its own stratum's copy only."""
    cols = payload["layout"].get("strata") or []
    copies = max(len(cols), 1)
    if payload["t"] == 0:
        f = ctx.state.get_array("train_f").astype(np.uint64)
        if len(ctx.state.get_array("cox_order")) != copies * len(f):
            raise InputError("the hub's time structure does not match the strata columns", station=ctx.station)
        if cols:
            own, _, st = stream_seeds(ctx)
            f_d = f[:, cols]
            dealt = (sh.prg(own, Seeded.STRATA_MEMBERSHIP, f_d.shape) if st["role"] == "hub"
                     else ctx.state.get_array("cox_mb").astype(np.uint64))
            if dealt.shape != f_d.shape:
                raise InputError("the relayed stratum shares do not match the layout", station=ctx.station)
            m = ctx.state.get_array("cox_m").astype(np.uint64)
            ctx.state.put_array("cox_m_strata", (f_d * m[:, None] + dealt).T.reshape(-1))
    return copies, ctx.state.get_array("cox_m_strata" if cols else "cox_m").astype(np.uint64)


def step_open(ctx: StationContext, payload: dict) -> dict:
    """Permuted, re-masked shares of z = X beta, the open columns, the membership and the mask b;
    on rows outside the cohort everything but the membership is replaced by noise."""
    complete_view(ctx, payload)
    copies, m = _stratum_copies(ctx, payload)
    o, t, opened = open_shares(ctx, payload, copies), payload["t"], payload["layout"]["open"]
    hub, pair, n = o["hub"], o["pair"], o["n"]
    outside = (np.uint64(1) if hub else np.uint64(0)) - m      # shares of 1 - membership
    noise = outside[:, None] * sh.prg(pair, at(Pair.OUTSIDE_NOISE, t), (n, 1 + len(opened)))
    out = np.column_stack([o["z"] + noise[:, 0], o["share"][:, opened] + noise[:, 1:], m, o["b_part"]])
    mask = sh.prg(pair, at(Pair.OPEN_MASK, t), out.shape)
    out = out + mask if hub else out - mask
    return {"shares": sh.pack(out[sh.permutation(pair, at(Pair.PERMUTATION, t), n)]), **products.open_round(ctx, payload)}


def _to_time(pair: bytes, t: int, struct: dict) -> np.ndarray:
    """For each time position j, the position in iteration t's permuted frame of the same row."""
    n = len(struct["order"])
    pinv = np.empty(n, dtype=np.int64)
    pinv[sh.permutation(pair, at(Pair.PERMUTATION, t), n)] = np.arange(n)
    return pinv[struct["order"]]


def _frame(ctx: StationContext, t: int, p: int, feat: list[int]):
    """F = pi_t(f - d_t) lifted to the per-record ring, the time structure and the frame's time order."""
    own, pair, st = stream_seeds(ctx)
    struct = _structure(ctx)
    f = ctx.state.get_array("train_f").astype(np.uint64)
    n = len(struct["order"])
    f = np.tile(f, (n // f.shape[0], 1))     # strata away from the hub: one copy per stratum (_stratum_copies)
    perm = sh.permutation(pair, at(Pair.PERMUTATION, t), n)
    big_f = RX.from_u64((f[:, feat] - sh.prg(pair, at(Pair.REFRESH, t), (n, p)))[perm])
    return own, pair, st, big_f, struct, _to_time(pair, t, struct)


def step_groups(ctx: StationContext, payload: dict) -> dict:
    """Risk-set sums at every event time of the hub, from the dealt risk scores, opened blinded."""
    products.finish_round(ctx, payload)
    t, p, feat, efron = payload["t"], payload["p"], payload["features"], payload["ties"] == "efron"
    own, pair, st, big_f, struct, to_time = _frame(ctx, t, p, feat)
    hub = st["role"] == "hub"
    n = big_f.shape[0]
    dealt = DealtShares(ctx, own, hub, payload, t, keep=(D.RISK, D.RISK_MASK, D.MASK, D.DEATHS, D.COMPLETE,
                                                         D.DEATH_RISK, D.DEATH_RISK_MASK))
    e = dealt.get(RX, D.RISK, n)
    u_e = dealt.get(RX, D.RISK_MASK, (n, p))
    ex = RX.add(RX.mul(e[:, None], big_f), u_e)                # shares of r * x, permuted frame
    starts, stops = struct["starts"], struct["stops"]
    k = len(starts)
    s_suf, g_suf = suffix_sums(e[to_time]), suffix_sums(ex[to_time])
    # the risk set of an event group: its stratum's rows from the group's time on
    s_g = RG.lift(RX.sub(s_suf[starts], s_suf[stops]), RX)
    g_g = RG.lift(RX.sub(g_suf[starts], g_suf[stops]), RX)
    death_group, death_pos = deaths_index(struct)
    d_g = sum_by(dealt.get(RX, D.DEATHS, n)[to_time][death_pos], death_group, k, RX)
    keep = {"S": RG.pack(s_g), "G": RG.pack(g_g)}
    sigma = sh.permutation(pair, at(Pair.GROUP_ORDER, t), k)
    points = grid_points(struct, efron)
    out = Openings(pair, t, hub)
    out.put(RX, O.DEATHS, d_g[sigma])
    if hub:
        out["sizes"] = points[sigma].tolist()
    if efron:
        de = dealt.get(RX, D.DEATH_RISK, n)
        dex = RX.add(RX.mul(de[:, None], big_f), dealt.get(RX, D.DEATH_RISK_MASK, (n, p)))
        sd_g = RG.lift(sum_by(de[to_time][death_pos], death_group, k, RX), RX)
        gd_g = RG.lift(sum_by(dex[to_time][death_pos], death_group, k, RX), RX)
        keep.update(SD=RG.pack(sd_g), GD=RG.pack(gd_g))
        m1, md = RG.prg(pair, at(Pair.EFRON_S_MASK, t), k), RG.prg(pair, at(Pair.EFRON_G_MASK, t), (k, p))
        out.put(RG, O.EFRON_S, RG.add(sd_g, m1)[sigma] if hub else sd_g[sigma])
        out.put(RG, O.EFRON_G, RG.add(gd_g, md)[sigma] if hub else gd_g[sigma])
    else:
        out.update(_blinded(pair, t, s_g, g_g, sigma, points, hub))
    ctx.state.put(f"cox_it{t}", keep)
    return out


def _blinded(pair: bytes, t: int, phi_base: np.ndarray, vec_base: np.ndarray, sigma: np.ndarray,
             points: np.ndarray, hub: bool, a_sd: np.ndarray | None = None, a_gd: np.ndarray | None = None) -> dict:
    """Per grid point (group, l): rho * phi and rho * vec + M, with phi = 2^A S - a S^D, vec = 2^A G - a G^D."""
    groups, _ = grid(points, sigma)
    count = len(groups)
    rho = log_uniform_blinds(pair, at(Pair.BLINDS, t), count)
    phi = RG.mul(phi_base[groups], 1 << A_BITS)
    vec = RG.mul(vec_base[groups], 1 << A_BITS)
    if a_sd is not None:
        phi, vec = RG.sub(phi, a_sd), RG.sub(vec, a_gd)
    if hub:
        phi = RG.add(phi, phi_noise(pair, t, count))
    blinded_phi = RG.mul(phi, rho)
    y = RG.mul(vec, rho[:, None])
    if hub:
        y = RG.add(y, RG.prg(pair, at(Pair.RISK_SUMS_MASK, t), (count, vec.shape[1])))
    out = Openings(pair, t, hub)
    out.put(RG, O.PHI, blinded_phi)
    out.put(RG, O.Y, y)
    return out


def phi_noise(pair: bytes, t: int, count: int) -> np.ndarray:
    """Below one unit of a risk-set sum (1 to 2^A - 1 on the 2^A scale) per grid point, from the pair key, added
    before the blind: an exact blinded integer could be tested for divisibility by a risk score C dealt (a late
    risk set of one record named that record's frame row: found in review). It is below one unit of a risk
    score (2^-32 of the largest), the precision the risk scores are dealt at."""
    return RG.prg(pair, at(Pair.PHI_NOISE, t), count) % ((1 << A_BITS) - 1) + 1


def step_fractions(ctx: StationContext, payload: dict) -> dict:
    """Efron: the blinded sums S - a S^D for every fraction a = l / D the coordinator dealt."""
    t, p = payload["t"], payload["p"]
    own, pair, st = stream_seeds(ctx)
    hub = st["role"] == "hub"
    struct = _structure(ctx)
    keep = ctx.state.get(f"cox_it{t}")
    s_g, g_g, deaths = RG.unpack(keep["S"]), RG.unpack(keep["G"]), struct["deaths"]
    k = len(deaths)
    sigma = sh.permutation(pair, at(Pair.GROUP_ORDER, t), k)
    groups, _ = grid(deaths, sigma)
    count = len(groups)
    dealt = DealtShares(ctx, own, hub, payload, t)
    a = dealt.get(RG, D.FRACTION, count)
    m1, md = RG.prg(pair, at(Pair.EFRON_S_MASK, t), k), RG.prg(pair, at(Pair.EFRON_G_MASK, t), (k, p))
    a_sd = RG.sub(dealt.get(RG, D.FRACTION_S, count), RG.mul(a, m1[groups]))
    a_gd = RG.sub(dealt.get(RG, D.FRACTION_G, (count, p)), RG.mul(a[:, None], md[groups]))
    return _blinded(pair, t, s_g, g_g, sigma, deaths, hub, a_sd, a_gd)


def step_coefficients(ctx: StationContext, payload: dict) -> dict:
    """Unblind the coordinator's reciprocals: per-record cumulative sums (opened masked) and the
    risk-set means (opened masked), with the pieces the coordinator needs to remove the masks."""
    t, p, efron = payload["t"], payload["p"], payload["ties"] == "efron"
    own, pair, st = stream_seeds(ctx)
    hub = st["role"] == "hub"
    struct = _structure(ctx)
    deaths, starts = struct["deaths"], struct["starts"]
    k, n = len(deaths), len(struct["order"])
    sigma = sh.permutation(pair, at(Pair.GROUP_ORDER, t), k)
    groups, offsets = grid(grid_points(struct, efron), sigma)
    count = len(groups)
    rho = log_uniform_blinds(pair, at(Pair.BLINDS, t), count)
    dealt = DealtShares(ctx, own, hub, payload, t, keep=(D.FIRST_DEATHS,))
    alpha = dealt.get(RG, D.RECIPROCALS, count)
    # A_k = sum_l 1/phi_l and B_k = sum_l a_l/phi_l, per group in time order, truncated to L_BITS
    a_k = RG.truncate(sum_by(RG.mul(alpha, rho), groups, k, RG), SHIFT_A, hub)
    cumulative = np.cumsum(RX.element(RG.reduce_to(a_k, RX)))   # Lambda at each event time
    to_time = _to_time(pair, t, struct)
    # Lambda_i sums the event groups of i's own stratum up to i's time: the running sum minus the strata before
    group_of_pos = np.searchsorted(starts, np.arange(n), side="right") - 1
    before = np.array([cumulative[g - 1] if g > 0 else 0 for g in struct["gfirst"]] + [0], dtype=object)
    stratum = stratum_of_position(struct, n)
    lam_pos = np.where((group_of_pos >= 0) & (stratum >= 0), cumulative[np.maximum(group_of_pos, 0)] - before[stratum], 0)
    frame = np.empty(n, dtype=object)
    frame[to_time] = RX.element(lam_pos)
    out = Openings(pair, t, hub)
    out.put(RX, O.LAMBDA, RX.add(frame, RX.prg(pair, at(Pair.LAMBDA_MASK, t), n)) if hub else RX.element(frame))
    if efron:
        b_k = RG.truncate(sum_by(RG.mul(dealt.get(RG, D.RECIPROCAL_FRACTION, count), rho), groups, k, RG), SHIFT_B, hub)
        b_pos = np.zeros(n, dtype=object)
        for g in range(k):
            b_pos[starts[g]:starts[g] + deaths[g]] = RG.reduce_to(b_k[g:g + 1], RX)[0]
        frame = np.empty(n, dtype=object)
        frame[to_time] = b_pos
        out.put(RX, O.EFRON_B, RX.add(frame, RX.prg(pair, at(Pair.EFRON_B_MASK, t), n)) if hub else RX.element(frame))
    # risk-set means abar = alpha (Y - M), unblinded and truncated, opened under a fresh mask. The
    # Hessian needs sum over used points of abar abar' (Efron) or of D abar abar' (Breslow, as the
    # product of a "left" vector D abar and a "right" vector abar): the coordinator multiplies the
    # masked openings, the stations return what removes the masks.
    mask_y = RG.prg(pair, at(Pair.RISK_SUMS_MASK, t), (count, p))
    alpha_r = alpha if efron else dealt.get(RG, D.RECIPROCAL_R, count)
    abar = RG.truncate(RG.sub(dealt.get(RG, D.RECIPROCAL_Y, (count, p)), RG.mul(alpha_r[:, None], mask_y)), SHIFT_XBAR, hub)
    mask_a = RG.prg(pair, at(Pair.MEANS_MASK, t), (count, p))
    out.put(RG, O.MEANS, RG.add(abar, mask_a) if hub else abar)
    if efron:
        left, mask_l = abar, mask_a
    else:
        left = RG.truncate(RG.sub(dealt.get(RG, D.RECIPROCAL_LY, (count, p)), RG.mul(alpha[:, None], mask_y)), SHIFT_XBAR, hub)
        mask_l = RG.prg(pair, at(Pair.LEFT_MASK, t), (count, p))
        out.put(RG, O.LEFT, RG.add(left, mask_l) if hub else left)
    cross = RG.add(RG.dot(left.T, mask_a), RG.dot(mask_l.T, abar))
    if hub:
        cross = RG.add(cross, RG.dot(mask_l.T, mask_a))
    out.put(RG, O.CROSS, cross)
    # log-likelihood: sum over the used grid points of log2(rho)
    logrho = np.array([int(round(math.log2(r) * 2 ** LOGRHO_BITS)) for r in rho], dtype=object)
    out.put(RX, O.LOG_BLINDS, RX.dot(dealt.get(RX, D.USED, count), logrho))
    # baseline hazard increments D_k / S_k (Breslow estimator) from the l = 0 grid point of each group
    first = np.flatnonzero(offsets == 0)
    lam = RG.truncate(RG.mul(dealt.get(RG, D.FIRST_DEATHS, k), rho[first]), SHIFT_LAMBDA, hub)  # sigma order
    out.put(RG, O.INCREMENTS, RG.add(lam, RG.prg(pair, at(Pair.INCREMENT_MASK, t), k)) if hub else lam)
    ctx.state.put(f"cox_base{t}", {"lam": RG.pack(lam), "abar0": RG.pack(abar[first])})
    return out


def step_weights(ctx: StationContext, payload: dict) -> dict:
    """Shares of the Hessian's first part X'WX and of the gradient X'(d - w); baseline sums at the
    requested times; at the first iteration the cohort's feature sums and sums of squares."""
    t, p, feat, efron = payload["t"], payload["p"], payload["features"], payload["ties"] == "efron"
    own, pair, st, big_f, struct, to_time = _frame(ctx, t, p, feat)
    hub = st["role"] == "hub"
    n = big_f.shape[0]
    dealt = DealtShares(ctx, own, hub, payload, t)
    e, u_e = dealt.get(RX, D.RISK, n), dealt.get(RX, D.RISK_MASK, (n, p))
    bs, dl = dealt.get(RX, D.MASK, (n, p)), dealt.get(RX, D.DEATHS, n)
    m1 = RX.prg(pair, at(Pair.LAMBDA_MASK, t), n)
    w = RX.sub(dealt.get(RX, D.WEIGHTS, n), RX.mul(e, m1))
    u = RX.sub(dealt.get(RX, D.WEIGHTED_MASK, (n, p)), RX.mul(u_e, m1[:, None]))
    corr = RX.dot(u_e.T, m1)
    if efron:
        m2 = RX.prg(pair, at(Pair.EFRON_B_MASK, t), n)
        de, u_d = dealt.get(RX, D.DEATH_RISK, n), dealt.get(RX, D.DEATH_RISK_MASK, (n, p))
        w = RX.add(w, RX.mul(de, m2))
        u = RX.add(u, RX.mul(u_d, m2[:, None]))
        corr = RX.sub(corr, RX.dot(u_d.T, m2))
    mask_u = RX.prg(pair, at(Pair.WEIGHTS_MASK, t), (n, p))
    # one product of F' with everything it multiplies (a wide product is the fast path of ring.dot)
    blocks = [RX.mul(big_f, w[:, None]), u, RX.sub(dl, w)[:, None]]
    if t == 0:  # at beta = 0 the risk scores are the membership: sums over the complete cases
        blocks += [RX.mul(big_f, e[:, None]), u_e, e[:, None], dl[:, None]]
    fx = RX.dot(big_f.T, np.hstack(blocks))
    fu = fx[:, p:2 * p]
    first = RX.sub(RX.add(fx[:, :p], fu, fu.T), RX.dot(bs.T, mask_u))
    grad = RX.add(fx[:, 2 * p], corr)
    out = Openings(pair, t, hub)
    out.put(RX, O.HESSIAN_FIRST, first)
    out.put(RX, O.GRADIENT, grad)
    out.put(RX, O.WEIGHTED_MASK, RX.add(u, mask_u) if hub else u)
    if t == 0:
        fue = fx[:, 3 * p + 1:4 * p + 1]
        out.put(RX, O.SUMS_SQUARES, RX.add(fx[:, 2 * p + 1:3 * p + 1], fue, fue.T))
        out.put(RX, O.SUMS, fx[:, 4 * p + 1])
        out.put(RX, O.SUMS_DEATHS, fx[:, 4 * p + 2])   # sums over their events (level checks)
    out.update(_baseline(ctx, pair, t, p, struct, to_time, hub, dealt, n, efron))
    if payload.get("concordance_bins"):   # the coordinator expects this to be the last iteration
        out.update(_concordance_counts(ctx, pair, t, payload["concordance_bins"], hub, dealt))
    st["last_t"] = t        # a validation runs at the fit's last iteration only (cox_validation_steps), with its layout
    st["last_fit"] = {"p": p, "features": list(feat), "ties": payload["ties"]}
    ctx.state.put(STATE, st)
    for name in (f"cox_it{t}", f"cox_dealt{t}", f"cox_base{t}"):   # this iteration's state is done with
        ctx.state.drop(name)
    return out


def _baseline(ctx, pair, t, p, struct, to_time, hub, dealt, n, efron) -> dict:
    """Breslow baseline pieces at the requested times: Lambda0, sum d/S^2, sum d xbar/S; at-risk counts;
    at the first iteration also the cohort's deaths up to each requested time (which times may be released)."""
    deaths = struct["deaths"]
    k = len(deaths)
    sigma = sh.permutation(pair, at(Pair.GROUP_ORDER, t), k)
    groups, offsets = grid(grid_points(struct, efron), sigma)
    rho0 = log_uniform_blinds(pair, at(Pair.BLINDS, t), len(groups))[offsets == 0]
    base = ctx.state.get(f"cox_base{t}")
    lam = RG.unpack(base["lam"])
    a0 = dealt.get(RG, D.FIRST_RECIPROCAL, k)
    increments_mask = RG.prg(pair, at(Pair.INCREMENT_MASK, t), k)
    v0 = RG.truncate(RG.mul(RG.sub(dealt.get(RG, D.INCREMENT_MASKED, k), RG.mul(a0, increments_mask)), rho0), INV_BITS, hub)
    d0 = dealt.get(RG, D.FIRST_DEATHS, k)
    means_mask = RG.prg(pair, at(Pair.MEANS_MASK, t), (len(groups), p))[offsets == 0]
    q = RG.sub(dealt.get(RG, D.MEANS_MASKED, (k, p)), RG.mul(d0[:, None], means_mask))
    q = RG.truncate(RG.mul(q, rho0[:, None]), INV_BITS, hub)
    # back from the permuted group order to time order, then prefix sums up to each requested time
    in_time = np.empty(k, dtype=np.int64)
    in_time[sigma] = np.arange(k)
    stack = np.column_stack([lam[in_time], v0[in_time], q[in_time]])
    prefix = np.concatenate([np.zeros((1, stack.shape[1]), dtype=object), np.cumsum(stack, axis=0)])
    upto, gfirst, blocks = struct["upto"], struct["gfirst"], struct["blocks"]
    # per stratum and requested time (rows: strata x times): sums over the stratum's event groups up to the time
    at_times = RG.element((prefix[upto] - prefix[gfirst][:, None, :]).reshape(-1, stack.shape[1]))
    k_suf = suffix_sums(dealt.get(RX, D.COMPLETE, n)[to_time])
    risk = (k_suf[struct["risk_pos"]] - k_suf[blocks[:, 1]][:, None]).reshape(-1)
    out = Openings(pair, t, hub)
    out.put(RG, O.BASELINE, at_times)
    out.put(RX, O.AT_RISK, RX.element(risk))
    if t == 0:
        group, pos = deaths_index(struct)
        per_time = sum_by(dealt.get(RX, D.DEATHS, n)[to_time][pos], group, k, RX)      # cohort deaths, time order
        cum = np.concatenate([np.zeros(1, dtype=object), np.cumsum(per_time)])
        out.put(RX, O.EVENTS_AT, RX.element((cum[upto] - cum[gfirst][:, None]).reshape(-1)))
        # per stratum: complete cases and deaths (a stratified fit needs k of each in every stratum)
        gend = np.append(gfirst[1:], k)
        sizes = np.concatenate([k_suf[blocks[:, 0]] - k_suf[blocks[:, 1]], cum[gend] - cum[gfirst]])
        out.put(RX, O.STRATA, RX.element(sizes))
    return out


def _concordance_counts(ctx: StationContext, pair: bytes, t: int, bins: int, hub: bool, dealt: DealtShares) -> dict:
    """For each death, how many later cohort records fall below each risk-score bin (opened masked)."""
    struct = _structure(ctx)
    n = len(struct["order"])
    to_time = _to_time(pair, t, struct)
    below = dealt.get(RX, D.BELOW, (n, bins))
    kappa = dealt.get(RX, D.CONCORDANCE_WEIGHTS, (n, bins))
    suffix = suffix_sums(below[to_time])
    later = np.arange(1, n + 1)   # any position after itself; deaths: after the tie's deaths
    for s, d in zip(struct["starts"], struct["deaths"]):
        later[s:s + d] = s + d
    counts = np.empty((n, bins), dtype=object)
    counts[to_time] = suffix[later] - suffix[block_end(struct, n)[:n]]   # comparable pairs: within a stratum
    mask = RX.prg(pair, at(Pair.CONCORDANCE_MASK, t), (n, bins))
    opened = RX.add(counts, mask) if hub else RX.element(counts)
    corr = RX.element(np.sum(RX.mul(kappa, mask)))
    out = Openings(pair, t, hub)
    out.put(RX, O.CONCORDANCE, opened)
    out.put(RX, O.CONCORDANCE_CORRECTION, np.array([corr]))
    return out


def step_finish(ctx: StationContext, payload: dict) -> dict:
    """Concordance at the last opened iterate, when it did not come with that iteration's weights."""
    own, pair, st = stream_seeds(ctx)
    hub = st["role"] == "hub"
    return _concordance_counts(ctx, pair, payload["t"], payload["bins"], hub, DealtShares(ctx, own, hub, payload, payload["t"]))


STEPS = {"cox_rows": step_rows, "cox_share": step_share, "cox_open": step_open, "cox_groups": step_groups,
         "cox_fractions": step_fractions, "cox_coefficients": step_coefficients, "cox_weights": step_weights,
         "cox_finish": step_finish, "train_setup": step_setup}
