"""Internal validation of a logistic model: the bootstrap optimism of the AUC and of the calibration
slope (TRIPOD), computed on shares so that no resample model's linear predictors are ever opened.

The fit opens z = X beta to the coordinator C once per Newton iteration, in a fresh order. Opening a
resample model's z_b as well would hand C projections of the same records that it can pair with z
by rank (docs/design/treatment-effects.md). Here C sees only aggregates, and H and P see only
uniform or statistically masked values. Four rounds after the fit, for all B resamples at once:

1. ``train_resample`` (refits): H and P draw Poisson(1) resample weights m_b per record from their
   pair key (C never learns them) and return shares of every resample's Hessian and gradient at the
   last iterate, X'diag(m_b w)X and X'diag(m_b) r, using per-record shares C deals of w, r and of the
   terms with its own mask b'. C takes one Newton step per resample: beta_b (the one-step bootstrap).
2. ``train_bin``: H and P compute shares of each record's bin-scaled score x = 2^m (z_b - lo) / w
   from shares of integer coefficients (neither sees a resample model) and open y = x + r to each other,
   r uniform modulo 2^64 from C: y is uniform. floor(y / 2^m) - floor(r / 2^m) mod K is the record's
   bin, rounded stochastically (up with the probability of its fraction of a bin). The bins are
   equal-width over the last opened z, widened by a bound on |z_b - z| (no score leaves them).
3. ``train_count``: C dealt, per record and resample, shares of a one-hot vector at -floor(r / 2^m)
   times the record's outcome (events) and its complement (non-events); rotating it by the opened
   floor(y / 2^m) puts the one at the record's bin. Summing over records (weights 1 for the original
   cohort, m_b for the resample) gives shares of the events and non-events per bin; H and P open
   14 calibration moments to C (with noise the hub adds) and start a Beaver multiplication for the
   AUC's pair counts.
4. ``train_auc``: H and P finish it and open each AUC numerator sum_k E_k (2 N0_<k + N0_k).

C then has, per resample, the AUC and the calibration slope (a fourth-order Taylor expansion of the
recalibration log-likelihood at intercept 0, slope 1, on the binned scores) on the resample and on the
original cohort; the optimism is their mean difference. Leakage table: docs/leakage/training.md ("Internal validation").
"""

from __future__ import annotations

import math
import secrets

import numpy as np

from ..disclosure import round_magnitude
from ..runtime.errors import InputError
from . import shares as sh
from .design import FRAC_BITS_X
from .labels import Pair, Validation, at, opening
from .logistic import sigmoid
from .newton import newton_step
from .spec import BIN_CHOICES, DEFAULT_BINS, DEFAULT_REPETITIONS, MAX_REPETITIONS

PHASE = "training: internal validation"   # its rounds and seconds in the job's cost record
WEIGHT_CAP = 15          # resample weights are Poisson(1) capped here (P(more) < 1e-12)
BIN_BITS = 28            # m: a bin is 2^m units of the scaled score
NOISE_RECORDS = 1.0      # the noise on each opened calibration statistic: this many records' largest contribution
STAT_BITS = 20           # fixed point of the calibration statistics' coefficients
SLOPE_FAILURES = 0.05    # above this share of failed recalibrations the slope is withheld
STATISTICS = 14          # per resample and cohort: 2 gradient terms, then 3 + 4 + 5 moments (Taylor orders 2-4)
W_DROP, R_DROP = 4, 2    # precision given up for the resample weights: up to 15 per record in the Hessian, and for the
#                          gradient a total weight up to 4n (a Poisson(1) total of n records: exceeded with
#                          probability below 1e-100 for any n above 100)
_POISSON_CDF = np.cumsum([math.exp(-1) / math.factorial(k) for k in range(WEIGHT_CAP)])


def _uniform(key: bytes, label: str, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform floats in [0, 1) with 53 random bits each, from the PRG under ``key``."""
    return (sh.prg(key, label, shape) >> np.uint64(11)).astype(float) / 2.0 ** 53


def resample_weights(pair: bytes, t: int, repetitions: int, n: int) -> np.ndarray:
    """(B, n) Poisson(1) resample weights (capped), from the key H and P share: C never sees them."""
    u = _uniform(pair, at(Pair.BOOTSTRAP, t), (repetitions, n))
    return np.searchsorted(_POISSON_CDF, u, side="right").astype(np.int64)


MIN_RECORDS = 200         # below this, sum_i m_i w_i (C knows every w_i) would be a low-density knapsack


def check_repetitions(repetitions: int, n: int, station: str | None = None) -> None:
    """The stations' own guard (C checks it first): the B resample Hessians C sees are sums over weights it
    does not know; with B below n / 2 they stay far fewer than the per-record terms they weight. Each also
    holds sum_i m_i w_i and sum_i m_i r_i with w_i, r_i known to C: knapsacks in the weights, with many
    solutions only when n is well above the coefficients' bits (about 20), hence at least 200 records."""
    if n < MIN_RECORDS:
        raise InputError(f"the bootstrap validation needs at least {MIN_RECORDS} records (complete cases) in the "
                         "cohort", station=station)
    top = min(MAX_REPETITIONS, n // 2)
    if not isinstance(repetitions, int) or isinstance(repetitions, bool) or not 10 <= repetitions <= top:
        raise InputError(f"the bootstrap needs 10 to {top} repetitions for this cohort (at most one per two records "
                         f"and at most {MAX_REPETITIONS})", station=station)


def deal(seed_h: bytes, label: str, value: np.ndarray) -> str:
    """The partner's share of a dealt value (the hub's is PRG(seed_H, label))."""
    return sh.pack(value - sh.prg(seed_h, label, value.shape))


def _triu(p: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(p)


def open_masked(pair: bytes, hub: bool, key: str, t: int, values: np.ndarray) -> str:
    """A share for C, masked with the pair key so that only the sum of H's and P's shows."""
    mask = sh.prg(pair, opening(key, t), values.shape)
    return sh.pack(values + mask if hub else values - mask)


# ---------------------------------------------------------------------------------------------
# coordinator
# ---------------------------------------------------------------------------------------------
class Bootstrap:
    """The coordinator's side. ``last``: the last opened iterate's frame (t, z, y, complete, the opened
    mask b', beta, w and r), ``expand`` maps model coefficients to design columns."""

    def __init__(self, last: dict, seed_h: bytes, expand: np.ndarray, bounds: np.ndarray, repetitions: int,
                 bins: int, frac_bits: tuple[int, int], penalty: float, exclusive: list[list[int]] = (), k: int = 10):
        self.last, self.seed_h, self.expand, self.bounds = last, seed_h, expand, bounds
        z = np.sort(last["z"][last["complete"]]) if "complete" in last else np.sort(last["z"])
        self.clip = (float(z[min(k, len(z)) - 1]), float(z[-min(k, len(z))])) if len(z) else (-np.inf, np.inf)
        self.exclusive = [list(g) for g in exclusive]   # design columns of which a record has at most one nonzero
        self.B, self.K, self.penalty = repetitions, bins, penalty
        self.fw, self.fr = frac_bits[0] - W_DROP, frac_bits[1] - R_DROP
        self.t = last["t"]

    # round 1 ----------------------------------------------------------------------------------
    def resample_material(self) -> dict:
        """P's shares of w, r, w b', w b'b'^T (upper triangle) and r b' in the last iteration's frame."""
        last, t = self.last, self.t
        b = last["b_perm"]
        w = sh.encode(last["w"], self.fw)
        r = sh.encode(last["r"], self.fr)
        i, j = _triu(b.shape[1])
        values = {Validation.WEIGHTS: w, Validation.RESIDUALS: r, Validation.WEIGHTED_MASK: b * w[:, None],
                  Validation.MASK_SQUARES: (b[:, i] * b[:, j]) * w[:, None], Validation.MASK_RESIDUALS: b * r[:, None]}
        return {name: deal(self.seed_h, at(name, t), v) for name, v in values.items()}

    def one_step(self, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """beta_b = beta + one Newton step on resample b's Hessian and gradient; rows whose Hessian is singular
        (a resample without a level's events) are NaN and left out."""
        pd_ = self.expand.shape[0]
        i, j = _triu(pd_)
        tri = len(i)
        beta = self.last["beta"]
        betas = np.full((self.B, len(beta)), np.nan)
        for b in range(self.B):
            h = np.zeros((pd_, pd_))
            h[i, j] = sh.decode(total[b, :tri], 2 * FRAC_BITS_X + self.fw)
            h = h + np.triu(h, 1).T
            g = sh.decode(total[b, tri:], FRAC_BITS_X + self.fr)
            try:
                betas[b] = beta + newton_step(self.expand.T @ h @ self.expand, self.expand.T @ g, beta, self.penalty,
                                              intercept=True)
            except np.linalg.LinAlgError:
                continue
        return betas, np.all(np.isfinite(betas), axis=1)

    # round 2 ----------------------------------------------------------------------------------
    def score_material(self, betas: np.ndarray) -> dict:
        """Bins common to all resamples: equal-width over the last z widened by a bound on every |z_b - z|
        (so no score leaves them). x_b = 2^m (z_b - lo) / w = F A_b + (b' A_b + c): the stations hold
        additive shares of the integer coefficients A_b (H's from its seed, P's dealt), so neither sees a
        resample model; C's part b' A_b + c rides on P's share of the mask r, uniform modulo 2^64. As K 2^m
        divides 2^64, floor(y / 2^m) mod K stays right when x + r wraps, so y hides x perfectly.

        The grid's width and offset carry random slack (C's own randomness): the coefficients H and P see
        in round v3 depend on it, and without slack they would give the fit's largest and smallest linear
        predictor. A resample whose reach is far beyond the others' (a nearly singular refit) is left out
        rather than coarsening every resample's bins (returns which are kept)."""
        z, t = self.last["z"], self.t
        gamma_t = self.expand @ self.last["beta"]
        ok = np.all(np.isfinite(betas), axis=1)
        gammas = np.where(ok[:, None], np.nan_to_num(betas) @ self.expand.T, gamma_t)
        # A's rounding moves a score by at most half a unit of A per unit of |x_j|: below one bin
        if self.bounds.sum() * 2.0 ** -(BIN_BITS - FRAC_BITS_X + 1) > 1:
            raise InputError("too many design columns for the validation's bins")
        reaches = self.reach(gammas - gamma_t)
        ok &= reaches <= 4 * np.median(reaches[ok]) if ok.any() else ok
        reach = float(reaches[ok].max()) if ok.any() else 0.0
        slack = [secrets.randbits(52) / 2.0 ** 52 for _ in range(2)]
        width = (float(z.max() - z.min()) + 2 * reach) / (self.K - 6) * (1 + slack[0] / 4) + 1e-9
        lo = float(z.min()) - reach - (2 + 2 * slack[1]) * width   # 2-4 bins below, at least 2 above: margins
        a = np.rint(np.where(ok[:, None], gammas, gamma_t) * 2.0 ** (BIN_BITS - FRAC_BITS_X) / width)
        c = round(-lo * 2.0 ** BIN_BITS / width)
        if np.abs(a).max() >= 2 ** 62 or abs(c) >= 2 ** 62:
            raise InputError("the resample models' scores do not fit the bins (coefficients too large)")
        self.lo, self.width, self.kept = lo, width, ok
        a = sh.to_ring(a.astype(np.int64))
        self.r = sh.prg(sh.new_seed(), "r", (self.B, len(z)))
        own = (self.last["b_perm"] @ a.T).T + sh.to_ring(np.array([c], dtype=np.int64))
        return {Validation.COEFFICIENTS: deal(self.seed_h, at(Validation.COEFFICIENTS, t), a),
                Validation.BIN_MASK: deal(self.seed_h, at(Validation.BIN_MASK, t), self.r + own)}

    def reach(self, change: np.ndarray) -> np.ndarray:
        return score_reach(change, self.bounds, self.exclusive)

    def table_material(self) -> dict:
        """P's shares of the one-hot tables at -floor(r / 2^m), times the outcome and its complement (zero for
        incomplete records), one per resample."""
        n, k = len(self.last["z"]), self.K
        start = (-(self.r >> np.uint64(BIN_BITS)).astype(np.int64)) % k          # (B, n)
        y, complete = self.last["y"].astype(np.uint64), self.last["complete"].astype(np.uint64)
        rows = np.arange(n)
        out: dict[str, list[str]] = {Validation.EVENT_TABLE: [], Validation.NONEVENT_TABLE: []}
        for b in range(self.B):
            for name, weight in ((Validation.EVENT_TABLE, y * complete),
                                 (Validation.NONEVENT_TABLE, (np.uint64(1) - y) * complete)):
                table = np.zeros((n, k), dtype=np.uint64)
                table[rows, start[b]] = weight
                out[name].append(deal(self.seed_h, at(f"{name}{b}", self.t), table))
        return out

    # rounds 3 and 4 ---------------------------------------------------------------------------
    def statistic_weights(self) -> np.ndarray:
        """(2, 14, K) ring-encoded fixed-point coefficients of the calibration statistics on (events, all
        records) per bin, common to every resample and cohort: the moments of a fourth-order Taylor expansion
        of the recalibration log-likelihood (y on a + s * bin score) at intercept 0, slope 1. Scores are
        clipped to the fit's k-th smallest and largest linear predictor (a few records move; the statistics'
        noise, scaled to one record's largest contribution, shrinks with the range)."""
        score = np.clip(self.lo + np.arange(self.K) * self.width, *self.clip)   # a bin's score
        p = sigmoid(score)
        v = p * (1 - p)
        powers = [score ** i for i in range(5)]
        # rows: (E - N p) s^i (i < 2), then N c_j s^i (i <= j) for the j-th derivatives' c_2 = v,
        # c_3 = v (1 - 2p), c_4 = v (1 - 6v) of log(1 + e^eta)
        events = [powers[0], powers[1]] + [0 * score] * 12
        total = [-p, -p * score] + [c * powers[i] for j, c in ((2, v), (3, v * (1 - 2 * p)), (4, v * (1 - 6 * v)))
                                    for i in range(j + 1)]
        return sh.to_ring(np.rint(np.array([events, total]) * 2.0 ** STAT_BITS).astype(np.int64))


def score_reach(change: np.ndarray, bounds: np.ndarray, exclusive: list[list[int]]) -> np.ndarray:
    """Per refitted model, a bound on every |z_b - z| = |x (gamma_b - gamma)|: sum_j |change_j| max|x_j|, where the
    dummies of one categorical column (at most one is 1) count once, with their largest change."""
    terms = np.abs(change) * bounds
    grouped = [j for g in exclusive for j in g]
    out = np.delete(terms, grouped, axis=1).sum(axis=1)
    for g in exclusive:
        out = out + terms[:, g].max(axis=1)
    return out


def deal_triples(seed_h: bytes, seed_p: bytes, t: int, shape: tuple[int, ...]) -> str:
    """P's share of c = a b for Beaver multiplications whose a and b each party draws from its seed with C."""
    a = sh.prg(seed_h, at(Validation.TRIPLE_A, t), shape) + sh.prg(seed_p, at(Validation.TRIPLE_A, t), shape)
    b = sh.prg(seed_h, at(Validation.TRIPLE_B, t), shape) + sh.prg(seed_p, at(Validation.TRIPLE_B, t), shape)
    return deal(seed_h, at(Validation.TRIPLE_C, t), a * b)


def relayed_bytes(n: int, p: int, repetitions: int, bins: int) -> int:
    """About what the four rounds relay (raw bytes; base64 adds a third): the per-record shares of the
    refits, the masked scores both ways with their masks, the two tables per record and resample."""
    return 8 * (n * (p * (p + 1) // 2 + 2 * p + 2) + 3 * repetitions * n + 2 * repetitions * n * bins)


def statistic_noise(pair: bytes, t: int, weights: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Gaussian noise (fixed point) for the opened calibration statistics, from the pair key: per statistic,
    NOISE_RECORDS times the largest contribution one record can make to it (read off C's coefficients, so
    the stations set the scale themselves). Without it, C could solve the exact moments for the counts per
    bin (a lattice attack does so for 32 bins or fewer) and read a tail record's resample weight."""
    coefficients = weights.view(np.int64).astype(float) / 2.0 ** STAT_BITS          # (2, 14, K)
    scale = NOISE_RECORDS * np.abs(coefficients).max(axis=(0, 2))                    # (14,)
    u = _uniform(pair, opening("vnoise", t), (2,) + tuple(shape))
    normal = np.sqrt(-2 * np.log1p(-u[0])) * np.cos(2 * np.pi * u[1])               # Box-Muller
    return sh.encode(normal * scale, STAT_BITS)


def apparent_slope(z: np.ndarray, y: np.ndarray) -> float:
    """The fit's own calibration slope on its cohort (1 for a maximum-likelihood fit; above 1 when a penalty shrinks the coefficients)."""
    x = np.column_stack([np.ones_like(z), z])
    theta = np.array([0.0, 1.0])
    for _ in range(50):
        p = sigmoid(x @ theta)
        step = newton_step(x.T @ (x * (p * (1 - p))[:, None]), x.T @ (y - p), theta, 0.0, intercept=True)
        theta = theta + step
        if np.abs(step).max() < 1e-12:
            break
    return float(theta[1])


def recalibration_slopes(stats: np.ndarray) -> np.ndarray:
    """(B, 2): the recalibration slope maximising the fourth-order Taylor expansion of the log-likelihood at
    (intercept 0, slope 1) whose moments ``stats`` (B, 2, 14) holds; NaN where Newton on it fails. (Against a
    full recalibration fit on the same bins: 2e-5 on the optimism, where one Newton step was 7e-3 off.)"""
    out = np.full(stats.shape[:2], np.nan)
    for idx in np.ndindex(*stats.shape[:2]):
        out[idx] = 1.0 + _taylor_optimum(stats[idx])[1]
    return out


def _taylor_optimum(stat: np.ndarray) -> np.ndarray:
    """Newton on l(d) = G.d - sum_j (1/j!) sum_k N_k c_j(k) (d_a + d_s s_k)^j (j = 2, 3, 4), from d = 0."""
    gradient, moments = stat[:2], {2: stat[2:5], 3: stat[5:9], 4: stat[9:14]}
    d = np.zeros(2)

    def weighted(j: int, power: int, extra: int) -> float:   # sum_k N c_j s^extra (d_a + d_s s)^power
        return sum(math.comb(power, i) * d[0] ** (power - i) * d[1] ** i * moments[j][i + extra]
                   for i in range(power + 1))

    for _ in range(50):
        grad, hess = gradient.astype(float).copy(), np.zeros((2, 2))
        for j in (2, 3, 4):
            scale = 1.0 / math.factorial(j - 1)
            grad -= scale * np.array([weighted(j, j - 1, 0), weighted(j, j - 1, 1)])
            scale2 = 1.0 / math.factorial(j - 2)
            hess -= scale2 * np.array([[weighted(j, j - 2, 0), weighted(j, j - 2, 1)],
                                       [weighted(j, j - 2, 1), weighted(j, j - 2, 2)]])
        try:
            step = np.linalg.solve(-hess, grad)
        except np.linalg.LinAlgError:
            return np.full(2, np.nan)
        d = d + step
        if not np.all(np.isfinite(d)) or np.abs(d).max() > 1:   # beyond where the expansion holds
            return np.full(2, np.nan)
        if np.abs(step).max() < 1e-12:
            return d
    return np.full(2, np.nan)


def summarise(auc_numerators: np.ndarray, totals: np.ndarray, slope: np.ndarray, ok: np.ndarray,
              apparent_auc: float, apparent_slope_: float) -> dict:
    """Per resample: the AUC and calibration slope on the resample ([:, 0]) and on the original cohort
    ([:, 1]); the optimism is their mean difference over the resamples that could be refitted. A slope the
    Taylor expansion cannot reach (beyond 0 to 2: a model with little to calibrate) leaves out only that
    resample's slope; when more than SLOPE_FAILURES of them fail, dropping them would bias the slope's
    optimism, so it is withheld (the AUC's stands)."""
    events, nonevents = totals[:, :, 0], totals[:, :, 1]
    auc = auc_numerators / (2.0 * events * nonevents)
    good = ok & np.all(np.isfinite(auc), axis=1)
    if good.sum() < 10:
        raise InputError(f"fewer than 10 of the {len(ok)} bootstrap resamples could be refitted (a singular "
                         "resample Hessian, or a refit far from the others: a sparse category or term?): no validation")
    solved = good & np.all(np.isfinite(slope), axis=1)
    failed = int(good.sum() - solved.sum())
    out = {"repetitions": len(ok), "used": int(good.sum()), "not_refitted": int((~ok).sum()),
           "slope_not_solved": failed, "auc": _optimism(apparent_auc, auc[good, 0] - auc[good, 1])}
    if failed > SLOPE_FAILURES * good.sum() or solved.sum() < 10:
        out["calibration_slope"] = None
        out["withheld"] = {"calibration_slope": f"the recalibration of {failed} of {int(good.sum())} resample models "
                                                "fell outside the slopes 0 to 2 that the protocol's expansion covers "
                                                "(a model with little discrimination?)"}
    else:
        out["calibration_slope"] = _optimism(apparent_slope_, slope[solved, 0] - slope[solved, 1])
    return out


def _optimism(apparent: float, differences: np.ndarray) -> dict:
    mean = float(differences.mean())
    return {"apparent": apparent, "optimism": mean, "corrected": apparent - mean,
            "optimism_se": float(differences.std(ddof=1) / math.sqrt(len(differences)))}


def release(summary: dict, bins: int) -> dict:
    """What the researcher receives: the apparent, optimism and corrected values to 4 significant digits
    (aggregates over the whole cohort and every resample; no count below k is involved)."""
    def rounded(block: dict | None) -> dict | None:
        return None if block is None else {key: round_magnitude(value) for key, value in block.items()}
    return {"method": "bootstrap optimism correction (Harrell): one-step refits on Poisson(1) resamples",
            "repetitions": summary["repetitions"], "resamples_used": summary["used"], "bins": bins,
            "resamples_left_out": {"refit_failed": summary["not_refitted"],
                                   "recalibration_failed": summary["slope_not_solved"]},
            "auc": rounded(summary["auc"]), "calibration_slope": rounded(summary["calibration_slope"]),
            **({"withheld": summary["withheld"]} if "withheld" in summary else {}),
            "note": "optimism = mean over resamples of (performance on the resample - performance on the original "
                    "cohort) of the model refitted on the resample; the resample performances use scores binned in "
                    f"{bins} equal-width bins (stochastic rounding at the edges) and calibration statistics with "
                    "noise of about one record each; the apparent values are the fit's own (exact); optimism_se is "
                    "the Monte Carlo standard error over the resamples; a resample whose refit failed is left out "
                    "(counted), one whose recalibration failed is left out of the slope only"}


# ---------------------------------------------------------------------------------------------
# stations (H: hub, P: partner; both know f, the iteration's permutation and the pair key)
# ---------------------------------------------------------------------------------------------
def station_resample_sums(f: np.ndarray, dealt: dict[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
    """This station's shares of every resample's Hessian (upper triangle) and gradient over the design:
    sum_i m_bi (F_i F_i' w_i + F_i u_i' + u_i F_i' + q_i) and sum_i m_bi (F_i r_i + s_i), F = the
    station's view of the design in the iteration's order, the rest its shares of what C dealt."""
    i, j = _triu(f.shape[1])
    w, u, r = dealt[Validation.WEIGHTS], dealt[Validation.WEIGHTED_MASK], dealt[Validation.RESIDUALS]
    per_record = np.hstack([(f[:, i] * f[:, j]) * w[:, None] + f[:, i] * u[:, j] + u[:, i] * f[:, j]
                            + dealt[Validation.MASK_SQUARES], f * r[:, None] + dealt[Validation.MASK_RESIDUALS]])
    return weights.astype(np.uint64) @ per_record


def station_scores(frame: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """(B, n): F times this station's share of every A_b (C adds b' A_b + c to the mask)."""
    return (frame @ coefficients.T).T


def dealt_share(payload: dict, hub: bool, own: bytes, name: str, label: str, shape: tuple,
                station: str | None = None) -> np.ndarray:
    """This station's 64-bit share of a value C dealt: the hub's from its seed, the partner's from the payload
    (checked: present, and of the shape this station expects)."""
    if hub:
        return sh.prg(own, label, shape)
    if name not in payload:
        raise InputError(f"the coordinator did not relay the validation share '{name}'", station=station)
    got = sh.unpack(payload[name])
    if got.shape != tuple(shape):
        raise InputError(f"the relayed validation share '{name}' does not match this station's rows", station=station)
    return got


def bin_offsets(opened: np.ndarray, bins: int) -> np.ndarray:
    """floor(y / 2^m) mod K of the opened masked scores: the rotation that moves C's one-hot to the bin."""
    return ((opened >> np.uint64(BIN_BITS)) % np.uint64(bins)).astype(np.int64)


def rotate_one_hot(table: np.ndarray, q: np.ndarray, bins: int) -> np.ndarray:
    """Each record's dealt one-hot row rotated by its opened bin offset q: shares of a one at the record's bin."""
    return np.take_along_axis(table, (np.arange(bins)[None, :] - q[:, None]) % bins, axis=1)


def station_bin_counts(opened: np.ndarray, tables: dict[str, list[np.ndarray]], weights: np.ndarray,
                       bins: int) -> np.ndarray:
    """(B, 2, 2, K) shares of (resample, original) x (events, non-events) per bin: each record's dealt one-hot
    rotated by floor(y / 2^m), summed with the resample's weights and with weight 1."""
    q = bin_offsets(opened, bins)      # (B, n)
    out = np.zeros((len(q), 2, 2, bins), dtype=np.uint64)
    for b in range(len(q)):
        m = weights[b].astype(np.uint64)
        for c, name in enumerate((Validation.EVENT_TABLE, Validation.NONEVENT_TABLE)):
            rotated = rotate_one_hot(tables[name][b], q[b], bins)
            out[b, 0, c] = m @ rotated
            out[b, 1, c] = rotated.sum(axis=0, dtype=np.uint64)
    return out


def auc_factors(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The AUC numerator is sum_k E_k L_k with L = 2 (non-events below the bin) + non-events in it."""
    events, nonevents = counts[:, :, 0], counts[:, :, 1]
    below = np.cumsum(nonevents, axis=2, dtype=np.uint64) - nonevents
    return events, below * np.uint64(2) + nonevents


def beaver_open(events: np.ndarray, factor: np.ndarray, own: bytes, t: int) -> np.ndarray:
    """This station's shares of d = E - a and e = L - b (a, b: its parts of C's triple), to exchange."""
    return np.stack([events - sh.prg(own, at(Validation.TRIPLE_A, t), events.shape),
                     factor - sh.prg(own, at(Validation.TRIPLE_B, t), factor.shape)])


def beaver_finish(opened: np.ndarray, own: bytes, t: int, c: np.ndarray, hub: bool) -> np.ndarray:
    """Shares of sum_k E_k L_k from the opened (d, e): E L = d e + d b + e a + a b, the hub adding d e."""
    d, e = opened
    a = sh.prg(own, at(Validation.TRIPLE_A, t), d.shape)
    b = sh.prg(own, at(Validation.TRIPLE_B, t), d.shape)
    product = d * b + e * a + c + (d * e if hub else np.uint64(0))
    return product.sum(axis=-1, dtype=np.uint64)


def calibration_statistics(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B, 2, 14) shares of the calibration statistics (fixed point) per resample and cohort: ``weights``
    (2, 14, K) are C's encoded coefficients for the events and for all records per bin."""
    events = counts[:, :, 0]
    total = events + counts[:, :, 1]
    # uint64 products and sums wrap modulo 2^64, as shares should
    return np.einsum("bdk,sk->bds", events, weights[0]) + np.einsum("bdk,sk->bds", total, weights[1])


def outcome_totals(counts: np.ndarray) -> np.ndarray:
    """(B, 2, 2) shares of the events and non-events in the resample and in the original cohort."""
    return counts.sum(axis=3, dtype=np.uint64)


def decode_statistics(total: np.ndarray) -> np.ndarray:
    return sh.decode(total, STAT_BITS)


__all__ = ["BIN_CHOICES", "Bootstrap", "DEFAULT_BINS", "DEFAULT_REPETITIONS", "calibration_statistics",
           "bin_offsets", "check_repetitions", "deal", "deal_triples", "dealt_share", "outcome_totals", "recalibration_slopes", "relayed_bytes", "release", "resample_weights", "rotate_one_hot", "score_reach", "station_bin_counts",
           "station_resample_sums", "station_scores", "summarise"]
