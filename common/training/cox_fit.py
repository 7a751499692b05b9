"""Cox proportional hazards on the linked cohort, fitted exactly by Newton-Raphson (Efron or Breslow ties):
the coordinator's side (the station steps are in :mod:`lancelot.training.cox_steps`).

The hub H holds survival time and event; its partner P and further stations O hold features.
Unlike logistic regression, Cox needs the time order: every risk-set sum runs over the records
still alive at an event time. Design (algebra and leakage: docs/leakage/training.md):

* **Domain = all of H's rows, padded.** H and P hold the design matrix in H's (shuffled) row
  order as f = X - b (both know f, only the coordinator C knows b); rows of H that are not in the
  cohort get zero features from dummy rows, so nobody but C knows who is linked. H knows its own
  time order; it tells P (sealed) the order and the tie structure of its whole table, which
  means nothing to P. C never learns the time order.
* **Per iteration** H and P open the linear predictors to C in a fresh secret permutation (as in
  logistic regression, padding rows randomised); C computes r = exp(z - max z) exactly and deals
  shares of it. H and P form risk-set sums S_k and G_k = sum r x in time order on shares, and open
  them to C only blinded: S_k times a random factor (log-uniform over 2^64) and G_k under a
  uniform mask. C inverts the blinded sums, H and P unblind, and the per-record weights
  w_i = r_i (Lambda_i - d_i B_i) and the risk-set means come back as shares. Gradient X'(d - w)
  and Hessian X'WX - sum_l abar_l abar_l' are opened as sums only.
* **Efron ties** need (S_k - a S^D_k) for a = l / D_k, with D_k the number of cohort deaths at the
  k-th event time, which only C may know: one extra round in which C deals a * (masked S^D_k).
* **Strata** at H are blocks of H's time order. At another station the rows are S copies of H's rows,
  one block per stratum, and a record is a member of its own stratum's copy only: its membership
  m * D_s is formed on shares from the stratum's 0/1 design column (design note: docs/design/treatment-effects.md).

Rounds: 2 linkage rounds (carrying the set-up), 1 share round, then per iteration 4 (Breslow) or
5 (Efron); the concordance index comes with the last iteration when Newton's step sizes predict
it (otherwise one more round).
"""

from __future__ import annotations

import math

import numpy as np

from ..runtime.coordinator import Coordinator, StepCall
from ..runtime.errors import InputError, PrivacyError
from . import cox_validation, hazards, logistic, terms, validation
from . import shares as sh
from .cox_release import released
from .cox_shares import Deal
from .cox_steps import (
    A_BITS,
    ALPHA_BITS,
    E_BITS,
    FRAC_BITS_BETA,
    LOGRHO_BITS,
    RG,
    RX,
    W_BITS,
    XBAR_BITS,
)
from .design import FRAC_BITS_X
from .labels import CoxDealt as D
from .labels import CoxOpened as O
from .labels import CoxValidation as V
from .labels import Seeded, at
from .labels import Validation as Dealt64
from .logistic import check_levels
from .newton import newton
from .release import COX_CELLS, check_residual_dof
from .spec import TrainSpec
from .start import Start, start_training


def _reciprocal(values: np.ndarray, bits: int) -> np.ndarray:
    """floor(2^bits / v) for positive ring elements (0 where v is 0)."""
    return np.array([(1 << bits) // int(v) if int(v) > 0 else 0 for v in values], dtype=object)


def _opened(ring, results: dict, key: str) -> np.ndarray:
    return ring.add(*[ring.unpack(r[key]) for r in results.values()])


def train_cox(coordinator: Coordinator, spec: TrainSpec, spec_raw: dict, min_cell_count: int | None = None,
              evaluate: bool = False, rounding_base: int | None = None) -> dict:
    st = start_training(coordinator, spec, spec_raw, min_cell_count, evaluate, "cox_rows",
                        "the survival time and event", rounding_base)
    hub, partner, seeds, linkage, widths = st.hub, st.partner, st.seeds, st.linkage, st.widths
    if st.p == 0:
        raise InputError("a Cox model needs at least one feature")
    cohort, n = linkage.cohort(), linkage.n_rows[hub]

    # the mask b over the hub's rows; corrections turn masked rows into f = X - b in the hub's order
    b = st.design_mask(n)
    member = np.zeros(n, dtype=np.uint64)
    member[cohort[hub]] = 1
    outside = np.setdiff1d(np.arange(n), cohort[hub])
    parts: dict[str, dict] = {hub: {}, partner: {}}
    for s, q in widths:
        cols = b[:, st.col_start(s):st.col_start(s) + q]
        if s == hub:
            parts[partner][s] = {"sealed": st.sealed[s], "corr": sh.pack(sh.prg(seeds[s], Seeded.ROWS, (n, q)) + cols)}
            continue
        n_s = linkage.n_rows[s]
        ext = sh.permutation(seeds[s], Seeded.PADDING, n_s + n)
        idx = np.empty(n, dtype=np.int64)
        idx[cohort[hub]] = ext[cohort[s]]                 # linked: the station's own row
        idx[outside] = ext[n_s + np.arange(len(outside))]  # not linked: a distinct dummy row
        corr = sh.prg(seeds[s], Seeded.ROWS, (n_s + n, q))[idx] + cols
        parts[hub][s] = {"sealed": st.sealed[s], "idx": idx.tolist(), "corr": sh.pack(corr)}
    m_partner = member - sh.prg(seeds[hub], Seeded.MEMBERSHIP, n)
    extra = {Seeded.MEMBERSHIP: sh.pack(m_partner)}
    strata_cols = st.layout.get("strata")
    if strata_cols:   # strata away from the hub: shares of m * b_D, from which H and P select the strata (cox_steps)
        mb = member[:, None] * b[:, strata_cols]
        extra[Seeded.STRATA_MEMBERSHIP] = sh.pack(mb - sh.prg(seeds[hub], Seeded.STRATA_MEMBERSHIP, mb.shape))
    relay = st.share_round(coordinator, "cox_share", parts, b, "training: shares of the hub-ordered design from the "
                           "relayed rows", partner_extra=extra)

    fit = _CoxFit(coordinator, spec, st)
    if spec.strata is not None:
        fit.strata = {"station": spec.strata[0], "column": spec.strata[1], "levels": st.metas[spec.strata[0]]["strata_levels"]}
    fit.iterate(relay)
    result = released(fit, linkage, spec, st.protections)
    if spec.validation:
        with coordinator.cost.phase(cox_validation.PHASE):
            result["validation"] = fit.validate(spec.validation)
    if evaluate:
        result["links"] = linkage.links_table()
    return result


class _CoxFit:
    """The coordinator's side of the Newton iterations (state between rounds lives here)."""

    def __init__(self, coordinator: Coordinator, spec: TrainSpec, st: Start):
        self.c, self.spec, self.start = coordinator, spec, st  # st: the set-up, and what H and P relay to each other
        self.seed, self.hub, self.partner = st.seeds[st.hub], st.hub, st.partner
        self.layout, self.open_names, self.p, self.names, self.features = st.layout, st.open_names, st.p, st.names, \
            st.features
        self.k, self.base, self.interactions = st.k, st.base, st.interactions
        self.efron = spec.ties == "efron"
        self.history: list[dict] = []
        self.summaries: list[dict] = []
        self.concordance: dict | None = None
        self.strata: dict | None = None

    def _round(self, step: str, common: dict, partner_only: dict, label: str, each: dict | None = None) -> dict:
        each = each or {}
        calls = {self.hub: StepCall(step, {**common, **each.get(self.hub, {})}),
                 self.partner: StepCall(step, {**common, **partner_only, **each.get(self.partner, {})})}
        return self.c.round(calls, label=label)

    def iterate(self, relay: dict) -> None:
        self.relay = relay
        with self.c.cost.phase("training: Newton iterations"):
            self.beta_final = newton(self, self.p, self.spec, intercept=False, likelihood="log_partial_likelihood",
                                     diverged=lambda beta: _divergence(self.names, beta), log=self.c.log,
                                     history=self.history,
                                     hint="a feature that orders the events perfectly, or a nearly collinear design?")
        if self.concordance is None:   # it did not come with the last iteration: one more round
            with self.c.cost.phase("training: concordance"):
                kappa, deal = self._concordance_material()
                res = self._round("cox_finish", {"t": self.last["t"], "bins": self.spec.concordance_bins}, deal,
                                  "training: concordance (binned pair counts)")
                self._concordance_from(res, kappa)

    def iteration(self, t: int, beta: np.ndarray):
        """Open the permuted linear predictors, then the blinded risk-set rounds (:mod:`.cox_steps`); the first
        iteration also carries the peers' relayed shares (and interaction openings)."""
        spec, p, hub, partner, seed = self.spec, self.start.p_design, self.hub, self.partner, self.seed
        expand = self.start.expand()   # the design's low-bits columns (see design._low_bits)
        n_open = len(self.open_names)
        calls_common = {"t": t, "beta": [int(v) for v in np.rint(expand @ beta * 2 ** FRAC_BITS_BETA)],
                        "layout": self.layout}
        first = self.relay if t == 0 else {hub: {}, partner: {}}
        calls = {s_: StepCall("cox_open", {**calls_common, **first[s_]}) for s_ in (hub, partner)}
        res = self.c.round(calls, label=f"training: iteration {t + 1}, open permuted linear predictors")
        each = self.start.crossed_products(res) if t == 0 else None
        opened = sh.unpack(res[hub]["shares"]) + sh.unpack(res[partner]["shares"])
        z = sh.decode(opened[:, 0], FRAC_BITS_X + FRAC_BITS_BETA)
        ov = opened[:, 1:1 + n_open].view(np.int64)
        member = opened[:, 1 + n_open] == 1
        b_prime = opened[:, 2 + n_open:]
        complete = member & np.all(ov[:, [i for i, nm in enumerate(self.open_names) if nm.startswith("complete:")]] == 1,
                                   axis=1)
        died = complete & (ov[:, self.open_names.index("outcome")] == 1)
        if t == 0:
            self._check_counts(complete, died)
        n = len(z)
        zmax = float(np.max(z[complete]))
        risk = np.where(complete, np.exp(np.where(complete, z - zmax, 0.0)), 0.0)
        e_int = np.where(complete, np.maximum(np.rint(risk * 2.0 ** E_BITS), 1), 0).astype(np.int64)
        e = RX.element(e_int.astype(object))
        bs = RX.from_u64(b_prime)
        dl = RX.element(died.astype(object) * (1 << W_BITS))
        de = RX.element(np.where(died, e_int, 0).astype(object))
        u_e = RX.mul(e[:, None], bs)
        deal = Deal(seed, t)
        deal.put(RX, D.RISK, e)
        deal.put(RX, D.RISK_MASK, u_e)
        deal.put(RX, D.MASK, bs)
        deal.put(RX, D.DEATHS, dl)
        deal.put(RX, D.COMPLETE, RX.element(complete.astype(object)))
        u_d = None
        if self.efron:
            u_d = RX.mul(de[:, None], bs)
            deal.put(RX, D.DEATH_RISK, de)
            deal.put(RX, D.DEATH_RISK_MASK, u_d)
        common = {"t": t, "p": p, "features": self.layout["features"], "ties": spec.ties}
        res = self._round("cox_groups", common, deal, f"training: iteration {t + 1}, risk-set sums (blinded)", each)
        deaths_g = np.rint(RX.decode(_opened(RX, res, O.DEATHS), W_BITS)).astype(np.int64)   # sigma order
        sizes = np.asarray(res[hub]["sizes"], dtype=np.int64)
        groups = np.repeat(np.arange(len(sizes)), sizes)
        offsets = np.concatenate([np.arange(s) for s in sizes]) if len(sizes) else np.zeros(0, np.int64)
        used = offsets < deaths_g[groups]
        a_int = np.zeros(len(groups), dtype=object)
        if self.efron:
            sd_m, gd_m = _opened(RG, res, O.EFRON_S), _opened(RG, res, O.EFRON_G)
            a_int = np.array([int(round(o * 2 ** A_BITS / d)) if u else 0
                              for o, d, u in zip(offsets, deaths_g[groups], used)], dtype=object)
            fr = Deal(seed, t)
            fr.put(RG, D.FRACTION, RG.element(a_int))
            fr.put(RG, D.FRACTION_S, RG.mul(a_int, sd_m[groups]))
            fr.put(RG, D.FRACTION_G, RG.mul(a_int[:, None], gd_m[groups]))
            res = self._round("cox_fractions", {"t": t, "p": p}, fr,
                              f"training: iteration {t + 1}, Efron tie terms (blinded)")
        phi, y = _opened(RG, res, O.PHI), _opened(RG, res, O.Y)
        inverse = _reciprocal(phi, ALPHA_BITS)
        first = np.flatnonzero(offsets == 0)
        alpha0 = inverse[first]
        dal0 = RG.element(alpha0 * deaths_g.astype(object))
        # weight of each grid point: Efron 1 for each of the D tie terms, Breslow D on its one point
        weight = used.astype(object) if self.efron else deaths_g[groups].astype(object)
        alpha = RG.element(inverse * weight)
        co = Deal(seed, t)
        co.put(RG, D.RECIPROCALS, alpha)
        co.put(RX, D.USED, RX.element(weight))
        co.put(RG, D.FIRST_DEATHS, dal0)
        if self.efron:
            co.put(RG, D.RECIPROCAL_Y, RG.mul(alpha[:, None], y))
            co.put(RG, D.RECIPROCAL_FRACTION, RG.mul(alpha, a_int))
        else:
            alpha_r = RG.element(np.where(used, inverse, 0))
            co.put(RG, D.RECIPROCAL_R, alpha_r)
            co.put(RG, D.RECIPROCAL_Y, RG.mul(alpha_r[:, None], y))
            co.put(RG, D.RECIPROCAL_LY, RG.mul(alpha[:, None], y))
        res = self._round("cox_coefficients", common, co, f"training: iteration {t + 1}, unblind risk-set terms")
        abar_m = _opened(RG, res, O.MEANS)
        left_m = abar_m if self.efron else _opened(RG, res, O.LEFT)
        second = RG.sub(RG.dot(left_m.T, abar_m), _opened(RG, res, O.CROSS))
        second = RG.decode(second, 2 * XBAR_BITS).astype(float)
        second = (second + second.T) / 2
        log_phi = sum(int(w) * math.log2(int(v)) for v, w in zip(phi, weight) if w)   # log2(rho phi_int), weighted
        log_rho = float(RX.decode(_opened(RX, res, O.LOG_BLINDS), LOGRHO_BITS))
        events = int(deaths_g.sum())
        loglik = float(np.sum(z[died] - zmax)) - math.log(2) * (log_phi - log_rho - events * (A_BITS + E_BITS))
        v1 = _opened(RX, res, O.LAMBDA)
        a_w = RX.mul(e, v1)
        if self.efron:
            a_w = RX.sub(a_w, RX.mul(de, _opened(RX, res, O.EFRON_B)))
        lam_m = _opened(RG, res, O.INCREMENTS)
        we = Deal(seed, t)
        we.put(RX, D.WEIGHTS, a_w)
        we.put(RX, D.WEIGHTED_MASK, RX.mul(a_w[:, None], bs))
        we.put(RG, D.FIRST_RECIPROCAL, RG.element(alpha0))
        we.put(RG, D.INCREMENT_MASKED, RG.mul(alpha0, lam_m))
        we.put(RG, D.MEANS_MASKED, RG.mul(dal0[:, None], abar_m[first]))
        kappa = None
        self.last = {"t": t, "z": z, "complete": complete, "died": died, "n": n}
        if self._last_iteration_expected():
            kappa, material = self._concordance_material()
            we.update(material)
            common = {**common, "concordance_bins": spec.concordance_bins}
        res = self._round("cox_weights", common, we, f"training: iteration {t + 1}, gradient and Hessian shares"
                          + (" (and the concordance)" if kappa is not None else ""))
        self.concordance = None
        if kappa is not None:
            self._concordance_from(res, kappa)
        # the mask's part of every sum: one product of B' with everything it multiplies (ring.dot's fast path)
        p_d = bs.shape[1]
        blocks = [_opened(RX, res, O.WEIGHTED_MASK), RX.sub(dl, a_w)[:, None]]
        if t == 0:
            blocks += [u_e, e[:, None], dl[:, None]]
        bx = RX.dot(bs.T, np.hstack(blocks))
        first_part = RX.add(bx[:, :p_d], _opened(RX, res, O.HESSIAN_FIRST))
        hess = expand.T @ (RX.decode(first_part, W_BITS + 2 * FRAC_BITS_X).astype(float) - second) @ expand
        hess = (hess + hess.T) / 2
        grad = RX.add(bx[:, p_d], _opened(RX, res, O.GRADIENT))
        grad = expand.T @ RX.decode(grad, W_BITS + FRAC_BITS_X).astype(float)
        if t == 0:
            sxx = RX.add(bx[:, p_d + 1:2 * p_d + 1], _opened(RX, res, O.SUMS_SQUARES))
            sx = RX.add(bx[:, 2 * p_d + 1], _opened(RX, res, O.SUMS))
            n_c = int(complete.sum())
            sum_x = expand.T @ RX.decode(sx, E_BITS + FRAC_BITS_X).astype(float)
            sum_xd = expand.T @ RX.decode(RX.add(bx[:, 2 * p_d + 2], _opened(RX, res, O.SUMS_DEATHS)),
                                          W_BITS + FRAC_BITS_X).astype(float)
            n_d = int(died.sum())
            check_levels(hazards.binary_levels(sum_x, sum_xd, n_c, n_d, self.features), self.k, COX_CELLS)
            totals = terms.original_sums(sum_x, n_c, self.features)
            terms.check_cross_cells(self.interactions, self.features, {
                "patients": (totals, n_c), "events": (terms.original_sums(sum_xd, n_d, self.features), n_d)}, self.k)
            logistic.check_identifiable(hess, self.names)   # after the cells: an empty cell is refused as a small one
            cross = expand.T @ RX.decode(sxx, E_BITS + 2 * FRAC_BITS_X).astype(float) @ expand / n_c
            moments = terms.original_moments(sum_x / n_c, cross, self.features)
            self.summaries = terms.with_product_means(hazards.feature_summary(moments, n_c, self.features, self.base),
                                                      self.features, totals, n_c, first=0, base=self.base)
            self.events_at = np.rint(RX.decode(_opened(RX, res, O.EVENTS_AT), W_BITS)).astype(np.int64)
            self.mean = totals / n_c     # the complete cases' mean of every term (original scale)
            self.internal_mean = sum_x / n_c    # and on the fit's own scale (the validation centres its scores)
            if self.strata is not None:
                self._check_strata(_opened(RX, res, O.STRATA))
        base = RG.decode(_opened(RG, res, O.BASELINE), 0)   # rows: times; cols: Lambda, V0, Q (raw scales)
        base = np.column_stack([base[:, :2], base[:, 2:] @ expand])
        self.last.update(zmax=zmax, beta=beta.copy(), hess=hess, grad=grad, base=base, b_prime=b_prime,
                         at_risk=RX.signed(_opened(RX, res, O.AT_RISK)).astype(np.int64))
        return hess, grad, loglik

    def validate(self, options: dict) -> dict:
        """k-fold cross-validated concordance and calibration slope in five rounds at the last iterate
        (:mod:`.cox_validation`); the fold models and the out-of-fold scores stay on shares."""
        st, c, last, t = self.start, self.c, self.last, self.last["t"]
        folds, bins, hub, partner = options["folds"], options["bins"], self.hub, self.partner
        cvo = cox_validation.CrossValidation(last, st.expand(), *st.score_bounds(), folds, bins, self.spec.penalty,
                                             self.k, E_BITS, self.internal_mean)
        c.log(f"training: internal validation, {folds}-fold cross-validation, {bins} bins: 5 rounds")
        common = {"t": t, "folds": folds, "bins": bins}   # the stations use the fit's own columns and ties
        deal = Deal(self.seed, t)
        for name, value in cvo.sums_values().items():
            deal.put(RX, name, RX.element(value))
        res = self._round("cox_vsums", {**common, "fold_labels": cvo.labels.tolist()}, deal,
                          "validation: risk-set sums per fold (blinded)")
        rv = cox_validation.RV
        opened = {key: _opened(rv, res, name) for key, name in
                  (("Z", V.OPEN_S), ("Y", V.OPEN_Y), ("YF", V.OPEN_FOLD_Y), ("T", V.OPEN_FOLD_S), ("DF", V.OPEN_FOLD_DEATHS))}
        opened["D"] = RX.signed(_opened(RX, res, V.OPEN_DEATHS))
        deal = Deal(self.seed, t)
        for name, value in cvo.fold_material(opened).items():
            deal.put(rv, name, value)
        res = self._round("cox_vfolds", common, deal, "validation: fold score sums (one Newton step per fold)")
        cvo.refits(_opened(rv, res, V.OPEN_SCORE_SUMS))
        scores = {name: validation.deal(self.seed, at(name, t), value)
                  for name, value in cvo.score_material(V.COEFFICIENTS, V.BIN_MASK).items()}
        res = self._round("cox_vbin", common, scores, "validation: masked out-of-fold scores between the stations")
        weights, bin_scores = cvo.slope_weights()
        counting = {**common, "slope_weights": [[int(w) for w in row] for row in weights],
                    "bin_scores": [int(v) for v in bin_scores]}
        tables = {name: validation.deal(self.seed, at(name, t), table) for name, table in cvo.tables().items()}
        res = c.round({hub: StepCall("cox_vcount", {**counting, "sealed": res[partner]["sealed"]}),
                       partner: StepCall("cox_vcount", {**counting, "sealed": res[hub]["sealed"], **tables})},
                      label="validation: deaths, later records and risk sets per bin on shares")
        rs = cox_validation.RS
        slope_deal = Deal(self.seed, t)
        for name, value in cvo.slope_material(_opened(RX, res, V.OPEN_SLOPE), _opened(rs, res, V.OPEN_SLOPE_FIRST),
                                              _opened(rs, res, V.OPEN_SLOPE_DEATHS)).items():
            slope_deal.put(rs, name, value)
        event_score = int(RX.signed(_opened(RX, res, V.OPEN_EVENT_SCORE))[0])
        triple = validation.deal_triples(self.seed, st.seeds[partner], t, (2, len(opened["D"]), bins))
        res = c.round({hub: StepCall("cox_vfinish", {**common, "sealed": res[partner]["sealed"]}),
                       partner: StepCall("cox_vfinish", {**common, "sealed": res[hub]["sealed"], Dealt64.TRIPLE_C: triple,
                                                         **slope_deal})},
                      label="validation: the concordance's pair counts and the slope's score")
        counts = (sh.unpack(res[hub]["pairs"]) + sh.unpack(res[partner]["pairs"])).view(np.int64)
        slope = cvo.slope(_opened(rs, res, V.OPEN_SLOPE_MASKS), event_score)
        apparent = self.concordance["estimate"] if self.concordance else None
        return cox_validation.release(apparent, cvo.concordance(counts), slope, folds, bins)

    def _check_strata(self, opened: np.ndarray) -> None:
        """Every stratum needs k complete cases and k deaths: its baseline hazard is estimated from them alone.
        Checked at the first iteration, before any coefficient exists; the message names the strata, not counts."""
        levels = self.strata["levels"]
        sizes = RX.signed(opened[:len(levels)]).astype(np.int64)
        deaths = np.rint(RX.decode(opened[len(levels):], W_BITS)).astype(np.int64)
        small = [lv for lv, n, d in zip(levels, sizes, deaths) if n < self.k or d < self.k]
        if small:
            raise PrivacyError(f"strata {', '.join(repr(s) for s in small)} of '{self.strata['column']}' have fewer than "
                               f"{self.k} complete cases or deaths among the linked cohort: a baseline hazard of its own "
                               "would reveal them; merge strata (\"merge\" in 'strata')", station=self.strata["station"],
                               column=self.strata["column"])
        self.strata["n"], self.strata["events"] = sizes.tolist(), deaths.tolist()

    def _check_counts(self, complete: np.ndarray, died: np.ndarray) -> None:
        """Before any coefficient exists: k complete cases and events, ACRO's residual degrees of freedom
        counted on events (the partial likelihood is a sum over events: censored records only fill risk
        sets), and (a statistical rule) 10 events per coefficient. No message shows a count."""
        n_c, events = int(complete.sum()), int(died.sum())
        if n_c < self.k or events < self.k:
            raise PrivacyError(f"too few complete cases or events (minimum {self.k} each) in the linked cohort")
        check_residual_dof(events, self.p, "events")
        if events < 10 * self.p:
            raise InputError(f"too few events for {self.p} coefficients: at least 10 events per coefficient are "
                             "needed")
        if self.spec.validation:   # before any coefficient: the folds' own checks come after the fit
            cox_validation.check_fold_sizes(n_c, events, self.spec.validation["folds"], self.k)

    def _last_iteration_expected(self) -> bool:
        """Newton converges quadratically: after a step s the next is about s^2, so the fit stops after
        this iteration when s^4 is below the tolerance (then the concordance comes with its weights)."""
        return bool(self.history) and self.history[-1]["max_step"] ** 4 < self.spec.tolerance

    def _concordance_material(self) -> tuple[np.ndarray, dict]:
        """Each cohort record's quantile bin of the last opened linear predictors (cumulative indicators)
        and the weights that pick, per death, the concordant, same-bin and comparable counts."""
        last, bins, seed = self.last, self.spec.concordance_bins, self.seed
        t, z, complete, died, n = last["t"], last["z"], last["complete"], last["died"], last["n"]
        edges = np.quantile(z[complete], np.linspace(0, 1, bins + 1)[1:-1])
        b = np.searchsorted(edges, z, side="right")            # 0 .. bins-1
        cols = np.arange(1, bins + 1)
        below = (complete[:, None] & (b[:, None] < cols[None, :])).astype(object)
        kappa = np.zeros((n, bins), dtype=object)
        for i in np.flatnonzero(died):
            if b[i] >= 1:
                kappa[i, b[i] - 1] += 1
            kappa[i, b[i]] += 1 << 40          # column b+1 (index b): pairs with a bin at most b
            kappa[i, bins - 1] += 1 << 80      # all later cohort records
        material = Deal(seed, t)
        material.put(RX, D.BELOW, RX.element(below))
        material.put(RX, D.CONCORDANCE_WEIGHTS, RX.element(kappa))
        return kappa, material

    def _concordance_from(self, res: dict, kappa: np.ndarray) -> None:
        counts = _opened(RX, res, O.CONCORDANCE)
        total = int(RX.element(np.sum(RX.mul(kappa, counts)) - int(_opened(RX, res, O.CONCORDANCE_CORRECTION)[0])))
        mask40 = (1 << 40) - 1
        correct, at_most, pairs = total & mask40, (total >> 40) & mask40, total >> 80
        self.concordance = hazards.concordance(correct, at_most - correct, pairs, self.spec.concordance_bins)


def _divergence(names: list[str], beta: np.ndarray) -> InputError:
    worst = names[int(np.argmax(np.abs(beta)))] if len(beta) else "?"
    return InputError(f"the partial likelihood has no finite maximum, probably because of '{worst}' (it orders the "
                      "events (almost) perfectly): drop or merge that feature, or use a penalty")


__all__ = ["train_cox"]
