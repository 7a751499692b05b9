"""The common shape of a result: the algorithm's JSON (``raw``), where it came from, its cost."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO


def read_json(data: dict | str | Path) -> dict:
    """A result's JSON: the dict itself, or the file holding it."""
    return json.loads(Path(data).read_text()) if isinstance(data, (str, Path)) else data


class Result:
    """A released result. ``raw`` is the algorithm's JSON as it came back, unchanged; ``task_id`` and
    ``seconds`` say which vantage6 task gave it (None on the in-process network) and how long it took."""

    def __init__(self, raw: dict, task_id: int | None = None, seconds: float | None = None):
        self.raw = raw
        self.task_id = task_id
        self.seconds = seconds

    @classmethod
    def from_json(cls, data: dict | str | Path, task_id: int | None = None, seconds: float | None = None) -> Result:
        """From the JSON dict (or a file holding it); on a base class, the subclass the JSON is."""
        return cls(read_json(data), task_id=task_id, seconds=seconds)

    def to_json(self) -> dict:
        return self.raw

    def save(self, path: str | Path) -> Path:
        Path(path).write_text(json.dumps(self.raw, indent=2))
        return Path(path)

    @property
    def cost(self) -> dict:
        return self.raw.get("cost", {})

    @property
    def rounds(self) -> int:
        return int(self.cost.get("rounds", 0))

    def summary(self):
        raise NotImplementedError

    def print_summary(self, file: TextIO | None = None) -> None:
        """The summary as text (what ``lancelot demo`` prints)."""
        print("\n".join(self.summary_lines()), file=file or sys.stdout)

    def summary_lines(self) -> list[str]:
        raise NotImplementedError

    def report(self, folder: str | Path) -> Path:
        raise NotImplementedError

    def __repr__(self) -> str:
        where = f"task {self.task_id}" if self.task_id is not None else "local"
        return f"<{type(self).__name__} ({where}, {self.rounds} rounds)>"


def result_from_json(data: dict | str | Path, algorithm: str | None = None, **kwargs: Any) -> Result:
    """The result object of an algorithm's JSON: ``algorithm`` (name or verb) when known, else recognised
    from the JSON's own keys (a training result has coefficients, an exploration analyses)."""
    from ..algorithms import algorithm as lookup

    if isinstance(data, (str, Path)):
        data = json.loads(Path(data).read_text())
    if algorithm is None:
        algorithm = "train" if "coefficients" in data else "explore" if "analyses" in data else "link"
    return lookup(algorithm).result_type().from_json(data, **kwargs)


def grid_lines(columns: list[str], rows: list[list[str]], labels: int = 1) -> list[str]:
    """Rows of text in aligned columns, the first ``labels`` left-aligned, the others right-aligned."""
    widths = [max(len(str(x)) for x in col) for col in zip(columns, *rows)]
    out = []
    for line in [columns, *rows]:
        cells = [str(x).ljust(w) if i < labels else str(x).rjust(w) for i, (x, w) in enumerate(zip(line, widths))]
        out.append("    " + "  ".join(cells).rstrip())
    return out
