"""The coordinator's side of counts on exponential ElGamal (:mod:`.ec_product`): layouts, decryption calls, counts.

Per key owner R, its rows and its zero rows arrive in round 2; each of R's counts jobs (one per L
station) gets a layout in L's row order in round 3, R partially decrypts L's results in round 4, and
the coordinator takes the discrete logarithms.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import numpy as np

from ..crypto import ecelgamal as ec
from ..runtime.errors import InputError
from . import ec_product, product
from .plan import Job, Plan

RESULT_QUANTUM = 256  # the key owner decrypts a multiple of this many first points per job


class CountsRun:
    def __init__(self, plan: Plan, uploads: dict[str, dict], n_rows: dict[str, int], cohort: dict[str, np.ndarray]):
        self.jobs = [job for job in plan.jobs if job.cipher == "ec"]
        self.n_rows, self.cohort = n_rows, cohort
        self.uploads = uploads
        self.rows: dict[str, list[bytes]] = {}
        self.zeros: dict[str, product.Zeros] = {}
        self.width: dict[str, int] = {}  # points per row: one per key, plus the shared first point
        for r in {job.right for job in self.jobs}:
            try:
                self.width[r] = width = len(ec.public_from_str(uploads[r]["public"], ec_product.MAX_COLUMNS)) + 1
                self.rows[r] = ec.points_from_str(uploads[r]["rows"])
                self.zeros[r] = product.Zeros(ec.points_from_str(uploads[r]["zeros"]), width)
                if len(self.rows[r]) not in (0, n_rows[r] * width):
                    raise ValueError("the encrypted rows do not match the station's row count")
            except (KeyError, ValueError) as exc:
                raise InputError(f"counts: {exc}", station=r) from None
        self.results: dict[str, list[bytes]] = {}
        self.sent: dict[str, tuple[list[int], list[list[int]]]] = {}  # per job: the shuffle, real and dummy needs

    def layout(self, job: Job) -> dict:
        """L's round-3 job: R's rows laid out in L's order (linked rows re-randomised, the rest zero rows); for a
        totals job, L's membership under R's first key."""
        width, zeros = self.width[job.right], self.zeros[job.right]
        if job.kind == "totals":
            raw = ec_product.membership(zeros, width, self.n_rows[job.left], self.cohort[job.left])
        else:
            raw = ec_product.layout_for_l(self.rows[job.right], zeros, width, self.n_rows[job.left],
                                          self.cohort[job.left], self.cohort[job.right])
        return {"cipher": "ec", "public": self.uploads[job.right]["public"], "rows": ec.points_to_str(raw),
                "columns": job.l_columns, "needs": job.needs}

    def decrypt_calls(self, aggregated: dict[str, dict]) -> dict[str, dict]:
        """Per key owner, its round-4 ``ec_jobs``: the first point of every result and the keys it needs."""
        calls: dict[str, dict] = {}
        for job in self.jobs:
            try:
                results = ec.points_from_str(aggregated[job.left][job.id]["results"])
                c1s = ec_product.c1_of(results, job.needs)
            except (KeyError, ValueError) as exc:
                raise InputError(f"counts: {exc}", station=job.left) from None
            self.results[job.id] = results
            # padded with random points, each asking for the keys of a random real result, to a multiple of
            # RESULT_QUANTUM, and shuffled: R cannot tell them from the real (re-randomised) ones, so it learns the
            # number of L columns only roughly, as from the number of packed Paillier results
            rng = secrets.SystemRandom()
            pad = -len(c1s) % RESULT_QUANTUM
            c1s = c1s + [ec.base_mult(1 + secrets.randbelow(ec.ORDER - 1)) for _ in range(pad)]
            needs = job.needs + [rng.choice(job.needs) for _ in range(pad)]
            order = list(range(len(c1s)))
            rng.shuffle(order)
            self.sent[job.id] = (order, needs)
            calls.setdefault(job.right, {})[job.id] = {"c1": ec.points_to_str([c1s[i] for i in order]),
                                                       "needs": [needs[i] for i in order]}
        return calls

    def _unshuffled(self, job: Job, text: str) -> list[bytes]:
        """The key owner's partial decryptions of the real results, in the job's order."""
        order, needs = self.sent[job.id]
        flat, pos, by_entry = ec.points_from_str(text), 0, {}
        for i in order:
            by_entry[i] = flat[pos:pos + len(needs[i])]
            pos += len(needs[i])
        if pos != len(flat):
            raise ValueError("the partial decryptions do not match the results sent")
        return [d for a in range(len(job.needs)) for d in by_entry[a]]

    def counts(self, decrypted: dict[str, dict]) -> Iterator[tuple[Job, int, int, int]]:
        """(job, L column index, R column index, count) for every counted product."""
        for job in self.jobs:
            try:
                decryptions = self._unshuffled(job, decrypted[job.right][job.id])
                values = ec_product.counts(self.results[job.id], decryptions, job.needs, bound=self.n_rows[job.left])
            except (KeyError, ValueError, ArithmeticError) as exc:
                raise InputError(f"counts: {exc}", station=job.right) from None
            for a, js in enumerate(job.needs):
                for j, v in zip(js, values[a], strict=True):
                    yield job, a, j, v
