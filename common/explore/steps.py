"""Exploration: the station steps (describe, encrypt as key owner, aggregate as L, decrypt).

The round-by-round description is in :mod:`lancelot.explore.protocol` (the coordinator's side); what
each step sends and who learns what in docs/leakage/exploration.md.
"""

from __future__ import annotations

import numpy as np

from ..crypto import PrivateKey, PublicKey
from ..crypto.pairkey import new_exchange_key
from ..linkage.steps import station_rows
from ..runtime.errors import InputError, PrivacyError
from ..runtime.station import StationContext
from . import masked, product
from .columns import build_columns
from .spec import parse_explore_spec

STATE_KEY = "explore_paillier_key"
STATE_EXCHANGE = "explore_exchange_key"   # X25519 private half for masked totals (made in round 1)
STATE_MASK_SUMS = "explore_mask_sums_of"  # stations whose mask sums this station has given (once each)


def _columns(ctx: StationContext, payload: dict, shuffled: bool = True):
    """This station's columns for the spec, in the job's shuffled row order (or the table's own)."""
    spec = parse_explore_spec(payload["spec"], payload["stations"])
    return build_columns(spec, ctx.station, station_rows(ctx) if shuffled else ctx.data, ctx.policy)


def step_describe(ctx: StationContext, payload: dict) -> dict:
    """This station's columns (names, categories, bit bounds) and the public half of a fresh key exchange,
    which a masked-totals partner needs in round 2 or 3 (the plan is not known yet)."""
    cols = _columns(ctx, payload, shuffled=False)
    private, public = new_exchange_key()
    ctx.state.put(STATE_EXCHANGE, private)
    return {"meta": cols.meta(), "n": len(ctx.data), "policy": ctx.policy.public(), "exchange_key": public}


def step_local(ctx: StationContext, payload: dict) -> dict:
    """One station alone: the cohort is every record; sums are computed here."""
    cols = _columns(ctx, payload, shuffled=False)
    totals = {name: int(sum(int(v) for v in values)) for name, values in zip(cols.names, cols.values)}
    return {"meta": cols.meta(), "totals": totals, "n": len(ctx.data), "policy": ctx.policy.public()}


def step_encrypt(ctx: StationContext, payload: dict) -> dict:
    """A fresh key of this station for this job; encrypt the requested columns under it, and make the
    fresh encryptions of 0 the coordinator needs to pad layouts under this key."""
    cols = _columns(ctx, payload)
    ctx.policy.check_key_bits(int(payload["key_bits"]), ctx.station)
    priv = product.new_key(payload["key_bits"])
    priv.make_hs()  # the fixed-base generator, made by the owner (trustworthy), published with the public key
    ctx.state.put(STATE_KEY, priv.to_dict())
    pub = priv.public
    out: dict = {"public_key": pub.to_dict()}
    index = cols.index()
    wanted = payload.get("columns") or []
    if wanted:
        missing = [c for c in wanted if c not in index]
        if missing:
            raise InputError(f"the coordinator asked for unknown columns {missing[:3]}", station=ctx.station)
        widths = payload["widths"]
        if sum(len(w) for w in widths) != len(wanted):
            raise InputError("the coordinator's slot layout does not match its columns", station=ctx.station)
        groups = product.encrypt_rows(priv, [cols.values[index[c]] for c in wanted], widths)
        out["groups"] = [product.pack_cts(pub, g) for g in groups]
    chains = {}
    for chain_id, chain in (payload.get("chains") or {}).items():  # one-hot rows for three-station crosstabs
        (group,) = product.encrypt_rows(priv, [cols.values[index[c]] for c in chain["columns"]],
                                        [[chain["slot_bits"]] * len(chain["columns"])])
        chains[chain_id] = product.pack_cts(pub, group)
    if chains:
        out["chains"] = chains
    zeros = int(payload.get("zeros") or 0)
    if not 0 <= zeros <= product.MAX_ZEROS or zeros % product.ZERO_QUANTUM:
        raise InputError("the coordinator asked for an unexpected number of encryptions of 0", station=ctx.station)
    out["zeros"] = product.pack_cts(pub, product.make_zeros(priv, zeros))
    return out


def _partner_key(ctx: StationContext, payload: dict, role: str) -> bytes:
    """The secret this station shares with the other end of a masked-totals pair (named in ``payload[role]``)."""
    other = payload.get(role)
    if other not in payload["stations"] or other == ctx.station:
        raise InputError(f"the coordinator named an unexpected station ({other!r}) for masked totals",
                         station=ctx.station)
    if not ctx.state.has(STATE_EXCHANGE):
        raise PrivacyError("no key exchange of this job in round 1 at this station", station=ctx.station)
    station, partner = (ctx.station, other) if role == "partner" else (other, ctx.station)
    return masked.station_key(ctx.state.get(STATE_EXCHANGE), str(payload["peer_key"]), station, partner)


def step_mask(ctx: StationContext, payload: dict) -> dict:
    """Masked totals, S's side: every record's requested columns packed into words plus a mask stream
    that only this station and its partner can make (the coordinator sums the cohort's records)."""
    cols = _columns(ctx, payload)
    index = cols.index()
    names, bits = list(payload["columns"]), [int(b) for b in payload["bits"]]
    missing = [c for c in names if c not in index]
    if missing or len(bits) != len(names) or not names:
        raise InputError(f"the coordinator asked for unknown or mismatched columns {missing[:3]}", station=ctx.station)
    key = _partner_key(ctx, payload, "partner")
    try:
        text = masked.masked_words([cols.values[index[c]] for c in names], bits, key, ctx.station)
    except ValueError as exc:
        raise InputError(f"masked totals: {exc}", station=ctx.station) from None
    return {"masked": text}


def step_mask_sums(ctx: StationContext, payload: dict) -> dict:
    """Masked totals, P's side: the mask stream shared with S, summed over S's cohort positions.

    The station checks what it can: positions distinct and in range, at least its policy's smallest
    cell count of them (a sum over fewer would unmask fewer records), and only once per station and
    job (two sums over different positions would unmask their difference).
    """
    key = _partner_key(ctx, payload, "station")
    station = payload["station"]
    n_rows, words = int(payload["n_rows"]), int(payload["words"])
    try:
        rows = masked.unpack_rows(payload["rows"])
    except ValueError as exc:
        raise InputError(f"masked totals: {exc}", station=ctx.station) from None
    k = ctx.policy.min_cell_count
    if not 0 < words <= masked.MAX_WORDS or n_rows <= 0:
        raise InputError("the coordinator asked for an unexpected mask layout", station=ctx.station)
    if len(rows) < k or len(np.unique(rows)) != len(rows) or rows.min() < 0 or rows.max() >= n_rows:
        raise PrivacyError(f"masked totals of '{station}' refused: the positions must be distinct, in range and at "
                           f"least {k} (this node's smallest cell count)", station=ctx.station)
    done = ctx.state.get(STATE_MASK_SUMS) if ctx.state.has(STATE_MASK_SUMS) else []
    if station in done:
        raise PrivacyError(f"masked totals of '{station}' were already summed in this job", station=ctx.station)
    ctx.state.put(STATE_MASK_SUMS, [*done, station])
    return {"mask_sums": masked.pack_sums(masked.mask_sum(key, station, n_rows, words, rows)), "station": station}


def _relayed_key(ctx: StationContext, text: dict) -> PublicKey:
    """Another station's public key, relayed by the coordinator: only as strong as this node requires."""
    pub = PublicKey.from_dict(text)
    ctx.policy.check_key_bits(pub.n.bit_length(), ctx.station)
    return pub


def step_aggregate(ctx: StationContext, payload: dict) -> dict:
    cols = _columns(ctx, payload)
    index = cols.index()
    out = {}
    for job_id, job in payload["jobs"].items():
        pub = _relayed_key(ctx, job["public_key"])
        cts = [product.unpack_cts(pub, text) for text in job["groups"]]
        if any(len(g) != len(ctx.data) for g in cts):
            raise InputError("the relayed layout does not match this station's rows", station=ctx.station)
        names = job["columns"]
        unknown = [n for n in names if n not in index]
        if unknown:
            raise InputError(f"the coordinator asked for unknown columns {unknown[:3]}", station=ctx.station)
        needs = job["needs"]
        if (len(needs) != len(names) or len(job["bits"]) != len(cts)
                or any(g not in range(len(cts)) for gs in needs for g in gs)):
            raise InputError("the coordinator's column needs do not match the layout", station=ctx.station)
        packed, layout = product.aggregate(pub, cts, [cols.values[index[n]] for n in names], needs, job["bits"])
        out[job_id] = {"results": product.pack_cts(pub, packed), "layout": layout}
    return {"jobs": out}


def _chains(ctx: StationContext, payload: dict):
    """A three-station crosstab's chains at this station: each chain's id and parameters, the relayed key,
    the relayed ciphertexts (one per row of this station) and this station's columns the chain names."""
    cols = _columns(ctx, payload)
    index = cols.index()
    for chain_id, job in payload["chains"].items():
        pub = _relayed_key(ctx, job["public_key"])
        cts = product.unpack_cts(pub, job["cts"])
        yield chain_id, job, pub, cts, [cols.values[index[c]] for c in job["columns"]]


def step_shift(ctx: StationContext, payload: dict) -> dict:
    """Three-station crosstab, first station: move each row's encrypted one-hot into its own category's block.

    Row i's ciphertext holds the second station's one-hot (|B| slots); raising it to 2^(W*|B|*a_i)
    shifts it to block a_i, so the plaintext becomes the joint one-hot of (a_i, b). Every output is
    re-randomised, so nobody can tell which shift was applied.
    """
    out = {}
    for chain_id, job, pub, cts, onehot in _chains(ctx, payload):
        category = [next((a for a, col in enumerate(onehot) if col[i]), 0) for i in range(len(cts))]
        shifts = [job["slot_bits"] * job["block_slots"] * a for a in category]
        out[chain_id] = product.pack_cts(pub, product.shift_rows(pub, cts, shifts))
    return {"chains": out}


def step_chain_aggregate(ctx: StationContext, payload: dict) -> dict:
    """Three-station crosstab, third station: per own category, the encrypted sum of the joint one-hots."""
    out = {}
    for chain_id, job, pub, cts, columns in _chains(ctx, payload):
        packed, _layout = product.aggregate(pub, [cts], columns, [[0]] * len(columns),
                                            [job["capacity"] * job["slot_bits"]], combine=False)
        out[chain_id] = product.pack_cts(pub, packed)
    return {"chains": out}


def step_decrypt(ctx: StationContext, payload: dict) -> dict:
    priv = PrivateKey.from_dict(ctx.state.get(STATE_KEY))
    pub = priv.public
    out = {}
    for job_id, text in payload["jobs"].items():
        out[job_id] = product.pack_plain(pub, product.decrypt_masked(priv, product.unpack_cts(pub, text)))
    return {"jobs": out}


STEPS = {"explore_describe": step_describe, "explore_local": step_local, "explore_encrypt": step_encrypt,
         "explore_aggregate": step_aggregate, "explore_decrypt": step_decrypt, "explore_shift": step_shift,
         "explore_chain_aggregate": step_chain_aggregate, "explore_mask": step_mask,
         "explore_mask_sums": step_mask_sums}
