"""Interaction columns: the product of two design columns, computed on shares so that no station sees
the other's column and the coordinator sees no feature value or product (docs/leakage/training.md).

Training shares the design matrix as f = X - b: the hub H and its partner P both know f, only the
coordinator C knows b = b_H + b_P (b_H from the seed C shares with H, b_P from P's). So for any
design column x, H and P hold an additive two-party sharing that C never observes in use:

    H: b_H (+ f when H received the column's rows, i.e. for columns not at H)
    P: b_P (+ f when P received them, i.e. for H's own columns)

A product x_i x_j follows with a Beaver multiplication triple (alpha_i, alpha_j, alpha_i alpha_j)
dealt by C, which holds no data: H's parts come from its seed with C, P's alpha parts from P's
seed, and P receives its part of alpha_i alpha_j from C. In Z/2^128 (the 64-bit shares are lifted):

* share round: each computes its part of d = x - alpha per column and seals it for the other;
* first opening round: both open d (uniform: alpha is unknown to each), compute their shares of
  v = x_i x_j = d_i d_j + d_i alpha_j + d_j alpha_i + alpha_i alpha_j, add their parts of C's
  R = L - b_ij 2^h (b_ij the column's mask in b, L < 2^h uniform, h = 16 + s) and seal the sum mod
  2^(64 + h) for the other;
* first aggregate round: both open o = v + R mod 2^(64 + h) and take f_ij = o >> h = floor((v + L) / 2^h) - b_ij,
  which is the column's f in the same representation as every other column. The shift h drops the 16
  fractional bits of one factor and the column's scale-down s (terms.product_shift, usually 0);
  adding L < 2^h first rounds stochastically, exactly when the product has at most 16 fractional bits.
  Both low and high parts of o are uniform (L, and b_ij which neither station knows), so o shows
  nothing but f_ij.

Everything rides on rounds that run anyway (the share round and the first iteration's two rounds):
an interaction adds no round. What crosses: AEAD ciphertexts between H and P (C relays them, it
cannot read them) and, from C to P, uniform-looking shares of the triples and of R.
"""

from __future__ import annotations

import numpy as np

from ..runtime.errors import InputError
from ..runtime.station import StationContext
from . import shares as sh
from .channel import STATE, peer_key
from .design import FRAC_BITS_X
from .labels import Seeded
from .ring import MASK64, R128
from .terms import MAX_BITS

STATE_KEY = "train_products"


def columns_of(pairs: list[list[int]]) -> list[int]:
    """The design columns that take part in some product (each gets one alpha)."""
    return sorted({c for pair in pairs for c in pair[:2]})


def shifts_of(pairs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Per product: the bits h = 16 + s dropped from x_i x_j, and the mask of its opening modulo 2^(64 + h)."""
    h = np.array([FRAC_BITS_X + int(p[2]) for p in pairs], dtype=object)
    return h, np.array([(1 << (64 + int(v))) - 1 for v in h], dtype=object)


def check_layout(layout: dict, station: str) -> tuple[list[list[int]], list[int], int]:
    """The relayed products: pairs of distinct station columns, and the width of the design with them (each
    product one column and one for the bits its rounding drops)."""
    pairs = layout.get("products") or []
    q = int(layout.get("q", 0))
    width = sum(w for _, w in layout["widths"])
    features = {c for c in layout["features"] if c < width}   # the stations' own columns (not the products)
    if q != width + 2 * len(pairs) or any(len(p) != 3 or p[0] == p[1] or not set(p[:2]) <= features
                                      or not 0 <= p[2] <= 2 * MAX_BITS for p in pairs):
        raise InputError("the relayed interaction layout does not match the design", station=station)
    return pairs, columns_of(pairs), q


def _locate(layout: dict, column: int) -> tuple[str, int]:
    start = 0
    for station, width in layout["widths"]:
        if column < start + width:
            return station, column - start
        start += width
    raise InputError("a product column lies outside the design")


# ---------------------------------------------------------------------------------------------
# stations
# ---------------------------------------------------------------------------------------------
def share_round(ctx: StationContext, payload: dict, parts: dict[str, np.ndarray]) -> dict:
    """Share round: this station's part of d = x - alpha for every column in a product, sealed for the other
    computing station; P keeps the triple and truncation shares C dealt it."""
    info = payload.get("products")
    if not info:
        return {}
    layout = info["layout"]
    pairs, cols, q = check_layout(layout, ctx.station)
    st = ctx.state.get(STATE)
    own = bytes.fromhex(st["seed"])
    n = len(next(iter(parts.values())))
    share = sh.prg(own, Seeded.DESIGN_MASK, (n, q))[:, cols]
    for idx, c in enumerate(cols):   # the f part sits with whoever received that station's rows
        station, offset = _locate(layout, c)
        if station in parts:
            share[:, idx] = share[:, idx] + parts[station][:, offset]
    d_own = R128.sub(R128.from_u64(share), R128.prg(own, Seeded.PRODUCT_MASK, (n, len(cols))))
    keep = {"d": R128.pack(d_own), "n": n, "pairs": pairs, "cols": cols, "low": info["low"]}
    if sh.unpack(info["low"]).shape != (n, len(pairs)):
        raise InputError("the relayed product shares do not match this station's rows", station=ctx.station)
    if st["role"] != "hub":
        m = len(pairs)
        for name, shape in (("gamma", (n, m)), ("trunc", (n, m))):
            got = R128.unpack(info[name])
            if got.shape != shape:
                raise InputError("the relayed product shares do not match this station's rows", station=ctx.station)
            keep[name] = info[name]
    ctx.state.put(STATE_KEY, keep)
    key = peer_key(ctx, payload["partner"], st["peers"][payload["partner"]])
    return {"products": sh.seal(key, {"d": R128.to_limbs(d_own)}, f"prod-d:{ctx.station}")}


def open_round(ctx: StationContext, payload: dict) -> dict:
    """First opening round: open d with the partner, this station's share of every product plus its part of
    R (mod 2^85), sealed for the partner."""
    if "products_relay" not in payload:
        return {}
    st = ctx.state.get(STATE)
    keep = ctx.state.get(STATE_KEY)
    partner = st["partner"]
    got = sh.unseal(peer_key(ctx, partner, st["peers"][partner]), payload["products_relay"], f"prod-d:{partner}")
    d_own = R128.unpack(keep["d"])
    d_other = R128.from_limbs(got["d"])
    if d_other.shape != d_own.shape:
        raise InputError("the partner's product shares do not match", station=ctx.station)
    d = R128.add(d_own, d_other)
    own = bytes.fromhex(st["seed"])
    n, cols, pairs = keep["n"], keep["cols"], keep["pairs"]
    hub = st["role"] == "hub"
    alpha = R128.prg(own, Seeded.PRODUCT_MASK, (n, len(cols)))
    at = {c: i for i, c in enumerate(cols)}
    i_idx = [at[p[0]] for p in pairs]
    j_idx = [at[p[1]] for p in pairs]
    di, dj, ai, aj = d[:, i_idx], d[:, j_idx], alpha[:, i_idx], alpha[:, j_idx]
    z = R128.add(R128.mul(di, aj), R128.mul(dj, ai))
    if hub:
        z = R128.add(z, R128.mul(di, dj), R128.prg(own, Seeded.PRODUCT_TRIPLE, (n, len(pairs))), R128.prg(own, Seeded.PRODUCT_TRUNCATION, (n, len(pairs))))
    else:
        z = R128.add(z, R128.unpack(keep["gamma"]), R128.unpack(keep["trunc"]))
    o_own = np.bitwise_and(z, shifts_of(pairs)[1][None, :])
    ctx.state.put(STATE_KEY, {"o": R128.pack(o_own), "pairs": pairs, "low": keep["low"]})
    return {"products": sh.seal(peer_key(ctx, partner, st["peers"][partner]), {"o": R128.to_limbs(o_own)},
                                f"prod-o:{ctx.station}")}


def finish_round(ctx: StationContext, payload: dict) -> None:
    """First aggregate round: open o = v + R mod 2^85 with the partner and write f of every interaction column
    (o >> 21) into this station's view of the design."""
    if "products_relay" not in payload:
        return
    st = ctx.state.get(STATE)
    partner = st["partner"]
    got = sh.unseal(peer_key(ctx, partner, st["peers"][partner]), payload["products_relay"], f"prod-o:{partner}")
    keep = ctx.state.get(STATE_KEY)
    o_own = R128.unpack(keep["o"])
    o_other = R128.from_limbs(got["o"])
    if o_other.shape != o_own.shape:
        raise InputError("the partner's product shares do not match", station=ctx.station)
    h, mask = shifts_of(keep["pairs"])
    o = np.bitwise_and(o_own + o_other, mask[None, :])
    opened = o >> h[None, :]
    # the bits the rounding dropped, v - 2^h floor((v + L) / 2^h) = rho - L, as f = rho - (L + b_low): C dealt L + b_low
    rho = np.bitwise_and(o, (1 << h[None, :]) - 1)
    low = np.bitwise_and(rho - sh.unpack(keep["low"]).astype(object), MASK64)
    f = ctx.state.get_array("train_f").astype(np.uint64)
    m = opened.shape[1]
    if m:
        f[:, f.shape[1] - 2 * m:f.shape[1] - m] = np.array(opened.tolist(), dtype=np.uint64)
        f[:, f.shape[1] - m:] = np.array(low.tolist(), dtype=np.uint64)
    ctx.state.put_array("train_f", f)
    ctx.state.drop(STATE_KEY)


# ---------------------------------------------------------------------------------------------
# coordinator
# ---------------------------------------------------------------------------------------------
def deal(seed_hub: bytes, seed_partner: bytes, layout: dict, n: int, b: np.ndarray) -> dict:
    """What C sends P in the share round: P's part of each product's alpha_i alpha_j and of R = L - b_ij 2^h
    (mod 2^(64 + h)); H derives its parts from its seed. ``b`` is C's mask of the whole design (n x q)."""
    pairs = layout["products"]
    cols = columns_of(pairs)
    m = len(pairs)
    at = {c: i for i, c in enumerate(cols)}
    alpha = R128.add(R128.prg(seed_hub, Seeded.PRODUCT_MASK, (n, len(cols))), R128.prg(seed_partner, Seeded.PRODUCT_MASK, (n, len(cols))))
    gamma = R128.mul(alpha[:, [at[p[0]] for p in pairs]], alpha[:, [at[p[1]] for p in pairs]])
    gamma_p = R128.sub(gamma, R128.prg(seed_hub, Seeded.PRODUCT_TRIPLE, (n, m)))
    h, mask = shifts_of(pairs)
    low = sh.prg(sh.new_seed(), "L", (n, m)).astype(object) & ((1 << h[None, :]) - 1)     # fresh, from secrets
    q = layout["q"]
    b_prod = b[:, q - 2 * m:q - m].astype(object)
    r = np.bitwise_and(low - (b_prod << h[None, :]), mask[None, :])
    r_p = np.bitwise_and(R128.sub(r, R128.prg(seed_hub, Seeded.PRODUCT_TRUNCATION, (n, m))), mask[None, :])
    return {"gamma": R128.pack(gamma_p), "trunc": R128.pack(r_p), "low": low_masked(low, b[:, q - m:])}


def low_masked(low: np.ndarray, b_low: np.ndarray) -> str:
    """L + b_low mod 2^64 for H and P alike: with the opened rho = (v + L) mod 2^h, f = rho - (L + b_low) of the
    column holding the bits a product's rounding dropped. Uniform to each station (b_low is C's)."""
    return sh.pack(np.array(np.bitwise_and(low + b_low.astype(object), MASK64).tolist(), dtype=np.uint64))
