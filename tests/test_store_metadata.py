"""algorithm_store.json of each algorithm: valid for the vantage6 4.15 store and in step with the code."""

from __future__ import annotations

import importlib
import inspect
import json

import pytest

from lancelot.v6 import store

STORE_TYPES = {"string", "string_list", "integer", "integer_list", "float", "float_list", "column", "column_list",
               "organization", "organization_list", "json", "boolean"}


@pytest.mark.parametrize("name", list(store.ALGORITHMS))
def test_committed_metadata_matches_the_function_signatures(name):
    committed = json.loads(store.path_of(name).read_text())
    assert committed == json.loads(json.dumps(store.metadata(name))), \
        "algorithm_store.json is stale: run .venv/bin/python -m lancelot.v6.store"


@pytest.mark.parametrize("name", list(store.ALGORITHMS))
def test_metadata_has_the_fields_the_store_requires(name):
    meta = json.loads(store.path_of(name).read_text())
    for key in ("name", "description", "image", "partitioning", "vantage6_version", "code_url", "functions"):
        assert meta[key], key
    assert meta["partitioning"] == "vertical"
    module = importlib.import_module(store.ALGORITHMS[name][0])
    for fn in meta["functions"]:
        assert fn["type"] in {"central", "federated"}
        assert callable(getattr(module, fn["name"]))
        params = inspect.signature(inspect.unwrap(getattr(module, fn["name"]))).parameters
        for arg in fn["arguments"]:
            assert arg["type"] in STORE_TYPES and arg["description"]
            if fn["type"] == "federated":
                assert arg["name"] in params
        names = [a["name"] for a in fn["arguments"]]
        assert len(names) == len(set(names))
    central = meta["functions"][0]
    protocol_params = set(inspect.signature(module.central.protocol).parameters) - {"coordinator"}
    assert protocol_params <= {a["name"] for a in central["arguments"]}
    required = [a["name"] for a in central["arguments"] if not a.get("has_default_value")]
    assert required == ["stations", "spec"]


@pytest.mark.parametrize("name", list(store.ALGORITHMS))
def test_the_5x_metadata_is_in_step_with_the_code_too(name):
    """algorithm_store.v5.json is made from the same protocol signatures, whichever vantage6 is installed."""
    committed = json.loads(store.path_of(name, 5).read_text())
    assert committed == json.loads(json.dumps(store.metadata(name, 5))), \
        "algorithm_store.v5.json is stale: run .venv/bin/python -m lancelot.v6.store"
    assert [f["step_type"] for f in committed["functions"]] == ["data_extraction", "central_compute", "federated_compute"]


def test_the_installed_central_has_the_parameters_the_metadata_states():
    from lancelot.v6.entry import MAJOR

    module = importlib.import_module(store.ALGORITHMS["linkage"][0])
    real = inspect.signature(inspect.unwrap(module.central)).parameters
    stated = inspect.signature(store.CENTRALS[MAJOR]).parameters
    assert [p for p in real if p not in ("client", "kwargs")] == list(stated)
    assert all(real[p].default == stated[p].default for p in stated)
