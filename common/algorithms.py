"""The three algorithms, described once: the CLI verb, the vantage6 package, the spec kind, the result
type and the store text all come from here (the CLI, :mod:`lancelot.study`, :mod:`lancelot.client`,
:mod:`lancelot.validate`, the in-process networks' preload list and :mod:`lancelot.v6.store`).

Kept free of heavy imports: the in-process network's forkserver reads it before anything else.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Algorithm:
    name: str         # "linkage": the image suffix, the schema's $defs entry, the store folder
    verb: str         # "link": the CLI command, the Study method, the spec kind of ``lancelot validate``
    package: str      # the vantage6 algorithm package (central and partial functions)
    result: str       # "module:Class" of the result object its JSON becomes
    help: str         # the CLI command's one line
    title: str        # the store's name
    description: str  # the store's description

    def result_type(self) -> type:
        module, _, cls = self.result.partition(":")
        return getattr(importlib.import_module(module), cls)


ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (
    Algorithm("linkage", "link", "lancelot_linkage", "lancelot.results.linkage:LinkageResult",
              "link patients across stations", "lancelot linkage",
              "Privacy-preserving record linkage of one registry (hub) with one or more stations on "
              "quasi-identifiers, tolerant of errors; the link stays at the coordinator (2 rounds)."),
    Algorithm("exploration", "explore", "lancelot_exploration", "lancelot.results.explore:Exploration",
              "statistics on the linked cohort", "lancelot exploration",
              "Counts, crosstabs, summaries, histograms, correlations, missingness, Kaplan-Meier and a "
              "paper's Table 1 on the privately linked cohort, variables at different stations, with "
              "disclosure control."),
    Algorithm("training", "train", "lancelot_training", "lancelot.results.models:Model",
              "train a model on the linked cohort", "lancelot training",
              "Logistic regression and Cox proportional hazards (Efron or Breslow ties) on the privately "
              "linked cohort with features at several stations, fitted exactly (pooled-equal coefficients) "
              "by Newton-Raphson on secret shares."),
)}
PACKAGES = [a.package for a in ALGORITHMS.values()]


def algorithm(key: str) -> Algorithm:
    """The algorithm by name ("linkage"), verb ("link") or package ("lancelot_linkage")."""
    for a in ALGORITHMS.values():
        if key in (a.name, a.verb, a.package):
            return a
    known = ", ".join(f"{a.verb} ({a.name})" for a in ALGORITHMS.values())
    raise KeyError(f"no algorithm {key!r}: {known}")
