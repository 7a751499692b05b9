"""Communication and time accounting: every algorithm result carries a ``cost`` block.

Rounds dominate on a real Vantage6 network (each is a batch of subtasks that costs seconds),
so they are counted explicitly, together with the bytes relayed through the coordinator.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class CostMeter:
    rounds: int = 0
    subtasks: int = 0
    bytes_to_stations: int = 0
    bytes_from_stations: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    rounds_per_phase: dict[str, int] = field(default_factory=dict)
    cleanup_subtasks: int = 0   # end-of-job subtasks, sent without waiting (no round of latency)
    _phase: str = "setup"
    _t0: float = field(default_factory=time.perf_counter)

    def record_round(self, n_subtasks: int, sent: int, received: int) -> None:
        self.rounds += 1
        self.subtasks += n_subtasks
        self.bytes_to_stations += sent
        self.bytes_from_stations += received
        self.rounds_per_phase[self._phase] = self.rounds_per_phase.get(self._phase, 0) + 1

    def record_cleanup(self, n_subtasks: int) -> None:
        self.cleanup_subtasks += n_subtasks

    @contextmanager
    def phase(self, name: str):
        """Attribute rounds and wall time inside the block to ``name``."""
        previous, self._phase = self._phase, name
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            self._phase = previous

    def as_dict(self) -> dict:
        """What the researcher sees. Byte counts to two significant digits: exact message sizes grow
        with the numbers of records and of linked patients, and would undo the rounding of counts."""
        return {
            "rounds": self.rounds,
            "subtasks": self.subtasks,
            "cleanup_subtasks": self.cleanup_subtasks,
            "bytes_to_stations": _two_digits(self.bytes_to_stations),
            "bytes_from_stations": _two_digits(self.bytes_from_stations),
            "rounds_per_phase": dict(self.rounds_per_phase),
            "seconds_per_phase": {k: round(v, 3) for k, v in self.seconds.items()},
            "seconds_total": round(time.perf_counter() - self._t0, 3),
        }


def _two_digits(n: int) -> int:
    return int(float(f"{n:.2g}")) if n else 0
