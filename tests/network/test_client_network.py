"""The researcher's API (lancelot.client) runs a whole small study on the real network."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import CONNECTION_FILE

from lancelot.client import Study
from lancelot.runtime.errors import LancelotError

pytestmark = pytest.mark.network


def test_a_study_through_the_client(devnet, tmp_path):
    study = Study.from_connection_file(CONNECTION_FILE, progress=False)
    spec = json.loads((devnet.data_dir / "link_spec.json").read_text())
    link = study.link(spec)
    assert link.rounds == 2 and (link.pairs()["linked"] > 0).all()

    exploration = study.explore({"linkage": spec, "analyses": [
        {"type": "crosstab", "variables": [{"station": "registry", "column": "stage"},
                                           {"station": "gp_1", "column": "copd"}]}]})
    table = next(iter(exploration.tables().values()))
    counts = table["count"].dropna()
    assert len(counts) > 0 and ((counts == 0) | (counts >= 10)).all() and np.allclose(counts, counts.round())

    model = study.train({"linkage": spec, "outcome": {"station": "registry", "column": "death_within_2y"},
                         "features": [{"station": "registry", "column": "age_at_diagnosis"},
                                      {"station": "gp_1", "column": "copd"}]})
    coef = model.coefficients()
    assert list(coef.index) == ["(intercept)", "age_at_diagnosis", "copd"]
    assert coef.loc["copd", "station"] == "gp_1" and (coef["std_error"] > 0).all()
    assert model.report(tmp_path).exists()

    with pytest.raises(LancelotError, match="refused"):  # a station's refusal reaches the researcher
        study.train({"linkage": spec, "outcome": {"station": "registry", "column": "death_within_2y"},
                     "features": [{"station": "gp_1", "column": "no_such_column"}]})
