"""Cox proportional hazards: what the coordinator releases from a finished fit (:mod:`.cox_fit`).

Coefficients and their covariance on the original scale, the concordance, the strata, and the
Breslow baseline at the requested times only where k patients are at risk and k events lie between
released times; counts rounded to the job's base.
"""

from __future__ import annotations

import math

import numpy as np

from ..disclosure import release_count, spaced_times
from . import hazards, terms
from .cox_steps import BASE_BITS, E_BITS, FRAC_BITS_BETA, W_BITS, XBAR_BITS
from .design import FRAC_BITS_X, LOW_BITS
from .newton import convergence, ridge
from .release import disclosure_note
from .spec import TrainSpec


def released(fit, linkage, spec: TrainSpec, protections: dict) -> dict:
    """The fit's result: coefficients, quality, baseline and convergence, each through disclosure control."""
    last, k, base, features = fit.last, fit.k, fit.base, fit.features
    cov_enc = np.linalg.inv(last["hess"] + np.diag(ridge(fit.p, spec.penalty, intercept=False)))
    beta_orig, cov = terms.to_original(fit.beta_final, cov_enc, features, intercept=False)
    n_used, events = int(last["complete"].sum()), int(last["died"].sum())
    linked = int(len(linkage.cohort()[linkage.hub]))
    return {
        "model": "cox", "ties": spec.ties,
        "time": {"station": spec.outcome_station, "column": spec.time_column},
        "event": {"station": spec.outcome_station, "column": spec.outcome_column},
        "coefficients": hazards.coefficient_table(beta_orig, cov, features, fit.summaries),
        "features": fit.summaries,   # mean and SD over the complete cases, to 4 significant digits
        "covariance": cov.tolist(),
        "reference_levels": {f["column"]: f["reference"] for f in features if f.get("level") is not None},
        **terms.released_terms(fit.interactions, features, beta_orig, cov, fit.summaries, "hazard_ratio"),
        **terms.reading_notes(features),
        "n_used": release_count(n_used, k, base), "events": release_count(events, k, base),
        "cohort": {"linked": release_count(linked, k, base), "complete_cases": release_count(n_used, k, base),
                   "note": "complete cases: records missing a feature, the time or the event at any station are left out"},
        "quality": {"concordance": hazards.released_concordance(fit.concordance, k, base)},
        "baseline": _baseline(fit, beta_orig, cov),
        **({"strata": {"station": fit.strata["station"], "column": fit.strata["column"],
                       "levels": [{"level": lv, "n": release_count(n, k, base), "events": release_count(d, k, base)}
                                  for lv, n, d in zip(fit.strata["levels"], fit.strata["n"], fit.strata["events"])],
                       "note": "a separate baseline hazard per level; no coefficient for the strata column; the "
                               "concordance compares patients within a stratum"}} if fit.strata else {}),
        "convergence": convergence(fit.history, spec, "standard errors, concordance and baseline use",
                                   "the log partial likelihood at the start (all coefficients 0) is withheld, as it "
                                   "is a function of the risk-set sizes alone"),
        "precision": {"feature_bits": FRAC_BITS_X, "non_integer_feature_bits": FRAC_BITS_X + LOW_BITS, "risk_score_bits": E_BITS, "weight_bits": W_BITS,
                      "coefficient_bits": FRAC_BITS_BETA, "risk_set_blind_bits": 64},
        "min_cell_count": k,
        "protections": protections,
        "disclosure_control": disclosure_note("cox", k, base),
        "linkage": linkage.summary(k, base),
    }

def _baseline(fit, beta_orig: np.ndarray, cov: np.ndarray) -> dict:
    """Breslow baseline at the released times, for the reference profile (each feature at its encoding
    centre) and for the complete-case mean profile.

    A requested time is released only with at least k complete cases at risk and at least k of their
    events since the previous released time (:func:`lancelot.disclosure.spaced_times`): the baseline
    steps at every death, so two close times would isolate the few deaths between them.
    """
    last, k, features, times = fit.last, fit.k, fit.features, fit.spec.survival_times
    n_t = len(times)
    scale = math.exp(-last["zmax"])   # risk scores were exp(z - max z)
    # the fit's last opened iterate: baseline terms belong to its coefficients
    m = terms.original_map(features, intercept=False)     # enc = M (g - reference), per record
    beta_last = m.T @ last["beta"]
    centre = terms.reference_profile(features)
    per_stratum = []
    for s_idx in range(len(last["at_risk"]) // n_t):
        at_risk = {tm: int(n) for tm, n in zip(times, last["at_risk"][s_idx * n_t:(s_idx + 1) * n_t])}
        events = {tm: int(d) for tm, d in zip(times, fit.events_at[s_idx * n_t:(s_idx + 1) * n_t])}
        kept, withheld = spaced_times(times, events.__getitem__, at_risk.__getitem__, k)
        rows = []
        for j, tm in enumerate(times):
            if tm not in kept:
                continue
            raw = last["base"][s_idx * n_t + j]
            lam0 = float(raw[0]) / 2 ** BASE_BITS * scale
            v0 = float(raw[1]) / 2 ** BASE_BITS * scale ** 2
            q_enc = np.array([float(v) for v in raw[2:]]) / 2 ** XBAR_BITS * scale
            q = np.linalg.solve(m, q_enc)           # sum d xbar / S about the reference, original units
            s, lo, hi = hazards.survival_at(lam0, v0, q, fit.mean - centre, beta_last, cov)
            rows.append({"time": tm, "at_risk": release_count(at_risk[tm], k, fit.base), "survival_at_mean": s,
                         "ci_low": lo, "ci_high": hi, "cumulative_hazard_at_reference": lam0, "v0": v0,
                         "q": q.tolist()})
        per_stratum.append((rows, withheld))
    rule = (f"only at requested times with at least {k} at risk and at least {k} events since the previous released "
            "time (the others are listed under 'withheld')")
    out = {"reference_profile": dict(zip(fit.names, centre.tolist())),
           "coefficients_of_last_iterate": beta_last.tolist()}
    if fit.strata is None:
        rows, withheld = per_stratum[0]
        return {**out, "times": rows, "withheld": withheld,
                "note": "Breslow cumulative baseline hazard at the reference profile (every feature at the value "
                        "shown); survival at the complete-case mean profile with a 95% interval on the "
                        f"log(-log) scale; {rule}"}
    return {**out, "stratified_by": fit.strata["column"],
            "strata": [{"stratum": level, "times": rows, "withheld": withheld}
                       for level, (rows, withheld) in zip(fit.strata["levels"], per_stratum)],
            "note": f"one Breslow baseline hazard per level of {fit.strata['column']}, at the reference profile "
                    "(every feature at the value shown); survival at the complete-case mean profile with a 95% "
                    f"interval on the log(-log) scale; per stratum {rule}"}
