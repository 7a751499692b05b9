"""Primary and secondary cell suppression for released tables.

Primary: a count 0 < c < k is withheld. Secondary: a withheld cell must not be recoverable from
released margins, so every row and column (margins included) that has exactly one withheld cell
gets a second one (its smallest released non-zero cell), repeated until no such line is left.
"""

from __future__ import annotations

import numpy as np


def suppress_table(counts: np.ndarray, k: int) -> tuple[np.ndarray, list[dict]]:
    """2-D counts -> boolean mask of withheld cells (including margins), and the reasons.

    The returned mask has shape (rows + 1, cols + 1): the last row and column are the margins
    and the bottom-right cell is the grand total.
    """
    counts = np.asarray(counts, dtype=float)
    full = np.zeros((counts.shape[0] + 1, counts.shape[1] + 1))
    full[:-1, :-1] = counts
    full[:-1, -1] = counts.sum(1)
    full[-1, :-1] = counts.sum(0)
    full[-1, -1] = counts.sum()
    hidden = (full > 0) & (full < k)
    reasons = [{"cell": [int(i), int(j)], "reason": f"primary: count below {k}"} for i, j in zip(*np.nonzero(hidden))]
    changed = True
    while changed:
        changed = False
        lines = [("row", i, (i, slice(None))) for i in range(full.shape[0])] + \
                [("col", j, (slice(None), j)) for j in range(full.shape[1])]
        for _kind, _idx, sl in lines:
            line_hidden = hidden[sl]
            if line_hidden.sum() == 1:
                # hide the smallest released non-zero cell (a hidden zero protects nothing), else a zero
                values = np.where(line_hidden, np.inf, full[sl])
                nonzero = np.where(values > 0, values, np.inf)
                target = int(np.argmin(nonzero)) if np.isfinite(nonzero).any() else int(np.argmin(values))
                if np.isinf(values[target]):
                    continue
                cell = (sl[0], target) if isinstance(sl[0], int) else (target, sl[1])
                hidden[cell] = True
                reasons.append({"cell": [int(cell[0]), int(cell[1])],
                                "reason": "secondary: could be recomputed from the margins"})
                changed = True
    return hidden, reasons


def suppress_vector(counts: np.ndarray, k: int, with_total: bool = True) -> tuple[np.ndarray, list[dict]]:
    """1-D counts plus their total: the same rules with the total as the only margin."""
    hidden, reasons = suppress_table(np.asarray(counts, dtype=float)[:, None], k)
    mask = np.concatenate([hidden[:-1, 0], [hidden[-1, 0]]])
    out = [{"cell": r["cell"][0], "reason": r["reason"]} for r in reasons if r["cell"][1] == 0]
    return (mask if with_total else mask[:-1]), out
