"""The coordinator's first training rounds, shared by logistic and Cox regression.

Round 1 adds ``train_setup`` to linkage's first round (each station checks and describes its
columns and makes a channel key); round 2 adds the model's rows step (each station's rows,
masked and sealed for its peer) to linkage's second. Then the link is matched and the column
layout of the shared design matrix fixed: per station (hub, partner, others) its features, then
its open columns (completeness flags, the outcome or event).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..linkage.protocol import Linkage, LinkageRun, check_researcher_protections
from ..runtime.coordinator import Coordinator, StepCall
from ..runtime.errors import InputError, PrivacyError
from . import products
from . import shares as sh
from .design import FRAC_BITS_X, LOW_BITS
from .labels import Seeded
from .spec import TrainSpec
from .terms import MAX_BITS, product_features, product_shift


@dataclass
class Start:
    hub: str
    partner: str
    order: list[str]                  # hub, partner, other feature stations
    seeds: dict[str, bytes]           # per station, shared with the coordinator only
    receivers: dict[str, str]         # whose sealed rows go to whom
    sealed: dict[str, str]
    linkage: Linkage
    k: int                            # the effective minimum cell count
    metas: dict[str, dict]
    protections: dict = field(default_factory=dict)  # what was in force (lancelot.policy.Protections)
    base: int = 1                     # released counts are rounded to a multiple of this
    widths: list[list] = field(default_factory=list)
    features: list[dict] = field(default_factory=list)
    open_names: list[str] = field(default_factory=list)
    layout: dict = field(default_factory=dict)
    interactions: list[dict] = field(default_factory=list)   # per interaction: its factor and product columns
    ties: list[tuple[int, float]] = field(default_factory=list)   # per design column after the model's: the
    # model coefficient it follows and the factor (low bits of a column or a product; a factor's low bits in a product)

    @property
    def p(self) -> int:
        return len(self.features)

    @property
    def q_total(self) -> int:
        """The stations' columns (features and open columns); the design adds the interaction columns."""
        return sum(w for _, w in self.widths)

    @property
    def q_design(self) -> int:
        return self.layout["q"]

    @property
    def p_design(self) -> int:
        """Design columns the stations compute with: the model's, then the low-bits columns."""
        return len(self.layout["features"])

    def expand(self) -> np.ndarray:
        """A (p_design x p): the design's coefficients are A beta (a low-bits column's is 2^-16 times its
        feature's), so the stations' Hessian H and gradient g over the design are A'HA and A'g for the model."""
        out = np.zeros((self.p_design, self.p))
        out[np.arange(self.p), np.arange(self.p)] = 1.0
        for row, (feature, factor) in enumerate(self.ties, start=self.p):
            out[row, feature] = factor
        return out

    def score_bounds(self) -> tuple[np.ndarray, list[list[int]]]:
        """Each design column's largest absolute value, and the groups of columns of which a record has at most
        one nonzero (a categorical column's dummies): the validations' bound on how far a refitted model's
        scores can move (:func:`lancelot.training.validation.score_reach`)."""
        bounds = np.array([2.0 ** f.get("max_bits", MAX_BITS) for f in self.features]
                          + [2.0 ** MAX_BITS] * (self.p_design - self.p))
        levels: dict[tuple, list[int]] = {}
        for j, f in enumerate(self.features):
            if f.get("level") is not None:
                levels.setdefault((f["station"], f["column"]), []).append(j)
        return bounds, list(levels.values())

    @property
    def names(self) -> list[str]:
        return [f["name"] for f in self.features]

    def col_start(self, station: str) -> int:
        out = 0
        for s, w in self.widths:
            if s == station:
                return out
            out += w
        raise KeyError(station)

    def design_mask(self, n: int) -> np.ndarray:
        """The coordinator's mask b over n design rows: the sum of the hub's and the partner's shares,
        each derived from the seed that station shares with the coordinator."""
        shape = (n, self.q_design)
        return sh.prg(self.seeds[self.hub], Seeded.DESIGN_MASK, shape) + sh.prg(self.seeds[self.partner],
                                                                                Seeded.DESIGN_MASK, shape)

    def share_round(self, coordinator: Coordinator, step: str, parts: dict[str, dict], b: np.ndarray, label: str,
                    partner_extra: dict | None = None) -> dict:
        """The round that turns the relayed rows into H's and P's shares of the design (f = X - b), with the
        Beaver triples of the interaction columns (:mod:`.products`) when the design has any; returns, per
        station, what the first iteration's opening round carries to it from the other: its sealed part of f
        (and its first product opening)."""
        hub, partner, layout = self.hub, self.partner, self.layout
        extra: dict[str, dict] = {hub: {}, partner: dict(partner_extra or {})}
        if layout["products"]:
            dealt = products.deal(self.seeds[hub], self.seeds[partner], layout, len(b), b)
            extra[hub]["products"] = {"layout": layout, "low": dealt["low"]}
            extra[partner]["products"] = {"layout": layout, **dealt}
            label += " and interaction products (opening 1 of 2)"
        with coordinator.cost.phase("training: shares"):
            res = coordinator.round({s: StepCall(step, {"parts": parts[s], "partner": other, **extra[s]})
                                     for s, other in ((hub, partner), (partner, hub))}, label=label)
        crossed = self.crossed_products(res)
        return {s: {"relay": res[other]["sealed"], "partner": other, **crossed[s]}
                for s, other in ((hub, partner), (partner, hub))}

    def crossed_products(self, res: dict) -> dict[str, dict]:
        """What H and P relay to each other of an interaction opening in a round's results (nothing without
        interaction columns): each gets the other's ``products`` as its ``products_relay``."""
        hub, partner = self.hub, self.partner
        if not self.layout["products"]:
            return {hub: {}, partner: {}}
        return {hub: {"products_relay": res[partner]["products"]}, partner: {"products_relay": res[hub]["products"]}}


def start_training(coordinator: Coordinator, spec: TrainSpec, spec_raw: dict, min_cell_count: int | None,
                   evaluate: bool, rows_step: str, what: str, rounding_base: int | None = None) -> Start:
    """Linkage with the set-up and rows steps merged into its two rounds; refuse a cohort below k."""
    check_researcher_protections(min_cell_count, rounding_base)
    run = LinkageRun.for_run(coordinator, spec.linkage, evaluate, "training")
    hub, others = run.spec.hub, run.spec.others
    if spec.outcome_station != hub:
        raise InputError(f"{what} must be at the linkage hub '{hub}' (not at '{spec.outcome_station}')")
    partner = others[0]
    order = [hub] + others
    roles = {hub: "hub", partner: "partner", **{s: "other" for s in others[1:]}}
    seeds = {s: sh.new_seed() for s in order}
    payload = {"spec": spec_raw, "stations": coordinator.stations}
    with coordinator.cost.phase("linkage + set-up"):
        calls = {s: StepCall.combine(c, StepCall("train_setup", {**payload, "seed": seeds[s].hex(), "role": roles[s]}))
                 for s, c in run.first_calls().items()}
        res = coordinator.round(calls, label="linkage: encode keys; training: check columns, channel keys")
        first = {s: r["results"][0] for s, r in res.items()}
        metas = {s: r["results"][1]["meta"] for s, r in res.items()}
        public = {s: r["results"][1]["public_key"] for s, r in res.items()}
        receivers = {hub: partner, **{s: hub for s in others}}
        peers = {hub: {s: public[s] for s in others}, **{s: {hub: public[hub]} for s in others}}
        rows = {**payload, "n_hub": int(first[hub]["n"]), "strata_copies": strata_copies(spec, hub, metas)}
        calls = {s: StepCall.combine(c, StepCall(rows_step, {**rows, "peers": peers[s], "receiver": receivers[s]}))
                 for s, c in run.second_calls(first).items()}
        res = coordinator.round(calls, label="linkage: pseudonyms; training: masked rows, sealed for the peer")
        second = {s: r["results"][0] for s, r in res.items()}
        sealed = {s: r["results"][1]["sealed"] for s, r in res.items()}
        linkage = run.finish(first, second)
    protections = linkage.protections(min_cell_count, rounding_base)
    k = protections.min_cell_count
    if len(linkage.cohort()[hub]) < k:
        raise PrivacyError(linkage.small_cohort(k))
    out = Start(hub, partner, order, seeds, receivers, sealed, linkage, k, metas, protections=protections.as_dict(),
                base=protections.rounding_base)
    feat_cols, open_cols, low_cols, strata_cols, low_of, start = [], [], [], [], {}, 0
    for s in order:
        m = metas[s]
        hidden = m.get("strata_columns", 0)
        q = len(m["features"]) + hidden + len(m["open"])
        out.widths.append([s, q])
        strata_cols += [start + len(m["features"]) + j for j in range(hidden)]
        first = len(out.features)
        for j, f in enumerate(m["features"]):
            if "low_bits_of" in f:
                low_cols.append(start + j)
                low_of[first + f["low_bits_of"]] = start + j
                out.ties.append((first + f["low_bits_of"], 2.0 ** -LOW_BITS))
                continue
            out.features.append({**f, "station": s})
            feat_cols.append(start + j)
        for j, name in enumerate(m["open"]):
            open_cols.append(start + len(m["features"]) + hidden + j)
            out.open_names.append(name)
        start += q
    # interaction columns after every station's block: products of two feature columns, computed on shares
    new, pairs, out.interactions = product_features(out.features, spec.interactions, feat_cols)
    pairs, product_ties = exact_products(out.features, new, pairs, feat_cols, low_of)
    out.features += new
    m = len(pairs)
    feat_cols += [start + k for k in range(len(new))]
    extra = [start + k for k in range(len(new), m)] + [start + m + k for k in range(m)]   # factor low bits; own low bits
    out.ties += product_ties
    out.layout = {"widths": out.widths, "features": feat_cols + low_cols + extra, "open": open_cols, "products": pairs,
                  "q": start + 2 * m, **({"strata": strata_cols} if strata_cols else {})}
    return out


def strata_copies(spec: TrainSpec, hub: str, metas: dict[str, dict]) -> int:
    """Cox with strata at a station other than the hub: the number of strata, i.e. of copies of the hub's rows
    the fit runs on (cox_fit); 0 otherwise. The levels were described in round 1."""
    if spec.strata is None or spec.strata[0] == hub:
        return 0
    return len(metas[spec.strata[0]].get("strata_levels") or [])


def exact_products(features: list[dict], new: list[dict], pairs: list[list[int]], feat_cols: list[int],
                   low_of: dict[int, int]) -> tuple[list[list[int]], list[tuple[int, float]]]:
    """Interaction columns as exact as their factors (design._low_bits): a product x_i x_j / 2^s is formed from
    the factors' 16-bit columns and rounded to 16 bits, so each product gets (1) one more product per factor
    with low bits, x_a times the other's low-bits column, tied to the interaction with 2^(s' - s - 16), and
    (2) for every product column a column with the bits its rounding dropped (products.finish_round), tied
    with 2^-(16 + shift). The low-bits columns' own product (2^-32) is left out. Returns every product pair
    (the interactions' first) and the ties of the columns after the model's: the cross products', then one
    per product column."""
    p_main = len(features)
    out = list(pairs)
    ties: list[tuple[int, float]] = []
    owner: list[tuple[int, float]] = [(p_main + k, 1.0) for k in range(len(pairs))]
    for k, (fi, fj) in enumerate(f["product"] for f in new):
        s = pairs[k][2]
        for a, b in ((fi, fj), (fj, fi)):
            if b in low_of:
                s2 = product_shift(features[a], {"max_bits": 0})   # a low-bits column lies below 1
                out.append([feat_cols[a], low_of[b], s2])
                tie = (p_main + k, 2.0 ** (s2 - s - LOW_BITS))
                ties.append(tie)
                owner.append(tie)
    ties += [(f, factor * 2.0 ** -(FRAC_BITS_X + pair[2])) for (f, factor), pair in zip(owner, out)]
    return out, ties
