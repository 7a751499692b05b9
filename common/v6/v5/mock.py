"""vantage6 5.x's own ``MockNetwork``, set up for a lancelot study (tests and quick checks only).

The mock runs every function in this process, one after another. lancelot adds what a study needs
and the mock leaves out: a neutral coordinator node without data (the mock's researcher is
organisation 0, which has no node), one session folder per node (the mock gives every task a folder
of its own, a real node keeps one per session: per-job state lives there between rounds), and the
node operators' ``algorithm_env`` base32-encoded as a node passes it. The mock keeps no parent
tasks, so stations skip the station guard here; :mod:`lancelot.v6.v5.local` runs it.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from vantage6.algorithm.mock import MockNetwork

from .adapter import MOCK_MARK

LABEL = "default"


def node_encoded(env: dict[str, str]) -> dict[str, str]:
    """Environment values as a 5.x node passes them to a run (base32, '=' written as '!')."""
    return {k: base64.b32encode(str(v).encode()).decode().replace("=", "!") for k, v in env.items()}


class StudyMockNetwork:
    """``stations`` maps station name -> CSV path or DataFrame; ``station_env`` maps station -> its ``algorithm_env``."""

    def __init__(self, package: str, stations: dict[str, Any], workdir: str | os.PathLike | None = None,
                 station_env: dict[str, dict[str, str]] | None = None):
        frames = {name: src if isinstance(src, pd.DataFrame) else pd.read_csv(src) for name, src in stations.items()}
        datasets = [{LABEL: {"database": df}} for df in frames.values()] + [{LABEL: {"database": pd.DataFrame()}}]
        self.network = MockNetwork(module_name=package, datasets=datasets)
        # 5.0.3's mock collaboration.get() reads hq.collaboration_id, which MockHQ never sets
        self.network.hq.collaboration_id = self.network.collaboration_id
        ids = self.network.organization_ids
        self.orgs = dict(zip(frames, ids))
        self.coordinator_org = ids[-1]
        self.dataframe_id = self.network.hq.dataframes[0]["id"]
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="lancelot-mock-"))
        envs = {self.orgs[name]: node_encoded(env) for name, env in (station_env or {}).items()}
        for node in self.network.nodes:
            node._task_env_vars = self._node_env(node, node._task_env_vars, envs.get(node.organization_id, {}))

    def _node_env(self, node: Any, original: Any, extra: dict[str, str]) -> Any:
        folder = self.workdir / f"node{node.id_}" / "session"
        folder.mkdir(parents=True, exist_ok=True)

        def env(action: Any, method: str) -> dict:
            out = original(action, method)
            out.update({"SESSION_FOLDER": str(folder), "SESSION_FILE": str(folder / "session.parquet"),
                        "INPUT_FILE": str(folder.parent / "input"), "OUTPUT_FILE": str(folder.parent / "output"),
                        MOCK_MARK: "1", **extra})
            return out

        return env

    def run(self, kwargs: dict, method: str = "central") -> Any:
        """One job as the researcher: the central method at the coordinator, on the stations' dataframe."""
        client = self.network.user_client
        task = client.task.create(method=method, organizations=[self.coordinator_org],
                                  arguments={"dataframe": self.dataframe_id, **kwargs})
        return client.result.from_task(task["id"])[0]

    def state_files(self, station: str) -> list[Path]:
        """Every file a station's node keeps in its session folder besides the dataframes (per-job state)."""
        return sorted(p for p in (self.workdir / f"node{self.orgs[station]}").rglob("lancelot-state/**/*")
                      if p.is_file())

    def close(self) -> None:
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> StudyMockNetwork:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
