"""Private record linkage in two rounds, for a hub (the registry) and one or more other stations.

Round 1 (``link_encode``, every station): check the data against the spec, normalise, shuffle the
rows with a secret permutation, derive the match keys; return the match model's aggregates and a
fresh X25519 public key.
Round 2 (``link_pseudonyms``): the coordinator relays the public keys (the hub gets every other
station's, the others the hub's); each station derives one secret per pair and sends its match-key
values as keyed pseudonyms under it (BLAKE2b, 16 bytes; random dummies for missing or too frequent
values). The coordinator matches the pseudonyms of both sides of each pair (:mod:`.matching`).
Beside them each station sends keyed Bloom filters of its records under the pair's secret, which
the coordinator compares for the records no key linked (:mod:`.similarity`).

With ``"pseudonyms": "blinded"`` (required by a node whose policy resists collusion) round 1 also
returns H(key)^a, the match keys hashed to Curve25519 points times a fresh secret scalar, and round 2
(``link_exponentiate``) multiplies the other side's points by the station's own scalar: the
coordinator holds H(key)^(a*b), which it cannot test a guess against even with one station's help,
at two curve operations per value and station (4-10 times the time).

The link (pairs of shuffled row positions) stays at the coordinator, inside the job: no station
learns which of its records were linked. Leakage table: docs/leakage/linkage.md. This module is
the coordinator's side; the station steps are in :mod:`.steps`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..disclosure import release_count, release_share
from ..policy import ROUNDING_BASES, Protections
from ..runtime.coordinator import Coordinator, StepCall
from ..runtime.errors import InputError, PrivacyError
from . import pseudonym, similarity
from .keys import check_recipes, key_name, key_recipes
from .matching import MatchResult, add_residue_links, int_keys, match
from .model import (
    combine_state_shares,
    pattern_rates,
    used_components,
    within_pattern_counts,
)
from .spec import LinkageSpec, parse_linkage_spec
from .steps import STEPS


@dataclass
class Linkage:
    spec: LinkageSpec
    n_rows: dict[str, int]
    matches: dict[str, MatchResult]          # other station -> match with the hub
    keys: list[str]
    policies: dict[str, dict]                # each station's stated node policy
    record_ids: dict[str, list[str]] = field(default_factory=dict)  # only with --evaluate
    warnings: list[str] = field(default_factory=list)    # the stations' warnings (mostly empty columns)

    @property
    def hub(self) -> str:
        return self.spec.hub

    def cohort(self, stations: list[str] | None = None) -> dict[str, np.ndarray]:
        """Rows (shuffled positions) of the cohort linked across ``stations``, aligned per station.

        The cohort is the hub records linked to every listed non-hub station; element k of every
        array belongs to the same person. Sorted by hub position.
        """
        others = [s for s in (stations or list(self.spec.stations)) if s != self.hub]
        hub_rows = np.arange(self.n_rows[self.hub])
        mapping = {}
        for s in others:
            m = self.matches[s]
            to_other = np.full(self.n_rows[self.hub], -1)
            to_other[m.hub_rows] = m.other_rows
            mapping[s] = to_other
        keep = np.ones(len(hub_rows), bool)
        for s in others:
            keep &= mapping[s] >= 0
        out = {self.hub: hub_rows[keep]}
        for s in others:
            out[s] = mapping[s][keep]
        return out

    def small_cohort(self, k: int) -> str:
        """Why the cohort linked across every station is smaller than k, for the error message: the stations
        linked to fewer than k hub records (the linkage summary withholds those counts alike), if any."""
        few = [s for s in self.spec.others if len(self.matches[s].hub_rows) < k]
        if not few:
            return f"the linked cohort has fewer than {k} records (the minimum cell count)"
        return (f"the linked cohort has fewer than {k} records (the minimum cell count): fewer than {k} records of the hub '{self.hub}' are "
                f"linked to station(s) {few} (check their linkage columns, date formats and mappings, or leave "
                "them out of the job)")

    def protections(self, min_cell_count: int | None = None, rounding_base: int | None = None) -> Protections:
        return Protections.combine(self.policies, min_cell_count, rounding_base)

    def summary(self, min_cell_count: int | None = None, rounding_base: int | None = None) -> dict:
        """What the researcher may see of the link: every count withheld below k (zero excepted) and
        rounded to the rounding base; shares computed from the rounded counts."""
        protections = self.protections(min_cell_count, rounding_base)
        k, base = protections.min_cell_count, protections.rounding_base

        def count(value: float) -> int | None:
            return release_count(value, k, base)

        pairs = {}
        for s, m in self.matches.items():
            hist_edges = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0]
            hist, _ = np.histogram(m.probability, bins=hist_edges)
            linked = len(m.hub_rows)
            agreement = {}
            for bit, name in enumerate(self.keys):
                agree = int(((m.patterns >> bit) & 1).sum()) if len(m.patterns) else 0
                agreement[name] = release_share(agree, len(m.patterns), k, base) if len(m.patterns) >= k else None
            pairs[f"{self.hub}~{s}"] = {
                "linked": count(linked),
                "candidate_pairs": count(m.n_candidates),
                "match_probability_histogram": [
                    {"from": lo, "to": hi, "count": count(int(c))}
                    for lo, hi, c in zip(hist_edges[:-1], hist_edges[1:], hist)],
                "em_expected_precision": round(m.expected_precision, 4) if linked >= k else None,
                "em_expected_recall": round(m.expected_recall, 4) if linked >= k else None,
                "em_m_probabilities": {name: {label: round(float(x), 4) for label, x in zip(labels, mf)}
                                       for name, labels, mf in zip(m.state_fields, m.states, m.m)},
                "em_u_probabilities": {name: {label: float(f"{x:.3g}") for label, x in zip(labels, uf)}
                                       for name, labels, uf in zip(m.state_fields, m.states, m.u)},
                "em_levels": "per field, the states: which components agree ('none': they disagree or one is missing)",
                "key_agreement_rate_among_links": agreement,
                # the residue model's m and u stay at the coordinator: u's floor (half a pair) would give the
                # exact number of a station's unlinked records
                "linked_by_similarity": count(m.similarity_links),
            }
        cohort = len(self.cohort()[self.hub])
        return {
            "records_per_station": {s: count(n) for s, n in self.n_rows.items()},
            "hub": self.hub,
            "pairs": pairs,
            "linked_to_all_stations": count(cohort),
            "threshold": self.spec.threshold,
            "match_keys": self.keys,
            "min_cell_count": k,
            "rounding_base": base,
            "warnings": list(self.warnings),
            "suppressed_note": f"counts below {k} (other than 0) are withheld as null; the others are rounded to "
                               f"the nearest multiple of {base}, and key agreement rates are computed from "
                               "rounded counts",
        }

    def links_table(self) -> list[dict]:
        """Evaluation only: the links as station record ids (hub record, one id per linked station)."""
        if not self.record_ids:
            raise PrivacyError("record ids are only available in an evaluation run")
        out = []
        for s, m in self.matches.items():
            for i, j, p in zip(m.hub_rows, m.other_rows, m.probability):
                out.append({self.hub: self.record_ids[self.hub][i], s: self.record_ids[s][j],
                            "probability": round(float(p), 4)})
        return out


class LinkageRun:
    """The two linkage rounds as calls, so that other algorithms can add their own steps to them."""

    def __init__(self, coordinator: Coordinator, spec_raw: dict, evaluate: bool = False):
        self.spec = parse_linkage_spec(spec_raw, known_stations=coordinator.stations)
        if len(self.spec.stations) < 2:
            raise InputError("linkage needs at least two stations")
        check_recipes(self.spec, key_recipes(self.spec))   # before any round
        self.evaluate = evaluate
        self.coordinator = coordinator

    @classmethod
    def for_run(cls, coordinator: Coordinator, spec_raw: dict | None, evaluate: bool, what: str) -> LinkageRun:
        """The linkage stage of another algorithm: its spec must name exactly the run's stations."""
        if spec_raw is None:
            raise InputError(f"{what} over several stations needs a 'linkage' spec")
        run = cls(coordinator, spec_raw, evaluate=evaluate)
        if set(run.stations) != set(coordinator.stations):
            raise InputError(f"the linkage spec must name exactly the stations of this run: {sorted(coordinator.stations)}")
        return run

    @property
    def stations(self) -> list[str]:
        return list(self.spec.stations)

    def first_calls(self) -> dict[str, StepCall]:
        payload = {"spec": self.spec.to_dict(), "evaluate": self.evaluate}
        return {s: StepCall("link_encode", payload) for s in self.stations}

    def second_calls(self, first: dict[str, dict]) -> dict[str, StepCall]:
        spec = self.spec
        keys = first[spec.hub]["keys"]
        for s in self.stations:
            if first[s]["keys"] != keys:
                raise InputError("stations derived different match keys from the same spec", station=s)
        # the residue's similarity step: for each pair of stations that both agreed and whose records the
        # coordinator can compare (at most MAX_ENCODED_PAIRS record pairs)
        filters = [s for s in spec.others if first[spec.hub].get("similarity") and first[s].get("similarity")
                   and first[spec.hub]["n"] * first[s]["n"] <= similarity.MAX_ENCODED_PAIRS]
        if spec.pseudonyms == "keyed":
            # each station derives a key per pair from the other's relayed public half, and sends its own
            # records' pseudonyms under it
            step = "link_pseudonyms"
            peers = {spec.hub: {s: first[s]["exchange_key"] for s in spec.others}}
            peers.update({s: {spec.hub: first[spec.hub]["exchange_key"]} for s in spec.others})
            calls = {s: {"peers": peers[s]} for s in self.stations}
        else:
            # each station multiplies the other side's points by its own scalar
            step = "link_exponentiate"
            calls = {spec.hub: {"batches": {s: first[s]["points"] for s in spec.others}}}
            calls.update({s: {"batches": {spec.hub: first[spec.hub]["points"]}} for s in spec.others})
            if filters:
                calls[spec.hub]["peers"] = {s: first[s]["exchange_key"] for s in filters}
                for s in filters:
                    calls[s]["peers"] = {spec.hub: first[spec.hub]["exchange_key"]}
        if filters:
            calls[spec.hub]["similarity"] = filters
            for s in filters:
                calls[s]["similarity"] = [spec.hub]
        return {s: StepCall(step, payload) for s, payload in calls.items()}

    def _pseudonyms(self, second: dict[str, dict], s: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Key ``name``'s pseudonyms of the hub's and of station s's records, as the pair (hub, s) sees them."""
        hub = self.spec.hub
        if self.spec.pseudonyms == "keyed":
            return (pseudonym.unpack_pseudonyms(second[hub]["pseudonyms"][s][name]),
                    pseudonym.unpack_pseudonyms(second[s]["pseudonyms"][hub][name]))
        return (pseudonym.unpack_pseudonyms(second[s]["batches"][hub][name]),
                pseudonym.unpack_pseudonyms(second[hub]["batches"][s][name]))

    def finish(self, first: dict[str, dict], second: dict[str, dict]) -> Linkage:
        spec = self.spec
        keys = first[spec.hub]["keys"]
        recipes = key_recipes(spec)
        if [key_name(r) for r in recipes] != keys:
            raise InputError("the stations' match keys differ from the coordinator's reading of the spec")
        used = used_components(recipes, spec)
        matches = {}
        notes: list[str] = []
        for s in spec.others:
            hub_points, other_points = (list(x) for x in zip(*[self._pseudonyms(second, s, name) for name in keys]))
            policies = [first[x]["policy"] for x in (spec.hub, s)]
            n_h, n_o = first[spec.hub]["n"], first[s]["n"]
            fields = combine_state_shares(spec, used, [first[spec.hub]["state_shares"], first[s]["state_shares"]],
                                          pair_floor=1.0 / (float(n_h) * float(n_o)))
            kept = [(1 - np.asarray(first[x]["dropped_per_key"], float) / first[x]["n"]) for x in (spec.hub, s)]
            max_frequency = min([spec.max_key_frequency, *[p["max_key_frequency"] for p in policies]])
            rates = pattern_rates([within_pattern_counts([int_keys(p) for p in points], max_frequency)
                                   for points in (hub_points, other_points)])
            matches[s] = match(hub_points, other_points, recipes, fields, drop_rates=1 - kept[0] * kept[1],
                               threshold=spec.threshold, pattern_rates=rates,
                               max_frequency=max_frequency)
            notes += disagreeing_fields(matches[s], spec.hub, s)
            residue_note = self._residue(matches, s, first, second)
            if residue_note:
                notes.append(residue_note)
            self.coordinator.log(f"linkage: {spec.hub} and {s} matched")  # no counts in logs
        record_ids = {s: first[s]["record_ids"] for s in self.stations} if self.evaluate else {}
        return Linkage(spec=spec, n_rows={s: first[s]["n"] for s in self.stations}, matches=matches, keys=keys,
                       policies={s: first[s]["policy"] for s in self.stations}, record_ids=record_ids,
                       warnings=[w for s in self.stations for w in first[s].get("warnings", [])] + notes)

    def _residue(self, matches: dict[str, MatchResult], s: str, first: dict, second: dict) -> str | None:
        """The similarity step for the pair (hub, s): link the records the keys left unlinked."""
        spec = self.spec
        hub_filters = second[spec.hub].get("filters", {}).get(s)
        other_filters = second[s].get("filters", {}).get(spec.hub)
        m = matches[s]
        if not (hub_filters and other_filters):
            off = [x for x in (spec.hub, s) if not first[x].get("similarity")]
            if spec.similarity is False or not similarity.name_fields(spec):
                return None
            if off:
                return (f"the similarity step for records no key links is off between {spec.hub} and {s}: "
                        f"node policy at {off} (allow_linkage_similarity or linkage_resist_collusion)")
            return (f"the similarity step is skipped between {spec.hub} and {s}: too many record pairs "
                    f"(more than {similarity.MAX_ENCODED_PAIRS:.0e})")
        n_h, n_o = first[spec.hub]["n"], first[s]["n"]
        hub_bf = similarity.unpack_filters(hub_filters, n_h)
        other_bf = similarity.unpack_filters(other_filters, n_o)
        rest_h = np.setdiff1d(np.arange(n_h), m.hub_rows)
        rest_o = np.setdiff1d(np.arange(n_o), m.other_rows)
        if float(len(rest_h)) * float(len(rest_o)) > similarity.MAX_RESIDUE_PAIRS:
            return (f"the similarity step is skipped between {spec.hub} and {s}: the residue is too large to "
                    "compare every pair (blocking for it is not built)")
        fit = similarity.residue_match(hub_bf, other_bf, rest_h, rest_o, spec.threshold)
        if fit is None or len(fit.hub_rows) == 0:
            return None
        matches[s] = add_residue_links(m, fit)
        return None


def disagreeing_fields(m: MatchResult, hub: str, other: str, limit: float = 0.5) -> list[str]:
    """Warnings for linkage fields that disagree in most of a station pair's links (EM's m-probability of
    the state 'none' above ``limit``): the two stations probably code or format the field differently
    (sex as M/F at one and male/female at the other, without a ``mapping``), which silently weakens every
    key with the field. Uses only the m-probabilities the linkage summary releases anyway."""
    out = []
    for name, labels, m_field in zip(m.state_fields, m.states, m.m):
        none = float(dict(zip(labels, m_field)).get("none", 0.0))
        if len(m.hub_rows) and none > limit:
            out.append(f"linkage field '{name}' disagrees in most links between '{hub}' and '{other}' (EM "
                       f"m-probability {none:.2f}): do both stations code and format it alike? A category needs "
                       "a 'mapping' in the spec when the stations use different codes")
    return out


def check_researcher_protections(min_cell_count: int | None, rounding_base: int | None) -> None:
    """Refuse a bad ``min_cell_count`` or ``rounding_base`` before any round (the node policies, known only
    after the first round, are combined with them later and can only make them stricter)."""
    if isinstance(rounding_base, bool) or (rounding_base is not None and not isinstance(rounding_base, int)):
        raise InputError(f"rounding_base must be one of {list(ROUNDING_BASES)}")
    Protections.combine({}, min_cell_count, rounding_base)


def link(coordinator: Coordinator, spec_raw: dict, evaluate: bool = False) -> Linkage:
    """Run the two linkage rounds over every station in the spec; the link stays here."""
    run = LinkageRun(coordinator, spec_raw, evaluate)
    with coordinator.cost.phase("linkage"):
        first = coordinator.round(run.first_calls(), label="linkage: encode match keys")
        second = coordinator.round(run.second_calls(first), label="linkage: pseudonyms of the match keys",
                                   final=run.stations)
        return run.finish(first, second)


__all__ = ["Linkage", "LinkageRun", "link", "check_researcher_protections", "STEPS", "key_name", "key_recipes"]
