"""Exploration of the linked cohort: linkage plus every requested analysis in four rounds.

Round 1: linkage encoding, and each station describes the columns it will contribute (names,
categories, a power-of-two bound on its values, Kaplan-Meier times). Round 2: linkage blinding;
products of narrow columns across stations go on additive shares (:mod:`.shared`, coordinated by
:mod:`.shared_job`): each station uploads its masked limbs; products of wide columns (Kaplan-Meier
exits) go through Paillier: each key owner (the "R" station of a pair) encrypts its packed rows
under a fresh key, with the fresh encryptions of 0 the coordinator pads with. Round 3: partners,
participants and dealers of the shared products; each "L" station aggregates the coordinator's
padded layout against its own columns. Round 4: the partners' last Beaver product; each key owner
decrypts masked sums. Products whose columns are all 0/1 indicators (a Kaplan-Meier curve by a
column at another station) go the same way on exponential ElGamal when that is cheaper
(:mod:`.ec_product`, coordinated by :mod:`.counts_job`): the key owner returns partial
decryptions and the coordinator takes small discrete logarithms. A station's own totals that no
product gives come from masked sums with its partner (:mod:`.masked`: masked records in round 2,
the partner's mask sums in round 3, no decryption), so a job whose analyses all concern one
station's columns ends after round 3.
This module is the coordinator's side; the station steps are in :mod:`.steps`, the plan in
:mod:`.plan`, the Paillier work in :mod:`.product`. Leakage and cost:
docs/leakage/exploration.md and docs/leakage/exploration-cost.md.
One station alone (no linkage) takes one round and the same statistics, computed locally.
"""

from __future__ import annotations

import numpy as np

from ..crypto import PublicKey
from ..disclosure import round_count
from ..linkage.protocol import LinkageRun
from ..policy import Protections
from ..runtime.coordinator import Coordinator, StepCall
from ..runtime.errors import InputError, PrivacyError
from . import masked, product
from .columns import CONST, FRAC_BITS
from .counts_job import CountsRun
from .job import CohortSums
from .plan import Job as PlanJob
from .plan import Plan, plan_products, result_slots
from .shared_job import SharedRun, upload_payload
from .spec import ExploreSpec, parse_explore_spec
from .stats import release
from .steps import STEPS

DEFAULT_KEY_BITS = 2048


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


def _result_with(results: list[dict], field: str) -> dict:
    """The result of a station's round that carries ``field`` (a station may run several steps in a round)."""
    return next(r for r in results if field in r)


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
        plan = plan_products(spec, meta, n_rows, pairs, partner, k, key_bits)
        second_calls = {s: [c] for s, c in run.second_calls(link_first).items()}
        for r, enc in plan.encrypt.items():
            second_calls[r].append(StepCall("explore_encrypt", {**payload, **enc, "key_bits": key_bits}))
        for s, mt in plan.masked.items():
            second_calls[s].append(StepCall("explore_mask", {**payload, "columns": mt.columns, "bits": mt.bits,
                                                             "partner": mt.partner,
                                                             "peer_key": describe[mt.partner]["exchange_key"]}))
        for s in plan.shared:
            second_calls[s].append(StepCall("explore_share", {**payload, **upload_payload(plan, s, describe)}))
        second = _round_lists(coordinator, second_calls, "linkage: pseudonyms; exploration: encrypt rows", set(stations))
        link_second = {s: second[s][0] for s in stations}
        encrypted = {r: _result_with(second[r][1:], "public_key") for r in plan.encrypt}
        masked_rows = {s: _result_with(second[s][1:], "masked")["masked"] for s in plan.masked}
        uploads = {s: _result_with(second[s][1:], "shared")["shared"] for s in plan.shared}
        linkage = run.finish(link_first, link_second)
    cohort = linkage.cohort()
    if len(cohort[hub]) < k:
        raise InputError(f"{linkage.small_cohort(k)}: nothing can be released")

    with coordinator.cost.phase("exploration"):
        pubs = {r: PublicKey.from_dict(e["public_key"]) for r, e in encrypted.items() if e["public_key"]}
        zeros = {r: product.Zeros(product.unpack_cts(pub, encrypted[r]["zeros"])) for r, pub in pubs.items()}
        rows = {r: [product.unpack_cts(pub, t) for t in encrypted[r].get("groups", [])] for r, pub in pubs.items()}
        counted = CountsRun(plan, {r: e["ec"] for r, e in encrypted.items() if "ec" in e}, n_rows, cohort)
        third: dict[str, list[StepCall]] = {}
        jobs: dict[str, dict] = {}
        for job in plan.jobs:
            if job.cipher == "ec":
                jobs.setdefault(job.left, {})[job.id] = counted.layout(job)
                continue
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
        shares = SharedRun(plan, uploads, cohort, n_rows, {s: describe[s]["exchange_key"] for s in stations})
        for station, call in shares.third_calls().items():
            third.setdefault(station, []).append(StepCall("explore_share_products", {**payload, **call}))
        for s, mt in plan.masked.items():  # the partner sums its mask stream over the cohort's positions
            if s in plan.shared:
                continue  # ... in the shared-products step, which uses the same positions
            third.setdefault(mt.partner, []).append(StepCall("explore_mask_sums", {
                **payload, "station": s, "peer_key": describe[s]["exchange_key"], "n_rows": n_rows[s],
                "words": mt.layout.words, "rows": masked.pack_rows(cohort[s])}))
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
        out3 = _round_lists(coordinator, third, "exploration: aggregate over the cohort",
                            decrypting | chain_keys | shares.fourth_stations())
        aggregated = {s: next(r for r in res if "jobs" in r) for s, res in out3.items() if s in jobs}
        shared3 = {s: _result_with(res, "share_totals") for s, res in out3.items()
                   if any("share_totals" in r for r in res)}
        mask_sums = {(p, r.get("station")): r["mask_sums"] for p, res in out3.items() for r in res if "mask_sums" in r
                     and "share_totals" not in r}
        mask_sums.update({(p, s): text for p, r in shared3.items() for s, text in r["mask_sums"].items()})
        shifted = {s: next(r for r in res if "chains" in r) for s, res in out3.items() if s in shift_jobs}

        fourth: dict[str, list[StepCall]] = {}
        masks, to_decrypt = {}, {}
        ec_decrypt = counted.decrypt_calls({s: r["jobs"] for s, r in aggregated.items()})
        for job in plan.jobs:
            if job.cipher == "ec":
                continue
            pub = pubs[job.right]
            res = aggregated[job.left]["jobs"][job.id]
            slots = result_slots(job, res["layout"])
            masked_cts, mask = product.mask_results(pub, product.unpack_cts(pub, res["results"]), slots)
            masks[job.id] = (mask, slots, res["layout"])
            to_decrypt.setdefault(job.right, {})[job.id] = product.pack_cts(pub, masked_cts)
        for station in to_decrypt.keys() | ec_decrypt.keys():
            fourth.setdefault(station, []).append(StepCall("explore_decrypt", {"jobs": to_decrypt.get(station, {}),
                                                                               "ec_jobs": ec_decrypt.get(station, {})}))
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
        for station, call in shares.fourth_calls(shared3).items():
            fourth.setdefault(station, []).append(StepCall("explore_share_finish", {**payload, **call}))
        out4 = _round_lists(coordinator, fourth, "exploration: decrypt masked sums", chain_keys)
        decrypted = {s: next(r for r in res if "jobs" in r) for s, res in out4.items()
                     if s in to_decrypt or s in ec_decrypt}
        shared4 = {s: _result_with(res, "pairs") for s, res in out4.items() if any("pairs" in r for r in res)}
        sums = _assemble(plan, masks, decrypted, pubs, meta)
        for job, a, j, value in counted.counts({s: r.get("ec_jobs", {}) for s, r in decrypted.items()}):
            _store(job, job.l_columns[a], job.r_columns[j], float(value), sums.totals, sums.crosses)
        shared_totals, shared_products = shares.sums(shared3, shared4)
        for s, values in shared_totals.items():
            scaled = set(meta[s]["scaled"])
            sums.totals.setdefault(s, {}).update({c: _descale(v, product_frac(c, scaled)) for c, v in values.items()})
        for (a, b), values in shared_products.items():
            sa, sb = set(meta[a]["scaled"]), set(meta[b]["scaled"])
            sums.crosses.setdefault((a, b), {}).update(
                {(ca, cb): _descale(v, product_frac(ca, sa) + product_frac(cb, sb)) for (ca, cb), v in values.items()})
        for s, mt in plan.masked.items():
            try:
                theirs = masked.unpack_sums(mask_sums.get((mt.partner, s), ""), mt.layout.words)
            except ValueError as exc:
                raise InputError(f"masked totals: {exc}", station=mt.partner) from None
            values = masked.totals(masked.cohort_sum(masked_rows[s], cohort[s]), theirs, mt.layout)
            scaled = set(meta[s]["scaled"])
            sums.totals.setdefault(s, {}).update(
                {c: _descale(v, product_frac(c, scaled)) for c, v in zip(mt.columns, values)})
        for s in stations:  # a station's constant summed over the cohort is the cohort size (planned without a job)
            sums.totals.setdefault(s, {}).setdefault(CONST, float(len(cohort[s])))
        if plan.chains:  # the second station decrypts the masked three-way counts
            chain_masks, fifth = {}, {}
            for ch in plan.chains:
                pub = pubs[ch.b.station]
                res = product.unpack_cts(pub, next(r for r in out4[ch.c.station] if "chains" in r)["chains"][ch.id])
                slots = [[(ch.slot_bits, ch.bound)] * ch.capacity for _ in res]
                masked_cts, mask = product.mask_results(pub, res, slots)
                chain_masks[ch.id] = (mask, slots)
                fifth.setdefault(ch.b.station, {})[ch.id] = product.pack_cts(pub, masked_cts)
            out5 = coordinator.round({s: StepCall("explore_decrypt", {"jobs": j}) for s, j in fifth.items()},
                                     label="exploration: decrypt masked three-way counts", final=set(fifth))
            for ch in plan.chains:
                mask, slots = chain_masks[ch.id]
                plain = product.unpack_plain(pubs[ch.b.station], out5[ch.b.station]["jobs"][ch.id])
                values = product.unmask(plain, mask, slots, pubs[ch.b.station].n)
                na, nb = len(ch.a_columns), len(ch.b_columns)
                sums.triples[ch.index] = np.array([[[values[c][a * nb + b] for c in range(len(ch.c_columns))]
                                                    for b in range(nb)] for a in range(na)], dtype=float)
    result = _release(spec, sums, protections, linked=len(cohort[hub]))
    result["linkage"] = linkage.summary(k, protections.rounding_base)
    result["protections"] = protections.as_dict()
    if evaluate:
        result["links"] = linkage.links_table()
    return result


def _assemble(plan: Plan, masks: dict, decrypted: dict, pubs: dict, meta: dict) -> CohortSums:
    """Unmask every job's sums, split the packed slots, and scale back to real numbers."""
    totals: dict[str, dict[str, float]] = {}
    crosses: dict[tuple[str, str], dict[tuple[str, str], float]] = {}
    for job in plan.jobs:
        if job.cipher == "ec":
            continue  # counts: CountsRun.counts
        mask, slots, layout = masks[job.id]
        plain = product.unpack_plain(pubs[job.right], decrypted[job.right]["jobs"][job.id])
        values = product.unmask(plain, mask, slots, pubs[job.right].n)
        l_scaled, r_scaled = set(meta[job.left]["scaled"]), set(meta[job.right]["scaled"])
        for ct_values, entries in zip(values, layout):
            offset = 0
            for a, g in entries:
                lname = job.l_columns[a]
                for b in job.groups[g]:
                    rname = job.r_columns[b]
                    value = _descale(ct_values[offset], product_frac(lname, l_scaled) + product_frac(rname, r_scaled))
                    offset += 1
                    _store(job, lname, rname, value, totals, crosses)
    return CohortSums(totals=totals, crosses=crosses, meta=meta)


def _store(job: PlanJob, lname: str, rname: str, value: float, totals: dict, crosses: dict) -> None:
    """One cohort sum of a job: a product of the two stations' columns, and a station's total where the other
    side is the constant."""
    if job.kind == "totals":
        totals.setdefault(job.left, {})[lname] = value
        return
    crosses.setdefault((job.left, job.right), {})[(lname, rname)] = value
    if job.l_totals and rname == CONST:
        totals.setdefault(job.left, {})[lname] = value
    if job.r_totals and lname == CONST:
        totals.setdefault(job.right, {})[rname] = value


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


__all__ = ["STEPS", "explore"]
