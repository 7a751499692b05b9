"""algorithm_store.v5.json: the 5.x store's format, in step with the 5.x adapter's real functions.

The fields allowed at each level are those of vantage6-algorithm-store 5.0.3's marshmallow schemas
(``resource/schema/input_schema.py``: AlgorithmInputSchema, FunctionInputSchema,
DatabaseInputSchema, ArgumentInputSchema), which reject unknown fields; the enumerations come from
the installed vantage6-common. Where the store itself is installed, its schema validates the files too.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json

import pytest
from vantage6.common.enum import AlgorithmArgumentType, AlgorithmStepType

from lancelot.v6 import store

ALGORITHM_FIELDS = ({"name", "image", "partitioning", "vantage6_version", "code_url", "functions"},
                    {"description", "documentation_url", "submission_comments"})
FUNCTION_FIELDS = ({"name", "step_type"}, {"description", "display_name", "standalone", "databases", "arguments",
                                           "ui_visualizations"})
DATABASE_FIELDS = ({"name"}, {"description", "multiple"})
ARGUMENT_FIELDS = ({"name", "type"}, {"description", "display_name", "allowed_values", "has_default_value",
                                      "default_value", "conditional_on", "conditional_operator", "conditional_value",
                                      "is_frontend_only"})


def fits(obj: dict, fields: tuple[set, set], where: str) -> None:
    required, optional = fields
    assert required <= set(obj), (where, required - set(obj))
    assert set(obj) <= required | optional, (where, set(obj) - required - optional)


@pytest.mark.parametrize("name", list(store.ALGORITHMS))
def test_the_5x_metadata_has_the_store_schemas_fields_and_matches_the_functions(name):
    meta = json.loads(store.path_of(name, 5).read_text())
    assert meta == json.loads(json.dumps(store.metadata(name, 5))), "run .venv5/bin/python -m lancelot.v6.store"
    fits(meta, ALGORITHM_FIELDS, "algorithm")
    assert meta["partitioning"] == "vertical" and meta["vantage6_version"].startswith("5.")
    module = importlib.import_module(store.ALGORITHMS[name][0])
    for fn in meta["functions"]:
        fits(fn, FUNCTION_FIELDS, fn["name"])
        real = getattr(module, fn["name"])
        assert fn["step_type"] in AlgorithmStepType.list()
        assert real.vantage6_decorator_step_type.value == fn["step_type"]  # what HQ checks a task's action against
        for db in fn["databases"]:
            fits(db, DATABASE_FIELDS, f"{fn['name']} database")
        for arg in fn["arguments"]:
            fits(arg, ARGUMENT_FIELDS, f"{fn['name']}.{arg['name']}")
            assert arg["type"] in AlgorithmArgumentType.list() and arg["description"]
        params = inspect.signature(inspect.unwrap(real)).parameters
        if fn["step_type"] == "federated_compute":
            assert [a["name"] for a in fn["arguments"]] == [p for p in params if p != "df"]
    central = inspect.signature(inspect.unwrap(module.central)).parameters
    stated = inspect.signature(store.central_5).parameters
    assert [p for p in central if p not in ("client", "kwargs")] == list(stated)
    assert all(central[p].default == stated[p].default for p in stated)


@pytest.mark.skipif(importlib.util.find_spec("vantage6.algorithm.store") is None,
                    reason="vantage6-algorithm-store 5.x is not installed (its schema was checked when the files "
                           "were made; pip install vantage6-algorithm-store==5.0.3 vantage6-backend-common==5.0.3)")
@pytest.mark.parametrize("name", list(store.ALGORITHMS))
def test_the_5x_store_schema_accepts_the_metadata(name):
    from vantage6.algorithm.store.resource.schema.input_schema import AlgorithmInputSchema

    assert AlgorithmInputSchema().validate(json.loads(store.path_of(name, 5).read_text())) == {}
