"""Errors that reach a researcher or node operator: each names what is wrong and where.

Messages never contain data values, only station, column and step names, so that they are
safe to return from a station and to print in a node's log.
"""

from __future__ import annotations


class LancelotError(Exception):
    """Base class of every error lancelot raises on purpose; names the station and column it concerns."""

    def __init__(self, message: str, station: str | None = None, column: str | None = None):
        self.station = station
        self.column = column
        where = []
        if station:
            where.append(f"station '{station}'")
        if column:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class InputError(LancelotError):
    """Bad input: a missing column, an unparseable value, too few records, a bad parameter."""


class SubtaskError(LancelotError):
    """A partial step failed at a station (or returned nothing), surfaced at the coordinator."""

    def __init__(self, station: str, step: str, message: str):
        self.step = step
        super().__init__(f"step '{step}' failed at station '{station}': {message}")
        self.station = station


class PrivacyError(LancelotError):
    """A request that would break a privacy rule (for example --evaluate without the opt-in)."""
