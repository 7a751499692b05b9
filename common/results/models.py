"""Trained models: a logistic regression or a Cox model, each with its own summary, prediction and report.

Only :meth:`Model.from_json` reads the result's ``model`` field; everything after that is the class's.
"""

from __future__ import annotations

from pathlib import Path

from ..runtime.errors import InputError
from .base import Result, read_json


def validation_cost(cost: dict) -> str:
    """', N s in R rounds' for the validation phase of a job's cost record: what the resamples cost."""
    from ..training.validation import PHASE as VALIDATION_PHASE

    seconds, rounds = cost.get("seconds_per_phase", {}), cost.get("rounds_per_phase", {})
    if VALIDATION_PHASE not in rounds:
        return ""
    return f", {seconds.get(VALIDATION_PHASE, 0):.0f} s in {rounds[VALIDATION_PHASE]} rounds"


class Model(Result):
    """A model fitted on the linked cohort (research use only). Subclasses: :class:`LogisticModel`,
    :class:`CoxModel`."""

    ratio = ""              # "odds_ratio" or "hazard_ratio": the coefficients' exp column
    ratio_ci = ("", "")     # its 95% interval's columns
    predicted = ""          # what a prediction gives, in words

    @classmethod
    def from_json(cls, data, task_id: int | None = None, seconds: float | None = None) -> Model:
        """From a training result's JSON; on :class:`Model`, the class its ``model`` field names."""
        data = read_json(data)
        if cls is Model:
            kinds = {"logistic": LogisticModel, "cox": CoxModel}
            if not isinstance(data, dict) or data.get("model") not in kinds:
                raise InputError("not a logistic or Cox training result (re-run lancelot train)")
            cls = kinds[data["model"]]
        return Result.from_json.__func__(cls, data, task_id, seconds)

    # -- tables ---------------------------------------------------------------------------------
    def coefficients(self):
        """The coefficient table as released (estimate, std_error, CI, z, p-value, ratio, station) by feature."""
        import pandas as pd

        return pd.DataFrame(self.raw["coefficients"]).set_index("feature")

    def summary(self):
        """lifelines' layout: coef, exp(coef), se(coef), the ratio's 95% interval, z, p, and the station."""
        import pandas as pd

        low, high = self.ratio_ci
        rows = [{"feature": r["feature"], "station": r["station"], "coef": r["estimate"], "exp(coef)": r[self.ratio],
                 "se(coef)": r["std_error"], "exp(coef) lower 95%": r[low], "exp(coef) upper 95%": r[high],
                 "z": r["z"], "p": r["p_value"]} for r in self.raw["coefficients"]]
        return pd.DataFrame(rows).set_index("feature")

    def effect_modification(self):
        """Per interaction, the first factor's odds or hazard ratio within each level (or at chosen values) of the
        second, with 95% intervals (the interactions' Wald tests are in ``raw["interactions"]``)."""
        import pandas as pd

        rows = [{"interaction": block["interaction"], **row, "interaction_p_value": block["wald_test"]["p_value"]}
                for block in self.raw.get("interactions", []) for row in block["effects"]]
        return pd.DataFrame(rows)

    def coefficient_lines(self, what: str) -> list[str]:
        low, high = self.ratio_ci
        lines = [f"    {'feature':<22} {'station':<9} {'estimate':>9} {'std err':>8} {what + ' (95% CI)':>24}"]
        lines += [f"    {r['feature']:<22} {r['station']:<9} {r['estimate']:>9.4f} {r['std_error']:>8.4f} "
                  f"{r[self.ratio]:>8.3f} ({r[low]:.3f}-{r[high]:.3f})" for r in self.raw["coefficients"]]
        return lines

    def term_lines(self) -> list[str]:
        """Effect modification and spline tests, when the model has them, and how the stations read columns."""
        lines = [f"    note: {note}" for note in self.raw.get("notes", [])]
        for block in self.raw.get("interactions", []):
            test = block["wald_test"]
            lines.append(f"    {block['interaction']}: interaction p = {test['p_value']:.3g} (Wald, {test['df']} df)")
            lines += [f"      {r['effect_of']} within {r['modifier']} = {r['at']}: {self.ratio.replace('_', ' ')} "
                      f"{r[self.ratio]:.3f} ({r['ci_low']:.3f}-{r['ci_high']:.3f})" for r in block["effects"]]
        for s in self.raw.get("splines", []):
            lines.append(f"    spline {s['column']} (knots {', '.join(f'{k:g}' for k in s['knots'])}): overall p = "
                         f"{s['overall_test']['p_value']:.3g}, non-linearity p = {s['nonlinearity_test']['p_value']:.3g}")
        return lines

    # -- one profile ----------------------------------------------------------------------------
    def predict_one(self, profile: dict) -> dict:
        """The prediction for one profile: risk (logistic) or a survival curve (Cox), with 95% intervals."""
        return self.predict_function()(self.raw, profile)

    def predict(self, profile: dict, treatment: str | None = None) -> dict:
        """Predicted risk (or survival) for one typed-in profile, with its 95% interval; with ``treatment``, the
        decision-support view: the prediction with each value of that feature side by side (research use only)."""
        return self.compare_treatment(profile, treatment) if treatment else self.predict_one(profile)

    def compare_treatment(self, profile: dict, treatment: str, values: list | None = None) -> dict:
        from ..training.predict import compare_treatment

        return compare_treatment(self.raw, profile, treatment, values, type(self).predict_function(), self.ratio,
                                 self.predicted)

    @staticmethod
    def predict_function():
        """The function of :mod:`lancelot.training.predict` that predicts one profile for this kind of model."""
        raise NotImplementedError

    def treatment_lines(self, view: dict) -> list[str]:
        """The decision-support view as text (``lancelot predict --treatment``)."""
        treatment = view["treatment"]
        lines = [f"stratum: {view['arms'][0]['stratum']}"] if view["arms"][0].get("stratum") else []
        lines += self.arm_lines(view)
        lines += [f"{self.ratio.replace('_', ' ')} for this profile, {treatment}={r['treatment'][treatment]} vs "
                  f"{r['versus'][treatment]}: {r[self.ratio]:.3f} (95% CI {r['ci_low']:.3f}-{r['ci_high']:.3f})"
                  for r in view["ratios"]]
        return lines

    def arm_lines(self, view: dict) -> list[str]:
        raise NotImplementedError

    def prediction_lines(self, out: dict) -> list[str]:
        raise NotImplementedError

    # -- report ---------------------------------------------------------------------------------
    def report(self, folder: str | Path, profile: dict | None = None, treatment: str | None = None) -> Path:
        """The report; with ``profile`` and ``treatment`` also that profile's decision-support view."""
        decision = {"profile": profile, "treatment": treatment} if profile and treatment else None
        return self.write_report(folder, decision)

    def write_report(self, folder: str | Path, decision: dict | None = None) -> Path:
        raise NotImplementedError


class LogisticModel(Model):
    ratio, ratio_ci, predicted = "odds_ratio", ("or_ci_low", "or_ci_high"), "predicted risk"

    @property
    def auc(self) -> float:
        return self.raw["quality"]["auc"]

    def summary_lines(self) -> list[str]:
        r, conv = self.raw, self.raw["convergence"]
        return [f"  logistic regression for {r['outcome']['column']}: {r['n_used']} complete cases, {r['events']} "
                f"events; {conv['iterations']} Newton iterations, {self.rounds} rounds",
                *self.coefficient_lines("odds ratio"), f"    AUC {self.auc:.3f}", *self.validation_lines(),
                *self.term_lines()]

    def validation_lines(self) -> list[str]:
        """The bootstrap optimism correction, when the spec asked for it."""
        v = self.raw.get("validation")
        if not v:
            return []
        auc, slope = v["auc"], v["calibration_slope"]
        calibration = (f"calibration slope {slope['corrected']:.3f} (+-{slope['optimism_se']:.3f})" if slope else
                       f"calibration slope withheld: {v['withheld']['calibration_slope']}")
        return [f"    internal validation ({v['resamples_used']} bootstrap resamples{validation_cost(self.cost)}): AUC "
                f"{auc['apparent']:.3f} -> {auc['corrected']:.3f} corrected for optimism {auc['optimism']:.3f} "
                f"(+-{auc['optimism_se']:.3f}); {calibration}"]

    @staticmethod
    def predict_function():
        from ..training.predict import predict_risk

        return predict_risk

    def prediction_lines(self, out: dict) -> list[str]:
        return [f"predicted risk of {out['outcome']}: {out['predicted_risk']:.3f} "
                f"(95% CI {out['ci_low']:.3f}-{out['ci_high']:.3f})"]

    def arm_lines(self, view: dict) -> list[str]:
        treatment = view["treatment"]
        return [f"{treatment}={arm['treatment'][treatment]}: predicted risk of {arm['outcome']} "
                f"{arm['predicted_risk']:.3f} (95% CI {arm['ci_low']:.3f}-{arm['ci_high']:.3f})" for arm in view["arms"]]

    def write_report(self, folder: str | Path, decision: dict | None = None) -> Path:
        from ..report import write_logistic_report

        return write_logistic_report(self.raw, folder, decision=decision)


class CoxModel(Model):
    ratio, ratio_ci, predicted = "hazard_ratio", ("hr_ci_low", "hr_ci_high"), "predicted survival"

    @property
    def concordance(self) -> dict:
        """Harrell's C on the training cohort, with the bounds of its exact value."""
        return self.raw["quality"]["concordance"]

    def summary_lines(self) -> list[str]:
        r, conv, c = self.raw, self.raw["convergence"], self.concordance
        lines = [f"  Cox proportional hazards ({r['ties']} ties) for {r['time']['column']} / {r['event']['column']}: "
                 f"{r['n_used']} complete cases, {r['events']} events; {conv['iterations']} Newton iterations, "
                 f"{self.rounds} rounds", *self.coefficient_lines("hazard ratio"),
                 f"    concordance {c['estimate']:.3f} (exact value in [{c['lower']:.3f}, {c['upper']:.3f}])",
                 *self.validation_lines()]
        base = r["baseline"]
        for block in base.get("strata", [{"stratum": None, "times": base.get("times", [])}]):
            pts = ", ".join(f"{t['time']:g}:{t['survival_at_mean']:.2f}" for t in block["times"]
                            if t["survival_at_mean"] is not None)
            where = "" if block["stratum"] is None else f" ({base['stratified_by']} {block['stratum']})"
            lines.append(f"    survival at the mean profile{where}: {pts}")
        return lines + self.term_lines()

    def validation_lines(self) -> list[str]:
        """The k-fold cross-validation, when the spec asked for it."""
        v = self.raw.get("validation")
        if not v:
            return []
        c, slope = v["concordance"], v["calibration_slope"]["cross_validated"]
        concordance = f"{c['cross_validated']:.3f}" if c["cross_validated"] is not None else "not available"
        calibration = (f"calibration slope {slope:.3f}" if slope is not None else
                       f"calibration slope withheld: {v['withheld']['calibration_slope']}")
        return [f"    internal validation ({v['folds']}-fold cross-validation{validation_cost(self.cost)}): concordance "
                f"{concordance} (apparent {c['apparent']:.3f}); {calibration} (apparent 1)"]

    @staticmethod
    def predict_function():
        from ..training.predict import predict_survival

        return predict_survival

    def prediction_lines(self, out: dict) -> list[str]:
        lines = [f"predicted survival ({out['time_unit']}); hazard ratio {out['hazard_ratio_vs_reference']:.3f} "
                 "against the reference profile:"]
        lines += [f"  t = {r['time']:g}: {r['survival']:.3f} (95% CI {r['ci_low']:.3f}-{r['ci_high']:.3f})"
                  for r in out["survival"]]
        return lines + [f"  t = {w['time']:g}: withheld ({w['reason']})" for w in out.get("withheld", [])]

    def arm_lines(self, view: dict) -> list[str]:
        treatment, arms = view["treatment"], view["arms"]
        lines = ["predicted survival (95% CI), " + " | ".join(f"{treatment}={a['treatment'][treatment]}" for a in arms)]
        for i, row in enumerate(arms[0]["survival"]):
            cells = [f"{a['survival'][i]['survival']:.3f} ({a['survival'][i]['ci_low']:.3f}-"
                     f"{a['survival'][i]['ci_high']:.3f})" for a in arms]
            lines.append(f"  t = {row['time']:g}: " + " | ".join(cells))
        return lines

    def report(self, folder: str | Path, profile: dict | None = None, treatment: str | None = None,
               profiles: dict[str, dict] | None = None) -> Path:
        """The report; ``profiles`` {label: profile} adds their predicted survival curves to the plot."""
        decision = {"profile": profile, "treatment": treatment} if profile and treatment else None
        from ..report import write_cox_report

        return write_cox_report(self.raw, folder, profiles, decision=decision)

    def write_report(self, folder: str | Path, decision: dict | None = None) -> Path:
        from ..report import write_cox_report

        return write_cox_report(self.raw, folder, decision=decision)
