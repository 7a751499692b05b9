"""Cox proportional hazards: the hub's time order, tie groups and strata, and sums over them.

H computes the structure over all of its rows (:func:`time_structure`) and sends it sealed to P, so
that both walk their shares in time order: risk sets are suffix sums from an event time to the end
of its stratum's block, the deaths of a tie are a contiguous run. Nothing here is secret-dependent
beyond H's own data; the coordinator never sees it.
"""

from __future__ import annotations

import numpy as np


def time_structure(times: np.ndarray, events: np.ndarray, complete: np.ndarray,
                   survival_times: tuple[float, ...], strata: np.ndarray | None = None, n_strata: int = 1) -> dict:
    """H's own time order and tie groups, over all of its rows: ordered by stratum, then time (deaths first
    within a tie); rows without a time, event or stratum last. An event group is a (stratum, time) with
    deaths; its risk set runs from its first row to the end of its stratum's block.

    ``starts``, ``stops``, ``deaths``: per event group (in order) its first position, the end of its stratum's
    block and its number of deaths; ``blocks``: per stratum [first, end) positions; ``gfirst``: per stratum
    its first group; ``upto`` (strata x requested times): groups (global index) up to each time, exclusive;
    ``risk_pos``: the first position at or after each time in the stratum's block.
    """
    valid = complete.astype(bool) & np.isfinite(times)
    code = np.zeros(len(times), dtype=np.int64) if strata is None else np.asarray(strata, dtype=np.int64)
    valid &= code >= 0
    code = np.where(valid, code, n_strata)
    key = np.where(valid, times, np.inf)
    died = (events == 1) & valid
    order = np.lexsort((~died, key, code))
    cs, ts, ds = code[order], key[order], died[order]
    starts, stops, deaths, blocks, gfirst, upto, risk_pos = [], [], [], [], [], [], []
    for s in range(n_strata):
        lo, hi = int(np.searchsorted(cs, s, side="left")), int(np.searchsorted(cs, s, side="right"))
        t_s, d_s = ts[lo:hi], ds[lo:hi]
        death_times = np.unique(t_s[d_s])
        dts = t_s[d_s]
        gfirst.append(len(starts))
        starts += (lo + np.searchsorted(t_s, death_times, side="left")).tolist()
        deaths += (np.searchsorted(dts, death_times, side="right") - np.searchsorted(dts, death_times, side="left")).tolist()
        stops += [hi] * len(death_times)
        blocks.append([lo, hi])
        upto.append([gfirst[-1] + int(np.searchsorted(death_times, t, side="right")) for t in survival_times])
        risk_pos.append([lo + int(np.searchsorted(t_s, t, side="left")) for t in survival_times])
    as_int = lambda v: np.asarray(v, dtype=np.int64)   # noqa: E731
    return {"order": order.astype(np.int64), "starts": as_int(starts), "deaths": as_int(deaths), "stops": as_int(stops),
            "blocks": as_int(blocks).reshape(n_strata, 2), "gfirst": as_int(gfirst),
            "upto": as_int(upto).reshape(n_strata, len(survival_times)),
            "risk_pos": as_int(risk_pos).reshape(n_strata, len(survival_times))}


STRUCTURE = ("starts", "deaths", "stops", "blocks", "gfirst", "upto", "risk_pos")


def stratum_of_position(struct: dict, n: int) -> np.ndarray:
    """Per time position, its stratum (-1 for the rows after every block: no time, event or stratum)."""
    out = np.full(n, -1, dtype=np.int64)
    for s, (lo, hi) in enumerate(struct["blocks"]):
        out[lo:hi] = s
    return out


def block_end(struct: dict, n: int) -> np.ndarray:
    """Per time position, the end of its stratum's block (risk sets and later records stop there); n after them."""
    out = np.full(n + 1, n, dtype=np.int64)
    for lo, hi in struct["blocks"]:
        out[lo:hi] = hi
    return out


def grid_points(struct: dict, efron: bool) -> np.ndarray:
    """Grid points per event time: Efron needs one per death at H (l = 0 .. d-1), Breslow one."""
    return struct["deaths"] if efron else np.ones(len(struct["deaths"]), dtype=np.int64)


def grid(points: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid points (group, l) with groups in the permuted order sigma: (group, offset) per point."""
    sizes = points[sigma]
    groups = np.repeat(sigma, sizes)
    offsets = np.concatenate([np.arange(s) for s in sizes]) if len(sizes) else np.zeros(0, dtype=np.int64)
    return groups, offsets


def deaths_index(struct: dict) -> tuple[np.ndarray, np.ndarray]:
    """For the hub's deaths in time order: the event time (group) of each and its time position."""
    starts, deaths = struct["starts"], struct["deaths"]
    group = np.repeat(np.arange(len(starts)), deaths)
    pos = np.concatenate([np.arange(s, s + d) for s, d in zip(starts, deaths)]) if len(starts) else np.zeros(0, int)
    return group, pos


def sum_by(values: np.ndarray, index: np.ndarray, count: int, ring) -> np.ndarray:
    """Ring sums of rows of ``values`` grouped by ``index`` (0..count-1)."""
    shape = (count,) + values.shape[1:]
    out = np.zeros(shape, dtype=object)
    np.add.at(out, index, values)
    return ring.element(out)


def suffix_sums(values: np.ndarray) -> np.ndarray:
    """Ring suffix sums along axis 0, with a final zero row (index n = the empty suffix)."""
    rev = np.cumsum(values[::-1], axis=0)[::-1]
    return np.concatenate([rev, np.zeros((1,) + values.shape[1:], dtype=object)])
