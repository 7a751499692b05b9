"""Readable reports of released results: an HTML page with tables and PNG plots.

Only what the algorithm released goes in (suppressed cells stay suppressed).
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
          "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}")


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
    rows = [r for r in rows if r["feature"] != "(intercept)"]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(rows) + 1.4))
    for i, r in enumerate(rows):
        y = len(rows) - 1 - i
        ax.plot([r[low], r[high]], [y, y], color="tab:blue")
        ax.plot(r[ratio], y, "s", color="tab:blue")
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    _ratio_ticks(ax, [r[low] for r in rows] + [r[high] for r in rows])
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['feature']} ({r['station']})" for r in reversed(rows)])
    ax.set_xlabel(f"{what} per unit (95% CI, log scale)")
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
                  f"<p>{_fmt(info['linked'])} links from {_fmt(info['candidate_pairs'])} candidate pairs; "
                  f"expected precision {_fmt(info['em_expected_precision'])}, recall {_fmt(info['em_expected_recall'])} "
                  "(from the EM model, not from a ground truth)</p>",
                  _table(info["match_probability_histogram"]), f"<img src='keys_{i}.png'>"]
    return _write_page(out, "lancelot linkage", parts, result)


def _plot_survival(base: dict, path: Path, curves: dict[str, list[dict]] | None = None) -> None:
    """Predicted survival at the released times: the mean profile and any other profiles."""
    series = {"mean profile": [(r["time"], r["survival_at_mean"], r.get("ci_low"), r.get("ci_high"))
                               for r in base["times"]]}
    for label, rows in (curves or {}).items():
        series[label] = [(r["time"], r["survival"], r["ci_low"], r["ci_high"]) for r in rows]
    _plot_curves(series, path, "predicted survival", "Cox model: predicted survival (research use only)", small=True)


def write_cox_report(result: dict, folder: str | Path, profiles: dict[str, dict] | None = None) -> Path:
    """Hazard-ratio table and forest plot, predicted survival curves, concordance, convergence and cost."""
    from .training.predict import predict

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    _plot_forest(result["coefficients"], out / "forest.png", "hazard_ratio", "hr_ci_low", "hr_ci_high",
                 "hazard ratio", "Cox proportional hazards on the linked cohort")
    curves = {name: predict(result, prof)["survival"] for name, prof in (profiles or {}).items()}
    _plot_survival(result["baseline"], out / "survival.png", curves)
    rows = [{k: r[k] for k in ("feature", "station", "estimate", "std_error", "hazard_ratio", "hr_ci_low",
                                "hr_ci_high", "p_value")} for r in result["coefficients"]]
    c, conv = result["quality"]["concordance"], result["convergence"]
    times = [{k: r.get(k) for k in ("time", "at_risk", "survival_at_mean", "ci_low", "ci_high")}
             for r in result["baseline"]["times"]]
    parts = ["<p><b>For research use only; not validated for clinical decisions.</b></p>",
             f"<p>Survival time {html.escape(result['time']['column'])}, event {html.escape(result['event']['column'])} "
             f"at {html.escape(result['time']['station'])}; {html.escape(result['ties'])} ties. {result['n_used']} "
             f"complete cases ({result['events']} events) of the linked cohort; {html.escape(result['cohort']['note'])}.</p>",
             _table(rows), "<img src='forest.png'>",
             "<h2>Predicted survival</h2><img src='survival.png'>", _table(times),
             f"<p>{html.escape(result['baseline']['note'])}</p>",
             *([f"<p>Requested times withheld:</p>{_table(result['baseline']['withheld'])}"]
               if result["baseline"].get("withheld") else []),
             f"<h2>Model quality</h2><p>Concordance (Harrell's C, training cohort) {_fmt(c['estimate'])}, "
             f"exact value between {_fmt(c['lower'])} and {_fmt(c['upper'])} ({c['bins']} risk-score bins)</p>",
             f"<h2>Convergence</h2><p>{conv['iterations']} Newton iterations, converged: {conv['converged']}</p>",
             _table(conv["history"])]
    return _write_page(out, "lancelot training: Cox proportional hazards", parts, result)


def write_train_report(result: dict, folder: str | Path) -> Path:
    """Coefficient table, forest plot of odds ratios, calibration plot, convergence and cost (Cox: see
    :func:`write_cox_report`)."""
    if result.get("model") == "cox":
        return write_cox_report(result, folder)
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
             f"<h2>Model quality</h2><p>AUC {result['quality']['auc']:.3f} (on the training cohort)</p>",
             "<img src='calibration.png'>", _table(result["quality"]["calibration"]),
             f"<h2>Convergence</h2><p>{conv['iterations']} Newton iterations, converged: {conv['converged']}</p>",
             _table(conv["history"])]
    return _write_page(out, "lancelot training: logistic regression", parts, result)


def write_explore_report(result: dict, folder: str | Path) -> Path:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"<p>Linked cohort: {result['cohort']['records']} records ({html.escape(result['cohort']['definition'])}). "
             f"{html.escape(result['disclosure_control']['rule'])}. &mdash; marks a withheld value.</p>"]
    for a in result["analyses"]:
        parts.append(f"<h2>{html.escape(a['name'])}: {html.escape(', '.join(a['variables']))}</h2>")
        if a["type"] == "kaplan_meier":
            png = out / f"{a['name']}.png"
            _plot_km(a, png)
            parts.append(f"<img src='{png.name}'>")
            for g in a["groups"]:
                parts.append(f"<h3>group {html.escape(str(g['group']))}</h3>" + _table(g["curve"]))
            if "logrank" in a:
                parts.append(f"<p>log-rank: {_fmt(a['logrank']['statistic'])} on {a['logrank']['degrees_of_freedom']} "
                             f"df, p = {a['logrank']['p_value']:.3g}</p>")
        elif a["type"] == "histogram":
            png = out / f"{a['name']}.png"
            _plot_histogram(a, png)
            parts.append(f"<img src='{png.name}'>" + _table(a["bins"]))
        elif a["type"] == "crosstab" and "table" in a:
            parts.append(_table(a["table"]))
        elif a["type"] == "summary":
            parts.append(_table([{k: v for k, v in a["overall"].items() if not isinstance(v, (dict, str))}]))
            if "by" in a:
                parts.append(_table(a["by"]))
        elif a["type"] == "correlation":
            names = a["variables"]
            parts.append(_table([{"": n, **dict(zip(names, row))} for n, row in zip(names, a["pearson_r"])]))
        elif "table" in a:
            parts.append(_table(a["table"]))
        else:
            parts.append(f"<pre>{html.escape(json.dumps(a, indent=1))}</pre>")
    return _write_page(out, "lancelot exploration", parts, result)
