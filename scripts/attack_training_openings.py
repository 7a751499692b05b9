#!/usr/bin/env python3
"""Privacy check of training: can the coordinator pair records across its openings of z?

Each Newton iteration the coordinator opens the cohort's linear predictors z = X beta in a fresh
random order (logistic and Cox regression alike). At nearly equal coefficients two openings are nearly equal multisets, and sorting
both pairs most records (then z' - z = x . (beta' - beta) is one more projection of each record's
features). This script replays the exact Newton path on the linked synthetic cohort (plaintext, same
iterates as the protocol) and reports, for each pair of consecutive openings, the fraction of
records that rank matching pairs correctly: under lancelot's stopping rule (stop, without a new
opening, once the step is below sqrt(tolerance)) and under a naive rule that opens until the step
itself is below the tolerance.

    .venv/bin/python scripts/attack_training_openings.py [--patients 13500] [--tolerance 1e-6] [--model cox]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_training import EVENT, OUTCOME, TIME, pooled  # noqa: E402

from lancelot.synth import generate  # noqa: E402


def logistic_step(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    p = 1 / (1 + np.exp(-z))
    return np.linalg.solve(x.T @ (x * (p * (1 - p))[:, None]), x.T @ (y - p))


def cox_step(x: np.ndarray, time: np.ndarray, event: np.ndarray, z: np.ndarray) -> np.ndarray:
    """A Newton step of the Breslow partial likelihood (the path Efron takes is the same to the eye)."""
    order = np.argsort(time, kind="stable")
    x, t, d, r = x[order], time[order], event[order], np.exp(z[order] - z.max())
    starts = np.searchsorted(t, np.unique(t[d == 1]), side="left")
    deaths = np.array([d[(t == t[s])].sum() for s in starts])
    suffix = lambda a: np.cumsum(a[::-1], axis=0)[::-1]  # noqa: E731
    s_k, g_k = suffix(r)[starts], suffix(r[:, None] * x)[starts]
    q_k = suffix(r[:, None, None] * x[:, :, None] * x[:, None, :])[starts]
    xbar = g_k / s_k[:, None]
    grad = (d[:, None] * x).sum(0) - (deaths[:, None] * xbar).sum(0)
    hess = np.einsum("k,kij->ij", deaths / s_k, q_k) - np.einsum("k,ki,kj->ij", deaths, xbar, xbar)
    return np.linalg.solve(hess, grad)


def newton_openings(x: np.ndarray, step_at, stop) -> list[np.ndarray]:
    beta, opened = np.zeros(x.shape[1]), []
    for _ in range(30):
        z = x @ beta
        opened.append(z)
        step = step_at(z)
        beta = beta + step
        if stop(np.max(np.abs(step))):
            break
    return opened


def rank_matched(a: np.ndarray, b: np.ndarray) -> float:
    pairs = np.empty(len(a), dtype=int)
    pairs[np.argsort(a, kind="stable")] = np.argsort(b, kind="stable")
    return float(np.mean(pairs == np.arange(len(a))))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=13500)
    ap.add_argument("--tolerance", type=float, default=1e-6)
    ap.add_argument("--model", choices=["logistic", "cox"], default="logistic")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = generate(n_patients=args.patients, gp_stations=1, seed=21).write(Path(tmp))
        truth = pd.read_csv(paths["truth_links"])
        data = (truth.merge(pd.read_csv(paths["registry"]), left_on="registry_id", right_on="record_id")
                .merge(pd.read_csv(paths["gp_1"]), left_on="station_id", right_on="patient_nr"))
    if args.model == "cox":
        x, y = pooled(data, (TIME, EVENT), intercept=False)
        xs = x.to_numpy().copy()
        xs = (xs - xs.mean(0)) / xs.std(0)  # about lancelot's internal scale
        step_at = lambda z: cox_step(xs, y[TIME].to_numpy(), y[EVENT].to_numpy(), z)  # noqa: E731
    else:
        x, y = pooled(data)
        xs = x.to_numpy().copy()
        xs[:, 1:] = (xs[:, 1:] - xs[:, 1:].mean(0)) / xs[:, 1:].std(0)  # about lancelot's internal scale
        step_at = lambda z: logistic_step(xs, y[OUTCOME].to_numpy(), z)  # noqa: E731
    rules = {"lancelot (stop when step^2 < tol)": lambda s: s * s < args.tolerance,
             "naive (open until step < tol)": lambda s: s < args.tolerance}
    print(f"{args.model}: {len(y)} linked complete cases, {x.shape[1] - (args.model == 'logistic')} features, "
          f"tolerance {args.tolerance:g}")
    for name, rule in rules.items():
        opened = newton_openings(xs, step_at, rule)
        fractions = [rank_matched(a, b) for a, b in zip(opened, opened[1:])]
        print(f"  {name}: {len(opened)} openings; records paired correctly between consecutive openings: "
              + ", ".join(f"{f:.1%}" for f in fractions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
