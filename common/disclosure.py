"""Disclosure control: the minimum cell count every released number must pass.

The researcher may raise the minimum (default 10); each node operator may set a stricter floor
through ``LANCELOT_MIN_CELL_COUNT`` in the node's ``algorithm_env``; the strictest one applies.
"""

from __future__ import annotations

from collections.abc import Iterable

from .runtime.errors import InputError

DEFAULT_MIN_CELL_COUNT = 10


def effective_min_cell_count(requested: int | None, station_floors: Iterable[int]) -> int:
    """The strictest of the researcher's minimum, the default and every station's floor."""
    if requested is not None:
        if not isinstance(requested, int) or isinstance(requested, bool) or requested < DEFAULT_MIN_CELL_COUNT:
            raise InputError(f"min_cell_count must be an integer of at least {DEFAULT_MIN_CELL_COUNT} "
                             "(it can only be raised)")
    return max([requested or DEFAULT_MIN_CELL_COUNT, *[int(f) for f in station_floors if f]])


def suppress(count: int | float, k: int) -> int | float | None:
    """A count below k (but above zero) is withheld; zero is released (it says nothing about anyone)."""
    return count if count == 0 or count >= k else None
