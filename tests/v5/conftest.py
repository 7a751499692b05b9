"""tests/v5 run only where vantage6 5.x is installed (./.venv5, Python 3.13; scripts/test.sh makes it).

The 4.15 reference results (tests/v5/test_vantage6_5.py) take a while: their process starts with the
session, in the 4.15 venv, and runs while the other 5.x tests do (two cores: about a minute saved).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REG, GP = "registry", "gp_1"


def _vantage6_5() -> bool:
    try:
        return importlib.util.find_spec("vantage6.algorithm.decorator") is not None
    except ModuleNotFoundError:
        return False


collect_ignore_glob = [] if _vantage6_5() else ["test_*.py"]

REFERENCE_SCRIPT = """import json, sys
from pathlib import Path
from lancelot import Study
from lancelot.v6.entry import MAJOR
assert MAJOR == 4, MAJOR
a = json.loads(Path(sys.argv[1]).read_text())
study = Study.local({k: Path(v) for k, v in a["stations"].items()}, check_spec=False)
out = {n: study.run(j["algorithm"], **j["kwargs"]).to_json() for n, j in a["jobs"].items()}
Path(sys.argv[2]).write_text(json.dumps(out))
"""


def example_study():
    """scripts/example_study.py: the study the real 4.15 network runs through lancelot.client."""
    spec = importlib.util.spec_from_file_location("example_study", ROOT / "scripts" / "example_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def v5_study(tmp_path_factory):
    """Synthetic data with the example study's stations: the registry and two GP stations."""
    from helpers import make_study

    return make_study(tmp_path_factory.mktemp("v5"), patients=300, gp_stations=2, seed=7)


@pytest.fixture(scope="session")
def v5_jobs(v5_study) -> dict[str, tuple[str, dict, bool]]:
    """The example study's jobs: name -> (algorithm, central arguments besides the stations, evaluation run)."""
    link = json.loads(v5_study["link_spec"].read_text())
    specs = example_study().specs(link)
    return {"link": ("link", {"spec": link, "evaluate": True}, True),
            "explore": ("explore", {"spec": specs["explore"]}, False),
            "logistic": ("train", {"spec": specs["logistic"]}, False),
            "cox": ("train", {"spec": specs["cox"]}, False)}


@pytest.fixture(scope="session", autouse=True)
def v4_reference_run(v5_study, v5_jobs, tmp_path_factory):
    """The 4.15 results on the same files, computed by the 4.15 venv in the background (None: no such venv)."""
    from helpers import station_paths

    python = Path(os.environ.get("LANCELOT_V4_PYTHON", ROOT / ".venv" / "bin" / "python"))
    if not python.exists():
        yield None
        return
    folder = tmp_path_factory.mktemp("v4")
    (folder / "jobs.json").write_text(json.dumps({
        "stations": {k: str(v) for k, v in station_paths(v5_study).items()},
        "jobs": {name: {"algorithm": algorithm, "kwargs": kwargs, "evaluate": evaluate}
                 for name, (algorithm, kwargs, evaluate) in v5_jobs.items()}}))
    process = subprocess.Popen([str(python), "-c", REFERENCE_SCRIPT, str(folder / "jobs.json"), str(folder / "out.json")],
                               stdout=subprocess.DEVNULL, stderr=open(folder / "stderr.txt", "w"))
    yield {"process": process, "out": folder / "out.json", "stderr": folder / "stderr.txt", "python": python}
    if process.poll() is None:
        process.kill()
