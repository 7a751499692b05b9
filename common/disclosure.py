"""Disclosure control: the checks every released number must pass.

The minimum cell count in force for a job is the strictest of the researcher's request (default
10) and every station's node policy (:class:`lancelot.policy.Protections`).
"""

from __future__ import annotations


def suppress(count: int | float, k: int) -> int | float | None:
    """A count below k (but above zero) is withheld; zero is released (it says nothing about anyone)."""
    return count if count == 0 or count >= k else None
