#!/usr/bin/env python3
"""Peer benchmark: TNO's MPyC secure_learning logistic regression against the pooled statsmodels fit.

Measures tno.mpc.mpyc.secure_learning 1.1.1 (``Logistic``, gradient descent, exact logistic
function, no penalty) on a synthetic standardised data set: wall time for a given number of
epochs (full-batch gradient-descent iterations), and the largest coefficient difference from
statsmodels ``Logit`` on the same data. Compare with scripts/bench_training.py (lancelot, exact
Newton on shares). It needs its own environment, kept apart from the project's (its pins differ)::

    python3 -m venv /tmp/tnovenv && /tmp/tnovenv/bin/pip install tno-mpc-mpyc-secure-learning statsmodels
    /tmp/tnovenv/bin/python scripts/bench_training_peer.py --rows 1000 --features 20 --epochs 2 --no-log
    /tmp/tnovenv/bin/python scripts/bench_training_peer.py --rows 1000 --features 20 --epochs 2 -M3 --no-log

``-M3`` runs three MPyC parties on this machine (MPyC starts the other two itself); MPyC reads
its own options (-M, --no-log) from the command line.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import statsmodels.api as sm
from mpyc.runtime import mpc
from tno.mpc.mpyc.secure_learning import ExponentiationTypes, Logistic, PenaltyTypes, SolverTypes


def data(rows: int, features: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, features))
    beta = rng.uniform(-0.6, 0.6, features)
    y = (rng.random(rows) < 1 / (1 + np.exp(-(x @ beta - 0.3)))).astype(float)
    return np.column_stack([np.ones(rows), x]), y


async def secure_fit(x: np.ndarray, y: np.ndarray, epochs: int) -> tuple[np.ndarray, float]:
    secnum = mpc.SecFxp(l=64, f=32)
    async with mpc:
        # tno adds its own intercept (first coefficient): share the features without the constant column
        x_shared = [mpc.input([secnum(v, integral=False) for v in row[1:]], senders=0) for row in x.tolist()]
        y_shared = mpc.input([secnum(2 * v - 1, integral=False) for v in y.tolist()], senders=0)  # labels -1/+1
    model = Logistic(solver_type=SolverTypes.GD, exponentiation=ExponentiationTypes.EXACT, penalty=PenaltyTypes.NONE)
    t0 = time.perf_counter()
    async with mpc:
        coef = await model.compute_coef_mpc(x_shared, y_shared, tolerance=1e-6, nr_maxiters=epochs)
    return np.asarray(coef, dtype=float), time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=2)
    args, _mpyc_options = ap.parse_known_args()
    x, y = data(args.rows, args.features)
    t0 = time.perf_counter()
    fit = sm.Logit(y, x).fit(disp=0, tol=1e-12)
    ref_seconds = time.perf_counter() - t0
    coef, seconds = mpc.run(secure_fit(x, y, args.epochs))
    if mpc.pid == 0:
        print(f"{args.rows} rows x {args.features} features, {len(mpc.parties)} MPyC part{'y' if len(mpc.parties) == 1 else 'ies'}")
        print(f"{'':>28} {'seconds':>9} {'max|coef - statsmodels|':>24}")
        print(f"{'tno secure_learning (GD)':>28} {seconds:>9.1f} {np.max(np.abs(coef - fit.params)):>24.3g}"
              f"   ({args.epochs} epochs, {seconds / args.epochs:.1f} s each)")
        print(f"{'statsmodels Logit (pooled)':>28} {ref_seconds:>9.3f} {0.0:>24.3g}   (ratio x{seconds / ref_seconds:,.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
