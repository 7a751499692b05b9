"""Readable reports of released results: an HTML page with tables and PNG plots.

Only what the algorithm released goes in (suppressed cells stay suppressed).
One module: the figures (matplotlib) are drawn only for these pages and share their number formatting,
so apart the figures and the pages would import each other.
"""

from __future__ import annotations

import html
import json
from pathlib import Path


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p>(empty)</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{'&mdash;' if r.get(c) is None else html.escape(_fmt(r.get(c)))}</td>"
                                    for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


_STYLE = ("body{font-family:sans-serif;max-width:960px;margin:2em auto}table{border-collapse:collapse;margin:.5em 0}"
          "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th.row{text-align:left;font-weight:normal}"
          "td.withheld{color:#777;background:#eee;text-align:center}tr.total td,tr.total th{font-weight:bold}")


def _grid(columns: list[str], rows: list[list[str]], title: str = "", total_row: bool = False) -> str:
    """A table of text with the first column as row labels; withheld values shaded (lancelot.explore.tables)."""
    from .explore.tables import WITHHELD

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f"<td class='withheld' title='withheld (disclosure control)'>{WITHHELD}</td>"
                        if value == WITHHELD else f"<td>{html.escape(value)}</td>" for value in row[1:])
        css = " class='total'" if total_row and i == len(rows) - 1 else ""
        body.append(f"<tr{css}><th class='row'>{html.escape(row[0])}</th>{cells}</tr>")
    caption = f"<caption>{html.escape(title)}</caption>" if title else ""
    return f"<table>{caption}<tr>{head}</tr>{''.join(body)}</table>"


def _table_one_html(analysis: dict) -> str:
    from .explore.tables import table_one_grid

    columns, rows = table_one_grid(analysis)
    tests = "; ".join(f"{r['variable']}: {r['test']['withheld']}" for r in analysis["rows"]
                      if r.get("test", {}).get("withheld"))
    return (_grid(columns, rows)
            + f"<p>{html.escape(analysis['note'])}.</p>"
            + (f"<p>Tests withheld: {html.escape(tests)}.</p>" if tests else ""))


def _crosstab_html(analysis: dict) -> str:
    from .explore.tables import crosstab_grids

    return "".join(_grid(columns, rows, title, total_row=True) for title, columns, rows in crosstab_grids(analysis))


def _write_page(folder: Path, title: str, parts: list[str], result: dict) -> Path:
    """One self-contained HTML page: the parts, then the cost of the run."""
    page = folder / "report.html"
    page.write_text("\n".join(
        [f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
         f"<h1>{html.escape(title)}</h1>", *parts,
         f"<h2>cost</h2><pre>{html.escape(json.dumps(result.get('cost', {}), indent=1))}</pre></body></html>"]))
    return page


def _pyplot():
    """matplotlib without a display (reports are written on servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_curves(series: dict[str, list[tuple]], path: Path, what: str, title: str, small: bool = False) -> None:
    """Survival curves known only at released times, as (time, survival, low, high) points: drawn
    joined (not as a step function) from (0, 1), with a 95% band."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, pts in series.items():
        pts = [p for p in pts if p[1] is not None]
        if not pts:
            continue
        t, s, lo, hi = ([start] + [p[i] for p in pts] for i, start in enumerate((0.0, 1.0, 1.0, 1.0)))
        line, = ax.plot(t, s, marker="o", markersize=3, label=label)
        ax.fill_between(t, lo, hi, alpha=0.2, color=line.get_color())
    ax.set_xlabel(f"time ({what} at the released times, 95% band)")
    ax.set_ylabel("survival")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10 if small else None)
    ax.legend(fontsize=8 if small else None)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_km(analysis: dict, path: Path) -> None:
    title = "Kaplan-Meier"
    if "logrank" in analysis:
        title += f" (log-rank p = {analysis['logrank']['p_value']:.3g})"
    series = {f"{g['group']} (n={g['n']})": [(p["time"], p["survival"], p["ci_lower"], p["ci_upper"]) for p in g["curve"]]
              for g in analysis["groups"]}
    _plot_curves(series, path, "survival estimate", title)


def _plot_histogram(analysis: dict, path: Path) -> None:
    plt = _pyplot()
    bins = analysis["bins"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = [b["bin"] for b in bins]
    counts = [b["count"] or 0 for b in bins]
    bars = ax.bar(range(len(bins)), counts, color=["#999" if b["count"] is None else "#4477aa" for b in bins])
    for bar, b in zip(bars, bins):
        if b["count"] is None:
            ax.text(bar.get_x() + bar.get_width() / 2, 0, "suppressed", rotation=90, ha="center", va="bottom",
                    fontsize=7)
    ax.set_xticks(range(len(bins)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_title(analysis["variables"][0])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ratio_ticks(ax, values: list[float]) -> None:
    """Readable ticks on a log-scaled ratio axis (0.25, 0.5, 1, 2, 4, ...), without minor labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    finite = [v for v in values if 0 < v < float("inf")]
    lo, hi = min(finite + [1.0]), max(finite + [1.0])
    candidates = [b * 10.0 ** e for e in range(-4, 5) for b in (1, 2, 5)]
    ticks = [c for c in candidates if lo / 1.5 <= c <= hi * 1.5]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _plot_forest(rows: list[dict], path: Path, ratio: str = "odds_ratio", low: str = "or_ci_low",
                 high: str = "or_ci_high", what: str = "odds ratio", title: str = "Logistic regression on the linked cohort") -> None:
    plt = _pyplot()
    # spline terms have no per-unit reading (their curve is plotted separately)
    rows = [r for r in rows if r["feature"] != "(intercept)" and not r["feature"].endswith("'")]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(rows) + 1.4))
    for i, r in enumerate(rows):
        y = len(rows) - 1 - i
        ax.plot([r[low], r[high]], [y, y], color="tab:blue")
        ax.plot(r[ratio], y, "s", color="tab:blue")
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    _ratio_ticks(ax, [r[low] for r in rows] + [r[high] for r in rows])
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['feature']} ({r['station']})" if r.get("station") else r["feature"] for r in reversed(rows)])
    ax.set_xlabel(f"{what}{'' if 'within' in title else ' per unit'} (95% CI, log scale)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_calibration(groups: list[dict], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    pts = [g for g in groups if g["observed_rate"] is not None]
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    ax.plot([g["mean_predicted"] for g in pts], [g["observed_rate"] for g in pts], "o-", label="groups of patients")
    ax.set_xlabel("mean predicted risk")
    ax.set_ylabel("observed rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("Calibration (groups withheld below the minimum cell count)", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_key_agreement(pair: str, info: dict, path: Path) -> None:
    plt = _pyplot()
    rates = info["key_agreement_rate_among_links"]
    names = [k for k, v in rates.items() if v is not None]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.4))
    ax.barh(range(len(names)), [rates[k] for k in names], color="tab:blue")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of links on which the match key agrees")
    ax.set_title(f"{pair}: {info['linked']} links", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_link_report(result: dict, folder: str | Path) -> Path:
    """Linkage summary: records per station, links per pair, match-probability histogram, key agreement."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    summary = result["summary"]
    parts = [f"<p>Hub: {html.escape(summary['hub'])}; linked to every station: {_fmt(summary['linked_to_all_stations'])}. "
             f"{html.escape(summary['suppressed_note'])}. The links themselves stay at the coordinator.</p>",
             _table([{"station": s, "records": n} for s, n in summary["records_per_station"].items()])]
    for i, (pair, info) in enumerate(summary["pairs"].items()):
        _plot_key_agreement(pair, info, out / f"keys_{i}.png")
        parts += [f"<h2>{html.escape(pair)}</h2>",
                  f"<p>{_fmt(info['linked'])} links from {_fmt(info['candidate_pairs'])} candidate pairs "
                  f"({_fmt(info.get('linked_by_similarity'))} of them by the similarity step for records no key "
                  f"links); expected precision {_fmt(info['em_expected_precision'])}, recall "
                  f"{_fmt(info['em_expected_recall'])} (from the EM model, not from a ground truth)</p>",
                  _table(info["match_probability_histogram"]), f"<img src='keys_{i}.png'>"]
    return _write_page(out, "lancelot linkage", parts, result)


def _plot_survival(base: dict, path: Path, curves: dict[str, list[dict]] | None = None) -> None:
    """Predicted survival at the released times: the mean profile (per stratum) and any other profiles."""
    blocks = base["strata"] if "strata" in base else [{"stratum": None, "times": base["times"]}]
    series = {("mean profile" if b["stratum"] is None else f"{base['stratified_by']} {b['stratum']}, mean profile"):
              [(r["time"], r["survival_at_mean"], r.get("ci_low"), r.get("ci_high")) for r in b["times"]]
              for b in blocks}
    for label, rows in (curves or {}).items():
        series[label] = [(r["time"], r["survival"], r["ci_low"], r["ci_high"]) for r in rows]
    _plot_curves(series, path, "predicted survival", "Cox model: predicted survival (research use only)", small=True)


def _plot_spline(spline: dict, path: Path, ratio: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [p["x"] for p in spline["curve"]]
    ax.plot(xs, [p[ratio] for p in spline["curve"]], color="tab:blue")
    ax.fill_between(xs, [p["ci_low"] for p in spline["curve"]], [p["ci_high"] for p in spline["curve"]], alpha=0.2)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    for knot in spline["knots"]:
        ax.axvline(knot, color="grey", linestyle=":", linewidth=0.8)
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter

    for axis_formatter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        axis_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
    ax.set_xlabel(f"{spline['column']} (knots dotted)")
    ax.set_ylabel(f"{ratio.replace('_', ' ')} vs {spline['reference']:g} (95% band)")
    ax.set_title(f"{spline['column']}: restricted cubic spline (non-linearity p = "
                 f"{_fmt(spline['nonlinearity_test']['p_value'])})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _term_sections(result: dict, out: Path, ratio: str) -> list[str]:
    """Effect modification (per-level ratios and the interaction's Wald test) and non-linear effects."""
    parts: list[str] = []
    for i, block in enumerate(result.get("interactions", [])):
        rows = [{"effect of": r["effect_of"], "within": f"{r['modifier']} = {r['at']}", ratio: r[ratio],
                 "95% CI": f"{r['ci_low']:.3g}-{r['ci_high']:.3g}", "p_value": r["p_value"]} for r in block["effects"]]
        forest = [{"feature": f"{r['effect_of']} | {r['modifier']}={r['at']}", "station": "", ratio: r[ratio],
                   "lo": r["ci_low"], "hi": r["ci_high"]} for r in block["effects"]]
        _plot_forest(forest, out / f"effects_{i}.png", ratio, "lo", "hi", ratio.replace("_", " "),
                     f"{block['interaction']}: effect within each level")
        test = block["wald_test"]
        parts += [f"<h2>Effect modification: {html.escape(block['interaction'])}</h2>",
                  f"<p>Stations {html.escape(' x '.join(block['stations']))}; the modifier's values: "
                  f"{html.escape(block['modifier_values'])}. Interaction test (Wald, {test['df']} df): chi-square "
                  f"{_fmt(test['chi2'])}, p = {_fmt(test['p_value'])}.</p>", _table(rows), f"<img src='effects_{i}.png'>"]
    for spline in result.get("splines", []):
        name = f"spline_{spline['column']}.png".replace("/", "_")
        _plot_spline(spline, out / name, ratio)
        o, nl = spline["overall_test"], spline["nonlinearity_test"]
        parts += [f"<h2>Non-linear effect: {html.escape(spline['column'])}</h2>",
                  f"<p>Restricted cubic spline with knots {', '.join(f'{k:g}' for k in spline['knots'])}, computed at "
                  f"{html.escape(spline['station'])}. Overall test: chi-square {_fmt(o['chi2'])} on {o['df']} df, "
                  f"p = {_fmt(o['p_value'])}; non-linearity: chi-square {_fmt(nl['chi2'])} on {nl['df']} df, "
                  f"p = {_fmt(nl['p_value'])}.</p>", f"<img src='{name}'>"]
    return parts


def _decision_section(result: dict, out: Path, decision: dict | None, arms_html) -> list[str]:
    """For a typed-in profile: predicted risk or survival with each value of the treatment, side by side
    (``arms_html``: :func:`_risk_arms_html` or :func:`_survival_arms_html`, chosen by the model's writer)."""
    if not decision:
        return []
    from .results.models import Model

    model = Model.from_json(result)
    view = model.compare_treatment(decision["profile"], decision["treatment"], decision.get("values"))
    treatment, ratio = view["treatment"], model.ratio
    ratios = [{"treatment": f"{treatment} = {r['treatment'][treatment]} vs {r['versus'][treatment]}", ratio: r[ratio],
               "95% CI": f"{r['ci_low']:.3g}-{r['ci_high']:.3g}"} for r in view["ratios"]]
    profile = ", ".join(f"{k} = {v}" for k, v in view["profile"].items())
    parts = ["<h2>Decision support (research use only)</h2>",
             f"<p><b>{html.escape(view['label'])}.</b> Profile: {html.escape(profile)}.</p>", *arms_html(view, out)]
    return parts + [_table(ratios), f"<p>{html.escape(view['note'])}</p>"]


def _survival_arms_html(view: dict, out: Path) -> list[str]:
    treatment = view["treatment"]
    curves = {f"{treatment} = {arm['treatment'][treatment]}": arm["survival"] for arm in view["arms"]}
    series = {label: [(r["time"], r["survival"], r["ci_low"], r["ci_high"]) for r in rows]
              for label, rows in curves.items()}
    _plot_curves(series, out / "decision.png", "predicted survival", "Predicted survival with and without "
                 f"{treatment} (research use only)", small=True)
    times = sorted({r["time"] for rows in curves.values() for r in rows})
    table = [{"time": t, **{label: next((f"{r['survival']:.3f} ({r['ci_low']:.3f}-{r['ci_high']:.3f})"
                                         for r in rows if r["time"] == t), None) for label, rows in curves.items()}}
             for t in times]
    return [_table(table), "<img src='decision.png'>"]


def _risk_arms_html(view: dict, out: Path) -> list[str]:
    treatment = view["treatment"]
    return [_table([{"treatment": f"{treatment} = {arm['treatment'][treatment]}", "predicted risk": arm["predicted_risk"],
                     "95% CI": f"{arm['ci_low']:.3f}-{arm['ci_high']:.3f}"} for arm in view["arms"]])]


def write_cox_report(result: dict, folder: str | Path, profiles: dict[str, dict] | None = None,
                     decision: dict | None = None) -> Path:
    """Hazard-ratio table and forest plot, predicted survival curves, concordance, convergence and cost."""
    from .training.predict import predict_survival

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    _plot_forest(result["coefficients"], out / "forest.png", "hazard_ratio", "hr_ci_low", "hr_ci_high",
                 "hazard ratio", "Cox proportional hazards on the linked cohort")
    curves = {name: predict_survival(result, prof)["survival"] for name, prof in (profiles or {}).items()}
    _plot_survival(result["baseline"], out / "survival.png", curves)
    rows = [{k: r[k] for k in ("feature", "station", "estimate", "std_error", "hazard_ratio", "hr_ci_low",
                                "hr_ci_high", "p_value")} for r in result["coefficients"]]
    c, conv = result["quality"]["concordance"], result["convergence"]
    base = result["baseline"]
    blocks = base["strata"] if "strata" in base else [{"stratum": None, "times": base["times"],
                                                        "withheld": base.get("withheld", [])}]
    times = [{**({base["stratified_by"]: b["stratum"]} if b["stratum"] is not None else {}),
              **{k: r.get(k) for k in ("time", "at_risk", "survival_at_mean", "ci_low", "ci_high")}}
             for b in blocks for r in b["times"]]
    withheld = [{**({base["stratified_by"]: b["stratum"]} if b["stratum"] is not None else {}), **w}
                for b in blocks for w in b["withheld"]]
    strata = result.get("strata")
    parts = ["<p><b>For research use only; not validated for clinical decisions.</b></p>",
             f"<p>Survival time {html.escape(result['time']['column'])}, event {html.escape(result['event']['column'])} "
             f"at {html.escape(result['time']['station'])}; {html.escape(result['ties'])} ties. {result['n_used']} "
             f"complete cases ({result['events']} events) of the linked cohort; {html.escape(result['cohort']['note'])}.</p>",
             *([f"<p>Stratified by {html.escape(strata['column'])} (a baseline hazard per level): "
                f"{html.escape(strata['note'])}.</p>", _table(strata["levels"])] if strata else []),
             _table(rows), "<img src='forest.png'>",
             *_term_sections(result, out, "hazard_ratio"),
             *_decision_section(result, out, decision, _survival_arms_html),
             "<h2>Predicted survival</h2><img src='survival.png'>", _table(times),
             f"<p>{html.escape(base['note'])}</p>",
             *([f"<p>Requested times withheld:</p>{_table(withheld)}"] if withheld else []),
             f"<h2>Model quality</h2><p>Concordance (Harrell's C, training cohort) {_fmt(c['estimate'])}, "
             f"exact value between {_fmt(c['lower'])} and {_fmt(c['upper'])} ({c['bins']} risk-score bins)</p>",
             *_validation_section(result.get("validation"), result.get("cost", {})),
             f"<h2>Convergence</h2><p>{conv['iterations']} Newton iterations, converged: {conv['converged']}</p>",
             _table(conv["history"])]
    return _write_page(out, "lancelot training: Cox proportional hazards", parts, result)


def write_train_report(result: dict, folder: str | Path, decision: dict | None = None) -> Path:
    """A training result's report, by its model's class (:func:`write_logistic_report`,
    :func:`write_cox_report`). ``decision``: {"profile": {...}, "treatment": column} adds the
    decision-support view for that profile."""
    from .results.models import Model

    return Model.from_json(result).write_report(folder, decision)


def write_logistic_report(result: dict, folder: str | Path, decision: dict | None = None) -> Path:
    """Coefficient table, forest plot of odds ratios, effect modification and spline effects, calibration plot,
    convergence and cost."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    _plot_forest(result["coefficients"], out / "forest.png")
    _plot_calibration(result["quality"]["calibration"], out / "calibration.png")
    o = result["outcome"]
    rows = [{k: r[k] for k in ("feature", "station", "estimate", "std_error", "odds_ratio", "or_ci_low",
                                "or_ci_high", "p_value")} for r in result["coefficients"]]
    conv = result["convergence"]
    parts = ["<p><b>For research use only; not validated for clinical decisions.</b></p>",
             f"<p>Outcome: {html.escape(o['column'])} at {html.escape(o['station'])}. "
             f"{result['n_used']} complete cases ({result['events']} events) of the linked cohort; "
             f"{html.escape(result['cohort']['note'])}.</p>",
             _table(rows), "<img src='forest.png'>",
             *_term_sections(result, out, "odds_ratio"),
             *_decision_section(result, out, decision, _risk_arms_html),
             f"<h2>Model quality</h2><p>AUC {result['quality']['auc']:.3f} (on the training cohort)</p>",
             "<img src='calibration.png'>", _table(result["quality"]["calibration"]),
             *_validation_section(result.get("validation"), result.get("cost", {})),
             f"<h2>Convergence</h2><p>{conv['iterations']} Newton iterations, converged: {conv['converged']}</p>",
             _table(conv["history"])]
    return _write_page(out, "lancelot training: logistic regression", parts, result)


def _validation_section(v: dict | None, cost: dict) -> list[str]:
    """Internal validation: apparent, optimism and optimism-corrected AUC and calibration slope, and its cost."""
    from .results.models import validation_cost

    if not v:
        return []
    if "folds" in v:      # Cox: k-fold cross-validation
        rows = [{"measure": name, "apparent": v[key]["apparent"], "cross-validated": v[key]["cross_validated"]}
                for name, key in (("concordance", "concordance"), ("calibration slope", "calibration_slope"))]
        withheld = [f"<p>{html.escape(name.replace('_', ' '))} withheld: {html.escape(why)}.</p>"
                    for name, why in v.get("withheld", {}).items()]
        return [f"<h2>Internal validation</h2><p>{html.escape(v['method'])}; scores in {v['bins']} bins"
                f"{html.escape(validation_cost(cost))}.</p>", _table(rows), *withheld, f"<p>{html.escape(v['note'])}.</p>"]
    rows = [{"measure": name, "apparent": v[key]["apparent"], "optimism": v[key]["optimism"],
             "optimism SE (Monte Carlo)": v[key]["optimism_se"], "corrected": v[key]["corrected"]}
            for name, key in (("AUC", "auc"), ("calibration slope", "calibration_slope")) if v[key]]
    withheld = [f"<p>{html.escape(name.replace('_', ' '))} withheld: {html.escape(why)}.</p>"
                for name, why in v.get("withheld", {}).items()]
    return [f"<h2>Internal validation</h2><p>{html.escape(v['method'])}: {v['resamples_used']} of "
            f"{v['repetitions']} resamples used, scores in {v['bins']} bins{html.escape(validation_cost(cost))}.</p>",
            _table(rows), *withheld,
            f"<p>{html.escape(v['note'])}.</p>"]


def write_explore_report(result, folder: str | Path) -> Path:
    """Every analysis of an exploration (its JSON or :class:`lancelot.results.Exploration`), each drawn by
    its own class."""
    from .results.explore import Exploration

    exploration = result if isinstance(result, Exploration) else Exploration.from_json(result)
    raw = exploration.raw
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"<p>Linked cohort: {raw['cohort']['records']} records ({html.escape(raw['cohort']['definition'])}). "
             f"{html.escape(raw['disclosure_control']['rule'])}. &mdash; marks a withheld value.</p>"]
    for a in exploration.analyses:
        parts.append(f"<h2>{html.escape(a.name)}: {html.escape(', '.join(a.variables))}</h2>")
        parts += a.html(out)
    return _write_page(out, "lancelot exploration", parts, raw)
