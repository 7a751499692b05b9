"""Logistic regression on the linked cohort, fitted exactly by Newton-Raphson on secret shares:
the coordinator's side (the station steps are in :mod:`lancelot.training.logistic_steps`).

Parties: the hub H (outcome and its features), its partner P (the first other station), further
stations O (features only) and the coordinator C, which holds the link. H and P end up with
additive shares (mod 2^64) of the cohort's design matrix in cohort order without learning which of
their own records are in it; C never sees a feature value. Per Newton iteration:

* ``train_open``: H and P compute shares of the linear predictor z = X beta, permute them with a
  fresh permutation only they know and send them re-masked; C opens z, the outcome and the
  completeness flags *in that unknown order* and computes p = sigmoid(z) and w = p(1 - p).
* ``train_aggregate``: C returns shares of w, of the residual r = y - p and of w times its own mask;
  H and P compute shares of the gradient X'r and Hessian X'WX; C opens only those sums and takes the
  Newton step.

Rounds: two linkage rounds (which also carry the training set-up), one share-distribution round,
then two rounds per iteration. Leakage table and the algebra: docs/leakage/training.md.
"""

from __future__ import annotations

import math

import numpy as np

from ..disclosure import release_count, release_share, round_magnitude
from ..runtime.coordinator import Coordinator, StepCall
from ..runtime.errors import InputError, PrivacyError
from . import logistic, terms, validation
from . import shares as sh
from .design import FRAC_BITS_X, LOW_BITS, MAX_ENCODED
from .labels import LogisticDealt, Seeded, Validation, at
from .newton import convergence, newton, ridge
from .release import LOGISTIC_CELLS, check_residual_dof, disclosure_note
from .spec import TrainSpec
from .start import Start, start_training
from .validation import check_repetitions

FRAC_BITS_BETA = 24
MAX_FRAC_BITS_W = 24
MAX_FRAC_BITS_R = 32



def _frac_bits(n: int, sumsq_bits: int) -> tuple[int, int]:
    """Fixed-point bits of the weights w and residuals r, so that every Hessian entry
    (< max sum of squares / 4, by Cauchy-Schwarz) and gradient entry (< n * MAX_ENCODED) fits in int64."""
    n = max(n, 1)
    w_bits = min(MAX_FRAC_BITS_W, 62 - 2 * FRAC_BITS_X - (sumsq_bits - 2))
    r_bits = min(MAX_FRAC_BITS_R, 62 - FRAC_BITS_X - math.ceil(math.log2(n * MAX_ENCODED)) - 1)
    if w_bits < 8:
        raise InputError("the linked cohort is too large for 64-bit shares at this precision")
    return w_bits, r_bits


def train_logistic(coordinator: Coordinator, spec: TrainSpec, spec_raw: dict, min_cell_count: int | None = None,
                   evaluate: bool = False, rounding_base: int | None = None) -> dict:
    """Fit a logistic model on the linked cohort; release only what passes disclosure control."""
    st = start_training(coordinator, spec, spec_raw, min_cell_count, evaluate, "train_rows", "the outcome",
                        rounding_base)
    hub, seeds, linkage = st.hub, st.seeds, st.linkage
    cohort = linkage.cohort()
    n = len(cohort[hub])
    if spec.validation:   # before the fit: the stations would refuse the resamples after it
        check_repetitions(spec.validation["repetitions"], n)
    sumsq = {s_: m["sumsq_bits"] for s_, m in st.metas.items()}
    bounds = [terms.product_sumsq_bits(st.features[i], st.features[j], sumsq[st.features[i]["station"]],
                                       sumsq[st.features[j]["station"]], f["shift"])
              for f in st.features if "product" in f for i, j in [f["product"]]]
    # each product's dropped bits (products.finish_round): below 2^shift in size
    bounds += [math.ceil(math.log2(max(n, 2))) + 2 * int(pair[2]) for pair in st.layout["products"]]

    # C's mask b = b_H + b_P; corrections turn the peer's masked rows into f = X - b (the peer never
    # sees X, nor which rows are in the cohort)
    b = st.design_mask(n)
    parts: dict[str, dict] = {hub: {}, st.partner: {}}
    for s, q in st.widths:
        idx = cohort[s]
        rows_mask = sh.prg(seeds[s], Seeded.ROWS, (linkage.n_rows[s], q))
        corr = rows_mask[idx] + b[:, st.col_start(s):st.col_start(s) + q]
        parts[st.receivers[s]][s] = {"sealed": st.sealed[s], "idx": idx.tolist(), "corr": sh.pack(corr)}
    relay = st.share_round(coordinator, "train_share", parts, b, "training: cohort shares from the relayed rows")
    fit = _LogisticFit(coordinator, spec, st, n, _frac_bits(n, max([*sumsq.values(), *bounds])), relay)
    with coordinator.cost.phase("training: Newton iterations"):
        beta = newton(fit, st.p, spec, intercept=True, likelihood="log_likelihood",
                      diverged=lambda b_: _separation(st.names, b_), log=coordinator.log, history=fit.history,
                      hint="separation or a nearly collinear design?")
    result = fit.result(beta, linkage, spec)
    if spec.validation:
        with coordinator.cost.phase(validation.PHASE):
            result["validation"] = fit.validate(spec.validation, spec.penalty)
    if evaluate:
        result["links"] = linkage.links_table()
    return result


class _LogisticFit:
    """The coordinator's side of the Newton iterations (state between rounds lives here)."""

    def __init__(self, coordinator: Coordinator, spec: TrainSpec, st: Start, n: int, frac_bits: tuple[int, int],
                 relay: dict):
        self.c, self.spec, self.st, self.n, self.relay = coordinator, spec, st, n, relay
        self.fw, self.fr = frac_bits
        self.history: list[dict] = []
        self.summaries: list[dict] = []

    def iteration(self, t: int, beta: np.ndarray):
        """Open the permuted linear predictors, deal the weights and residuals, open X'WX and X'r; the first
        iteration also carries the peers' relayed shares (and interaction openings)."""
        st, c = self.st, self.c
        hub, partner, layout, seeds, p = st.hub, st.partner, st.layout, st.seeds, st.p_design
        expand = st.expand()
        beta_int = [int(v) for v in np.rint(expand @ beta * 2 ** FRAC_BITS_BETA)]
        first = self.relay if t == 0 else {hub: {}, partner: {}}
        calls = {s: StepCall("train_open", {"t": t, "beta": beta_int, "layout": layout, **first[s]})
                 for s in (hub, partner)}
        res = c.round(calls, label=f"training: iteration {t + 1}, open permuted linear predictors")
        relays = st.crossed_products(res) if t == 0 else {hub: {}, partner: {}}
        opened = sh.unpack(res[hub]["shares"]) + sh.unpack(res[partner]["shares"])
        open_names = st.open_names
        z = sh.decode(opened[:, 0], FRAC_BITS_X + FRAC_BITS_BETA)
        ov = opened[:, 1:1 + len(open_names)].view(np.int64)
        b_perm = opened[:, 1 + len(open_names):]
        complete = np.all(ov[:, [i for i, nm in enumerate(open_names) if nm.startswith("complete:")]] == 1, axis=1)
        y = ov[:, open_names.index("outcome")].astype(float)
        if t == 0:
            _check_counts(complete, y, st.p, st.k)
            if self.spec.validation:   # the resample Hessians weight the complete cases only
                check_repetitions(self.spec.validation["repetitions"], int(complete.sum()))
        prob = logistic.sigmoid(z)
        w = np.where(complete, prob * (1 - prob), 0.0)
        r = np.where(complete, y - prob, 0.0)
        w_ring, r_ring = sh.encode(w, self.fw), sh.encode(r, self.fr)
        u = b_perm * w_ring[:, None]
        own = np.concatenate([(b_perm.T @ u).ravel(), b_perm.T @ r_ring])
        seed = seeds[hub]
        w_h = sh.prg(seed, at(LogisticDealt.WEIGHTS, t), self.n)
        u_h = sh.prg(seed, at(LogisticDealt.WEIGHTED_MASK, t), (self.n, p))
        r_h = sh.prg(seed, at(LogisticDealt.RESIDUALS, t), self.n)
        dealt = {LogisticDealt.WEIGHTS: sh.pack(w_ring - w_h), LogisticDealt.WEIGHTED_MASK: sh.pack(u - u_h),
                 LogisticDealt.RESIDUALS: sh.pack(r_ring - r_h)}
        calls = {hub: StepCall("train_aggregate", {"t": t, "layout": layout, **relays[hub]}),
                 partner: StepCall("train_aggregate", {"t": t, "layout": layout, **dealt, **relays[partner]})}
        res = c.round(calls, label=f"training: iteration {t + 1}, gradient and Hessian shares")
        total = sh.unpack(res[hub]["sums"]) + sh.unpack(res[partner]["sums"]) + own
        hess = expand.T @ sh.decode(total[:p * p], 2 * FRAC_BITS_X + self.fw).reshape(p, p) @ expand
        grad = expand.T @ sh.decode(total[p * p:], FRAC_BITS_X + self.fr)
        hess = (hess + hess.T) / 2
        if t == 0:
            self._first_checks(hess, grad)
        self.last = {"hess": hess, "z": z, "y": y, "complete": complete, "t": t, "beta": beta, "w": w, "r": r,
                     "b_perm": b_perm}
        # at beta = 0 the log-likelihood is -n log 2: the exact number of complete cases, so withheld
        return hess, grad, (logistic.log_likelihood(z[complete], y[complete]) if t > 0 else None)

    def _first_checks(self, hess: np.ndarray, grad: np.ndarray) -> None:
        """At beta = 0, before any coefficient exists: the cells of binary features and interactions, then
        identifiability (so that a refusal never tells an empty cell from a small one), and the feature
        summaries. The first Hessian's intercept row holds the encoded column sums, the gradient those over
        the events (see logistic.binary_levels)."""
        st, k, features = self.st, self.st.k, self.st.features
        logistic.check_levels(logistic.binary_levels(hess, grad, features), k, LOGISTIC_CELLS)
        n_c, events_c = 4 * hess[0, 0], grad[0] + 2 * hess[0, 0]
        totals = terms.original_sums(4 * hess[0], n_c, features)
        totals_ev = terms.original_sums(grad + 2 * hess[0], events_c, features)
        terms.check_cross_cells(st.interactions, features, {
            "patients": (totals, n_c), "events": (totals_ev, events_c),
            "non-events": (totals - totals_ev, n_c - events_c)}, k)
        logistic.check_identifiable(hess, st.names)   # after the cells: a product empty in a cell is a small cell
        moments = terms.original_moments(hess[0] / hess[0, 0], hess / hess[0, 0], features)
        self.summaries = terms.with_product_means(logistic.feature_summary(moments, features, n_c, st.base), features,
                                                  totals, n_c, first=1, base=st.base)

    def validate(self, options: dict, penalty: float) -> dict:
        """Bootstrap optimism of the AUC and calibration slope in four rounds for all resamples
        (:mod:`.validation`); the resample weights and scores stay on shares."""
        st, c, last = self.st, self.c, self.last
        hub, partner, layout, t = st.hub, st.partner, st.layout, last["t"]
        reps, bins = options["repetitions"], options["bins"]
        design_bounds, exclusive = st.score_bounds()
        boot = validation.Bootstrap(last, st.seeds[hub], st.expand(), design_bounds, reps, bins, (self.fw, self.fr),
                                    penalty, exclusive=exclusive, k=st.k)
        c.log(f"training: internal validation, {reps} bootstrap resamples, {bins} bins: about "
              f"{validation.relayed_bytes(self.n, st.p_design, reps, bins) / 1e6:.0f} MB to relay, 4 rounds")
        common = {"t": t, "layout": layout, "repetitions": reps}
        res = c.round({hub: StepCall("train_resample", common),
                       partner: StepCall("train_resample", {**common, **boot.resample_material()})},
                      label="validation: resample Hessians and gradients (one Newton step each)")
        betas, ok = boot.one_step(sh.unpack(res[hub]["sums"]) + sh.unpack(res[partner]["sums"]))
        res = c.round({hub: StepCall("train_bin", common),
                       partner: StepCall("train_bin", {**common, **boot.score_material(betas)})},
                      label="validation: masked bin-scaled scores between the stations")
        ok = ok & boot.kept
        counting = {**common, "bins": bins, "weights": sh.pack(boot.statistic_weights())}
        res = c.round({hub: StepCall("train_count", {**counting, "sealed": res[partner]["sealed"]}),
                       partner: StepCall("train_count", {**counting, "sealed": res[hub]["sealed"],
                                                         **boot.table_material()})},
                      label="validation: events and non-events per bin on shares, calibration statistics")
        opened = sh.unpack(res[hub]["stats"]) + sh.unpack(res[partner]["stats"])
        moments = reps * 2 * validation.STATISTICS   # per resample and cohort, then the events and non-events
        slopes = validation.recalibration_slopes(
            validation.decode_statistics(opened[:moments].reshape(reps, 2, validation.STATISTICS)))
        totals = opened[moments:].view(np.int64).astype(float).reshape(reps, 2, 2)
        triple = validation.deal_triples(st.seeds[hub], st.seeds[partner], t, (reps, 2, bins))
        res = c.round({hub: StepCall("train_auc", {**common, "sealed": res[partner]["sealed"]}),
                       partner: StepCall("train_auc", {**common, "sealed": res[hub]["sealed"],
                                                       Validation.TRIPLE_C: triple})},
                      label="validation: the AUC's pair counts")
        numerators = (sh.unpack(res[hub]["auc"]) + sh.unpack(res[partner]["auc"])).view(np.int64).astype(float)
        complete = last["complete"]
        z_c, y_c = last["z"][complete], last["y"][complete]
        summary = validation.summarise(numerators, totals, slopes, ok, logistic.auc(z_c, y_c),
                                       validation.apparent_slope(z_c, y_c))
        return validation.release(summary, bins)

    def result(self, beta: np.ndarray, linkage, spec: TrainSpec) -> dict:
        st, k, base, features = self.st, self.st.k, self.st.base, self.st.features
        last = self.last
        cov_enc = np.linalg.inv(last["hess"] + np.diag(ridge(st.p, spec.penalty, intercept=True)))
        beta_orig, cov = terms.to_original(beta, cov_enc, features, intercept=True)
        complete, z = last["complete"], last["z"]
        prob = logistic.sigmoid(z[complete])
        y_c = last["y"][complete]
        quality = {"auc": round_magnitude(logistic.auc(z[complete], y_c)), "calibration": _calibration(prob, y_c, k, base)}
        n_used, events = int(complete.sum()), int(y_c.sum())
        return {
            "model": "logistic",
            "outcome": {"station": spec.outcome_station, "column": spec.outcome_column},
            "coefficients": logistic.coefficient_table(beta_orig, cov, features, self.summaries),
            "features": self.summaries,  # mean and SD over the complete cases, to 4 significant digits
            "covariance": cov.tolist(),  # of the estimates, in the coefficients' order (for predictions)
            "reference_levels": {f["column"]: f["reference"] for f in features if f.get("level") is not None},
            **terms.released_terms(st.interactions, features, beta_orig, cov, self.summaries, "odds_ratio"),
            **terms.reading_notes(features),
            "n_used": release_count(n_used, k, base), "events": release_count(events, k, base),
            "cohort": {"linked": release_count(self.n, k, base), "complete_cases": release_count(n_used, k, base),
                       "note": "complete cases: records missing a feature or the outcome at any station are left out"},
            "quality": quality,
            "convergence": convergence(self.history, spec, "standard errors use the Hessian at",
                                       "the log-likelihood at the start (all coefficients 0) is withheld, as it is a "
                                       "function of the number of complete cases alone"),
            "precision": {"feature_bits": FRAC_BITS_X, "non_integer_feature_bits": FRAC_BITS_X + LOW_BITS, "weight_bits": self.fw, "residual_bits": self.fr,
                          "coefficient_bits": FRAC_BITS_BETA},
            "min_cell_count": k,
            "protections": st.protections,
            "disclosure_control": disclosure_note("logistic", k, base),
            "linkage": linkage.summary(k, base),
        }


def _separation(names: list[str], beta: np.ndarray) -> InputError:
    worst = names[1 + int(np.argmax(np.abs(beta[1:])))] if len(beta) > 1 else names[0]
    return InputError(f"the outcome is (quasi-)perfectly separated, probably by '{worst}': the coefficients "
                      "diverge; drop or merge that feature, or use a penalty")


def _check_counts(complete: np.ndarray, y: np.ndarray, p: int, k: int) -> None:
    """Before any coefficient exists: at least k complete cases, events and non-events, ACRO's residual
    degrees of freedom, and (a statistical rule) 10 complete cases per coefficient. No message shows a count."""
    n = int(complete.sum())
    events = int(y[complete].sum())
    if n < k or min(events, n - events) < k:
        raise PrivacyError(f"too few complete cases, events or non-events (minimum {k} each) in the linked cohort")
    check_residual_dof(n, p, "complete cases")
    if n < 10 * p:
        raise InputError(f"too few complete cases for {p} coefficients: at least 10 per coefficient are needed")


def _calibration(prob: np.ndarray, y: np.ndarray, k: int, base: int) -> list[dict]:
    """Calibration groups with rounded sizes; a group's observed rate comes from its rounded counts and is
    withheld when the group has fewer than k events or non-events, none included (everyone in the group
    would share the outcome)."""
    out = []
    for g in logistic.calibration(prob, y, k):
        n = g["n"]
        events = round(g["observed_rate"] * n)
        small = min(events, n - events) < k
        out.append({"n": release_count(n, k, base), "mean_predicted": round_magnitude(g["mean_predicted"]),
                    "observed_rate": None if small else release_share(events, n, k, base)})
    return out


__all__ = ["train_logistic"]
