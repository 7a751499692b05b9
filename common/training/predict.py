"""Apply a trained model to one patient profile the researcher types in (research use only).

The model is the training result JSON (coefficients and their covariance; for Cox also the
released baseline hazard terms); nothing goes back to the stations. Logistic: the 95%
delta-method interval on the linear predictor, transformed. Cox: the predicted survival curve at
the released times with a 95% interval on the log(-log) scale (Tsiatis variance).
"""

from __future__ import annotations

import math

import numpy as np

from ..runtime.errors import InputError
from .hazards import survival_at
from .logistic import Z_95
from .terms import rcs_basis

RESEARCH_USE = ("research use only: a model fitted on registry and GP data for research, not validated "
                "for decisions about individual patients")


def _base_column(term: str) -> str:
    """The profile column a main-effect term comes from: ``stage=IV`` -> stage, ``age''`` -> age."""
    return term.split("=", 1)[0].rstrip("'")


def design_row(model: dict, profile: dict) -> np.ndarray:
    """The model's design row for a profile {column: value}: main effects, dummies, spline terms (from the
    released knots) and interaction terms (products of the others); every model column must be given."""
    rows = model["coefficients"]
    names = [r["feature"] for r in rows]
    mains = [n for n in names if n != "(intercept)" and ":" not in n]
    columns = {_base_column(n) for n in mains}
    strata = (model.get("strata") or {}).get("column")
    missing = sorted(c for c in columns | ({strata} if strata else set()) if c not in profile)
    if missing:
        raise InputError(f"the profile lacks {', '.join(missing)}")
    unknown = sorted(set(profile) - columns - {strata})
    if unknown:
        raise InputError(f"the model has no feature {', '.join(unknown)}")
    levels: dict[str, list[str]] = {}
    for n in mains:
        if "=" in n:
            col, lv = n.split("=", 1)
            levels.setdefault(col, []).append(lv)
    for col, lvs in levels.items():
        allowed = lvs + [model.get("reference_levels", {}).get(col)]
        if str(profile[col]) not in allowed:
            raise InputError(f"'{col}' must be one of {', '.join(str(a) for a in allowed if a is not None)}")
    knots = {s["column"]: s["knots"] for s in model.get("splines", [])}
    value: dict[str, float] = {"(intercept)": 1.0}
    for n in mains:
        col = _base_column(n)
        if "=" in n:
            value[n] = 1.0 if str(profile[col]) == n.split("=", 1)[1] else 0.0
            continue
        try:
            x = float(profile[col])
        except (TypeError, ValueError) as exc:
            raise InputError(f"'{col}' must be a number") from exc
        term = len(n) - len(n.rstrip("'"))
        value[n] = x if term == 0 else float(rcs_basis(np.array([x]), knots[col])[0, term - 1])
    for n in names:
        if ":" in n:
            a, b = n.split(":", 1)
            value[n] = value[a] * value[b]
    return np.array([value[n] for n in names])


def predict(model: dict, profile: dict) -> dict:
    """Risk (logistic) or survival (Cox) for a training result's JSON: its result object knows which."""
    from ..results.models import Model

    return Model.from_json(model).predict(profile)


def predict_risk(model: dict, profile: dict) -> dict:
    """A logistic model's predicted risk for the profile, with its 95% interval."""
    if "covariance" not in model:
        raise InputError("not a logistic training result with a covariance matrix (re-run lancelot train)")
    x = design_row(model, profile)
    beta = np.array([r["estimate"] for r in model["coefficients"]])
    cov = np.array(model["covariance"])
    lp = float(x @ beta)
    se = math.sqrt(max(float(x @ cov @ x), 0.0))
    risk = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
    return {"profile": profile, "outcome": model["outcome"]["column"], "predicted_risk": risk(lp),
            "ci_low": risk(lp - Z_95 * se), "ci_high": risk(lp + Z_95 * se),
            "linear_predictor": lp, "linear_predictor_se": se, "label": RESEARCH_USE}


def predict_survival(model: dict, profile: dict) -> dict:
    """Predicted survival S(t | profile) at the model's released times only, with 95% intervals; the
    requested times the training withheld are listed with their reason."""
    base = model.get("baseline")
    if not base or "covariance" not in model:
        raise InputError("not a Cox training result with a baseline and covariance (re-run lancelot train)")
    x = design_row(model, profile)
    names = [r["feature"] for r in model["coefficients"]]
    reference = np.array([base["reference_profile"][n] for n in names])
    beta = np.array(base["coefficients_of_last_iterate"])   # the coefficients the baseline terms belong to
    cov = np.array(model["covariance"])
    times, withheld, stratum = base.get("times"), base.get("withheld", []), None
    if "strata" in base:   # a baseline per level of the strata column: the profile's own
        stratum = str(profile[base["stratified_by"]])
        block = next((b for b in base["strata"] if b["stratum"] == stratum), None)
        if block is None:
            raise InputError(f"'{base['stratified_by']}' must be one of {', '.join(b['stratum'] for b in base['strata'])}")
        times, withheld = block["times"], block["withheld"]
    rows = []
    for row in times:
        # only the released times: a result without the baseline terms at a time has nothing to give there
        if row.get("survival_at_mean") is None or row.get("cumulative_hazard_at_reference") is None:
            continue
        s, lo, hi = survival_at(row["cumulative_hazard_at_reference"], row["v0"], np.array(row["q"]),
                                x - reference, beta, cov)
        rows.append({"time": row["time"], "survival": s, "ci_low": lo, "ci_high": hi})
    return {"profile": profile, "event": model["event"]["column"], "time_unit": model["time"]["column"],
            "hazard_ratio_vs_reference": math.exp(float((x - reference) @ beta)),
            "survival": rows, "withheld": withheld, "label": RESEARCH_USE,
            **({"stratum": {base["stratified_by"]: stratum}} if stratum is not None else {})}


def compare_treatment(model: dict, profile: dict, treatment: str, values: list | None = None,
                      predict_one=None, ratio: str = "", what: str = "") -> dict:
    """The decision-support view: the profile's predicted risk (logistic) or survival (Cox) with each value of
    ``treatment`` (a categorical feature's levels, a numeric one's ``values``, default 0 and 1), side by side
    with 95% intervals, and the treatment's odds or hazard ratio for this profile against the first value
    (interactions included: the effect modification at the profile's values). Research use only.

    ``predict_one``, ``ratio`` and ``what`` (e.g. :func:`predict_risk`, "odds_ratio", "predicted risk") come
    from the model's result object; given a bare JSON dict, that object is made first."""
    if predict_one is None:
        from ..results.models import Model

        return Model.from_json(model).compare_treatment(profile, treatment, values)
    names = [r["feature"] for r in model["coefficients"]]
    levels = [n.split("=", 1)[1] for n in names if n.startswith(treatment + "=") and ":" not in n]
    if levels:
        values = [model.get("reference_levels", {}).get(treatment)] + levels
    elif treatment in names:
        values = list(values) if values else [0, 1]
    else:
        raise InputError(f"'{treatment}' is not a feature of the model")
    arms = [{"treatment": {treatment: v}, **predict_one(model, {**profile, treatment: v})} for v in values]
    for arm in arms:
        arm.pop("label", None)
        arm.pop("profile", None)
    beta = np.array([r["estimate"] for r in model["coefficients"]])
    cov = np.array(model["covariance"])
    base_row = design_row(model, {**profile, treatment: values[0]})
    contrasts = []
    for v in values[1:]:
        c = design_row(model, {**profile, treatment: v}) - base_row
        est, se = float(c @ beta), math.sqrt(max(float(c @ cov @ c), 0.0))
        contrasts.append({"treatment": {treatment: v}, "versus": {treatment: values[0]}, ratio: math.exp(est),
                          "ci_low": math.exp(est - Z_95 * se), "ci_high": math.exp(est + Z_95 * se)})
    return {"profile": {k: val for k, val in profile.items() if k != treatment}, "treatment": treatment, "arms": arms,
            "ratios": contrasts, "label": RESEARCH_USE,
            "note": f"{what} for the same profile with each value of "
                    f"{treatment}, and the {ratio.replace('_', ' ')} for this profile (with any interaction terms at "
                    "its values), 95% intervals from the model's covariance; associations in observational data, not "
                    "causal effects"}
