"""Exploration of the linked cohort: linkage plus every requested analysis in four rounds.

Round 1: linkage encoding, and each station describes the columns it will contribute (names,
categories, a power-of-two bound on its values, Kaplan-Meier times). Round 2: linkage blinding,
and each "R" station of a pair encrypts its packed rows under a fresh Paillier key. Round 3: each
"L" station aggregates the coordinator's padded, re-randomised layout against its own columns.
Round 4: each R station decrypts masked sums. See :mod:`.product` and docs/leakage/exploration.md.
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
    """A fresh key of this station for this job; encrypt the requested cross and chain columns under it."""
    cols = _columns(ctx, payload)
    ctx.policy.check_key_bits(int(payload["key_bits"]), ctx.station)
    priv = product.new_key(payload["key_bits"])
    priv.make_hs()  # the fixed-base generator, made by the owner (trustworthy), published with the public key
    ctx.state.put(STATE_KEY, priv.to_dict())
    pub = priv.public
    out: dict = {"public_key": pub.to_dict()}
    wanted = payload.get("cross_columns") or []
    if wanted:
        missing = [c for c in wanted if c not in cols.names]
        if missing:
            raise InputError(f"the coordinator asked for unknown columns {missing[:3]}", station=ctx.station)
        groups = product.encrypt_rows(priv, [cols.values[cols.names.index(c)] for c in wanted], payload["slot_bits"])
        out["groups"] = [product.pack_cts(pub, g) for g in groups]
    chains = {}
    for chain_id, chain in (payload.get("chains") or {}).items():  # one-hot rows for three-station crosstabs
        (group,) = product.encrypt_rows(priv, [cols.values[cols.names.index(c)] for c in chain["columns"]],
                                        chain["slot_bits"])
        chains[chain_id] = product.pack_cts(pub, group)
    if chains:
        out["chains"] = chains
    return out


def _relayed_key(ctx: StationContext, text: dict) -> PublicKey:
    """Another station's public key, relayed by the coordinator: only as strong as this node requires."""
    pub = PublicKey.from_dict(text)
    ctx.policy.check_key_bits(pub.n.bit_length(), ctx.station)
    return pub


def step_aggregate(ctx: StationContext, payload: dict) -> dict:
    cols = _columns(ctx, payload)
    index = {name: i for i, name in enumerate(cols.names)}
    out = {}
    for job_id, job in payload["jobs"].items():
        pub = _relayed_key(ctx, job["public_key"])
        cts = [product.unpack_cts(pub, text) for text in job["groups"]]
        if any(len(g) != len(ctx.data) for g in cts):
            raise InputError("the relayed layout does not match this station's rows", station=ctx.station)
        names = job["columns"] if job["columns"] is not None else cols.names
        unknown = [n for n in names if n not in index]
        if unknown:
            raise InputError(f"the coordinator asked for unknown columns {unknown[:3]}", station=ctx.station)
        needs = job["needs"] if job["needs"] is not None else [list(range(len(cts)))] * len(names)
        packed, layout = product.aggregate(pub, cts, [cols.values[index[n]] for n in names], needs,
                                           job["slots_per_group"], job["slot_bits"])
        out[job_id] = {"names": names, "results": product.pack_cts(pub, packed), "layout": layout}
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
        onehot = [cols.values[cols.names.index(c)] for c in job["columns"]]
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
        columns = [cols.values[cols.names.index(c)] for c in job["columns"]]
        packed, _layout = product.aggregate(pub, [cts], columns, [[0]] * len(columns), [job["capacity"]],
                                            job["slot_bits"], combine=False)
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
        third: dict[str, list[StepCall]] = {}
        jobs: dict[str, dict] = {}
        for job in plan.jobs:
            pub = pubs[job.right]
            if job.kind == "totals":  # the partner's only column is the constant 1: C encrypts membership itself
                layout = [product.membership(pub, n_rows[job.left], cohort[job.left])]
            else:
                groups = [product.unpack_cts(pub, t) for t in encrypted[job.right]["groups"]]
                layout = product.layout_for_l(pub, groups, n_rows[job.left], cohort[job.left], cohort[job.right])
            jobs.setdefault(job.left, {})[job.id] = {
                "public_key": encrypted[job.right]["public_key"], "groups": [product.pack_cts(pub, g) for g in layout],
                "columns": job.l_columns, "needs": job.needs, "slots_per_group": job.slots_per_group,
                "slot_bits": plan.slot_bits[job.right]}
        for station, j in jobs.items():
            third.setdefault(station, []).append(StepCall("explore_aggregate", {**payload, "jobs": j}))
        shift_jobs: dict[str, dict] = {}
        for ch in plan.chains:  # three-station crosstabs: the second station's rows, laid out for the first
            pub = pubs[ch.b.station]
            (cts,) = product.layout_for_l(pub, [product.unpack_cts(pub, encrypted[ch.b.station]["chains"][ch.id])],
                                          n_rows[ch.a.station], cohort[ch.a.station], cohort[ch.b.station])
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
            scheme = product.scheme_for(pub, plan.slot_bits[job.right])
            res = aggregated[job.left]["jobs"][job.id]
            masked, mask = product.mask_results(pub, scheme, product.unpack_cts(pub, res["results"]), job.bound)
            masks[job.id] = (scheme, mask, res)
            to_decrypt.setdefault(job.right, {})[job.id] = product.pack_cts(pub, masked)
        for station, j in to_decrypt.items():
            fourth.setdefault(station, []).append(StepCall("explore_decrypt", {"jobs": j}))
        chain_jobs: dict[str, dict] = {}
        for ch in plan.chains:  # ... then the first station's shifted rows, laid out for the third
            pub = pubs[ch.b.station]
            (cts,) = product.layout_for_l(pub, [product.unpack_cts(pub, shifted[ch.a.station]["chains"][ch.id])],
                                          n_rows[ch.c.station], cohort[ch.c.station], cohort[ch.a.station])
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
                res = next(r for r in out4[ch.c.station] if "chains" in r)["chains"][ch.id]
                scheme = product.scheme_for(pub, ch.slot_bits)
                masked, mask = product.mask_results(pub, scheme, product.unpack_cts(pub, res), ch.bound)
                chain_masks[ch.id] = (scheme, mask)
                fifth.setdefault(ch.b.station, {})[ch.id] = product.pack_cts(pub, masked)
            out5 = coordinator.round({s: StepCall("explore_decrypt", {"jobs": j}) for s, j in fifth.items()},
                                     label="exploration: decrypt masked three-way counts", final=set(fifth))
            for ch in plan.chains:
                scheme, mask = chain_masks[ch.id]
                plain = product.unpack_plain(pubs[ch.b.station], out5[ch.b.station]["jobs"][ch.id])
                slots = product.unmask(scheme, plain, mask)
                na, nb = len(ch.a_columns), len(ch.b_columns)
                sums.triples[ch.index] = np.array([[[slots[c][a * nb + b] for c in range(len(ch.c_columns))]
                                                    for b in range(nb)] for a in range(na)], dtype=float)
    result = _release(spec, sums, protections, linked=len(cohort[hub]))
    result["linkage"] = linkage.summary(k, protections.rounding_base)
    result["protections"] = protections.as_dict()
    if evaluate:
        result["links"] = linkage.links_table()
    return result


@dataclass
class _Job:
    id: str
    kind: str                      # "totals": every L column x R's constant; "cross": needed L x R columns
    left: str
    right: str
    l_columns: list[str] | None    # None: all of L's columns
    needs: list[list[int]] | None  # per L column, the R groups it is multiplied with (None: all)
    r_columns: list[str]
    slots_per_group: list[int]
    bound: int


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
    encrypt: dict[str, dict]       # station -> explore_encrypt payload (cross_columns, chains, slot_bits)
    slot_bits: dict[str, int]
    chains: list[_Chain]


def _plan(spec: ExploreSpec, meta: dict, n_rows: dict, pairs: list[tuple[str, str]], partner: dict[str, str],
          k: int, key_bits: int) -> _Plan:
    """Which sums to compute where: one totals job per station, one cross job per station pair."""
    recorder = needed_sums(spec, meta, k)
    cross_needs: dict[tuple[str, str], set[tuple[str, str]]] = {p: set() for p in pairs}
    for s1, c1, s2, c2 in recorder.cross_requests:
        if (s1, s2) in cross_needs:
            cross_needs[(s1, s2)].add((c1, c2))
        elif (s2, s1) in cross_needs:
            cross_needs[(s2, s1)].add((c2, c1))
        else:
            raise RuntimeError(f"no product planned for {s1} x {s2}")
    encrypt: dict[str, dict] = {}
    widths: dict[str, int] = {}
    bounds: dict[tuple[str, str, str], int] = {}
    for s in meta:  # totals: every column of s against the partner's constant (1 bit)
        bound, width = product.slot_bits_for(n_rows[s], meta[s]["max_bits"], 1)
        bounds[("totals", s, partner[s])] = bound
        widths[partner[s]] = max(widths.get(partner[s], 0), width)
        encrypt.setdefault(partner[s], {})  # the partner's key encrypts C's membership indicators
    cross_columns: dict[str, list[str]] = {}
    for (left, right), needs in cross_needs.items():
        if not needs:
            continue
        wanted = {rc for _, rc in needs} | set(cross_columns.get(right, []))
        cross_columns[right] = [c for c in meta[right]["names"] if c in wanted]
        bound, width = product.slot_bits_for(n_rows[left], meta[left]["max_bits"], meta[right]["max_bits"])
        bounds[("cross", left, right)] = bound
        widths[right] = max(widths.get(right, 0), width)
    for right, cols in cross_columns.items():
        encrypt.setdefault(right, {})["cross_columns"] = cols
    chains = []
    for index in sorted(recorder.triple_requests):
        a_var, b_var, c_var = spec.analyses[index].variables
        cols = {v: [f"c|{v.column}|{label}" for label in meta[v.station]["categories"][v.column]]
                for v in (a_var, b_var, c_var)}
        bound = max(n_rows.values()).bit_length() + 1
        width = bound + product.STAT_BITS + 2
        capacity = (key_bits - 1) // width
        if len(cols[a_var]) * len(cols[b_var]) > capacity:
            raise InputError(f"analysis '{spec.analyses[index].name}': too many category combinations of the first "
                             f"two variables for a three-station crosstab (at most {capacity})")
        chain = _Chain(id=f"chain{index}", index=index, a=a_var, b=b_var, c=c_var, a_columns=cols[a_var],
                       b_columns=cols[b_var], c_columns=cols[c_var], slot_bits=width, capacity=capacity, bound=bound)
        chains.append(chain)
        encrypt.setdefault(b_var.station, {}).setdefault("chains", {})[chain.id] = {"columns": cols[b_var],
                                                                                   "slot_bits": width}
    for station, enc in encrypt.items():
        enc["slot_bits"] = widths.get(station, 64)
    jobs = [_Job(id=f"totals:{s}", kind="totals", left=s, right=partner[s], l_columns=None, needs=None,
                 r_columns=[CONST], slots_per_group=[1], bound=bounds[("totals", s, partner[s])]) for s in meta]
    for (left, right), needs in cross_needs.items():
        if not needs:
            continue
        r_cols = cross_columns[right]
        slots = (key_bits - 1) // widths[right]
        group_of = {c: i // slots for i, c in enumerate(r_cols)}
        sizes = [min(slots, len(r_cols) - g * slots) for g in range(-(-len(r_cols) // slots))]
        l_cols = [c for c in meta[left]["names"] if any(lc == c for lc, _ in needs)]
        per_l = [sorted({group_of[rc] for lc, rc in needs if lc == c}) for c in l_cols]
        jobs.append(_Job(id=f"cross:{left}:{right}", kind="cross", left=left, right=right, l_columns=l_cols,
                         needs=per_l, r_columns=r_cols, slots_per_group=sizes, bound=bounds[("cross", left, right)]))
    return _Plan(jobs=jobs, encrypt=encrypt, slot_bits=widths, chains=chains)


def _assemble(plan: _Plan, masks: dict, decrypted: dict, pubs: dict, meta: dict) -> CohortSums:
    """Unmask every job's sums, split the packed slots, and scale back to real numbers."""
    totals: dict[str, dict[str, float]] = {}
    crosses: dict[tuple[str, str], dict[tuple[str, str], float]] = {}
    for job in plan.jobs:
        scheme, mask, res = masks[job.id]
        plain = product.unpack_plain(pubs[job.right], decrypted[job.right]["jobs"][job.id])
        slots = product.unmask(scheme, plain, mask)
        l_names = res["names"]
        l_scaled, r_scaled = set(meta[job.left]["scaled"]), set(meta[job.right]["scaled"])
        group_cols = [job.r_columns[sum(job.slots_per_group[:g]):sum(job.slots_per_group[:g + 1])]
                      for g in range(len(job.slots_per_group))]
        for ct_slots, entries in zip(slots, res["layout"]):
            offset = 0
            for a, g in entries:
                lname = l_names[a]
                for rname in group_cols[g]:
                    value = _descale(ct_slots[offset], product_frac(lname, l_scaled) + product_frac(rname, r_scaled))
                    if job.kind == "totals":
                        totals.setdefault(job.left, {})[lname] = value
                    else:
                        crosses.setdefault((job.left, job.right), {})[(lname, rname)] = value
                    offset += 1
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
