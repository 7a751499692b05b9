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
from . import logistic, products, terms
from . import shares as sh
from .design import FRAC_BITS_X, MAX_ENCODED
from .release import LOGISTIC_CELLS, check_residual_dof, disclosure_note
from .spec import TrainSpec
from .start import start_training

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
        raise InputError(f"the cohort ({n} records) is too large for 64-bit shares at this precision")
    return w_bits, r_bits


def train_logistic(coordinator: Coordinator, spec: TrainSpec, spec_raw: dict, min_cell_count: int | None = None,
                   evaluate: bool = False, rounding_base: int | None = None) -> dict:
    """Fit a logistic model on the linked cohort; release only what passes disclosure control."""
    st = start_training(coordinator, spec, spec_raw, min_cell_count, evaluate, "train_rows", "the outcome",
                        rounding_base)
    hub, partner, seeds, linkage, k, base = st.hub, st.partner, st.seeds, st.linkage, st.k, st.base
    cohort = linkage.cohort()
    n = len(cohort[hub])
    widths, features, open_names, layout = st.widths, st.features, st.open_names, st.layout
    p, names = st.p, st.names
    sumsq = {s_: m["sumsq_bits"] for s_, m in st.metas.items()}
    bounds = [terms.product_sumsq_bits(features[i], features[j], sumsq[features[i]["station"]],
                                       sumsq[features[j]["station"]], f["shift"])
              for f in features if "product" in f for i, j in [f["product"]]]
    fw, fr = _frac_bits(n, max([*sumsq.values(), *bounds]))

    # C's mask b = b_H + b_P, each share derived from the station's seed; corrections turn the
    # peer's masked rows into f = X - b (the peer never sees X, nor which rows are in the cohort)
    q_design = st.q_design
    b = sh.prg(seeds[hub], "b", (n, q_design)) + sh.prg(seeds[partner], "b", (n, q_design))
    parts: dict[str, dict] = {hub: {}, partner: {}}
    for s, q in widths:
        idx = cohort[s]
        rows_mask = sh.prg(seeds[s], "rows", (linkage.n_rows[s], q))
        corr = rows_mask[idx] + b[:, st.col_start(s):st.col_start(s) + q]
        parts[st.receivers[s]][s] = {"sealed": st.sealed[s], "idx": idx.tolist(), "corr": sh.pack(corr)}
    extra: dict[str, dict] = {hub: {}, partner: {}}
    if layout["products"]:   # interaction columns: Beaver triples and truncation masks (products.py)
        extra = {hub: {"products": {"layout": layout}},
                 partner: {"products": {"layout": layout, **products.deal(seeds[hub], seeds[partner], layout, n, b)}}}
    with coordinator.cost.phase("training: shares"):
        res = coordinator.round({hub: StepCall("train_share", {"parts": parts[hub], "partner": partner, **extra[hub]}),
                                 partner: StepCall("train_share", {"parts": parts[partner], "partner": hub,
                                                                   **extra[partner]})},
                                label="training: cohort shares from the relayed rows"
                                + (" and interaction products (opening 1 of 2)" if layout["products"] else ""))
    relay = {hub: res[partner]["sealed"], partner: res[hub]["sealed"]}
    product_relay = {hub: res[partner].get("products"), partner: res[hub].get("products")}

    beta = np.zeros(p)
    history = []
    converged = False
    hess = grad = z = y = complete = None
    summaries: list[dict] = []
    with coordinator.cost.phase("training: Newton iterations"):
        for t in range(spec.max_iterations):
            beta_int = [int(v) for v in np.rint(beta * 2 ** FRAC_BITS_BETA)]
            calls = {}
            for s, other in ((hub, partner), (partner, hub)):
                pl = {"t": t, "beta": beta_int, "layout": layout}
                if t == 0:
                    pl.update(relay=relay[s], partner=other)
                    if product_relay[s]:
                        pl["products_relay"] = product_relay[s]
                calls[s] = StepCall("train_open", pl)
            res = coordinator.round(calls, label=f"training: iteration {t + 1}, open permuted linear predictors")
            if t == 0:
                product_relay = {hub: res[partner].get("products"), partner: res[hub].get("products")}
            opened = sh.unpack(res[hub]["shares"]) + sh.unpack(res[partner]["shares"])
            z = sh.decode(opened[:, 0], FRAC_BITS_X + FRAC_BITS_BETA)
            ov = opened[:, 1:1 + len(open_names)].view(np.int64)
            b_perm = opened[:, 1 + len(open_names):]
            complete = np.all(ov[:, [i for i, nm in enumerate(open_names) if nm.startswith("complete:")]] == 1, axis=1)
            y = ov[:, open_names.index("outcome")].astype(float)
            if t == 0:
                _check_counts(complete, y, p, k)
            prob = logistic.sigmoid(z)
            w = np.where(complete, prob * (1 - prob), 0.0)
            r = np.where(complete, y - prob, 0.0)
            w_ring, r_ring = sh.encode(w, fw), sh.encode(r, fr)
            u = b_perm * w_ring[:, None]
            own = np.concatenate([(b_perm.T @ u).ravel(), b_perm.T @ r_ring])
            w_h, u_h, r_h = (sh.prg(seeds[hub], f"w{t}", n), sh.prg(seeds[hub], f"u{t}", (n, p)),
                             sh.prg(seeds[hub], f"r{t}", n))
            relays = ({s: {"products_relay": product_relay[s]} for s in (hub, partner)}
                      if t == 0 and product_relay[hub] else {hub: {}, partner: {}})
            calls = {hub: StepCall("train_aggregate", {"t": t, "layout": layout, **relays[hub]}),
                     partner: StepCall("train_aggregate", {"t": t, "layout": layout, "w": sh.pack(w_ring - w_h),
                                                           "u": sh.pack(u - u_h), "r": sh.pack(r_ring - r_h),
                                                           **relays[partner]})}
            res = coordinator.round(calls, label=f"training: iteration {t + 1}, gradient and Hessian shares")
            total = sh.unpack(res[hub]["sums"]) + sh.unpack(res[partner]["sums"]) + own
            hess = sh.decode(total[:p * p], 2 * FRAC_BITS_X + fw).reshape(p, p)
            grad = sh.decode(total[p * p:], FRAC_BITS_X + fr)
            hess = (hess + hess.T) / 2
            if t == 0:
                logistic.check_identifiable(hess, names)
                logistic.check_levels(logistic.binary_levels(hess, grad, features), k, LOGISTIC_CELLS)
                # at beta = 0 the first Hessian's intercept row holds the encoded column sums, the gradient those
                # over the events (see logistic.binary_levels): original-scale sums for the interaction checks
                n_c, events_c = 4 * hess[0, 0], grad[0] + 2 * hess[0, 0]
                totals = terms.original_sums(4 * hess[0], n_c, features)
                totals_ev = terms.original_sums(grad + 2 * hess[0], events_c, features)
                terms.check_cross_cells(st.interactions, features, {
                    "patients": (totals, n_c), "events": (totals_ev, events_c),
                    "non-events": (totals - totals_ev, n_c - events_c)}, k)
                summaries = terms.with_product_means(logistic.feature_summary(hess, features, base), features, totals, n_c,
                                                     first=1, base=base)
            try:
                step = logistic.newton_step(hess, grad, beta, spec.penalty)
            except np.linalg.LinAlgError:  # fitted probabilities at 0 or 1 empty the Hessian
                raise _separation(names, beta) from None
            # at beta = 0 the log-likelihood is -n log 2: the exact number of complete cases, so withheld
            loglik = logistic.log_likelihood(z[complete], y[complete]) if t > 0 else None
            beta = beta + step
            history.append({"iteration": t + 1, "log_likelihood": loglik, "max_step": float(np.max(np.abs(step)))})
            coordinator.log(f"training: iteration {t + 1}: " + (f"log-likelihood {loglik:.6f}, " if t else "")
                            + f"largest step {np.max(np.abs(step)):.2e}")
            if not np.all(np.isfinite(beta)) or np.max(np.abs(beta)) > logistic.SEPARATION_LIMIT:
                raise _separation(names, beta - step)
            # Newton converges quadratically: after a step s the error is about s^2. Stopping here,
            # without opening z at the new coefficients, keeps the last two openings far apart: at
            # nearly equal coefficients the coordinator could pair records across openings by rank
            # (scripts/attack_training_openings.py measures this).
            if np.max(np.abs(step)) ** 2 < spec.tolerance:
                converged = True
                break
    if not converged:
        raise InputError(f"no convergence in {spec.max_iterations} Newton iterations (separation or a "
                         "nearly collinear design?); raise max_iterations or add a penalty")

    ridge = np.full(p, spec.penalty)
    ridge[0] = 0.0
    cov_enc = np.linalg.inv(hess + np.diag(ridge))
    beta_orig, cov = terms.to_original(beta, cov_enc, features, intercept=True)
    prob = logistic.sigmoid(z[complete])
    y_c = y[complete]
    quality = {"auc": round_magnitude(logistic.auc(z[complete], y_c)), "calibration": _calibration(prob, y_c, k, base)}
    n_used, events = int(complete.sum()), int(y_c.sum())
    result = {
        "model": "logistic",
        "outcome": {"station": spec.outcome_station, "column": spec.outcome_column},
        "coefficients": logistic.coefficient_table(beta_orig, cov, features, summaries),
        "features": summaries,  # mean and SD over the complete cases, to 4 significant digits
        "covariance": cov.tolist(),  # of the estimates, in the coefficients' order (for predictions)
        "reference_levels": {f["column"]: f["reference"] for f in features if f.get("level") is not None},
        **terms.released_terms(st.interactions, features, beta_orig, cov, summaries, "odds_ratio"),
        "n_used": release_count(n_used, k, base), "events": release_count(events, k, base),
        "cohort": {"linked": release_count(n, k, base), "complete_cases": release_count(n_used, k, base),
                   "note": "complete cases: records missing a feature or the outcome at any station are left out"},
        "quality": quality,
        "convergence": {"converged": converged, "iterations": len(history), "history": history,
                        "tolerance": spec.tolerance, "penalty": spec.penalty,
                        "note": "stops when the next Newton step is predicted below the tolerance (the last "
                                "step squared); standard errors use the Hessian at the last opened iterate; the "
                                "log-likelihood at the start (all coefficients 0) is withheld, as it is a function of "
                                "the number of complete cases alone"},
        "precision": {"feature_bits": FRAC_BITS_X, "weight_bits": fw, "residual_bits": fr, "coefficient_bits": FRAC_BITS_BETA},
        "min_cell_count": k,
        "protections": st.protections,
        "disclosure_control": disclosure_note("logistic", k, base),
        "linkage": linkage.summary(k, base),
    }
    if evaluate:
        result["links"] = linkage.links_table()
    return result


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
