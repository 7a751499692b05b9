"""Result objects: the JSON an algorithm returns, with views (``summary()``, ``print_summary()``,
``report(dir)``, ``predict(profile)``) chosen by class, not by testing a type string in each consumer.

The JSON stays the wire and file format: ``Result.from_json(d).to_json() == d``.
"""

from __future__ import annotations

from .base import Result, result_from_json
from .explore import Exploration
from .linkage import LinkageResult
from .models import CoxModel, LogisticModel, Model

__all__ = ["Result", "result_from_json", "LinkageResult", "Exploration", "Model", "LogisticModel", "CoxModel"]
