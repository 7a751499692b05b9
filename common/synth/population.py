"""The true population: NSCLC patients with registry-side and GP-side features, and survival.

Survival follows a Weibull proportional-hazards model whose log-hazard is linear in features from
BOTH sides (registry: age, stage, PS, treatment; GP: COPD, CVD, diabetes, BMI, current smoking), so
a model on linked data beats either side alone. The coefficients are exported as ground truth.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from lancelot.synth import names

DIAGNOSIS_START = dt.date(2015, 1, 1)
DIAGNOSIS_END = dt.date(2019, 12, 31)
FOLLOW_UP_END = dt.date(2024, 1, 1)  # >= 4 years potential follow-up, so death_within_2y is always defined
STAGES = ("I", "II", "III", "IV")
HISTOLOGIES = ("adenocarcinoma", "squamous cell carcinoma", "large cell carcinoma", "NSCLC NOS")
SMOKING = ("never", "former", "current")

# True log hazard ratios (per unit; age centred at 70, BMI at 26). Time unit of the baseline: days.
LOG_HAZARD: dict[str, float] = {
    "age_per_year": 0.025,
    "stage_II": 0.55,
    "stage_III": 0.95,
    "stage_IV": 1.60,
    "who_ps_per_point": 0.35,
    "surgery": -0.90,
    "chemotherapy": -0.35,
    "radiotherapy": -0.20,
    "immunotherapy": -0.45,
    "copd": 0.45,
    "cardiovascular": 0.40,
    "diabetes": 0.20,
    "bmi_per_unit": -0.04,
    "current_smoker": 0.35,
}
WEIBULL_SHAPE = 0.9
REFERENCE_MEDIAN_DAYS = 5 * 365.25  # median survival of the reference patient (all covariates at 0)


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _dates(days_since_epoch: np.ndarray) -> np.ndarray:
    base = dt.date(1970, 1, 1)
    return np.array([base + dt.timedelta(days=int(d)) for d in days_since_epoch], dtype=object)


def _ordinal(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def completed_years(birth: dt.date, at: dt.date) -> int:
    return at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))


def gp_features(rng: np.random.Generator, age: np.ndarray, male: np.ndarray,
                smoking: np.ndarray, squamous: np.ndarray) -> dict[str, np.ndarray]:
    """True comorbidities for anyone (patient or not); shared so GP-only people look like patients."""
    n = len(age)
    current = smoking == "current"
    former = smoking == "former"
    bmi = rng.normal(26.3 - 1.0 * current + 0.3 * male, 4.5, n).clip(15.0, 50.0)
    copd = rng.random(n) < _logistic(-2.5 + 1.55 * former + 2.0 * current + 0.6 * squamous + 0.02 * (age - 70))
    cvd = rng.random(n) < _logistic(-1.15 + 0.06 * (age - 70) + 0.45 * male + 0.35 * current)
    diabetes = rng.random(n) < _logistic(-1.85 + 0.02 * (age - 70) + 0.12 * (bmi - 26))
    mu_med = np.exp(0.9 + 0.45 * copd + 0.55 * diabetes + 0.6 * cvd + 0.015 * (age - 70))
    mu_visits = np.exp(1.5 + 0.3 * copd + 0.25 * diabetes + 0.25 * cvd + 0.01 * (age - 70))
    return {
        "copd": copd.astype(int),
        "diabetes": diabetes.astype(int),
        "cardiovascular": cvd.astype(int),
        "bmi": bmi,
        "medication_count": rng.poisson(mu_med),
        "visit_rate": mu_visits,
    }


def sample_smoking(rng: np.random.Generator, male: np.ndarray) -> np.ndarray:
    p_m = np.array([0.07, 0.58, 0.35])
    p_f = np.array([0.14, 0.51, 0.35])
    u = rng.random(len(male))
    cm, cf = np.cumsum(p_m), np.cumsum(p_f)
    idx = np.where(male, np.searchsorted(cm, u), np.searchsorted(cf, u)).clip(0, 2)
    return np.array(SMOKING, dtype=object)[idx]


def identities(rng: np.random.Generator, n: int, male: np.ndarray, birth: np.ndarray,
               surname_weights: np.ndarray | None = None) -> pd.DataFrame:
    """Quasi-identifiers for n people."""
    prefix, stem = names.sample_surnames(rng, n, surname_weights)
    return pd.DataFrame({
        "prefix": prefix,
        "stem": stem,
        "initials": names.sample_initials(rng, male),
        "birth_date": birth,
        "male": male,
        "postcode": names.sample_postcodes(rng, n),
    })


def patients(rng: np.random.Generator, n: int, surname_weights: np.ndarray | None = None) -> pd.DataFrame:
    """n true NSCLC patients with identities, both feature sides and outcomes."""
    male = rng.random(n) < 0.57
    age_exact = rng.normal(70.0, 9.0, n).clip(35.0, 97.0)
    d0, d1 = _ordinal(DIAGNOSIS_START), _ordinal(DIAGNOSIS_END)
    diag_days = rng.integers(d0, d1 + 1, n)
    birth_days = diag_days - np.round(age_exact * 365.25).astype(int)
    diag = _dates(diag_days)
    birth = _dates(birth_days)
    age = np.array([completed_years(b, d) for b, d in zip(birth, diag, strict=True)])

    smoking = sample_smoking(rng, male)
    smoker = smoking != "never"
    p_hist = np.where(smoker[:, None], [0.54, 0.26, 0.05, 0.15], [0.78, 0.06, 0.03, 0.13])
    p_hist[male & smoker] = [0.51, 0.29, 0.05, 0.15]
    hist_idx = (rng.random(n)[:, None] > np.cumsum(p_hist, axis=1)).sum(axis=1).clip(0, 3)
    histology = np.array(HISTOLOGIES, dtype=object)[hist_idx]
    squamous = hist_idx == 1

    gp = gp_features(rng, age_exact, male, smoking, squamous)

    stage_idx = rng.choice(4, size=n, p=[0.20, 0.10, 0.25, 0.45])
    latent = (0.45 * stage_idx + 0.045 * (age_exact - 70) + 0.35 * gp["copd"] + 0.25 * gp["cardiovascular"]
              + rng.normal(0.0, 1.0, n))
    who_ps = np.searchsorted([0.2, 1.45, 2.35, 3.2], latent)

    stage_num = stage_idx + 1
    fit = who_ps <= 1
    old = age_exact > 80
    p_surg = np.select([stage_num == 1, stage_num == 2, stage_num == 3], [0.78, 0.65, 0.15], 0.01)
    p_surg = p_surg * np.where(fit, 1.0, 0.3) * np.where(old, 0.5, 1.0)
    surgery = rng.random(n) < p_surg
    p_chemo = np.select([stage_num == 1, stage_num == 2, stage_num == 3], [0.05, 0.45, 0.60], 0.50)
    p_chemo = p_chemo * np.where(who_ps <= 2, 1.0, 0.2) * np.where(old, 0.6, 1.0)
    chemo = rng.random(n) < p_chemo
    p_radio = np.select([stage_num == 1, stage_num == 2, stage_num == 3], [0.75, 0.45, 0.65], 0.30)
    p_radio = np.where(surgery, 0.08, p_radio)
    radio = rng.random(n) < p_radio
    p_immuno = np.select([stage_num == 3, stage_num == 4], [0.20, 0.40], 0.01) * np.where(who_ps <= 2, 1.0, 0.15)
    immuno = rng.random(n) < p_immuno

    c = LOG_HAZARD
    lp = (c["age_per_year"] * (age_exact - 70)
          + np.select([stage_num == 2, stage_num == 3, stage_num == 4],
                      [c["stage_II"], c["stage_III"], c["stage_IV"]], 0.0)
          + c["who_ps_per_point"] * who_ps
          + c["surgery"] * surgery + c["chemotherapy"] * chemo + c["radiotherapy"] * radio
          + c["immunotherapy"] * immuno
          + c["copd"] * gp["copd"] + c["cardiovascular"] * gp["cardiovascular"] + c["diabetes"] * gp["diabetes"]
          + c["bmi_per_unit"] * (gp["bmi"] - 26.0) + c["current_smoker"] * (smoking == "current"))
    scale = REFERENCE_MEDIAN_DAYS / np.log(2.0) ** (1.0 / WEIBULL_SHAPE)
    t_event = scale * (rng.exponential(1.0, n) * np.exp(-lp)) ** (1.0 / WEIBULL_SHAPE)
    censor = _ordinal(FOLLOW_UP_END) - diag_days
    died = t_event <= censor
    survival_days = np.maximum(1, np.ceil(np.minimum(t_event, censor))).astype(int)

    ident = identities(rng, n, male, birth, surname_weights)
    return pd.concat([ident, pd.DataFrame({
        "diagnosis_date": diag,
        "age_at_diagnosis": age,
        "stage": np.array(STAGES, dtype=object)[stage_idx],
        "who_ps": who_ps,
        "histology": histology,
        "surgery": surgery.astype(int),
        "chemotherapy": chemo.astype(int),
        "radiotherapy": radio.astype(int),
        "immunotherapy": immuno.astype(int),
        "survival_days": survival_days,
        "vital_status": died.astype(int),
        "death_within_2y": (died & (survival_days <= 730)).astype(int),
        "smoking": smoking,
        **gp,
    })], axis=1)


def non_patients(rng: np.random.Generator, n: int, surname_weights: np.ndarray | None = None) -> pd.DataFrame:
    """GP-only people (no lung cancer), older than average as the people in a GP extract would be."""
    male = rng.random(n) < 0.5
    age = rng.normal(64.0, 13.0, n).clip(30.0, 100.0)
    ref = _ordinal(dt.date(2017, 7, 1))
    birth = _dates(ref - np.round(age * 365.25).astype(int))
    smoking = np.array(SMOKING, dtype=object)[rng.choice(3, size=n, p=[0.30, 0.45, 0.25])]
    ident = identities(rng, n, male, birth, surname_weights)
    gp = gp_features(rng, age, male, smoking, np.zeros(n, dtype=bool))
    return pd.concat([ident, pd.DataFrame({"smoking": smoking, **gp})], axis=1)
