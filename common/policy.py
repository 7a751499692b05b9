"""The node operator's policy: the limits a station enforces whatever the researcher asks for.

Every station step reads the policy of its own node (through :func:`read_policy`), enforces what it
can itself (which columns may be analysed, how many categories, how match keys are built, key
sizes, the evaluation opt-in, where the coordinator may run) and states the rest in its first
result, so that the coordinator applies the strictest policy of all stations to what it releases
(:class:`Protections`). Researcher parameters can only tighten a setting, never loosen it.

A node operator sets the policy in the node configuration's ``algorithm_env``, one variable per
setting (``LANCELOT_MIN_CELL_COUNT: 20``), or as one JSON object (``LANCELOT_POLICY``), or in a
JSON file the node mounts (``LANCELOT_POLICY_FILE``). A setting given in two places, an unknown
setting or a bad value stops every lancelot step at that node with an error naming the setting:
a station never runs with a policy it could not read. Documented in docs/node-operators.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from .runtime.columns import column_hint
from .runtime.errors import InputError, LancelotError, PrivacyError

DEFAULT_MIN_CELL_COUNT = 10
ROUNDING_BASES = (1, 5, 10)
MIN_KEY_FIELDS = 3
MIN_KEY_BITS = 2048


class PolicyError(LancelotError):
    """The node operator's policy could not be read: the station refuses every step."""


@dataclass(frozen=True)
class NodePolicy:
    """One node's limits. Defaults are what a node gets when its operator sets nothing."""

    min_cell_count: int = DEFAULT_MIN_CELL_COUNT        # smallest count released (never below 10)
    rounding_base: int = 5                              # released counts rounded to a multiple of this
    max_categories: int = 20                            # ceiling on the levels of a categorical variable
    analysis_columns: tuple[str, ...] | None = None     # allow-list of analysable columns (None: all but ids)
    identifier_columns: tuple[str, ...] = ()            # never analysable, whatever the spec says
    analysable_linkage_columns: tuple[str, ...] = ()    # linkage columns that may also be analysed (sex)
    min_key_fields: int = MIN_KEY_FIELDS                # distinct fields in every linkage match key
    max_key_frequency: int = 5                          # ceiling: key values shared by more records are dropped
    min_key_bits: int = MIN_KEY_BITS                    # smallest Paillier modulus accepted
    allow_evaluate: bool = False                        # may an evaluation run return links as record ids
    allow_linkage_similarity: bool = True               # may linkage send keyed Bloom filters for the residue
    linkage_resist_collusion: bool = False              # linkage only with blinded pseudonyms and no Bloom filters
    allow_coordinator_here: bool = False                # may the coordinator run at this (data) node
    coordinator_organizations: tuple[int, ...] | None = None  # allow-list of coordinator organisations
    max_result_mb: float = 64.0                         # larger subtask results go to the coordinator in parts
    max_input_mb: float = 64.0                          # hosting the coordinator: larger subtask inputs go in parts

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> PolicyError:
            return PolicyError(f"node policy: '{name}' {why}")

        if self.min_cell_count < DEFAULT_MIN_CELL_COUNT:
            raise bad("min_cell_count", f"must be at least {DEFAULT_MIN_CELL_COUNT}")
        if self.rounding_base not in ROUNDING_BASES:
            raise bad("rounding_base", f"must be one of {list(ROUNDING_BASES)}")
        if not 2 <= self.max_categories <= 1000:
            raise bad("max_categories", "must lie between 2 and 1000")
        if self.min_key_fields < MIN_KEY_FIELDS:
            raise bad("min_key_fields", f"must be at least {MIN_KEY_FIELDS}")
        if not 1 <= self.max_key_frequency <= 1000:
            raise bad("max_key_frequency", "must lie between 1 and 1000")
        if self.min_key_bits < MIN_KEY_BITS:
            raise bad("min_key_bits", f"must be at least {MIN_KEY_BITS}")
        if not 0.1 <= self.max_result_mb <= 4096:
            raise bad("max_result_mb", "must lie between 0.1 and 4096")
        if not 0.1 <= self.max_input_mb <= 4096:
            raise bad("max_input_mb", "must lie between 0.1 and 4096")

    # -- what a station enforces itself -------------------------------------------------------
    def check_column(self, station: str, column: str, identifiers: Iterable[str] = (), id_column: str | None = None
                     ) -> None:
        """Refuse an identifier, or a column outside the operator's allow-list, as an analysis variable.

        ``identifiers``: the job's linkage columns at this station, analysable only where the operator lists them
        in ``analysable_linkage_columns`` (sex is a linkage field and a covariate); ``id_column``: never."""
        never = column in self.identifier_columns or column == id_column
        linkage = column in set(identifiers) and column not in self.analysable_linkage_columns
        if never or linkage:
            why = "" if never else (" (the node operator may allow a linkage column such as sex: "
                                    "analysable_linkage_columns)")
            raise PrivacyError(f"is an identifier or linkage field and cannot be analysed (node policy){why}",
                               station=station, column=column)
        if self.analysis_columns is not None and column not in self.analysis_columns:
            raise PrivacyError("is not among the columns the node operator allows for analysis "
                               "(node policy 'analysis_columns')", station=station, column=column)

    def max_categories_for(self, requested: int | None) -> int:
        """The researcher may ask for fewer categories than the node's ceiling, never more."""
        return self.max_categories if requested is None else min(int(requested), self.max_categories)

    def check_key_bits(self, bits: int, station: str) -> None:
        if bits < self.min_key_bits:
            raise PrivacyError(f"refuses a {bits}-bit key: its node policy requires at least {self.min_key_bits} bits",
                               station=station)

    def public(self) -> dict:
        """What the station states to the coordinator (the column lists stay at the station)."""
        out = asdict(self)
        for name in ("analysis_columns", "identifier_columns", "analysable_linkage_columns", "coordinator_organizations"):
            out.pop(name)
        return out


_FIELDS = {f.name: f for f in fields(NodePolicy)}
ENV_PREFIX = "LANCELOT_"
ENV_POLICY = "LANCELOT_POLICY"
ENV_POLICY_FILE = "LANCELOT_POLICY_FILE"
ENV_NAMES = {name: ENV_PREFIX + name.upper() for name in _FIELDS}


def _convert(name: str, value: Any) -> Any:
    """A setting from text (environment) or JSON into its type; a clear error otherwise."""
    kind = _FIELDS[name].type
    try:
        if "bool" in kind:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(value)
        if "tuple[int" in kind:
            items = value if isinstance(value, list) else [v for v in str(value).split(",") if v.strip()]
            return tuple(int(v) for v in items)
        if "tuple[str" in kind:
            items = value if isinstance(value, list) else str(value).split(",")
            return tuple(str(v).strip() for v in items if str(v).strip())
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value) if kind == "float" else int(value)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"node policy: '{name}' has a value of the wrong type ({kind})") from exc


def read_policy(getenv: Callable[[str], str | None]) -> NodePolicy:
    """The node's policy from its environment (``getenv`` decodes what a vantage6 node encoded)."""
    given: dict[str, Any] = {}
    where: dict[str, str] = {}

    def take(source: str, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            if key not in _FIELDS:
                raise PolicyError(f"node policy ({source}): unknown setting '{key}'; known: {sorted(_FIELDS)}")
            if key in given:
                raise PolicyError(f"node policy: '{key}' is set twice ({where[key]} and {source})")
            given[key], where[key] = _convert(key, value), source

    path = getenv(ENV_POLICY_FILE)
    if path:
        try:
            take(ENV_POLICY_FILE, json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, AttributeError) as exc:
            raise PolicyError(f"node policy: {ENV_POLICY_FILE} could not be read as a JSON object") from exc
    inline = getenv(ENV_POLICY)
    if inline:
        try:
            values = json.loads(inline)
        except json.JSONDecodeError as exc:
            raise PolicyError(f"node policy: {ENV_POLICY} is not valid JSON") from exc
        if not isinstance(values, dict):
            raise PolicyError(f"node policy: {ENV_POLICY} must be a JSON object")
        take(ENV_POLICY, values)
    take("environment", {name: value for name, var in ENV_NAMES.items() if (value := getenv(var)) not in (None, "")})
    return NodePolicy(**given)


def linkage_id_column(linkage_raw: Any, station: str) -> str | None:
    """The record-id column of ``station`` named in a job's linkage spec."""
    conf = (linkage_raw.get("stations") or {}).get(station) if isinstance(linkage_raw, dict) else None
    return conf["id_column"] if isinstance(conf, dict) and isinstance(conf.get("id_column"), str) else None


def linkage_identifiers(linkage_raw: Any, station: str) -> list[str]:
    """The record-id column and every linkage-field column of ``station`` named in a job's linkage spec."""
    if not isinstance(linkage_raw, dict):
        return []
    id_column = linkage_id_column(linkage_raw, station)
    out = [id_column] if id_column is not None else []
    for f in linkage_raw.get("fields") or []:
        col = (f.get("columns") or {}).get(station) if isinstance(f, dict) else None
        if isinstance(col, str):
            out.append(col)
    return out


def check_columns(policy: NodePolicy, station: str, df: pd.DataFrame, columns: Iterable[str],
                  linkage_raw: Any) -> None:
    """Every column a job analyses at this station exists and is one the node policy allows."""
    identifiers, id_column = linkage_identifiers(linkage_raw, station), linkage_id_column(linkage_raw, station)
    for column in columns:
        if column not in df.columns:
            raise InputError(f"unknown column; the table has {list(df.columns)[:30]}{column_hint(column, df.columns)}",
                             station=station, column=column)
        policy.check_column(station, column, identifiers, id_column)


@dataclass(frozen=True)
class Protections:
    """The protections in force for one job: the strictest of every station's policy and the researcher's."""

    min_cell_count: int
    rounding_base: int
    max_categories: int
    max_key_frequency: int
    min_key_bits: int
    stations: tuple[str, ...]

    @classmethod
    def combine(cls, policies: Mapping[str, Mapping[str, Any]], min_cell_count: int | None = None,
                rounding_base: int | None = None) -> Protections:
        """``policies``: each station's :meth:`NodePolicy.public`; the researcher may only raise k and rounding."""
        if min_cell_count is not None and (not isinstance(min_cell_count, int) or isinstance(min_cell_count, bool)
                                           or min_cell_count < DEFAULT_MIN_CELL_COUNT):
            raise InputError(f"min_cell_count must be an integer of at least {DEFAULT_MIN_CELL_COUNT} "
                             "(the node operators' minimum can only be raised)")
        if rounding_base is not None and rounding_base not in ROUNDING_BASES:
            raise InputError(f"rounding_base must be one of {list(ROUNDING_BASES)}")
        ps = list(policies.values())

        def strictest(name: str, default: int, pick: Callable = max) -> int:
            return pick([default, *[int(p.get(name, default)) for p in ps]])

        return cls(min_cell_count=max(min_cell_count or 0, strictest("min_cell_count", DEFAULT_MIN_CELL_COUNT)),
                   rounding_base=max(rounding_base or 1, strictest("rounding_base", 1)),
                   max_categories=strictest("max_categories", 1000, min),
                   max_key_frequency=strictest("max_key_frequency", 1000, min),
                   min_key_bits=strictest("min_key_bits", MIN_KEY_BITS),
                   stations=tuple(policies))

    def as_dict(self) -> dict:
        out = asdict(self)
        out["stations"] = list(self.stations)
        out["enforced_by"] = ("each station's node policy (columns, categories, match keys, key sizes, "
                              "evaluation opt-in, coordinator placement) and the coordinator's output checks "
                              "with the strictest policy of all stations")
        return out
