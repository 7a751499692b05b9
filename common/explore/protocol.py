"""Exploration of the linked cohort: linkage plus every requested analysis in four rounds.

Round 1: linkage encoding, and each station describes the columns it will contribute (names,
categories, a power-of-two bound on its values, Kaplan-Meier times). Round 2: linkage blinding,
and each key owner (the "R" station of a pair) encrypts its packed rows under a fresh Paillier key,
with the fresh encryptions of 0 the coordinator pads with. Round 3: each "L" station aggregates the
coordinator's padded layout against its own columns. Round 4: each key owner decrypts masked sums.
See :mod:`.product`, docs/leakage/exploration.md and docs/leakage/exploration-cost.md.
One station alone (no linkage) takes one round and the same statistics, computed locally.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..crypto import PrivateKey, PublicKey
from ..disclosure import round_count
from ..linkage.protocol import LinkageRun, station_rows
from ..policy import Protections
from ..runtime.coordinator import Coordinator, StepCall
from ..runtime.errors import InputError, PrivacyError
from ..runtime.station import StationContext
from . import product
from .columns import CONST, FRAC_BITS, build_columns
from .spec import ExploreSpec, Var, parse_explore_spec
from .stats import CohortSums, needed_sums, release

STATE_KEY = "explore_paillier_key"
DEFAULT_KEY_BITS = 2048


# ---------------------------------------------------------------------------------------------
# station steps
# ---------------------------------------------------------------------------------------------
def _columns(ctx: StationContext, payload: dict, shuffled: bool = True):
    """This station's columns for the spec, in the job's shuffled row order (or the table's own)."""
    spec = parse_explore_spec(payload["spec"], payload["stations"])
    return build_columns(spec, ctx.station, station_rows(ctx) if shuffled else ctx.data, ctx.policy)


def step_describe(ctx: StationContext, payload: dict) -> dict:
    cols = _columns(ctx, payload, shuffled=False)
    return {"meta": cols.meta(), "n": len(ctx.data), "policy": ctx.policy.public()}


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


def step_shift(ctx: StationContext, payload: dict) -> dict:
    """Three-station crosstab, first station: move each row's encrypted one-hot into its own category's block.

    Row i's ciphertext holds the second station's one-hot (|B| slots); raising it to 2^(W*|B|*a_i)
    shifts it to block a_i, so the plaintext becomes the joint one-hot of (a_i, b). Every output is
    re-randomised, so nobody can tell which shift was applied.
    """
    cols = _columns(ctx, payload)
    out = {}
    for chain_id, job in payload["chains"].items():
        pub = _relayed_key(ctx, job["public_key"])
        cts = product.unpack_cts(pub, job["cts"])
        index = cols.index()
        onehot = [cols.values[index[c]] for c in job["columns"]]
        category = [next((a for a, col in enumerate(onehot) if col[i]), 0) for i in range(len(cts))]
        shifts = [job["slot_bits"] * job["block_slots"] * a for a in category]
        out[chain_id] = product.pack_cts(pub, product.shift_rows(pub, cts, shifts))
    return {"chains": out}


def step_chain_aggregate(ctx: StationContext, payload: dict) -> dict:
    """Three-station crosstab, third station: per own category, the encrypted sum of the joint one-hots."""
    cols = _columns(ctx, payload)
    out = {}
    for chain_id, job in payload["chains"].items():
        pub = _relayed_key(ctx, job["public_key"])
        cts = product.unpack_cts(pub, job["cts"])
        index = cols.index()
        columns = [cols.values[index[c]] for c in job["columns"]]
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
         "explore_chain_aggregate": step_chain_aggregate}


# ---------------------------------------------------------------------------------------------
# coordinator
# ---------------------------------------------------------------------------------------------
def _pairs(spec: ExploreSpec, hub: str, others: list[str]) -> list[tuple[str, str]]:
    """(L, R) station pairs whose cross sums some analysis needs: the hub first, then by station order."""
    order = [hub] + others
    pairs: list[tuple[str, str]] = []
    for a in spec.analyses:
        if a.type == "kaplan_meier" and a.time.station != hub:
            raise InputError(f"analysis '{a.name}': survival time must be at the hub station '{hub}'")
        st = sorted({v.station for v in a.all_vars()}, key=order.index)
        for i, s1 in enumerate(st):
            for s2 in st[i + 1:]:
                if (s1, s2) not in pairs:
                    pairs.append((s1, s2))
    return pairs


def _round_lists(coordinator: Coordinator, calls: dict[str, list[StepCall]], label: str,
                 later: set[str]) -> dict[str, list[dict]]:
    """One round in which a station may run several steps; returns each station's results in order.

    Stations not in ``later`` (the stations of the rounds still to come) end the job in this round.
    """
    combined = {s: StepCall.combine(*lst) for s, lst in calls.items() if lst}
    if not combined:
        return {}
    res = coordinator.round(combined, label=label, final=set(combined) - later)
    return {s: (res[s]["results"] if len(calls[s]) > 1 else [res[s]]) for s in combined}


def _descale(value: int, bits: int) -> float:
    return value / (1 << bits) if bits else float(value)


def product_frac(col: str, scaled: set[str]) -> int:
    return FRAC_BITS if col in scaled else 0


def explore(coordinator: Coordinator, spec_raw: dict, min_cell_count: int | None = None,
            evaluate: bool = False, key_bits: int = DEFAULT_KEY_BITS, rounding_base: int | None = None) -> dict:
    stations = coordinator.stations
    spec = parse_explore_spec(spec_raw, stations)
    if isinstance(key_bits, bool) or key_bits not in (2048, 3072):
        raise InputError("key_bits must be 2048 or 3072 (a node policy may require more)")
    payload = {"spec": spec_raw, "stations": stations}
    if len(stations) == 1:
        return _explore_one_station(coordinator, spec, payload, min_cell_count, evaluate, rounding_base)
    run = LinkageRun.for_run(coordinator, spec.linkage, evaluate, "exploration")
    hub, others = run.spec.hub, run.spec.others
    pairs = _pairs(spec, hub, others)
    partner = {hub: others[0], **{s: hub for s in others}}  # whose constant column a station's totals use

    with coordinator.cost.phase("linkage + describe"):
        calls = {s: StepCall.combine(StepCall("explore_describe", payload), c) for s, c in run.first_calls().items()}
        first = coordinator.round(calls, label="linkage: encode keys; exploration: describe columns")
        describe = {s: first[s]["results"][0] for s in stations}
        link_first = {s: first[s]["results"][1] for s in stations}
        meta = {s: describe[s]["meta"] for s in stations}
        n_rows = {s: describe[s]["n"] for s in stations}
        protections = Protections.combine({s: describe[s]["policy"] for s in stations}, min_cell_count, rounding_base)
        k = protections.min_cell_count
        key_bits = max(key_bits, protections.min_key_bits)  # the strictest node's minimum key size
        plan = _plan(spec, meta, n_rows, pairs, partner, k, key_bits)
        calls = run.second_calls(link_first)
        for r, enc in plan.encrypt.items():
            calls[r] = StepCall.combine(calls[r], StepCall("explore_encrypt", {**payload, **enc, "key_bits": key_bits}))
        second = coordinator.round(calls, label="linkage: blind keys; exploration: encrypt rows")
        link_second = {s: (second[s]["results"][0] if s in plan.encrypt else second[s]) for s in stations}
        encrypted = {r: second[r]["results"][1] for r in plan.encrypt}
        linkage = run.finish(link_first, link_second)
    cohort = linkage.cohort()
    if len(cohort[hub]) < k:
        raise InputError(f"the linked cohort has fewer than {k} records: nothing can be released")

    with coordinator.cost.phase("exploration"):
        pubs = {r: PublicKey.from_dict(encrypted[r]["public_key"]) for r in plan.encrypt}
        zeros = {r: product.Zeros(product.unpack_cts(pubs[r], encrypted[r]["zeros"])) for r in plan.encrypt}
        rows = {r: [product.unpack_cts(pubs[r], t) for t in encrypted[r].get("groups", [])] for r in plan.encrypt}
        third: dict[str, list[StepCall]] = {}
        jobs: dict[str, dict] = {}
        for job in plan.jobs:
            pub = pubs[job.right]
            if job.kind == "totals":  # the partner's only column is the constant 1: C lays out membership itself
                layout = [product.membership(pub, zeros[job.right], n_rows[job.left], cohort[job.left])]
            else:
                layout = product.layout_for_l(pub, rows[job.right], zeros[job.right], n_rows[job.left],
                                              cohort[job.left], cohort[job.right])
            jobs.setdefault(job.left, {})[job.id] = {
                "public_key": encrypted[job.right]["public_key"], "groups": [product.pack_cts(pub, g) for g in layout],
                "columns": job.l_columns, "needs": job.needs, "bits": job.bits}
        for station, j in jobs.items():
            third.setdefault(station, []).append(StepCall("explore_aggregate", {**payload, "jobs": j}))
        shift_jobs: dict[str, dict] = {}
        for ch in plan.chains:  # three-station crosstabs: the second station's rows, laid out for the first
            pub = pubs[ch.b.station]
            (cts,) = product.layout_for_l(pub, [product.unpack_cts(pub, encrypted[ch.b.station]["chains"][ch.id])],
                                          zeros[ch.b.station], n_rows[ch.a.station], cohort[ch.a.station],
                                          cohort[ch.b.station])
            shift_jobs.setdefault(ch.a.station, {})[ch.id] = {
                "public_key": encrypted[ch.b.station]["public_key"], "cts": product.pack_cts(pub, cts),
                "columns": ch.a_columns, "block_slots": len(ch.b_columns), "slot_bits": ch.slot_bits}
        for station, j in shift_jobs.items():
            third.setdefault(station, []).append(StepCall("explore_shift", {**payload, "chains": j}))
        decrypting = {job.right for job in plan.jobs} | {ch.c.station for ch in plan.chains}
        chain_keys = {ch.b.station for ch in plan.chains}
        out3 = _round_lists(coordinator, third, "exploration: aggregate over the cohort", decrypting | chain_keys)
        aggregated = {s: next(r for r in res if "jobs" in r) for s, res in out3.items() if s in jobs}
        shifted = {s: next(r for r in res if "chains" in r) for s, res in out3.items() if s in shift_jobs}

        fourth: dict[str, list[StepCall]] = {}
        masks, to_decrypt = {}, {}
        for job in plan.jobs:
            pub = pubs[job.right]
            res = aggregated[job.left]["jobs"][job.id]
            slots = _result_slots(job, res["layout"])
            masked, mask = product.mask_results(pub, product.unpack_cts(pub, res["results"]), slots)
            masks[job.id] = (mask, slots, res["layout"])
            to_decrypt.setdefault(job.right, {})[job.id] = product.pack_cts(pub, masked)
        for station, j in to_decrypt.items():
            fourth.setdefault(station, []).append(StepCall("explore_decrypt", {"jobs": j}))
        chain_jobs: dict[str, dict] = {}
        for ch in plan.chains:  # ... then the first station's shifted rows, laid out for the third
            pub = pubs[ch.b.station]
            (cts,) = product.layout_for_l(pub, [product.unpack_cts(pub, shifted[ch.a.station]["chains"][ch.id])],
                                          zeros[ch.b.station], n_rows[ch.c.station], cohort[ch.c.station],
                                          cohort[ch.a.station])
            chain_jobs.setdefault(ch.c.station, {})[ch.id] = {
                "public_key": encrypted[ch.b.station]["public_key"], "cts": product.pack_cts(pub, cts),
                "columns": ch.c_columns, "slot_bits": ch.slot_bits, "capacity": ch.capacity}
        for station, j in chain_jobs.items():
            fourth.setdefault(station, []).append(StepCall("explore_chain_aggregate", {**payload, "chains": j}))
        out4 = _round_lists(coordinator, fourth, "exploration: decrypt masked sums", chain_keys)
        decrypted = {s: next(r for r in res if "jobs" in r) for s, res in out4.items() if s in to_decrypt}
        sums = _assemble(plan, masks, decrypted, pubs, meta)
        if plan.chains:  # the second station decrypts the masked three-way counts
            chain_masks, fifth = {}, {}
            for ch in plan.chains:
                pub = pubs[ch.b.station]
                res = product.unpack_cts(pub, next(r for r in out4[ch.c.station] if "chains" in r)["chains"][ch.id])
                slots = [[(ch.slot_bits, ch.bound)] * ch.capacity for _ in res]
                masked, mask = product.mask_results(pub, res, slots)
                chain_masks[ch.id] = (mask, slots)
                fifth.setdefault(ch.b.station, {})[ch.id] = product.pack_cts(pub, masked)
            out5 = coordinator.round({s: StepCall("explore_decrypt", {"jobs": j}) for s, j in fifth.items()},
                                     label="exploration: decrypt masked three-way counts", final=set(fifth))
            for ch in plan.chains:
                mask, slots = chain_masks[ch.id]
                plain = product.unpack_plain(pubs[ch.b.station], out5[ch.b.station]["jobs"][ch.id])
                values = product.unmask(plain, mask, slots)
                na, nb = len(ch.a_columns), len(ch.b_columns)
                sums.triples[ch.index] = np.array([[[values[c][a * nb + b] for c in range(len(ch.c_columns))]
                                                    for b in range(nb)] for a in range(na)], dtype=float)
    result = _release(spec, sums, protections, linked=len(cohort[hub]))
    result["linkage"] = linkage.summary(k, protections.rounding_base)
    result["protections"] = protections.as_dict()
    if evaluate:
        result["links"] = linkage.links_table()
    return result


@dataclass
class _Right:
    """What one key-owning station encrypts per row: its columns in slot order, grouped into ciphertexts."""

    columns: list[str]
    widths: list[int]              # slot width per column
    groups: list[list[int]]        # column indices per ciphertext group

    @property
    def bits(self) -> list[int]:
        return [sum(self.widths[c] for c in g) for g in self.groups]


@dataclass
class _Job:
    id: str
    kind: str                      # "cross": L columns x R's encrypted rows; "totals": L columns x membership
    left: str
    right: str                     # the key owner
    n_left: int
    l_columns: list[str]
    l_bits: list[int]              # per L column, the bits of its largest possible value
    needs: list[list[int]]         # per L column, the R groups it is multiplied with
    r_columns: list[str]           # R's encrypted columns (totals: the constant)
    r_bits: list[int]
    widths: list[int]              # slot width per R column
    groups: list[list[int]]        # R column indices per group
    l_totals: bool = False         # this job's (L column x R's constant) slots are L's totals
    r_totals: bool = False         # this job's (L's constant x R column) slots are R's totals

    @property
    def bits(self) -> list[int]:
        return [sum(self.widths[c] for c in g) for g in self.groups]


@dataclass
class _Chain:
    """A crosstab with one variable at each of three stations: a -> shift, b -> key owner, c -> aggregate."""

    id: str
    index: int
    a: Var
    b: Var
    c: Var
    a_columns: list[str]
    b_columns: list[str]
    c_columns: list[str]
    slot_bits: int
    capacity: int
    bound: int


@dataclass
class _Plan:
    jobs: list[_Job]
    encrypt: dict[str, dict]       # key owner -> explore_encrypt payload (columns, widths, zeros, chains)
    chains: list[_Chain]


# relative costs for choosing ciphertext groups: one owner encryption per row and group (rows and padding)
# against one packed result ciphertext (Horner shifts at L, its own re-randomisation, a decryption)
_COST_ENCRYPTION = 1.0
_COST_RESULT = 40.0


def _col_bits(meta: dict, col: str) -> int:
    if col in meta["scaled"]:
        return meta["max_bits"]
    return meta.get("plain_bits", meta["max_bits"])


def _group(columns: list[str], r_bits: list[int], l_bits: list[dict[str, int]], n_rows: dict, needers: list[int],
           rows: int, capacity: int) -> tuple[list[list[int]], list[int], float]:
    """Consecutive columns into ciphertext groups of at most ``capacity`` bits, at least cost.

    An L column that needs one column of a group is multiplied with the whole group, so each slot's
    width must hold the largest sum of its column with any L column that needs any column of its
    group: ``l_bits[c][L]`` is the bit length of the largest L column that needs column c (absent:
    none does). Cost: per group, one encryption per row (``rows``: R's rows plus the padded
    layouts), plus per L column that needs the group (``needers[c]``: a bit set of L columns), the
    group's share of a packed result ciphertext. Returns the groups, every column's slot width and
    the cost.
    """
    m = len(columns)
    best = [0.0] + [float("inf")] * m
    cut = [0] * (m + 1)
    for j in range(1, m + 1):
        lb: dict[str, int] = {}
        who = 0
        for i in range(j - 1, -1, -1):
            for left, bits in l_bits[i].items():
                lb[left] = max(lb.get(left, 0), bits)
            who |= needers[i]
            used = sum(_slot_width(lb, n_rows, r_bits[c]) for c in range(i, j))
            if used > capacity:
                break
            cost = best[i] + rows * _COST_ENCRYPTION + who.bit_count() * used / capacity * _COST_RESULT
            if cost < best[j]:
                best[j], cut[j] = cost, i
    if m and best[m] == float("inf"):
        raise InputError("values too large for one Paillier slot with this key size")
    groups, j = [], m
    while j > 0:
        groups.append(list(range(cut[j], j)))
        j = cut[j]
    groups = groups[::-1]
    widths = [0] * m
    for g in groups:
        lb = {}
        for c in g:
            for left, bits in l_bits[c].items():
                lb[left] = max(lb.get(left, 0), bits)
        for c in g:
            widths[c] = _slot_width(lb, n_rows, r_bits[c])
    return groups, widths, best[m]


def _slot_width(lb: dict[str, int], n_rows: dict, r_bits: int) -> int:
    bound = max((product.bound_bits(n_rows[left], bits, r_bits) for left, bits in lb.items()), default=r_bits)
    return product.width_for(bound)


def _needers(mine: list[tuple[str, str]], cross_needs: dict, l_totals_pair: dict, meta: dict,
             totals_wanted: dict[str, list[str]]) -> tuple:
    """For one key owner R and its cross jobs ``mine``: which L columns multiply each R column.

    Returns (bit index of each (L, L column), per R column the bit set of L columns that need it,
    per R column and L the bit length of the largest L column that needs it, per L and L column the
    R columns it needs).
    """
    who: dict[tuple[str, str], int] = {}
    needers: dict[str, int] = {}
    l_bits: dict[str, dict[str, int]] = {}
    l_need: dict[str, dict[str, set[str]]] = {left: {} for left, _ in mine}
    for left, r in mine:
        wanted = list(cross_needs[(left, r)])
        if l_totals_pair.get(left) == (left, r):  # L's totals: every L column times R's constant
            wanted += [(lc, CONST) for lc in totals_wanted[left]]
        for lc, rc in wanted:
            needers[rc] = needers.get(rc, 0) | (1 << who.setdefault((left, lc), len(who)))
            per = l_bits.setdefault(rc, {})
            per[left] = max(per.get(left, 0), _col_bits(meta[left], lc))
            l_need[left].setdefault(lc, set()).add(rc)
    return who, needers, l_bits, l_need


def _plan(spec: ExploreSpec, meta: dict, n_rows: dict, pairs: list[tuple[str, str]], partner: dict[str, str],
          k: int, key_bits: int) -> _Plan:
    """Which sums to compute where.

    One cross job per station pair (L, R) whose products some analysis needs: R encrypts the
    columns needed, with its constant first, and L multiplies. The same job gives L's totals (L's
    columns times R's constant) and, when R's remaining columns fit at little cost, R's totals (L's
    constant times R's columns). A station whose totals no cross job gives gets a totals job: its
    columns times its membership, encrypted under its partner's key. Like the cross products, the
    totals are those the analyses read in their dry run (:func:`needed_sums`), plus every station's
    constant.
    """
    recorder = needed_sums(spec, meta, k)
    cross_needs: dict[tuple[str, str], set[tuple[str, str]]] = {p: set() for p in pairs}
    for s1, c1, s2, c2 in recorder.cross_requests:
        if (s1, s2) in cross_needs:
            cross_needs[(s1, s2)].add((c1, c2))
        elif (s2, s1) in cross_needs:
            cross_needs[(s2, s1)].add((c2, c1))
        else:
            raise RuntimeError(f"no product planned for {s1} x {s2}")
    # the totals the analyses read (their dry run), and every station's constant (the cohort size)
    asked = {(s, c) for s, c in recorder.total_requests} | {(s, CONST) for s in meta}
    totals_wanted = {s: [c for c in meta[s]["names"] if (s, c) in asked] for s in meta}
    capacity = key_bits - 1
    cross = [(left, right) for (left, right), needs in cross_needs.items() if needs]
    l_totals_pair = {}
    for left, right in cross:
        l_totals_pair.setdefault(left, (left, right))
    encrypt: dict[str, dict] = {}
    zero_count: dict[str, int] = {}
    jobs: list[_Job] = []
    r_totals: set[str] = set()
    for right in dict.fromkeys(r for _, r in cross):
        mine = [(left, r) for left, r in cross if r == right]
        lefts = [left for left, _ in mine]
        who, needers, l_bits, l_need = _needers(mine, cross_needs, l_totals_pair, meta, totals_wanted)
        needed = [c for c in meta[right]["names"] if c in needers and c != CONST]  # most needed first
        needed = sorted([CONST] + needed, key=lambda c: -needers.get(c, 0).bit_count())
        rest = [c for c in totals_wanted[right] if c not in needers and c != CONST]
        rows = n_rows[right] + sum(n_rows[left] for left in lefts)

        cols = needed
        r_bits = [_col_bits(meta[right], c) for c in cols]
        groups, widths, cost = _group(cols, r_bits, [l_bits.get(c, {}) for c in cols], n_rows,
                                      [needers.get(c, 0) for c in cols], rows, capacity)
        if right not in l_totals_pair:  # R's totals: L's constant times every R column, or a totals job
            const_bit = 1 << who.setdefault((lefts[0], CONST), len(who))
            cols_b = cols + rest
            groups_b, widths_b, cost_b = _group(
                cols_b, [_col_bits(meta[right], c) for c in cols_b],
                [{**l_bits.get(c, {}), lefts[0]: max(1, l_bits.get(c, {}).get(lefts[0], 0))} for c in cols_b],
                n_rows, [needers.get(c, 0) | const_bit for c in cols_b], rows, capacity)
            totals_job = n_rows[right] * _COST_ENCRYPTION + len(totals_wanted[right]) * _COST_RESULT / 20
            if not rest or cost_b <= cost + totals_job:
                cols, groups, widths = cols_b, groups_b, widths_b
                r_totals.add(right)
        group_of = {c: g for g, members in enumerate(groups) for c in [cols[i] for i in members]}
        encrypt[right] = {"columns": cols, "widths": [[widths[i] for i in g] for g in groups]}
        for left, r in mine:
            takes_r_totals = right in r_totals and left == lefts[0]
            l_cols, needs = [], []
            for lc in meta[left]["names"]:
                gs = {group_of[rc] for rc in l_need[left].get(lc, ())}
                if takes_r_totals and lc == CONST:
                    gs = set(range(len(groups)))
                if gs:
                    l_cols.append(lc)
                    needs.append(sorted(gs))
            jobs.append(_Job(id=f"cross:{left}:{right}", kind="cross", left=left, right=right, n_left=n_rows[left],
                             l_columns=l_cols, l_bits=[_col_bits(meta[left], c) for c in l_cols], needs=needs,
                             r_columns=cols, r_bits=[_col_bits(meta[right], c) for c in cols], widths=widths,
                             groups=groups, l_totals=l_totals_pair.get(left) == (left, r), r_totals=takes_r_totals))
            zero_count[right] = zero_count.get(right, 0) + n_rows[left] * len(groups)
    for s in meta:  # totals that no cross job gives: the station's columns times its membership
        if s in l_totals_pair or s in r_totals:
            continue
        p = partner[s]
        width = product.width_for(product.bound_bits(n_rows[s], meta[s]["max_bits"], 1))
        names = totals_wanted[s]
        jobs.append(_Job(id=f"totals:{s}", kind="totals", left=s, right=p, n_left=n_rows[s], l_columns=names,
                         l_bits=[_col_bits(meta[s], c) for c in names], needs=[[0]] * len(names), r_columns=[CONST],
                         r_bits=[1], widths=[width], groups=[[0]], l_totals=True))
        encrypt.setdefault(p, {})
        zero_count[p] = zero_count.get(p, 0) + n_rows[s]
    chains = []
    for index in sorted(recorder.triple_requests):
        a_var, b_var, c_var = spec.analyses[index].variables
        cols = {v: [f"c|{v.column}|{label}" for label in meta[v.station]["categories"][v.column]]
                for v in (a_var, b_var, c_var)}
        bound = max(n_rows.values()).bit_length() + 1
        width = bound + product.STAT_BITS + 2
        chain_capacity = capacity // width
        if len(cols[a_var]) * len(cols[b_var]) > chain_capacity:
            raise InputError(f"analysis '{spec.analyses[index].name}': too many category combinations of the first "
                             f"two variables for a three-station crosstab (at most {chain_capacity})")
        chain = _Chain(id=f"chain{index}", index=index, a=a_var, b=b_var, c=c_var, a_columns=cols[a_var],
                       b_columns=cols[b_var], c_columns=cols[c_var], slot_bits=width, capacity=chain_capacity,
                       bound=bound)
        chains.append(chain)
        encrypt.setdefault(b_var.station, {}).setdefault("chains", {})[chain.id] = {"columns": cols[b_var],
                                                                                   "slot_bits": width}
        zero_count[b_var.station] = zero_count.get(b_var.station, 0) + n_rows[a_var.station] + n_rows[c_var.station]
    for station, enc in encrypt.items():
        enc["zeros"] = product.zeros_for(zero_count.get(station, 0))
    return _Plan(jobs=jobs, encrypt=encrypt, chains=chains)


def _result_slots(job: _Job, layout: list) -> list[list[tuple[int, int]]]:
    """Per result ciphertext of a job, each slot's (width, bound), from the layout L reported."""
    out = []
    for entries in layout:
        slots = []
        for a, g in entries:
            if not (isinstance(a, int) and isinstance(g, int) and 0 <= a < len(job.l_columns)
                    and g in job.needs[a]):
                raise InputError("a station's result layout does not match the job", station=job.left)
            for b in job.groups[g]:
                slots.append((job.widths[b], product.bound_bits(job.n_left, job.l_bits[a], job.r_bits[b])))
        out.append(slots)  # product.mask_results refuses a layout that does not fit below n
    return out


def _assemble(plan: _Plan, masks: dict, decrypted: dict, pubs: dict, meta: dict) -> CohortSums:
    """Unmask every job's sums, split the packed slots, and scale back to real numbers."""
    totals: dict[str, dict[str, float]] = {}
    crosses: dict[tuple[str, str], dict[tuple[str, str], float]] = {}
    for job in plan.jobs:
        mask, slots, layout = masks[job.id]
        plain = product.unpack_plain(pubs[job.right], decrypted[job.right]["jobs"][job.id])
        values = product.unmask(plain, mask, slots)
        l_scaled, r_scaled = set(meta[job.left]["scaled"]), set(meta[job.right]["scaled"])
        for ct_values, entries in zip(values, layout):
            offset = 0
            for a, g in entries:
                lname = job.l_columns[a]
                for b in job.groups[g]:
                    rname = job.r_columns[b]
                    value = _descale(ct_values[offset], product_frac(lname, l_scaled) + product_frac(rname, r_scaled))
                    offset += 1
                    if job.kind == "totals":
                        totals.setdefault(job.left, {})[lname] = value
                        continue
                    crosses.setdefault((job.left, job.right), {})[(lname, rname)] = value
                    if job.l_totals and rname == CONST:
                        totals.setdefault(job.left, {})[lname] = value
                    if job.r_totals and lname == CONST:
                        totals.setdefault(job.right, {})[rname] = value
    return CohortSums(totals=totals, crosses=crosses, meta=meta)


def _explore_one_station(coordinator: Coordinator, spec: ExploreSpec, payload: dict, min_cell_count: int | None,
                         evaluate: bool, rounding_base: int | None) -> dict:
    if evaluate:
        raise PrivacyError("--evaluate returns links; with one station there is nothing to link")
    with coordinator.cost.phase("exploration"):
        res = coordinator.broadcast("explore_local", payload, label="exploration: local sums",
                                    final=coordinator.stations)
    s = coordinator.stations[0]
    meta = res[s]["meta"]
    scaled = set(meta["scaled"])
    sums = CohortSums(totals={s: {c: _descale(v, product_frac(c, scaled)) for c, v in res[s]["totals"].items()}},
                      meta={s: meta})
    protections = Protections.combine({s: res[s]["policy"]}, min_cell_count, rounding_base)
    result = _release(spec, sums, protections, linked=None)
    result["protections"] = protections.as_dict()
    return result


def _release(spec: ExploreSpec, sums: CohortSums, protections: Protections, linked: int | None) -> dict:
    k, base = protections.min_cell_count, protections.rounding_base
    analyses, report = release(spec, sums, k, base)
    n = round_count(sums.n, base) if sums.n >= k else None
    return {"analyses": analyses,
            "cohort": {"records": n, "definition": "all records of the one station" if linked is None else
                       "hub records linked to every station of the linkage spec"},
            "disclosure_control": {
                "min_cell_count": k, "rounding_base": base, **report,
                "rule": (f"one joint suppression for every count of the job: counts 0 < c < {k}, and zeros that concern "
                         "two or more variables, are withheld (primary); further counts are withheld until no "
                         "combination of released counts pins a withheld one to an interval narrower than "
                         f"{k} (secondary, checked by linear programming); categories with fewer than {k} linked "
                         f"patients are merged into <other>; released counts are rounded to a multiple of {base}; "
                         "means, SDs and correlations to 4 significant digits"),
                "details": "docs/leakage/disclosure.md"}}
