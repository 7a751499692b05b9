"""Check a spec before it is submitted: its structure against the one JSON Schema for all three
algorithms (``spec.schema.json``), then its meaning with the algorithms' own parsers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).resolve().parent / "spec.schema.json"


def spec_kind(spec: dict) -> str:
    if "analyses" in spec:
        return "explore"
    if "outcome" in spec or "features" in spec or "model" in spec:
        return "train"
    return "link"


def validate_spec(spec: Any, kind: str | None = None, stations: list[str] | None = None) -> list[str]:
    """Problems with a spec, before any station sees it: structure (JSON Schema), then meaning.

    ``stations``: the study's stations, for a spec without linkage (one station alone); without them
    such a spec is checked against the stations it names itself."""
    from .algorithms import algorithm
    from .explore.spec import parse_explore_spec
    from .linkage.spec import parse_linkage_spec
    from .runtime.errors import LancelotError
    from .training.spec import parse_train_spec

    if not isinstance(spec, dict):
        return ["the spec must be a JSON object"]
    kind = kind or spec_kind(spec)
    problems: list[str] = []
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    if jsonschema is not None and SCHEMA.exists():
        schema = json.loads(SCHEMA.read_text())
        part = algorithm(kind).name
        validator = jsonschema.Draft202012Validator({"$ref": f"#/$defs/{part}", "$defs": schema["$defs"]})
        for err in sorted(validator.iter_errors(spec), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
            problems.append(f"{where}: {_message(err)}")
    if problems:
        return problems
    link = spec if kind == "link" else spec.get("linkage")
    if link is not None:
        stations = list(link.get("stations", {}))
    elif stations is None:
        stations = sorted(_named_stations(spec))
    try:
        if link is not None:
            parse_linkage_spec(link, known_stations=stations)
        if kind == "explore":
            parse_explore_spec(spec, stations)
        elif kind == "train":
            parse_train_spec(spec, stations)
    except LancelotError as exc:
        problems.append(str(exc))
    return problems


def _named_stations(node: Any) -> set[str]:
    """Every station a spec names (``{"station": ...}`` anywhere in it)."""
    if isinstance(node, dict):
        own = {node["station"]} if isinstance(node.get("station"), str) else set()
        return own.union(*(_named_stations(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_named_stations(v) for v in node))
    return set()


def _message(err) -> str:
    """A schema error in a line: for "one of these forms" errors the closest form's complaint, never the
    whole instance (jsonschema quotes it, which for a top-level error is the entire spec)."""
    if err.validator in ("oneOf", "anyOf") and err.context:
        import jsonschema

        best = jsonschema.exceptions.best_match(err.context)
        inner = "/".join(str(p) for p in best.relative_path)
        return f"matches none of the allowed forms; closest: {inner + ': ' if inner else ''}{_message(best)}"
    if err.validator == "not" and isinstance(err.instance, dict):
        present = [name for name in _required(err.validator_value) if name in err.instance]
        if present:
            return f"{', '.join(repr(n) for n in present)} does not belong here (with this model or kind)"
    text = err.message.replace(repr(err.instance), "the value") if len(repr(err.instance)) > 40 else err.message
    return text if len(text) <= 200 else text[:197] + "..."


def _required(schema: Any) -> list[str]:
    """The property names a schema's "required" lists name (through anyOf / oneOf)."""
    if not isinstance(schema, dict):
        return []
    names = list(schema.get("required", []))
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key, []):
            names += _required(sub)
    return names
