"""Vantage6 algorithm-store metadata derived from the real functions, for both vantage6 majors.

``algorithm_store.json`` is the 4.15 store's format, ``algorithm_store.v5.json`` the 5.x store's
(functions with a ``step_type``, the data-extraction step, read in vantage6-algorithm-store
5.0.3's ``resource/schema/input_schema.py``). The arguments, their types and defaults come from the
signatures of each algorithm's protocol and of the adapters' central functions (written out below
so that either file can be made with either vantage6 installed; the tests check them against the
installed adapter's real signature), so the metadata cannot drift from the code:
``tests/test_store_metadata.py`` and ``tests/v5`` regenerate it and compare with the committed files
(``python -m lancelot.v6.store`` rewrites both).
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

from ..algorithms import ALGORITHMS as REGISTRY
from .adapter import DEFAULT_SUBTASK_TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
# name -> (package, store name, store description), from the one registry (lancelot.algorithms)
ALGORITHMS = {a.name: (a.package, a.title, a.description) for a in REGISTRY.values()}
# The project has no public home yet: set these (and the image registry) before submitting to a store.
CODE_URL = "https://example.invalid/lancelot"
DOC_URL = CODE_URL + "/docs"
IMAGE = "localhost/lancelot-{name}:dev"  # what scripts/devnet.sh builds
IMAGE_5 = "localhost/lancelot-{name}:dev-v5"  # the same build on the vantage6 5.x base (docs/node-operators.md)
VANTAGE6_VERSION = "4.15"
VANTAGE6_VERSION_5 = "5.0"

ARGUMENTS = {
    "stations": ("json", "Data stations as {name: organisation id}; names as used in the spec"),
    "subtask_timeout": ("float", "Seconds a station may take for one step before the job ends with an error "
                                 "naming the station and step (default 900)"),
    "progress": ("boolean", "Print progress (rounds, stations) in the coordinator's log"),
    "spec": ("json", "The study spec (docs/spec.md): linkage fields, analyses or model"),
    "min_cell_count": ("integer", "Raise the disclosure-control minimum cell count (default 10; node floors apply)"),
    "rounding_base": ("integer", "Raise the rounding base of released counts: 1, 5 or 10 (the nodes' policies set "
                                 "the floor, default 5; counts are rounded to the nearest multiple)"),
    "evaluate": ("boolean", "Evaluation run on synthetic data: also return the links as record ids (every "
                            "node must opt in with LANCELOT_ALLOW_EVALUATE=1)"),
    "key_bits": ("integer", "Paillier key size in bits (2048 or 3072)"),
    "dataframe": ("json", "vantage6 5.x: the id of the session dataframe the stations extracted with 'extract' "
                          "(one id for all stations, or {station name: id})"),
}
PYTHON_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string", dict: "json"}


def _arguments(function: Any, skip: set[str]) -> list[dict]:
    out = []
    for p in inspect.signature(function).parameters.values():
        if p.name in skip or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if p.name not in ARGUMENTS:
            raise KeyError(f"no store description for argument '{p.name}' of {function.__qualname__}")
        kind, text = ARGUMENTS[p.name]
        arg = {"name": p.name, "type": kind, "description": text}
        if p.default is not inspect.Parameter.empty:
            arg["has_default_value"] = True
            if p.default is not None:  # None: the algorithm's own default applies (see the description)
                arg["default_value"] = p.default
            if PYTHON_TYPES.get(type(p.default), kind) != kind:
                raise TypeError(f"argument '{p.name}': default {p.default!r} is not of store type {kind}")
        out.append(arg)
    return out


def central_4(stations: dict, progress: bool = True, subtask_timeout: float = DEFAULT_SUBTASK_TIMEOUT) -> None:
    """The 4.15 central function's own parameters (lancelot.v6.adapter.make_central, without client)."""


def central_5(stations: dict, dataframe: int | dict | None = None, progress: bool = True,
              subtask_timeout: float = DEFAULT_SUBTASK_TIMEOUT) -> None:
    """The 5.x central function's own parameters (lancelot.v6.v5.adapter.make_central, without client)."""


CENTRALS = {4: central_4, 5: central_5}


def metadata(name: str, major: int = 4) -> dict:
    """The store entry of one algorithm for vantage6 ``major`` (4: the 4.15 store, 5: the 5.x store)."""
    package, title, description = ALGORITHMS[name]
    module = importlib.import_module(package)
    arguments = _arguments(CENTRALS[major], set()) + _arguments(module.central.protocol, {"coordinator"})
    if major == 5:
        return metadata_5(name, arguments)
    return {
        "name": title,
        "description": description,
        "image": IMAGE.format(name=name),
        "partitioning": "vertical",
        "vantage6_version": VANTAGE6_VERSION,
        "code_url": CODE_URL,
        "documentation_url": DOC_URL,
        "functions": [
            {"name": "central", "display_name": f"{title} (coordinator)", "type": "central", "standalone": True,
             "description": "Run at a neutral coordinating organisation that holds no study data; relays every "
                            "round to the stations and returns only aggregates.",
             "databases": [], "arguments": arguments, "ui_visualizations": []},
            {"name": "partial", "display_name": f"{title} (station step)", "type": "federated", "standalone": False,
             "description": "One protocol step at a data station. Runs only as a subtask of a lancelot central "
                            "task at a neutral organisation (the station guard refuses direct tasks).",
             "databases": [{"name": "default", "description": "The station's table (CSV or other vantage6 "
                                                                "database), one row per patient"}],
             "arguments": [{"name": n, "type": t, "description": d} for n, t, d in (
                 ("step", "string", "Which protocol step to run"),
                 ("station", "string", "This station's name in the spec"),
                 ("payload", "json", "The step's input, relayed by the central function"),
                 ("study", "json", "The job's stations as {name: organisation id}, for the station guard"))],
             "ui_visualizations": []},
        ],
    }


PARTIAL_ARGUMENTS = (
    ("step", "string", "Which protocol step to run"),
    ("station", "string", "This station's name in the spec"),
    ("payload", "json", "The step's input, relayed by the central function"),
    ("study", "json", "The job's stations as {name: organisation id} and (5.x) the coordinator's credential, "
                      "for the station guard"))


def _display(name: str) -> str:
    return name.replace("_", " ").capitalize()


def metadata_5(name: str, arguments: list[dict]) -> dict:
    """The vantage6 5.x store format: step types, the data-extraction step, display names on arguments."""
    _, title, description = ALGORITHMS[name]
    return {
        "name": title,
        "description": description,
        "image": IMAGE_5.format(name=name),
        "partitioning": "vertical",
        "vantage6_version": VANTAGE6_VERSION_5,
        "code_url": CODE_URL,
        "documentation_url": DOC_URL,
        "functions": [
            {"name": "extract", "display_name": f"{title} (read the station's table)", "step_type": "data_extraction",
             "standalone": True,
             "description": "Reads the station's database (csv, parquet or excel) into the session dataframe that "
                            "the station steps use; run it at every data station before the central task.",
             "databases": [{"name": "Database", "description": "The station's table, one row per patient"}],
             "arguments": [], "ui_visualizations": []},
            {"name": "central", "display_name": f"{title} (coordinator)", "step_type": "central_compute",
             "standalone": True,
             "description": "Run at a neutral coordinating organisation that holds no study data; relays every "
                            "round to the stations and returns only aggregates.",
             "databases": [], "arguments": [{**a, "display_name": _display(a["name"])} for a in arguments],
             "ui_visualizations": []},
            {"name": "partial", "display_name": f"{title} (station step)", "step_type": "federated_compute",
             "standalone": False,
             "description": "One protocol step at a data station. Runs only as a subtask of a lancelot central "
                            "task at a neutral organisation (the station guard refuses direct tasks).",
             "databases": [{"name": "Data to use", "description": "The session dataframe made by 'extract'"}],
             "arguments": [{"name": n, "display_name": _display(n), "type": t, "description": d}
                           for n, t, d in PARTIAL_ARGUMENTS],
             "ui_visualizations": []},
        ],
    }


def path_of(name: str, major: int = 4) -> Path:
    return ROOT / "algorithms" / name / ("algorithm_store.v5.json" if major == 5 else "algorithm_store.json")


def main() -> int:
    for name in ALGORITHMS:
        for major in (4, 5):
            path_of(name, major).write_text(json.dumps(metadata(name, major), indent=2) + "\n")
            print(f"wrote {path_of(name, major)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
