"""One researcher API, on the in-process network or on a real vantage6 network: the same three calls,
the same result objects::

    from lancelot import Study
    study = Study.local({"registry": "registry.csv", "gp_1": "gp_1.csv"})   # this machine, every step in a fresh process
    study = Study.login(url, port, "/api", user, password, key, collaboration_id=1,
                        stations={"registry": 2, "gp_1": 3}, coordinator_org=5)   # a real network
    link = study.link(link_spec)             # LinkageResult
    exploration = study.explore(spec)        # Exploration
    model = study.train(spec)                # LogisticModel or CoxModel

Only the transport differs: :class:`LocalStudy` runs the central function on the in-process network of the
installed vantage6 major (:func:`run_local`); :class:`lancelot.client.Study` submits it to a server.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

from .algorithms import Algorithm, algorithm
from .results import Exploration, LinkageResult, Model, Result
from .runtime.errors import LancelotError


class Study:
    """The researcher's study: stations, and a way to run an algorithm's central function on them.

    Make one with :meth:`local` or :meth:`login` (or :meth:`from_connection_file` for the dev network).
    Every spec is checked (:func:`lancelot.validate.validate_spec`) before anything runs; the stations
    check it again, whatever this side did (``check_spec=False`` skips the local check, to see them do so).
    """

    check_spec = True

    @classmethod
    def local(cls, stations: dict[str, str | Path], station_env: dict[str, dict[str, str]] | None = None,
              check_spec: bool = True, opt_in_evaluate: bool = True) -> LocalStudy:
        """Each station a CSV on this machine, one organisation of an in-process network (with a neutral
        coordinator): ``station_env`` {station: {variable: value}} is a node operator's policy environment;
        ``opt_in_evaluate``: the researcher holds every station's data, so an evaluation run is allowed."""
        return LocalStudy(stations, station_env=station_env, check_spec=check_spec, opt_in_evaluate=opt_in_evaluate)

    @classmethod
    def login(cls, *args: Any, **kwargs: Any) -> Study:
        """Log in to a vantage6 server (4.15) or HQ (5.x): see :meth:`lancelot.client.Study.login`."""
        from .client import Study as NetworkStudy

        return NetworkStudy.login(*args, **kwargs)

    @classmethod
    def from_connection_file(cls, path: str | Path, **kwargs: Any) -> Study:
        """The dev network's connection file (written by ``scripts/devnet.sh up``)."""
        from .client import Study as NetworkStudy

        return NetworkStudy.from_connection_file(path, **kwargs)

    # -- the three algorithms -----------------------------------------------------------------
    def link(self, spec: dict, evaluate: bool = False, min_cell_count: int | None = None,
             rounding_base: int | None = None, **extra: Any) -> LinkageResult:
        return self.run("linkage", spec, evaluate=evaluate, min_cell_count=min_cell_count,
                        rounding_base=rounding_base, **extra)

    def explore(self, spec: dict, evaluate: bool = False, min_cell_count: int | None = None,
                rounding_base: int | None = None, **extra: Any) -> Exploration:
        return self.run("exploration", spec, evaluate=evaluate, min_cell_count=min_cell_count,
                        rounding_base=rounding_base, **extra)

    def train(self, spec: dict, evaluate: bool = False, min_cell_count: int | None = None,
              rounding_base: int | None = None, **extra: Any) -> Model:
        return self.run("training", spec, evaluate=evaluate, min_cell_count=min_cell_count,
                        rounding_base=rounding_base, **extra)

    def run(self, name: str, spec: dict, **options: Any) -> Result:
        """Run one algorithm (name or verb) with a spec; ``options``: evaluate, min_cell_count, rounding_base
        and any other argument of the central function (key_bits, progress, ...)."""
        from .validate import validate_spec

        a = algorithm(name)
        if self.check_spec:
            problems = validate_spec(spec, a.verb, stations=list(getattr(self, "stations", None) or []) or None)
            if problems:
                raise LancelotError("the spec is not valid: " + "; ".join(problems))
        t0 = time.monotonic()
        raw, task_id = self.submit(a, spec, **options)
        return a.result_type().from_json(raw, task_id=task_id, seconds=time.monotonic() - t0)

    def submit(self, a: Algorithm, spec: dict, **options: Any) -> tuple[dict, int | None]:
        """Run the algorithm's central function; its JSON result and task id (raise on a refusal)."""
        raise NotImplementedError


def central_kwargs(spec: dict, evaluate: bool = False, min_cell_count: int | None = None,
                   rounding_base: int | None = None, **extra: Any) -> dict:
    """The central function's arguments besides ``stations``: only those the researcher set."""
    kwargs: dict[str, Any] = {"spec": spec}
    if evaluate:
        kwargs["evaluate"] = True
    if min_cell_count is not None:
        kwargs["min_cell_count"] = min_cell_count
    if rounding_base is not None:   # raises the nodes' base, never lowers it
        kwargs["rounding_base"] = rounding_base
    return kwargs | {k: v for k, v in extra.items() if v is not None}


class LocalStudy(Study):
    """Stations as CSV files on an in-process network (every station of the study takes part in each job)."""

    def __init__(self, stations: dict[str, str | Path], station_env: dict[str, dict[str, str]] | None = None,
                 check_spec: bool = True, opt_in_evaluate: bool = True):
        self.stations = {name: Path(path) for name, path in stations.items()}
        self.station_env = station_env
        self.check_spec = check_spec
        self.opt_in_evaluate = opt_in_evaluate

    def submit(self, a: Algorithm, spec: dict, **options: Any) -> tuple[dict, None]:
        kwargs = central_kwargs(spec, **options)
        evaluate = bool(kwargs.get("evaluate")) and self.opt_in_evaluate
        return run_local(a.package, self.stations, kwargs, evaluate=evaluate, station_env=self.station_env), None

    def __repr__(self) -> str:
        return f"Study.local({ {n: str(p) for n, p in self.stations.items()} })"


def run_local(package: str, stations: dict[str, Path], kwargs: dict, evaluate: bool = False,
              station_env: dict[str, dict[str, str]] | None = None) -> dict:
    """The local transport: one algorithm package (or an algorithm's name or verb) on an in-process network;
    raise on a refusal, return the JSON result otherwise. ``evaluate``: every station opts in to evaluation.

    The network is the installed vantage6 major's (4.15: :mod:`lancelot.v6.local`, 5.x: :mod:`lancelot.v6.v5.local`).
    """
    from .v6.entry import local_network

    try:
        package = algorithm(package).package
    except KeyError:
        pass   # a package of its own (the tests' toy algorithm)
    if not algorithm_exists(package):
        raise LancelotError(f"the algorithm package {package} is not built yet")
    env = {s: dict((station_env or {}).get(s, {})) for s in stations}
    if evaluate:  # a local run: the researcher holds every station's data and opts in for all of them
        for s in env:
            env[s]["LANCELOT_ALLOW_EVALUATE"] = "1"
    with local_network()(package, stations, station_env=env) as net:
        result = net.run({"stations": net.orgs, **kwargs})
    if isinstance(result, dict) and "lancelot_error" in result:
        raise LancelotError(result["lancelot_error"])
    return result


def algorithm_exists(package: str) -> bool:
    try:
        module = importlib.import_module(package)
    except ImportError:
        return False
    return hasattr(module, "central") and hasattr(module, "partial")
