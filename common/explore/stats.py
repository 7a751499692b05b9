"""Released statistics, assembled at the coordinator from cohort sums, with disclosure control.

Every number comes from ``CohortSums``: sums over the linked cohort of one station's column, or
of the product of two stations' columns. Nothing here sees a record.

Disclosure control is decided for the whole job at once (:func:`release`): every analysis first
registers its counts in one :class:`~lancelot.explore.ledger.Ledger` (over the job's dimensions:
each categorical variable's levels, each numeric variable's histogram atoms or present/missing,
each survival status), the ledger suppresses jointly, and only then is each analysis written out.
Categories with fewer than k linked patients are merged into ``<other>`` (their labels never
appear), histogram bins into neighbours until each holds k, quantiles are released only with k
records on either side, survival curves only at times k events apart, and means and SDs to four
significant digits. Rules and reference points: docs/leakage/disclosure.md.

This module runs that release (:func:`release`) and its dry run (:func:`needed_sums`). The sums and the
job's dimensions are in :mod:`.job`; the analyses, by family, in :mod:`.counts` (count, crosstab,
missingness), :mod:`.numeric` (summary, histogram, correlation), :mod:`.survival` (kaplan_meier) and
:mod:`.table_one`.
"""

from __future__ import annotations

import numpy as np

from ..runtime.errors import InputError
from .counts import count, crosstab, missingness
from .job import CohortSums, Job
from .numeric import correlation, histogram, summary
from .spec import ExploreSpec
from .survival import kaplan_meier
from .table_one import table_one

ANALYSES = {"count": count, "crosstab": crosstab, "summary": summary, "histogram": histogram,
            "correlation": correlation, "missingness": missingness, "kaplan_meier": kaplan_meier,
            "table_one": table_one}


def release(spec: ExploreSpec, sums: CohortSums, k: int, base: int, dry_run: bool = False) -> tuple[list[dict], dict]:
    """Every analysis of the job, its counts suppressed jointly, then written out (in spec order),
    and the suppression's summary."""
    job = Job(spec, sums, k, base, dry_run)
    renders = []
    for a in spec.analyses:
        try:
            renders.append(ANALYSES[a.type](a, job))
        except InputError:
            raise
        except Exception:  # noqa: BLE001 - in a dry run placeholder values may upset a computation
            if not dry_run:
                raise
    if dry_run:
        return [], {}
    job.ledger.suppress()
    out = []
    for a, render in zip(spec.analyses, renders):
        entry = {"name": a.name, "type": a.type, "variables": [v.key() for v in a.all_vars()]}
        entry.update(render())
        out.append(entry)
    return out, job.ledger.report()


class NeedsRecorder(CohortSums):
    """A dry run of the analyses on placeholder sums, recording which sums they read.

    Running the real statistics code keeps the request list from drifting away from what the
    statistics need.
    """

    def __init__(self, meta: dict[str, dict]):
        super().__init__(totals={}, meta=meta)
        self.total_requests: set[tuple[str, str]] = set()
        self.cross_requests: set[tuple[str, str, str, str]] = set()
        self.triple_requests: set[int] = set()

    def total(self, station: str, col: str) -> float:
        self.total_requests.add((station, col))
        return 100.0

    def cross(self, s1: str, c1: str, s2: str, c2: str) -> float:
        if s1 == s2:
            raise ValueError("cross() is for two stations")
        self.cross_requests.add((s1, c1, s2, c2))
        return 20.0

    def triple(self, index: int) -> np.ndarray:
        self.triple_requests.add(index)
        return np.full((64, 64, 64), 20.0)

    @property
    def n(self) -> float:
        return 100.0


def needed_sums(spec: ExploreSpec, meta: dict[str, dict], k: int) -> NeedsRecorder:
    recorder = NeedsRecorder(meta)
    release(spec, recorder, k, base=1, dry_run=True)
    return recorder
