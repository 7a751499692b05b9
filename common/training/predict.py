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

RESEARCH_USE = ("research use only: a model fitted on registry and GP data for research, not validated "
                "for decisions about individual patients")


def design_row(model: dict, profile: dict) -> np.ndarray:
    """The model's feature vector for a profile {column: value}; every model column must be given."""
    rows = model["coefficients"]
    columns = {r["feature"].split("=", 1)[0] for r in rows if r["feature"] != "(intercept)"}
    missing = sorted(c for c in columns if c not in profile)
    if missing:
        raise InputError(f"the profile lacks {', '.join(missing)}")
    unknown = sorted(set(profile) - columns)
    if unknown:
        raise InputError(f"the model has no feature {', '.join(unknown)}")
    levels: dict[str, list[str]] = {}
    for r in rows:
        if "=" in r["feature"]:
            col, lv = r["feature"].split("=", 1)
            levels.setdefault(col, []).append(lv)
    for col, lvs in levels.items():
        allowed = lvs + [model.get("reference_levels", {}).get(col)]
        if str(profile[col]) not in allowed:
            raise InputError(f"'{col}' must be one of {', '.join(str(a) for a in allowed if a is not None)}")
    x = []
    for r in rows:
        name = r["feature"]
        if name == "(intercept)":
            x.append(1.0)
        elif "=" in name:
            col, lv = name.split("=", 1)
            x.append(1.0 if str(profile[col]) == lv else 0.0)
        else:
            try:
                x.append(float(profile[name]))
            except (TypeError, ValueError) as exc:
                raise InputError(f"'{name}' must be a number") from exc
    return np.array(x)


def predict(model: dict, profile: dict) -> dict:
    if model.get("model") == "cox":
        return predict_survival(model, profile)
    if model.get("model") != "logistic" or "covariance" not in model:
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
    rows = []
    for row in base["times"]:
        # only the released times: a result without the baseline terms at a time has nothing to give there
        if row.get("survival_at_mean") is None or row.get("cumulative_hazard_at_reference") is None:
            continue
        s, lo, hi = survival_at(row["cumulative_hazard_at_reference"], row["v0"], np.array(row["q"]),
                                x - reference, beta, cov)
        rows.append({"time": row["time"], "survival": s, "ci_low": lo, "ci_high": hi})
    return {"profile": profile, "event": model["event"]["column"], "time_unit": model["time"]["column"],
            "hazard_ratio_vs_reference": math.exp(float((x - reference) @ beta)),
            "survival": rows, "withheld": base.get("withheld", []), "label": RESEARCH_USE}
