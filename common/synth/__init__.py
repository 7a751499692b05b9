"""Synthetic vertically partitioned NSCLC data: a cancer-registry station, GP stations and the truth.

Used to test and benchmark linkage, exploration and training end to end without real patient data.
"""

from __future__ import annotations

from lancelot.synth.generator import GP_COLUMNS, REGISTRY_COLUMNS, SynthData, generate

__all__ = ["GP_COLUMNS", "REGISTRY_COLUMNS", "SynthData", "generate"]
