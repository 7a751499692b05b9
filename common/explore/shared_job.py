"""Exploration: the coordinator's side of shared products (:mod:`.shared`), round by round.

Round 2 (with linkage blinding): each station of a shared pair uploads its masked limbs
(``explore_share``). Round 3: C aligns the uploads to the cohort, sends each partner the cohort positions
of the station it partners, opens its Beaver matrices to the participants and hands the dealers their
seeds (``explore_share_products``). Round 4, only for pairs whose two partners differ: the partners'
sealed openings cross, and each returns its last share (``explore_share_finish``). C adds everything up:
each pair's cohort sums of products, and each shared station's column totals.
"""

from __future__ import annotations

import numpy as np

from ..runtime.errors import InputError
from ..training.shares import new_seed
from . import masked, shared
from .plan import Plan


def upload_payload(plan: Plan, station: str, describe: dict) -> dict:
    st = plan.shared[station]
    return {"columns": st.columns, "bits": st.bits, "limb_bits": st.layout.limb_bits, "partner": st.partner,
            "keys": {st.partner: describe[st.partner]["exchange_key"]}}


class SharedRun:
    """C's working state for one job's shared products: aligned uploads, its seeds, its partial sums."""

    def __init__(self, plan: Plan, uploads: dict[str, str], cohort: dict[str, np.ndarray], n_rows: dict,
                 keys: dict[str, str]):
        self.plan = plan
        self.cohort = cohort
        self.n_rows = n_rows
        self.keys = keys
        self.n = len(next(iter(cohort.values())))
        self.aligned = {}
        for s, st in plan.shared.items():
            try:
                self.aligned[s] = shared.align(uploads[s], cohort[s], st.layout.words)
            except (ValueError, KeyError, TypeError):
                raise InputError("shared products: the station's upload does not match the plan", station=s) from None
        self.partner = {s: st.partner for s, st in plan.shared.items()}
        self.seeds: dict[str, dict[str, bytes]] = {}

    def _words(self, s: str) -> int:
        return self.plan.shared[s].layout.words

    def third_calls(self) -> dict[str, dict]:
        """Per station, its round-3 payload: positions it partners, and its roles in each pair."""
        calls: dict[str, dict] = {}

        def call(station: str) -> dict:
            return calls.setdefault(station, {"keys": self.keys, "positions": {}, "pairs": []})

        for s, st in self.plan.shared.items():
            call(st.partner)["positions"][s] = {"rows": masked.pack_rows(self.cohort[s]), "n_rows": self.n_rows[s],
                                                "bits": st.bits, "limb_bits": st.layout.limb_bits,
                                                "row_bits": st.row_bits, "totals": st.totals}
            if s in self.plan.masked:  # its other totals: masked sums over the same positions
                call(st.partner)["positions"][s]["masked_words"] = self.plan.masked[s].layout.words
        for p in self.plan.shared_pairs:
            pa, pb = self.partner[p.a], self.partner[p.b]
            ka, kb = self._words(p.a), self._words(p.b)
            seeds = self.seeds[p.id] = {"2": new_seed(), "3": new_seed(), "a": new_seed(), "b": new_seed()}
            a, b = self.plan.shared[p.a], self.plan.shared[p.b]
            common = {"id": p.id, "a": p.a, "b": p.b, "pa": pa, "pb": pb, "n": self.n, "bits": [a.bits, b.bits],
                      "limb_bits": a.layout.limb_bits, "row_bits": a.row_bits, "products": p.products,
                      "dealer2": p.dealer_b, "dealer3": p.dealer_a}
            entries = {x: dict(common) for x in {pa, pb, p.dealer_a, p.dealer_b}}
            entries[pb]["open2"] = shared.pack(shared.open_c_side(self.aligned[p.a], seeds["2"]))
            entries[pa]["open3"] = shared.pack(shared.open_c_side(self.aligned[p.b], seeds["3"]))
            entries[p.dealer_b]["deal2"] = seeds["2"].hex()
            entries[p.dealer_a]["deal3"] = seeds["3"].hex()
            if pa != pb:
                entries[pa]["t4"] = {"seed": seeds["a"].hex()}
                entries[pb]["t4"] = {"seed": seeds["b"].hex(),
                                     "gamma": shared.pack(shared.c_deal(seeds["a"], seeds["b"], self.n, ka, kb))}
            for x, entry in entries.items():
                call(x)["pairs"].append(entry)
        return calls

    def fourth_stations(self) -> set[str]:
        return {self.partner[x] for p in self.plan.shared_pairs if self.partner[p.a] != self.partner[p.b]
                for x in (p.a, p.b)}

    def fourth_calls(self, third: dict[str, dict]) -> dict[str, dict]:
        """Per partner, its round-4 payload: the other partner's sealed opening (the rest it kept in round 3)."""
        calls: dict[str, dict] = {}
        for p in self.plan.shared_pairs:
            pa, pb = self.partner[p.a], self.partner[p.b]
            if pa == pb:
                continue
            sealed = {x: _field(third, x, p.id, "sealed") for x in (pa, pb)}
            for me, other in ((pa, pb), (pb, pa)):
                calls.setdefault(me, {"keys": self.keys, "pairs": []})["pairs"].append(
                    {"id": p.id, "sealed": sealed[other]})
        return calls

    def sums(self, third: dict[str, dict], fourth: dict[str, dict]) -> tuple[dict, dict]:
        """(totals per station and column, products per pair (a, b) and column pair), as exact integers."""
        totals: dict[str, dict[str, int]] = {}
        for s, st in self.plan.shared.items():
            rel = st.release
            theirs = _matrix(third.get(st.partner, {}).get("share_totals", {}).get(s), (rel.size,),
                             st.partner, "the partner's share totals")
            folded = shared.fold(self.aligned[s].sum(axis=0, dtype=np.uint64), rel) + theirs
            totals[s] = {st.columns[i]: v for i, v in shared.unfold(folded, rel).items()}
        products: dict[tuple[str, str], dict[tuple[str, str], int]] = {}
        for p in self.plan.shared_pairs:
            a, b = self.plan.shared[p.a], self.plan.shared[p.b]
            pa, pb = self.partner[p.a], self.partner[p.b]
            ka, kb = a.layout.words, b.layout.words
            seeds = self.seeds[p.id]
            e2 = _matrix(_field(third, pb, p.id, "e2"), (self.n, kb), pb, "an opened share")
            e3 = _matrix(_field(third, pa, p.id, "e3"), (self.n, ka), pa, "an opened share")
            g2 = _matrix(_field(third, p.dealer_b, p.id, "gamma2"), (ka, kb), p.dealer_b, "a dealer's share")
            g3 = _matrix(_field(third, p.dealer_a, p.id, "gamma3"), (kb, ka), p.dealer_a, "a dealer's share")
            mine = (np.ascontiguousarray(self.aligned[p.a].T) @ self.aligned[p.b]
                    + shared.c_share(seeds["2"], e2, g2, ka) + shared.c_share(seeds["3"], e3, g3, kb).T)
            rel = shared.release_products(a.layout, b.layout, a.bits, b.bits, p.products, a.row_bits)
            total = shared.fold(mine, rel)
            for x in {pa, pb}:
                total += _matrix(_field(third, x, p.id, "share"), (rel.size,), x, "a station's share")
                if pa != pb:
                    total += _matrix(_field(fourth, x, p.id, "share"), (rel.size,), x, "a station's last share")
            products[(p.a, p.b)] = {(a.columns[i], b.columns[j]): v for (i, j), v in shared.unfold(total, rel).items()}
        return totals, products


def _field(results: dict[str, dict], station: str, pair: str, name: str):
    try:
        return results[station]["pairs"][pair][name]
    except (KeyError, TypeError):
        raise InputError(f"shared products: '{name}' of {pair} is missing", station=station) from None


def _matrix(text, shape: tuple[int, ...], station: str, what: str) -> np.ndarray:
    try:
        return shared.unpack_shaped(text, shape)
    except ValueError:
        raise InputError(f"shared products: {what} is missing or of the wrong shape", station=station) from None
