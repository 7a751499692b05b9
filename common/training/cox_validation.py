"""Internal validation of a Cox model: k-fold cross-validated concordance and calibration slope (TRIPOD),
computed on shares so that no fold model's linear predictors are ever opened.

The fit opens z = X beta to the coordinator C once per Newton iteration. Opening the out-of-fold scores
as well would give C one more linear projection of every record, pairable with z by rank
(docs/design/treatment-effects.md, "Internal validation"). Here C sees aggregates, blinded or masked
values only; H and P see uniform or masked values. Five rounds after the fit, in its last iteration's
frame (the permuted order in which C knows z, the deaths and its mask b'):

1. ``cox_vsums``: C deals the risk scores r, r b' and the deaths, and fold labels (balanced over all of the
   frame's rows, so independent of membership). H and P form, in H's time order, every event group's
   risk-set sums S, G = sum r x and their restrictions to each fold, the deaths per fold, and open them to C
   in the fit's last group order: S as the fit's own blinded value there (nothing new to C), the others under
   the same blind plus fresh uniform masks.
2. ``cox_vfolds``: the fold score sums U_f = sum over the fold of the score residuals, whose risk-set
   ratios C forms from the blinded sums without removing the masks: C deals its reciprocal times what it
   can see, H and P return the mask terms. Then beta_f = beta + one Newton step on the remaining data
   (information (n - n_f) / n of the fit's): within O(1/n) of the fold refit.
3. ``cox_vbin``: every record's out-of-fold score x beta_f(i) on shares (integer coefficients of the fold
   models, H's share from its seed and P's dealt; C's part through its mask), opened between H and P only
   under C's uniform mask r: y = score + r, so that floor(y / 2^m) - floor(r / 2^m) is the record's bin
   (:mod:`.validation`: stochastic rounding, no comparison protocol).
4. ``cox_vcount``: C dealt one-hot tables at -floor(r / 2^m) for the complete cases and for the deaths;
   rotated by floor(y / 2^m) they are shares of each record's bin. In time order: per event group the
   deaths per bin and the later records per bin (concordance: Beaver products between H and P) and the risk
   set per bin, whose sums S0 = sum R exp(s c) and S1 = sum R c exp(s c) open for each slope s of a grid, in
   a fresh group order per slope, S0 blinded, S1 and the group's deaths masked (the recalibration's score).
5. ``cox_vfinish``: H and P finish the Beaver products (the concordance's two pair counts) and return what
   removes their masks from C's sums sum_g D S1 / S0 (C deals its reciprocals times what it saw).

The out-of-fold scores are centred at the cohort's mean, (x - xbar) beta_f: a Cox linear predictor has no
intercept, and each fold model's uncentred scores would carry their own offset. The concordance and the
slope are then taken over the whole cohort (its risk sets, as the fit's), as for a cross-validated
prognostic index.

Leakage table: docs/leakage/training.md ("Internal validation of a Cox model").
"""

from __future__ import annotations

import math
import secrets

import numpy as np

from ..disclosure import round_magnitude
from ..runtime.errors import InputError
from . import shares as sh
from .cox_steps import A_BITS
from .cox_time import deaths_index
from .design import FRAC_BITS_X
from .labels import CoxValidation as V
from .newton import newton_step
from .ring import Ring
from .spec import DEFAULT_FOLDS, FOLD_CHOICES, check_folds
from .validation import BIN_BITS, score_reach

PHASE = "training: internal validation"
RV = Ring(512)             # the fold score sums: products of two masked, blinded sums times a squared reciprocal
RS = Ring(256)             # the slope's sums: a masked, blinded sum times a reciprocal times the masked deaths
RECIPROCAL_BITS = 180      # C's reciprocals floor(2^180 / Z) of the fit's opened Z = rho (2^24 S + noise) < 2^140
UNIT_BITS = RECIPROCAL_BITS - A_BITS   # alpha rho G = 2^156 G / S: the scale of the fold score sums' terms
SLOPE_RECIPROCAL_BITS = 170   # for the slope's sums (rho S0 < 2^124: 46 bits at least, far below the grid's error)
SLOPE_BITS = 40            # the slope grid's weights round(2^40 exp(s (c_k - c_max)))
SLOPE_NOISE_RANGE = 1 << 8 # noise below 2^-32 of a weight at the top bin, added to each S0 before its blind
SCORE_BITS = 16            # fixed point of the bins' scores
SLOPES = tuple(np.round(np.linspace(0.0, 2.0, 11), 10))   # the recalibration's grid of slopes
MIN_FOLD_RECORDS = 50      # complete cases per fold: a fold's score sum is an aggregate over at least these


def check_fold_labels(labels: np.ndarray, folds: int, n: int, station: str | None = None) -> np.ndarray:
    """The stations' own check of the relayed fold labels: one per row, each fold at least a share 1 / (2 K)
    of the rows (a fold of a few records would make its score sum theirs)."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (n,) or labels.min(initial=0) < 0 or labels.max(initial=0) >= folds:
        raise InputError("the relayed fold labels do not match this station's rows", station=station)
    if np.bincount(labels, minlength=folds).min() < n / (2 * folds):
        raise InputError("the relayed fold labels are unbalanced", station=station)
    return labels


def check_fold_sizes(complete: int, events: int, folds: int, k: int) -> None:
    """Every fold needs MIN_FOLD_RECORDS complete cases and k events (its score sum, concordance and slope are
    aggregates over it); checked on the cohort's totals at the first iteration and on the folds themselves."""
    if complete < MIN_FOLD_RECORDS * folds:
        raise InputError(f"{folds}-fold cross-validation needs at least {MIN_FOLD_RECORDS * folds} complete cases "
                         f"({MIN_FOLD_RECORDS} per fold); use fewer folds")
    if events < k * folds:
        raise InputError(f"{folds}-fold cross-validation needs at least {k} events in every fold; use fewer folds")


def assign_folds(rows: int, folds: int) -> np.ndarray:
    """Fold labels for the frame's rows: a uniformly random balanced assignment of all rows, padding included,
    from ``secrets``. It does not depend on who is in the cohort (balancing over the complete cases would let H
    and P test a guessed cohort for balance); the cohort's folds are then about equal, and C checks their size."""
    order = sorted(range(rows), key=lambda _: secrets.randbits(64))
    out = np.empty(rows, dtype=np.int64)
    out[order] = np.arange(rows) % folds
    return out


# ---------------------------------------------------------------------------------------------
# coordinator
# ---------------------------------------------------------------------------------------------
class CrossValidation:
    """The coordinator's side. ``last``: the fit's last opened iterate (t, z, complete, died, b_prime, beta, hess,
    grad, zmax); ``expand`` maps model coefficients to design columns; ``bounds`` is each design column's
    largest absolute value (with ``exclusive``, the dummies of one categorical column) for the bins' reach."""

    def __init__(self, last: dict, expand: np.ndarray, bounds: np.ndarray, exclusive: list[list[int]], folds: int,
                 bins: int, penalty: float, k: int, e_bits: int, mean: np.ndarray):
        self.last, self.expand, self.bounds, self.exclusive = last, expand, bounds, exclusive
        self.K, self.bins, self.penalty, self.k, self.mean = folds, bins, penalty, k, mean
        complete = last["complete"]
        self.labels = assign_folds(len(complete), folds)
        self.n_fold = np.bincount(self.labels[complete], minlength=folds)
        deaths_fold = np.bincount(self.labels[last["died"]], minlength=folds)
        for size, events in zip(self.n_fold, deaths_fold):
            check_fold_sizes(int(size) * folds, int(events) * folds, folds, k)
        z = last["z"]
        risk = np.where(complete, np.exp(np.where(complete, z - last["zmax"], 0.0)), 0.0)
        self.e = np.where(complete, np.maximum(np.rint(risk * 2.0 ** e_bits), 1), 0).astype(np.int64).astype(object)
        self.bs = np.asarray(last["b_prime"], dtype=np.uint64).view(np.int64).astype(object)   # signed, as RX lifts
        z_c = np.sort(z[complete] - float(mean @ last["beta"]))     # the fit's scores, centred at the cohort's mean
        self.clip = (float(z_c[min(k, len(z_c)) - 1]), float(z_c[-min(k, len(z_c))]))
        self.centred = z_c

    # round 1 ------------------------------------------------------------------------------------
    def sums_values(self) -> dict[str, np.ndarray]:
        """What C deals for the risk-set sums, by name (as integers: the caller puts them into the per-record ring)."""
        died = self.last["died"].astype(np.int64).astype(object)
        return {V.RISK: self.e, V.RISK_MASK: self.e[:, None] * self.bs, V.DEATHS: died}

    # round 2 ------------------------------------------------------------------------------------
    def fold_material(self, opened: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """From the blinded, masked sums (positions j in the secret group order): alpha_j = floor(2^A / Z_j)
        and, per term, what C sees times alpha (C's part, kept) and what H and P need to remove the masks
        (dealt). Term 1: sum_j alpha_j (Y_j - M_j)(F_jf - L_jf); term 2: sum_j alpha_j D_j (YF_jf - MF_jf);
        term 3: sum_j alpha_j^2 D_j (Y_j - M_j)(T_jf - N_jf)."""
        z, y, yf, tf, df, d = (opened[k] for k in ("Z", "Y", "YF", "T", "DF", "D"))
        alpha = np.array([(1 << RECIPROCAL_BITS) // int(v) if int(v) > 0 else 0 for v in z], dtype=object)
        gamma = alpha * alpha * d
        ad = alpha * d
        scale = 1 << UNIT_BITS
        self.kept = RV.element(np.einsum("j,jp,jf->fp", gamma, y, tf)
                               - scale * (np.einsum("j,jp,jf->fp", alpha, y, df) + np.einsum("j,jfp->fp", ad, yf)))
        return {V.RECIPROCAL_Y: RV.element(alpha[:, None] * y), V.RECIPROCAL_FOLD_DEATHS: RV.element(alpha[:, None] * df),
                V.RECIPROCAL: RV.element(alpha), V.RECIPROCAL_DEATHS: RV.element(ad),
                V.SQUARE_Y: RV.element(gamma[:, None] * y), V.SQUARE_FOLD_SUMS: RV.element(gamma[:, None] * tf),
                V.SQUARE: RV.element(gamma)}

    def refits(self, opened: np.ndarray) -> np.ndarray:
        """(K, p) fold models beta_f: one Newton step from the last iterate on the data without fold f, whose
        score is the fit's gradient less the fold's score residuals (Breslow form; their total's departure
        from the fit's gradient, Efron's ties, is spread over the folds by size). ``opened``: the stations'
        part of 2^(2U) (sum_fold d x - term 1 - term 2 + term 3), U = UNIT_BITS; C adds its own (and its mask's
        deaths)."""
        last = self.last
        total = RV.signed(RV.add(self.kept, opened))
        died = last["died"]
        own = np.array([np.sum(self.bs[died & (self.labels == f)], axis=0) for f in range(self.K)], dtype=object)
        u = np.empty(total.shape)
        for idx in np.ndindex(*total.shape):
            exact = (int(own[idx]) << (2 * UNIT_BITS)) + int(total[idx])   # the mask's part cancels exactly
            u[idx] = exact / 2.0 ** (2 * UNIT_BITS + FRAC_BITS_X)
        u = u @ self.expand                           # design columns -> model coefficients
        n = float(self.n_fold.sum())
        grad, hess, beta = last["grad"], last["hess"], last["beta"]
        ties = u.sum(axis=0) - grad
        betas = np.empty((self.K, len(beta)))
        for f in range(self.K):
            share = self.n_fold[f] / n
            g = grad - u[f] + ties * share
            betas[f] = beta + newton_step(hess * (1 - share), g, beta, self.penalty, intercept=False)
        self.betas = betas
        return betas

    # round 3 ------------------------------------------------------------------------------------
    def score_material(self, label_a: str, label_m: str) -> dict:
        """Out-of-fold scores centred at the cohort's mean, (x - xbar) beta_f(i): a Cox linear predictor has no
        intercept, and uncentred scores of different fold models would carry different offsets (the encoding
        centres times each model's coefficients), so pooled they would not compare. Bins common to all folds:
        equal-width over the fit's centred scores, widened by a bound on every change (|x - xbar| |gamma_f -
        gamma|, twice the bound on |x|) and random slack (:meth:`lancelot.training.validation.Bootstrap.score_material`).
        The scores x = F A_f(i) + (b' A_f(i) + c_f(i)): H and P hold shares of the integer A_f, C adds its part to
        the mask r it deals to P."""
        last, z = self.last, self.centred
        gamma_t = self.expand @ last["beta"]
        gammas = self.betas @ self.expand.T
        reach = 2 * float(score_reach(gammas - gamma_t, self.bounds, self.exclusive).max())
        if self.bounds.sum() * 2.0 ** -(BIN_BITS - FRAC_BITS_X + 1) > 1:
            raise InputError("too many design columns for the validation's bins")
        slack = [secrets.randbits(52) / 2.0 ** 52 for _ in range(2)]
        width = (float(z.max() - z.min()) + 2 * reach) / (self.bins - 6) * (1 + slack[0] / 4) + 1e-9
        lo = float(z.min()) - reach - (2 + 2 * slack[1]) * width
        a = np.rint(gammas * 2.0 ** (BIN_BITS - FRAC_BITS_X) / width)
        offsets = self.betas @ self.mean                                        # per fold: xbar beta_f
        c = np.rint(-(lo + offsets) * 2.0 ** BIN_BITS / width)
        if np.abs(a).max() >= 2 ** 62 or np.abs(c).max() >= 2 ** 62:
            raise InputError("the fold models' scores do not fit the bins (coefficients too large)")
        self.lo, self.width = lo, width
        a = sh.to_ring(a.astype(np.int64))
        n = len(last["z"])
        self.r = sh.prg(sh.new_seed(), "r", n)
        own = np.sum(np.asarray(last["b_prime"], dtype=np.uint64) * a[self.labels], axis=1, dtype=np.uint64)
        own = own + sh.to_ring(c.astype(np.int64))[self.labels]
        return {label_a: a, label_m: self.r + own}

    # round 4 ------------------------------------------------------------------------------------
    def tables(self) -> dict[str, np.ndarray]:
        """One-hot rows at -floor(r / 2^m) (mod the bins) for the complete cases and for the deaths."""
        n = len(self.r)
        start = (-(self.r >> np.uint64(BIN_BITS)).astype(np.int64)) % self.bins
        out = {}
        for name, weight in ((V.ALL_TABLE, self.last["complete"]), (V.DEATH_TABLE, self.last["died"])):
            table = np.zeros((n, self.bins), dtype=np.uint64)
            table[np.arange(n), start] = weight.astype(np.uint64)
            out[name] = table
        return out

    def slope_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(grid x bins) integer weights round(2^32 exp(s (c_k - c_max))) and the bins' scores c_k in fixed point
        (clipped to the fit's k-th smallest and largest centred score, so that no tail bin stands for fewer than
        k records' scores)."""
        centre = np.clip(self.lo + (np.arange(self.bins) + 0.5) * self.width, *self.clip)
        self.centre = centre
        top = centre.max()
        weights = np.array([[max(1, int(round(2.0 ** SLOPE_BITS * math.exp(s * (c - top))))) for c in centre]
                            for s in SLOPES], dtype=object)
        return weights, np.array([int(round(c * 2.0 ** SCORE_BITS)) for c in centre], dtype=object)

    # round 5 ------------------------------------------------------------------------------------
    def slope_material(self, blinded: np.ndarray, first: np.ndarray, deaths: np.ndarray) -> dict[str, np.ndarray]:
        """Per grid slope j (its own secret group order): from Z = rho S0, Y = rho S1 + M and Delta = D + L, the
        sum over groups of D S1 / S0 = sum alpha (Delta - L)(Y - M), alpha = floor(2^A / Z): C keeps
        sum alpha Delta Y and deals alpha Delta, alpha Y and alpha, whose products with L and M H and P return."""
        alpha = np.vectorize(lambda v: (1 << SLOPE_RECIPROCAL_BITS) // int(v) if int(v) > 0 else 0,
                             otypes=[object])(blinded)
        self.slope_kept = RS.element(np.sum(alpha * deaths * first, axis=1))
        return {V.SLOPE_RECIPROCAL_DEATHS: RS.element(alpha * deaths), V.SLOPE_RECIPROCAL_FIRST: RS.element(alpha * first),
                V.SLOPE_RECIPROCAL: RS.element(alpha)}

    def slope(self, returned: np.ndarray, event_score: int) -> dict:
        """The recalibration slope: the root of the Breslow score U(s) = sum_deaths c - sum_g D_g S1_g(s) / S0_g(s)
        on the bins' scores, known at the grid's slopes; a cubic through the four grid points around the sign
        change. None when U does not change sign within 0 to 2."""
        total = RS.signed(RS.add(self.slope_kept, returned))
        means = np.array([int(v) for v in total], dtype=float) / 2.0 ** (SLOPE_RECIPROCAL_BITS + SCORE_BITS)
        score = event_score / 2.0 ** SCORE_BITS - means
        return _grid_root(np.array(SLOPES), score)

    def concordance(self, counts: np.ndarray) -> dict:
        """counts: 2 concordant + same-bin pairs, and comparable pairs, over the whole cohort's out-of-fold scores."""
        twice, pairs = int(counts[0]), int(counts[1])
        return {"estimate": twice / (2.0 * pairs) if pairs > 0 else None}


def _grid_root(grid: np.ndarray, score: np.ndarray) -> dict:
    """The root of a decreasing score function known on a grid (a cubic through the four points around the sign
    change); None when it has no sign change within the grid (a slope beyond 0 to 2)."""
    if not np.all(np.isfinite(score)) or score[0] <= 0 or score[-1] >= 0:
        return {"slope": None}
    j = int(np.flatnonzero(score > 0).max())                     # score[j] > 0 >= score[j + 1]
    lo = min(max(j - 1, 0), len(grid) - 4)
    coef = np.polyfit(grid[lo:lo + 4] - grid[j], score[lo:lo + 4], 3)
    fine = np.linspace(grid[j], grid[j + 1], 20001)
    values = np.polyval(coef, fine - grid[j])
    return {"slope": float(fine[int(np.argmin(np.abs(values)))])}


def release(apparent_c: float | None, cv_c: dict, slope: dict, folds: int, bins: int) -> dict:
    """What the researcher receives: the apparent and cross-validated concordance and calibration slope to 4
    significant digits (aggregates over the whole cohort; no count below k is involved)."""
    out = {"method": f"{folds}-fold cross-validation: one-step refits without each fold, out-of-fold scores",
           "folds": folds, "bins": bins,
           "concordance": {"apparent": round_magnitude(apparent_c) if apparent_c is not None else None,
                           "cross_validated": round_magnitude(cv_c["estimate"]) if cv_c["estimate"] is not None
                           else None},
           "calibration_slope": {"apparent": 1.0,
                                 "cross_validated": round_magnitude(slope["slope"]) if slope["slope"] is not None
                                 else None},
           "note": "each fold's model is the fit plus one Newton step on the data without that fold (score residuals "
                   "at the fit, Breslow form); every patient is scored by the model that did not see it, centred at the "
                   "cohort's mean (a cross-validated prognostic index). Scores are compared in "
                   f"{bins} equal-width bins (stochastic rounding at the edges; pairs in one bin count half); the "
                   "calibration slope is the Cox regression of the outcome on the binned out-of-fold score (Breslow "
                   "ties), its score's root between slopes 0 and 2"}
    if slope["slope"] is None:
        out["withheld"] = {"calibration_slope": "the recalibration slope lies outside 0 to 2, the range the protocol "
                                                "evaluates (a model with little discrimination?)"}
    return out


# ---------------------------------------------------------------------------------------------
# stations (H: hub, P: partner; both know F, the frame's time order and the pair key)
# ---------------------------------------------------------------------------------------------
def onehot_folds(labels: np.ndarray, folds: int) -> np.ndarray:
    out = np.zeros((len(labels), folds), dtype=object)
    out[np.arange(len(labels)), labels] = 1
    return out


def bin_counts(all_bins: np.ndarray, death_bins: np.ndarray, struct: dict, to_time: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From each row's one-hot bin (shares; complete cases, deaths), per event group in time order: its deaths per
    bin, the later records per bin (after the tie's deaths, within the stratum: the comparable pairs) and its risk
    set per bin (from the group's time to the stratum's end)."""
    all_t = all_bins[to_time]
    suffix = np.concatenate([np.cumsum(all_t[::-1], axis=0, dtype=np.uint64)[::-1],
                             np.zeros((1, all_t.shape[1]), dtype=np.uint64)])
    starts, deaths, stops = struct["starts"], struct["deaths"], struct["stops"]
    group, pos = deaths_index(struct)
    events = np.zeros((len(starts), all_t.shape[1]), dtype=np.uint64)
    np.add.at(events, group, death_bins[to_time][pos])
    later = suffix[starts + deaths] - suffix[stops]
    risk = suffix[starts] - suffix[stops]
    return events, later, risk


def concordance_factors(events: np.ndarray, later: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(2, groups, bins) Beaver factors: deaths per bin against 2 (later records in lower bins) + later records in
    the same bin (twice the concordant pairs plus the same-bin ones), and each group's deaths against all its
    later records (the comparable pairs, in column 0)."""
    below = np.cumsum(later, axis=1, dtype=np.uint64) - later
    first = np.zeros((2,) + events.shape, dtype=np.uint64)
    second = np.zeros_like(first)
    first[0], second[0] = events, below * np.uint64(2) + later
    first[1, :, 0] = events.sum(axis=1, dtype=np.uint64)
    second[1, :, 0] = later.sum(axis=1, dtype=np.uint64)
    return first, second


__all__ = ["CrossValidation", "DEFAULT_FOLDS", "FOLD_CHOICES", "MIN_FOLD_RECORDS", "PHASE", "RV", "SLOPES",
           "assign_folds", "bin_counts", "check_fold_labels", "check_folds", "concordance_factors", "onehot_folds",
           "release"]
