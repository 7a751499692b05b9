"""Exploration: the station steps (describe, encrypt as key owner, aggregate as L, decrypt).

The round-by-round description is in :mod:`lancelot.explore.protocol` (the coordinator's side); what
each step sends and who learns what in docs/leakage/exploration.md.
"""

from __future__ import annotations

import numpy as np
from cryptography.exceptions import InvalidTag

from ..crypto import PrivateKey, PublicKey
from ..crypto import ecelgamal as ec
from ..crypto.pairkey import new_exchange_key
from ..linkage.steps import station_rows
from ..runtime.errors import InputError, PrivacyError
from ..runtime.station import StationContext
from ..training.shares import seal, unseal
from . import ec_product, masked, product, shared
from .columns import build_columns
from .spec import parse_explore_spec

STATE_KEY = "explore_paillier_key"
STATE_EC_KEY = "explore_elgamal_keys"     # this job's exponential-ElGamal keys (counts of 0/1 columns)
STATE_EXCHANGE = "explore_exchange_key"   # X25519 private half for masked totals (made in round 1)
STATE_MASK_SUMS = "explore_mask_sums_of"  # stations whose cohort positions this station has used (once each)


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
    """Fresh keys of this station for this job; encrypt the requested columns under them, and make the
    fresh encryptions of 0 the coordinator needs to pad layouts under these keys (Paillier, and
    exponential ElGamal for counts of 0/1 columns)."""
    cols = _columns(ctx, payload)
    out: dict = {"public_key": None}
    if payload.get("ec"):
        out["ec"] = _encrypt_counts(ctx, cols, payload["ec"])
    zeros = int(payload.get("zeros") or 0)
    if not (payload.get("columns") or payload.get("chains") or zeros):
        return out
    ctx.policy.check_key_bits(int(payload["key_bits"]), ctx.station)
    priv = product.new_key(payload["key_bits"])
    priv.make_hs()  # the fixed-base generator, made by the owner (trustworthy), published with the public key
    ctx.state.put(STATE_KEY, priv.to_dict())
    pub = priv.public
    out["public_key"] = pub.to_dict()
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
    if not 0 <= zeros <= product.MAX_ZEROS or zeros % product.ZERO_QUANTUM:
        raise InputError("the coordinator asked for an unexpected number of encryptions of 0", station=ctx.station)
    out["zeros"] = product.pack_cts(pub, product.make_zeros(priv, zeros))
    return out


def _encrypt_counts(ctx: StationContext, cols, ask: dict) -> dict:
    """Exponential-ElGamal keys (one per column), this station's rows and the coordinator's zero rows."""
    index = cols.index()
    names, zeros = list(ask.get("columns") or []), int(ask.get("zeros") or 0)
    unknown = [c for c in names if c not in index]
    if unknown or not (names or zeros):
        raise InputError(f"the coordinator asked for unknown columns {unknown[:3]} to count", station=ctx.station)
    if len(names) > ec_product.MAX_COLUMNS or len(set(names)) != len(names):
        raise InputError("the coordinator asked for too many or repeated columns to count", station=ctx.station)
    not_indicator = [c for c in names if cols.values[index[c]].dtype != np.int8]
    if not_indicator:
        raise InputError(f"only 0/1 indicator columns are counted, not {not_indicator[:3]}", station=ctx.station)
    if not 0 <= zeros <= product.MAX_ZEROS or zeros % product.ZERO_QUANTUM:
        raise InputError("the coordinator asked for an unexpected number of zero rows", station=ctx.station)
    keys = ec.Keys.fresh(max(1, len(names)))  # no columns: one key for the zero rows of a membership layout
    ctx.state.put(STATE_EC_KEY, keys.to_dict())
    return {"public": ec.public_to_str(keys.public),
            "rows": ec.points_to_str(ec_product.encrypt(keys, [cols.values[index[c]] for c in names])),
            "zeros": ec.points_to_str(ec_product.make_zeros(keys, zeros))}


def _exchange_private(ctx: StationContext, payload: dict, other, purpose: str) -> str:
    """This station's round-1 X25519 private half, for a secret with ``other``, once ``other`` is checked to be
    another station of the job."""
    if other not in payload["stations"] or other == ctx.station:
        raise InputError(f"the coordinator named an unexpected station ({other!r}) for {purpose}",
                         station=ctx.station)
    if not ctx.state.has(STATE_EXCHANGE):
        raise PrivacyError("no key exchange of this job in round 1 at this station", station=ctx.station)
    return ctx.state.get(STATE_EXCHANGE)


def _partner_key(ctx: StationContext, payload: dict, role: str) -> bytes:
    """The secret this station shares with the other end of a masked-totals pair (named in ``payload[role]``)."""
    other = payload.get(role)
    private = _exchange_private(ctx, payload, other, "masked totals")
    return masked.station_key(private, str(payload["peer_key"]), ctx.station, other)


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


def _cohort_positions(ctx: StationContext, station: str, text: str, n_rows: int) -> np.ndarray:
    """Another station's cohort positions, as a masked-totals or shared-products partner receives them.

    The station checks what it can: positions distinct and in range, at least its policy's smallest
    cell count of them (a sum over fewer would unmask fewer records), and only once per station and
    job (two sums over different positions would unmask their difference).
    """
    try:
        rows = masked.unpack_rows(text)
    except ValueError as exc:
        raise InputError(f"cohort positions of '{station}': {exc}", station=ctx.station) from None
    k = ctx.policy.min_cell_count
    if n_rows <= 0 or len(rows) < k or len(np.unique(rows)) != len(rows) or rows.min() < 0 or rows.max() >= n_rows:
        raise PrivacyError(f"cohort positions of '{station}' refused: they must be distinct, in range and at "
                           f"least {k} (this node's smallest cell count)", station=ctx.station)
    done = ctx.state.get(STATE_MASK_SUMS) if ctx.state.has(STATE_MASK_SUMS) else []
    if station in done:
        raise PrivacyError(f"the cohort positions of '{station}' were already used in this job", station=ctx.station)
    ctx.state.put(STATE_MASK_SUMS, [*done, station])
    return rows


def step_mask_sums(ctx: StationContext, payload: dict) -> dict:
    """Masked totals, P's side: the mask stream shared with S, summed over S's cohort positions."""
    key = _partner_key(ctx, payload, "station")
    station = payload["station"]
    n_rows, words = int(payload["n_rows"]), int(payload["words"])
    if not 0 < words <= masked.MAX_WORDS:
        raise InputError("the coordinator asked for an unexpected mask layout", station=ctx.station)
    rows = _cohort_positions(ctx, station, payload["rows"], n_rows)
    return {"mask_sums": masked.pack_sums(masked.mask_sum(key, station, n_rows, words, rows)), "station": station}


# ---------------------------------------------------------------------------------------------------
# shared products (lancelot.explore.shared): upload, products, the partners' last product
# ---------------------------------------------------------------------------------------------------
def _shared_key(ctx: StationContext, payload: dict, other: str) -> bytes:
    """The secret this station shares with another station of the job for shared products."""
    private = _exchange_private(ctx, payload, other, "shared products")
    return shared.station_key(private, str(payload["keys"][other]), ctx.station, other)


def _array(ctx: StationContext, text, shape: tuple[int, int], what: str) -> np.ndarray:
    try:
        return shared.unpack_shaped(text, shape)
    except ValueError:
        raise InputError(f"shared products: {what} is missing or of the wrong shape", station=ctx.station) from None


def step_share(ctx: StationContext, payload: dict) -> dict:
    """Shared products, S's side (round 2): every record's columns as limbs plus a mask stream that only this
    station and its partner can make; the coordinator keeps the cohort's records."""
    cols = _columns(ctx, payload)
    index = cols.index()
    names = list(payload["columns"])
    bits, lay = _layout(ctx, payload["bits"], payload["limb_bits"])
    missing = [c for c in names if c not in index]
    if missing or len(bits) != len(names):
        raise InputError(f"the coordinator asked for unknown or mismatched columns {missing[:3]}", station=ctx.station)
    if shared.limb_bits_for(len(ctx.data)) < lay.limb_bits:
        raise InputError("the coordinator asked for limbs too wide for this station's rows", station=ctx.station)
    key = _shared_key(ctx, payload, payload["partner"])
    try:
        text = shared.upload([cols.values[index[c]] for c in names], bits, lay, key, ctx.station)
    except ValueError as exc:
        raise InputError(f"shared products: {exc}", station=ctx.station) from None
    return {"shared": text}


MAX_SHARED_ROWS = 1 << 24      # row counts a station accepts for shared products (mask streams are that long)


def _state_name(ctx: StationContext, pair: str, what: str) -> str:
    if not pair.isalnum():
        raise InputError("the coordinator sent an unexpected pair id", station=ctx.station)
    return f"explore_share_{pair}_{what}"


def _layout(ctx: StationContext, bits, limb_bits) -> tuple[list[int], shared.Layout]:
    """A relayed column layout (bits per column, limb width), checked against what this station accepts."""
    try:
        bits, limb_bits = [int(b) for b in bits], int(limb_bits)
    except (TypeError, ValueError):
        bits, limb_bits = [], 0
    if not bits or not 8 <= limb_bits <= shared.MAX_LIMB_BITS or min(bits) < 0:
        raise InputError("the coordinator asked for an unexpected shared layout", station=ctx.station)
    lay = shared.layout(bits, limb_bits)
    if lay.words > shared.MAX_WORDS:
        raise InputError("the coordinator asked for an unexpected shared layout", station=ctx.station)
    return bits, lay


def _row_bits(ctx: StationContext, value) -> int:
    row_bits = int(value)
    if not 1 <= row_bits <= MAX_SHARED_ROWS.bit_length():
        raise InputError("the coordinator asked for an unexpected row bound", station=ctx.station)
    return row_bits


def step_share_products(ctx: StationContext, payload: dict) -> dict:
    """Shared products, round 3: as partner, minus the mask stream at another station's cohort positions (its
    share of that station's columns, and the totals the analyses read); as participant, the Beaver products
    with the coordinator's opened matrices; as dealer, the coordinator's triple shares; per pair, this
    station's share of the products the analyses read, folded and blinded, and, when the pair's two partners
    differ, its sealed opening for the other partner (what round 4 needs stays here)."""
    try:
        return _share_products(ctx, payload)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"shared products: an incomplete or malformed request ({type(exc).__name__})",
                         station=ctx.station) from None


def _share_products(ctx: StationContext, payload: dict) -> dict:
    me = ctx.station
    xs: dict[str, np.ndarray] = {}
    totals, mask_sums = {}, {}
    for s, pos in (payload.get("positions") or {}).items():
        key = _shared_key(ctx, payload, s)
        n_rows = int(pos["n_rows"])
        bits, lay = _layout(ctx, pos["bits"], pos["limb_bits"])
        if not 0 < n_rows <= MAX_SHARED_ROWS:
            raise InputError("the coordinator asked for an unexpected row count", station=me)
        rows = _cohort_positions(ctx, s, pos["rows"], n_rows)
        xs[s] = shared.partner_share(key, s, n_rows, lay.words, rows)
        columns = [int(i) for i in pos["totals"]]
        if any(not 0 <= i < len(bits) for i in columns):
            raise InputError("the coordinator asked for the totals of unknown columns", station=me)
        rel = shared.release_totals(lay, bits, columns, _row_bits(ctx, pos["row_bits"]))
        totals[s] = shared.pack(shared.fold(xs[s].sum(axis=0, dtype=np.uint64), rel))
        if "masked_words" in pos:  # the station's other totals, masked sums over the same positions
            masked_words = int(pos["masked_words"])
            if not 0 < masked_words <= masked.MAX_WORDS:
                raise InputError("the coordinator asked for an unexpected mask layout", station=me)
            masked_key = masked.station_key(_exchange_private(ctx, payload, s, "masked totals"),
                                            str(payload["keys"][s]), s, me)
            mask_sums[s] = masked.pack_sums(masked.mask_sum(masked_key, s, n_rows, masked_words, rows))
    out = {}
    for entry in payload.get("pairs") or []:
        pid, a, b, pa, pb = (str(entry[f]) for f in ("id", "a", "b", "pa", "pb"))
        n = int(entry["n"])
        (bits_a, lay_a), (bits_b, lay_b) = (_layout(ctx, bits, entry["limb_bits"]) for bits in entry["bits"])
        ka, kb = lay_a.words, lay_b.words
        if n < ctx.policy.min_cell_count:
            raise PrivacyError(f"shared products refused: a cohort of at least {ctx.policy.min_cell_count}",
                               station=me)
        products = [(int(i), int(j)) for i, j in entry["products"]]
        if not products or any(not (0 <= i < len(bits_a) and 0 <= j < len(bits_b)) for i, j in products):
            raise InputError("the coordinator asked for products of unknown columns", station=me)
        rel = shared.release_products(lay_a, lay_b, bits_a, bits_b, products, _row_bits(ctx, entry["row_bits"]))
        res: dict = {}
        share = np.zeros((ka, kb), dtype=np.uint64)
        for mine, side, words, other_words, dealer_field, term in ((b, pb, kb, ka, "dealer2", "2"),
                                                                    (a, pa, ka, kb, "dealer3", "3")):
            if me != side:
                continue
            if mine not in xs or xs[mine].shape != (n, words):
                raise InputError(f"shared products: no cohort positions of '{mine}' for this pair", station=me)
            opened = _array(ctx, entry.get("open" + term), (n, other_words), "the coordinator's opened matrix")
            e, q = shared.participant(xs[mine], opened, _shared_key(ctx, payload, entry[dealer_field]),
                                      f"{pid}|{term}")
            res["e" + term] = shared.pack(e)
            share += q if term == "2" else q.T
        for term, participant, g, h in (("2", pb, ka, kb), ("3", pa, kb, ka)):
            if entry.get("dealer" + term) == me and "deal" + term in entry:
                res["gamma" + term] = shared.pack(shared.dealer(
                    shared.read_seed(entry["deal" + term]), _shared_key(ctx, payload, participant),
                    f"{pid}|{term}", n, g, h))
        if me in (pa, pb):
            if pa == pb:
                res["share"] = shared.pack(shared.fold(share + np.ascontiguousarray(xs[a].T) @ xs[b], rel))
            else:
                side = "a" if me == pa else "b"
                peer_key = _shared_key(ctx, payload, pb if side == "a" else pa)
                z1, z2, _z3 = shared.zero_shares(peer_key, pid, (rel.size,))
                res["share"] = shared.pack(shared.fold(share, rel) + (z1 if side == "a" else z2))
                x = xs[a] if side == "a" else xs[b]
                seed = shared.read_seed(entry["t4"]["seed"])
                gamma = _array(ctx, entry["t4"].get("gamma"), (ka, kb), "the coordinator's triple share") \
                    if side == "b" else None
                res["sealed"] = seal(peer_key, {"m": shared.station_open(x, seed, side)}, f"{pid}|{side}")
                ctx.state.put_array(_state_name(ctx, pid, "x"), x)  # round 4 works from what round 3 kept
                if gamma is not None:
                    ctx.state.put_array(_state_name(ctx, pid, "gamma"), gamma)
                ctx.state.put(_state_name(ctx, pid, "pair"), {
                    "side": side, "peer": pb if side == "a" else pa, "seed": seed.hex(), "bits": [bits_a, bits_b],
                    "limb_bits": lay_a.limb_bits, "row_bits": entry["row_bits"], "products": products})
        out[pid] = res
    return {"share_totals": totals, "mask_sums": mask_sums, "pairs": out}


def step_share_finish(ctx: StationContext, payload: dict) -> dict:
    """Shared products, round 4 (two partners): the Beaver product of the two partners' shares, dealt by the
    coordinator in round 3, from the other partner's sealed opening; folded and blinded like round 3's share."""
    me = ctx.station
    out = {}
    for entry in payload.get("pairs") or []:
        pid = str(entry.get("id"))
        name = _state_name(ctx, pid, "pair")
        if not ctx.state.has(name):
            raise InputError("shared products: this station holds no share of that pair", station=me)
        kept = ctx.state.get(name)
        side = kept["side"]
        peer_key = _shared_key(ctx, payload, kept["peer"])
        x = ctx.state.get_array(_state_name(ctx, pid, "x"))
        try:
            theirs = unseal(peer_key, str(entry["sealed"]), f"{pid}|{'b' if side == 'a' else 'a'}")["m"]
        except (InvalidTag, ValueError, KeyError):
            raise InputError("shared products: the other partner's opening does not unseal", station=me) from None
        (bits_a, lay_a), (bits_b, lay_b) = (_layout(ctx, bits, kept["limb_bits"]) for bits in kept["bits"])
        if theirs.dtype != np.uint64 or theirs.shape != (x.shape[0], (lay_b if side == "a" else lay_a).words):
            raise InputError("shared products: the other partner's opening has the wrong shape", station=me)
        rel = shared.release_products(lay_a, lay_b, bits_a, bits_b, [tuple(p) for p in kept["products"]],
                                      int(kept["row_bits"]))
        z1, z2, z3 = shared.zero_shares(peer_key, pid, (rel.size,))
        seed = bytes.fromhex(kept["seed"])
        if side == "a":
            share = shared.fold(shared.station_share("a", seed, x, theirs), rel) + z3
        else:
            gamma = ctx.state.get_array(_state_name(ctx, pid, "gamma"))
            share = shared.fold(shared.station_share("b", seed, x, theirs, gamma), rel) - z1 - z2 - z3
        for what in ("x", "gamma", "pair"):
            ctx.state.drop(_state_name(ctx, pid, what))
        out[pid] = {"share": shared.pack(share)}
    return {"pairs": out}


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
        if job.get("cipher") == "ec":
            out[job_id] = _aggregate_counts(ctx, cols, job)
            continue
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


def _aggregate_counts(ctx: StationContext, cols, job: dict) -> dict:
    """L's side of a counts job: per own 0/1 column, the re-randomised sums of the relayed rows where it is 1."""
    index = cols.index()
    names, needs = list(job["columns"]), job["needs"]
    unknown = [n for n in names if n not in index]
    if unknown:
        raise InputError(f"the coordinator asked for unknown columns {unknown[:3]}", station=ctx.station)
    try:
        public = ec.public_from_str(job["public"], ec_product.MAX_COLUMNS)
        layout = ec.points_from_str(job["rows"])
        if len(layout) != len(ctx.data) * (len(public) + 1) or len(needs) != len(names):
            raise ValueError("the relayed layout does not match this station's rows")
        results = ec_product.aggregate(public, layout, [cols.values[index[n]] for n in names], needs)
    except (ValueError, TypeError) as exc:  # invalid points included (lancelot.crypto.ecelgamal)
        raise InputError(f"counts: {exc}", station=ctx.station) from None
    return {"results": ec.points_to_str(results)}


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
    out: dict = {"jobs": {}}
    if payload.get("jobs"):
        priv = PrivateKey.from_dict(ctx.state.get(STATE_KEY))
        pub = priv.public
        for job_id, text in payload["jobs"].items():
            out["jobs"][job_id] = product.pack_plain(pub, product.decrypt_masked(priv, product.unpack_cts(pub, text)))
    if payload.get("ec_jobs"):
        out["ec_jobs"] = {job_id: _decrypt_counts(ctx, job) for job_id, job in payload["ec_jobs"].items()}
    return out


def _decrypt_counts(ctx: StationContext, job: dict) -> str:
    """x_j * c1 for every counted result (the coordinator finishes the decryption): the c1 are uniformly random
    points, because L re-randomised every sum with randomness of its own."""
    if not ctx.state.has(STATE_EC_KEY):
        raise PrivacyError("no counting keys of this job at this station", station=ctx.station)
    keys = ec.Keys.from_dict(ctx.state.get(STATE_EC_KEY))
    try:
        c1s, needs = ec.points_from_str(job["c1"]), job["needs"]
        if len(c1s) > product.MAX_ZEROS:
            raise ValueError("more results than any job makes")
        return ec.points_to_str(ec_product.partial_decrypt(keys, c1s, needs))
    except (ValueError, TypeError) as exc:
        raise InputError(f"counts: {exc}", station=ctx.station) from None


STEPS = {"explore_describe": step_describe, "explore_local": step_local, "explore_encrypt": step_encrypt,
         "explore_aggregate": step_aggregate, "explore_decrypt": step_decrypt, "explore_shift": step_shift,
         "explore_chain_aggregate": step_chain_aggregate, "explore_mask": step_mask,
         "explore_mask_sums": step_mask_sums, "explore_share": step_share,
         "explore_share_products": step_share_products, "explore_share_finish": step_share_finish}
