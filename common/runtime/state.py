"""Per-job station state, kept in the node's per-job temporary folder.

A station's private key, its row permutation and its masks must survive between the rounds of
one job, but every round runs in a fresh container: module globals do not survive, and must not
be used. Vantage6 4.x mounts one ``TEMPORARY_FOLDER`` per job and node (5.x: ``SESSION_FOLDER``,
one per session, shared by its jobs), which only that node's runs can read. State is written in a
sub-folder named after the job (the job id comes from the server's record of the task, checked by
the station guard), with owner-only file permissions; it is never part of a result, and
:meth:`JobState.wipe` removes it when the job ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class JobState:
    """Named JSON documents and numpy arrays in one job's own folder."""

    def __init__(self, folder: str | os.PathLike, job: int | str = 0):
        if not _NAME.match(str(job)):
            raise ValueError(f"bad job id {job!r}")
        self.root = Path(folder) / "lancelot-state"
        self.folder = self.root / f"job-{job}"  # made on the first write: reading leaves nothing behind

    @classmethod
    def from_environment(cls, job: int | str) -> JobState:
        for var in ("TEMPORARY_FOLDER", "SESSION_FOLDER"):
            folder = os.environ.get(var)
            if folder:
                return cls(folder, job)
        raise RuntimeError(
            "no per-job folder: neither TEMPORARY_FOLDER (vantage6 4.x) nor SESSION_FOLDER (5.x) is set"
        )

    def wipe(self) -> None:
        """Remove everything this job kept at this station (keys, permutations, masks)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.root.rmdir()  # only when no other job's state is left

    def _path(self, name: str, suffix: str) -> Path:
        if not _NAME.match(name):
            raise ValueError(f"bad state name {name!r}")
        return self.folder / f"{name}{suffix}"

    def _write(self, path: Path, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)

    def put(self, name: str, value: Any) -> None:
        self._write(self._path(name, ".json"), json.dumps(value).encode())

    def get(self, name: str) -> Any:
        path = self._path(name, ".json")
        if not path.exists():
            raise KeyError(f"job state '{name}' is missing: was an earlier step of this job skipped?")
        return json.loads(path.read_text())

    def put_array(self, name: str, array: np.ndarray) -> None:
        path = self._path(name, ".npy")
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp.npy")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, np.asarray(array), allow_pickle=False)
        os.replace(tmp, path)

    def get_array(self, name: str) -> np.ndarray:
        path = self._path(name, ".npy")
        if not path.exists():
            raise KeyError(f"job state '{name}' is missing: was an earlier step of this job skipped?")
        return np.load(path, allow_pickle=False)

    def drop(self, name: str) -> None:
        """Remove a document or array that later rounds no longer need (no error if absent)."""
        for suffix in (".json", ".npy"):
            self._path(name, suffix).unlink(missing_ok=True)

    def has(self, name: str) -> bool:
        return self._path(name, ".json").exists() or self._path(name, ".npy").exists()
